"""Withdrawing a post whose attempt got no answer (POST /rooms/<room>/withdrawals): the
person chose "Don't send", and the attempt a stalled network still held must not be stored when
it arrives. Nothing stored yet: it never is; stored first: the answer says so, with the message.
Real Gunicorn (2 gevent workers) and real Redis."""
import json
import uuid
from urllib.parse import quote

import pytest

from app import create_app
from app.rooms import keys, messages
from app.rooms.store import Store, withdrawal_key

from .support import LIMITS_OFF, TOKEN
from .test_publish_tokens import connect, create, post, send
from .test_rooms import create as create_room
from .test_rooms import owner  # noqa: F401 (fixture)
from .web import Browser


def withdraw(person, room, key, **kw):
    """``person`` withdraws their post to ``room`` with idempotency ``key``: (status, JSON)."""
    status, _, body = person.request("POST", "/rooms/%s/withdrawals" % room, body={"idempotency_key": key}, **kw)
    return status, json.loads(body or b"{}")


def history_texts(person, room):
    status, _, body = person.request("GET", "/rooms/%s/messages" % room)
    assert status == 200
    return [message["text"] for message in json.loads(body)["messages"]]


@pytest.fixture
def ann(person):
    return person("ann")


def test_a_post_withdrawn_before_it_arrives_is_never_stored(ann, room):
    assert withdraw(ann, room, "late-1") == (200, {"withdrawn": True})
    status, body = ann.post(room, "held by a stalled network", key="late-1")  # arrives now
    assert (status, body["code"]) == (409, "withdrawn")
    assert "held by a stalled network" not in history_texts(ann, room)


def test_every_later_attempt_with_the_withdrawn_key_is_refused(ann, room):
    assert withdraw(ann, room, "late-2")[0] == 200
    for _ in range(2):
        assert ann.post(room, "again", key="late-2")[1]["code"] == "withdrawn"
    assert ann.post(room, "again", key="late-2b")[0] == 201  # a new key is a new post


def test_withdrawing_a_stored_post_answers_409_with_the_message(ann, room):
    status, stored = ann.post(room, "got through", key="k-1")
    assert status == 201
    status, body = withdraw(ann, room, "k-1")
    assert (status, body["code"], body["message"]["id"]) == (409, "already_sent", stored["id"])
    assert body["message"]["text"] == "got through" and body["error"]
    assert ann.post(room, "got through", key="k-1") == (200, stored)  # a retry still finds it


def test_withdrawing_twice_says_the_same(ann, room):
    assert withdraw(ann, room, "twice")[0] == 200
    assert withdraw(ann, room, "twice") == (200, {"withdrawn": True})


def test_a_withdrawal_is_the_senders_own(ann, person, room):
    # Someone else's key of the same spelling is theirs: ann's post is stored.
    assert withdraw(person("bob"), room, "shared-key")[0] == 200
    assert ann.post(room, "mine", key="shared-key")[0] == 201
    status, body = withdraw(ann, room, "shared-key")
    assert (status, body["code"]) == (409, "already_sent")


def test_a_programs_late_post_is_refused_on_the_fast_path_too(server, redis_url, room):
    token = create(redis_url, room + "*", "feed")[1]
    path = "/rooms/%s/withdrawals" % room
    status, body, _ = send(server.url, path, token, {"idempotency_key": "build-9"})
    assert (status, body) == (200, {"withdrawn": True})
    status, body, _ = post(server.url, room, token, {"text": "late"}, headers={"Idempotency-Key": "build-9"})
    assert (status, body["code"]) == (409, "withdrawn")
    # Its key as the header, for a post stored first.
    sent = post(server.url, room, token, {"text": "on time"}, headers={"Idempotency-Key": "build-10"})[1]
    status, body, _ = send(server.url, path, token, {}, headers={"Idempotency-Key": "build-10"})
    assert (status, body["code"], body["message"]["id"]) == (409, "already_sent", sent["id"])


