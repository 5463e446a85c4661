"""History pages in both directions (issues 16 and 19): before=, after= and around= a message id.

A page is always oldest first; ``more_before``/``more_after`` tell whether older/newer messages
exist beyond it, and ``more`` keeps its old meaning (older ones exist).
"""
import json
import urllib.request

import pytest

from app.rooms import keys, messages

from .support import TOKEN, post

BEARER = {"Authorization": "Bearer " + TOKEN}


@pytest.fixture
def ten(client, room):
    """A room with ten messages, "m0" to "m9": their ids, oldest first."""
    ids = []
    for n in range(10):
        response = client.post("/rooms/%s/messages" % room, json={"text": "m%d" % n, "user": "ann"},
                               headers=BEARER)
        assert response.status_code == 201
        ids.append(response.get_json()["id"])
    return ids


def page(client, room, query=""):
    response = client.get("/rooms/%s/messages%s" % (room, query))
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    return [m["id"] for m in body["messages"]], body


def flags(body):
    return body["more_before"], body["more_after"]


def test_the_newest_page_has_nothing_after_it(client, room, ten):
    ids, body = page(client, room, "?limit=4")
    assert ids == ten[6:]
    assert flags(body) == (True, False) and body["more"] is True


def test_before_gives_the_older_messages_and_says_newer_ones_exist(client, room, ten):
    ids, body = page(client, room, "?before=%s&limit=3" % ten[5])
    assert ids == ten[2:5]
    assert flags(body) == (True, True) and body["more"] is True


def test_after_gives_the_newer_messages_oldest_first(client, room, ten):
    ids, body = page(client, room, "?after=%s&limit=3" % ten[2])
    assert ids == ten[3:6]
    assert flags(body) == (True, True)


def test_after_reaching_the_newest_says_nothing_newer(client, room, ten):
    ids, body = page(client, room, "?after=%s&limit=50" % ten[6])
    assert ids == ten[7:]
    assert flags(body) == (True, False)


def test_after_the_newest_message_is_empty(client, room, ten):
    ids, body = page(client, room, "?after=%s" % ten[-1])
    assert ids == [] and flags(body) == (True, False)


def test_after_the_first_possible_id_is_the_whole_room(client, room, ten):
    ids, body = page(client, room, "?after=0-0")
    assert ids == ten and flags(body) == (False, False) and body["more"] is False


def test_after_the_largest_possible_id_is_empty(client, room, ten):
    ids, body = page(client, room, "?after=18446744073709551615-18446744073709551615")
    assert ids == [] and flags(body) == (True, False)


def test_around_puts_the_message_in_the_middle(client, room, ten):
    ids, body = page(client, room, "?around=%s&limit=5" % ten[5])
    assert ids == ten[3:8]
    assert flags(body) == (True, True)


def test_around_with_an_even_limit_keeps_the_message_and_leans_newer(client, room, ten):
    ids, _ = page(client, room, "?around=%s&limit=4" % ten[5])
    assert ids == ten[4:8]


def test_around_near_the_newest_fills_the_page_with_older_messages(client, room, ten):
    ids, body = page(client, room, "?around=%s&limit=5" % ten[8])
    assert ids == ten[5:]
    assert flags(body) == (True, False)


def test_around_near_the_oldest_fills_the_page_with_newer_messages(client, room, ten):
    ids, body = page(client, room, "?around=%s&limit=5" % ten[1])
    assert ids == ten[:5]
    assert flags(body) == (False, True) and body["more"] is False


def test_around_with_room_for_everything_is_the_whole_room(client, room, ten):
    ids, body = page(client, room, "?around=%s&limit=50" % ten[4])
    assert ids == ten and flags(body) == (False, False)


def test_around_an_id_no_message_has_centres_where_it_would_be(client, room, redis_client):
    # Ids chosen by the test (10-0, 20-0, ... 100-0), so that 45-0 falls between two of them;
    # it counts as the first of the newer half, as a message with that id would.
    ids = ["%d-0" % (10 * n) for n in range(1, 11)]
    for mid in ids:
        redis_client.xadd(keys.RoomKeys(room).log, {"m": messages.body(room, "ann", mid, False)}, id=mid)
    found, body = page(client, room, "?around=45-0&limit=4")
    assert found == ["40-0", "50-0", "60-0", "70-0"] and flags(body) == (True, True)


def test_around_of_a_limit_of_one_is_the_message_itself(client, room, ten):
    ids, body = page(client, room, "?around=%s&limit=1" % ten[3])
    assert ids == [ten[3]] and flags(body) == (True, True)


def test_paging_forward_with_after_visits_every_message_once_in_order(client, room, ten):
    seen, cursor, more_after = [], "0-0", True
    while more_after:
        ids, body = page(client, room, "?after=%s&limit=3" % cursor)
        seen += ids
        cursor, more_after = ids[-1], body["more_after"]
    assert seen == ten


def test_paging_back_with_before_visits_every_message_once_in_order(client, room, ten):
    ids, body = page(client, room, "?limit=3")
    seen = ids
    while body["more_before"]:
        ids, body = page(client, room, "?before=%s&limit=3" % seen[0])
        seen = ids + seen
    assert seen == ten


def test_an_empty_room_has_no_page_either_way(client, room):
    for query in ("", "?after=0-0", "?around=1-0", "?before=99-0"):
        ids, body = page(client, room, query)
        assert ids == [] and flags(body) == (False, False), query


@pytest.mark.parametrize("query", [
    "?before=1-0&after=1-0", "?before=1-0&around=1-0", "?after=1-0&around=1-0",
    "?before=1-0&after=1-0&around=1-0", "?after=&around=1-0",
])
def test_two_bounds_are_a_400_with_a_sentence(client, room, query):
    response = client.get("/rooms/%s/messages%s" % (room, query))
    assert response.status_code == 400
    assert response.get_json()["error"] == "Give at most one of before, after and around."


@pytest.mark.parametrize("name", ["after", "around"])
@pytest.mark.parametrize("value", ["", "x", "1", "1-", "-1-0", "99999999999999999999999-0", "1-0.5"])
def test_a_bound_that_is_not_a_message_id_is_a_400(client, room, name, value):
    response = client.get("/rooms/%s/messages?%s=%s" % (room, name, value))
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(name + " must be a message id")


def test_the_real_server_answers_the_same_page_with_and_without_the_publish_token(server, room):
    ids = [post(server.url, room, "m%d" % n)[1]["id"] for n in range(5)]
    url = "%s/rooms/%s/messages?around=%s&limit=3" % (server.url, room, ids[2])
    pages = []
    for headers in ({}, BEARER):
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            pages.append(json.loads(r.read()))
    assert pages[0] == pages[1]
    assert [m["id"] for m in pages[0]["messages"]] == ids[1:4]
    assert flags(pages[0]) == (True, True)


@pytest.mark.parametrize("limit", ["+5", " 5", "5 ", "1_0", "%D9%A5", "%EF%BC%95", "-0"])
def test_a_limit_is_ascii_digits_only(client, room, ten, limit):
    # int() read "1_0" as ten and "٥" (an Arabic-Indic five) as five; the stream's backlog
    # (app/web/faststream.py) already took ASCII digits only.
    response = client.get("/rooms/%s/messages?limit=%s" % (room, limit.replace(" ", "%20")))
    assert response.status_code == 400 and response.get_json()["code"] == "bad_request"
    assert client.get("/rooms/%s/messages?limit=05" % room).status_code == 200