def test_a_withdrawn_reply_is_refused_after_its_original_is_deleted(ann, room):
    original = ann.post(room, "original")[1]
    assert withdraw(ann, room, "reply-1")[0] == 200
    assert ann.request("DELETE", "/rooms/%s/messages/%s" % (room, original["id"]))[0] in (200, 204)
    status, _, body = ann.request("POST", "/rooms/%s/messages" % room, body={"text": "re", "reply_to": original["id"]},
                                  headers={"Idempotency-Key": "reply-1"})
    assert (status, json.loads(body)["code"]) == (409, "withdrawn")


@pytest.mark.parametrize("body, headers, code", [
    ({}, {}, "missing_idempotency_key"),
    ({"idempotency_key": ""}, {}, "missing_idempotency_key"),
    ({"idempotency_key": "é"}, {}, "bad_idempotency_key"),
    ({"idempotency_key": "x" * 1000}, {}, "bad_idempotency_key"),
    ({"idempotency_key": 7}, {}, "bad_idempotency_key"),
    ({"idempotency_key": "a"}, {"Idempotency-Key": "b"}, "idempotency_key_conflict"),
])
def test_a_withdrawal_without_a_usable_key_is_400(ann, room, body, headers, code):
    status, _, answer = ann.request("POST", "/rooms/%s/withdrawals" % room, body=body, headers=headers)
    assert (status, json.loads(answer)["code"]) == (400, code)


def test_a_withdrawal_needs_a_person(server, room):
    nobody = Browser(server.url)
    nobody.sign_in("")  # takes the CSRF token only
    assert withdraw(nobody, room, "k")[0] == 401


def test_a_withdrawal_needs_the_csrf_token(ann, room):
    ann.token = "forged"
    assert withdraw(ann, room, "k")[0] == 400


def test_a_withdrawal_in_a_private_room_of_others_is_404(ann, owner):
    private = "priv-" + uuid.uuid4().hex[:8]
    assert create_room(owner, private, "private")[0] == 201
    assert withdraw(ann, private, "k")[0] == 404


def test_a_withdrawal_in_a_bad_room_name_is_400(ann):
    assert withdraw(ann, "bad%20name%2F", "k")[0] in (400, 404)


def test_a_server_that_keeps_no_keys_cannot_withdraw(redis_client, room):
    store = Store(redis_client, 100, 0)
    with pytest.raises(messages.Invalid) as refused:
        store.withdraw(room, "ann", "k")
    assert (refused.value.status, refused.value.code) == (409, "withdraw_unavailable")


def test_a_withdrawal_leaves_the_keys_value_an_id_for_the_previous_release(redis_client, room):
    # A host of the release before withdrawals reads the key's value as a message id: it finds
    # nothing there (and stores a late attempt, as it always did), never a word it takes for an id.
    Store(redis_client, 100, 3600).withdraw(room, "ann", "k-roll", uid="u-ann")
    idem = keys.RoomKeys(room).idempotency(messages.idempotency_digest("u-ann", "k-roll"))
    assert redis_client.get(idem) is None and redis_client.exists(withdrawal_key(idem))
    assert 0 < redis_client.ttl(withdrawal_key(idem)) <= 3600


def test_a_server_that_keeps_no_keys_offers_no_withdrawal_on_its_page(redis_url, room):
    app = create_app({"TESTING": True, "REDIS_URL": redis_url, "SECRET_KEY": "test-secret",
                      "IDEMPOTENCY_SECONDS": 0, **LIMITS_OFF})
    client = app.test_client()
    token = client.get("/session").get_json()["csrf_token"]
    assert client.post("/session", json={"name": "ann-" + uuid.uuid4().hex[:6]},
                       headers={"X-CSRF-Token": token}).status_code == 200
    page = client.get("/rooms/%s" % room).get_data(as_text=True)
    assert 'data-kind="message"' in page and "data-withdraw" not in page


def change(person, method, path, key, body=None):
    """``person``'s change (an edit, deletion or reaction) with idempotency ``key``: (status, JSON)."""
    status, _, answer = person.request(method, path, body=body, headers={"Idempotency-Key": key})
    return status, json.loads(answer or b"{}")


def test_a_deletion_withdrawn_by_dont_save_is_not_done_when_it_arrives_late(ann, room):
    # "Don't save" on a waiting deletion, then the network delivered it: the message was gone.
    sent = ann.post(room, "keep me after all")[1]
    assert withdraw(ann, room, "del-1") == (200, {"withdrawn": True})
    status, answer = change(ann, "DELETE", "/rooms/%s/messages/%s" % (room, sent["id"]), "del-1")
    assert (status, answer["code"]) == (409, "withdrawn")
    assert history_texts(ann, room) == ["keep me after all"]


def test_an_edit_or_reaction_withdrawn_is_not_made_when_it_arrives_late(ann, room):
    sent = ann.post(room, "as first written")[1]
    path = "/rooms/%s/messages/%s" % (room, sent["id"])
    assert withdraw(ann, room, "edit-1")[0] == 200 and withdraw(ann, room, "react-1")[0] == 200
    assert change(ann, "PATCH", path, "edit-1", {"text": "rewritten"})[1]["code"] == "withdrawn"
    assert change(ann, "PUT", path + "/reactions/" + quote("👍"), "react-1")[1]["code"] == "withdrawn"
    status, _, body = ann.request("GET", "/rooms/%s/messages" % room)
    assert [(m["text"], m.get("reactions")) for m in json.loads(body)["messages"]] == [("as first written", None)]


def test_withdrawing_a_change_already_made_answers_409_with_the_message_as_it_is(ann, room):
    sent = ann.post(room, "before")[1]
    path = "/rooms/%s/messages/%s" % (room, sent["id"])
    assert change(ann, "PATCH", path, "edit-2", {"text": "after"})[0] == 200
    status, body = withdraw(ann, room, "edit-2")
    assert (status, body["code"], body["message"]["text"]) == (409, "already_sent", "after")
    assert change(ann, "PATCH", path, "edit-2", {"text": "after"})[0] == 200  # its retry: nothing new


def test_a_change_key_is_no_posts_key(ann, room):
    sent = ann.post(room, "mine")[1]
    reaction = "/rooms/%s/messages/%s/reactions/%s" % (room, sent["id"], quote("🎉"))
    assert change(ann, "PUT", reaction, "shared")[0] == 200
    status, body = ann.post(room, "a new post", key="shared")
    assert (status, body["code"]) == (422, "idempotency_key_reused")


def test_a_change_with_a_bad_key_is_400(ann, room):
    sent = ann.post(room, "mine")[1]
    status, answer = change(ann, "PATCH", "/rooms/%s/messages/%s" % (room, sent["id"]), "é", {"text": "x"})
    assert (status, answer["code"]) == (400, "bad_idempotency_key")


def test_a_change_with_a_key_from_the_global_token_is_400(server, room):
    # It edits under its own name ("ripple") and withdraws under the one it posts as: a
    # withdrawal could say "withdrawn" while the late change still landed.
    sent = post(server.url, room, TOKEN, {"text": "build 1 passed", "user": "ci"})[1]
    conn = connect(server.url)
    try:
        conn.request("PATCH", "/rooms/%s/messages/%s" % (room, sent["id"]), body=json.dumps({"text": "failed"}),
                     headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json",
                              "Idempotency-Key": "gk-1"})
        response = conn.getresponse()
        assert (response.status, json.loads(response.read())["code"]) == (400, "idempotency_key_unsupported")
    finally:
        conn.close()


def test_a_change_sent_with_a_posts_key_does_nothing_and_the_posts_retry_still_finds_it(ann, room):
    other = ann.post(room, "an older message")[1]
    status, stored = ann.post(room, "my post", key="p-1")
    reaction = "/rooms/%s/messages/%s/reactions/%s" % (room, other["id"], quote("🎉"))
    assert change(ann, "PUT", reaction, "p-1")[1]["code"] == "idempotency_key_reused"
    assert ann.post(room, "my post", key="p-1") == (200, stored)


def test_a_withdrawn_change_is_refused_even_when_it_would_do_nothing_now(ann, room):
    sent = ann.post(room, "x")[1]
    path = "/rooms/%s/messages/%s" % (room, sent["id"])
    assert change(ann, "DELETE", path, "d-1")[0] == 204  # deleted from another tab meanwhile
    assert withdraw(ann, room, "d-2")[0] == 200
    status, answer = change(ann, "DELETE", path, "d-2")  # its late attempt: nothing to do, and refused
    assert (status, answer["code"]) == (409, "withdrawn")
