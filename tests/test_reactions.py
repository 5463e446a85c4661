"""Reactions (issue 16): toggle an emoji on a message, idempotent, counted, live and resumable."""
import json
import re
import threading
import urllib.parse
import uuid

import pytest

from .servers import Gunicorn, wait_until
from .sse import SSEStream
from .support import SERVER_ENV
from .web import Browser


def signed_in(server, name):
    browser = Browser(server.url)
    assert browser.sign_in("%s-%s" % (name, uuid.uuid4().hex[:6])) == 200
    return browser


def uid_of(browser):
    _, _, body = browser.request("GET", "/session")
    return json.loads(body)["uid"]


def react(browser, room, message_id, emoji, on=True):
    path = "/rooms/%s/messages/%s/reactions/%s" % (room, message_id, urllib.parse.quote(emoji))
    status, _, body = browser.request("PUT" if on else "DELETE", path)
    return status, json.loads(body or b"{}")


def history(browser, room):
    _, _, body = browser.request("GET", "/rooms/%s/messages" % room)
    return json.loads(body)["messages"]


def test_a_reaction_is_counted_with_who_reacted(server, room):
    ann, bob = signed_in(server, "ann"), signed_in(server, "bob")
    _, sent = ann.post(room, "lunch?")
    status, body = react(bob, room, sent["id"], "👍")
    assert status == 200 and body == {"message_id": sent["id"],
                                      "reactions": {"👍": {"count": 1, "users": [bob.name],
                                                                           "uids": [uid_of(bob)]}}}
    react(ann, room, sent["id"], "👍")
    assert history(ann, room)[0]["reactions"] == {"👍": {"count": 2, "users": [bob.name, ann.name],
                                                                 "uids": [uid_of(bob), uid_of(ann)]}}


def test_reacting_twice_is_idempotent_and_taking_it_back_too(server, room):
    ann = signed_in(server, "ann")
    _, sent = ann.post(room, "hi")
    assert react(ann, room, sent["id"], "🎉")[1]["reactions"]["🎉"]["count"] == 1
    assert react(ann, room, sent["id"], "🎉")[1]["reactions"]["🎉"]["count"] == 1
    assert react(ann, room, sent["id"], "🎉", on=False)[1]["reactions"] == {}
    assert react(ann, room, sent["id"], "🎉", on=False)[1]["reactions"] == {}
    assert "reactions" not in history(ann, room)[0]


def test_any_single_emoji_is_a_reaction_and_anything_else_is_422(server, room):
    ann = signed_in(server, "ann")
    _, sent = ann.post(room, "hi")
    for emoji in ("👍🏽", "🇫🇷", "👨‍👩‍👧", "❤️", "1️⃣"):
        assert react(ann, room, sent["id"], emoji)[0] == 200, emoji
    for bad in ("a", "👍👍", "<script>", "x" * 40, " "):
        status, body = react(ann, room, sent["id"], bad)
        assert (status, body.get("code")) == (422, "bad_emoji"), bad
        assert "one emoji" in body["error"]


def test_reactions_on_unknown_or_deleted_messages_are_refused(server, room):
    ann = signed_in(server, "ann")
    assert react(ann, room, "1-0", "👍")[1]["code"] == "unknown_message"
    _, sent = ann.post(room, "gone soon")
    react(ann, room, sent["id"], "👍")
    ann.request("DELETE", "/rooms/%s/messages/%s" % (room, sent["id"]))
    status, body = react(ann, room, sent["id"], "👍")
    assert (status, body["code"]) == (409, "deleted")
    assert "reactions" not in history(ann, room)[0]


def test_reactions_need_a_signed_in_person(server, room):
    ann = signed_in(server, "ann")
    _, sent = ann.post(room, "hi")
    stranger = Browser(server.url)
    _, _, body = stranger.request("GET", "/session")
    stranger.token = json.loads(body)["csrf_token"]
    status, body = react(stranger, room, sent["id"], "👍")
    assert (status, body["code"]) == (401, "signed_out")


def test_reactions_from_many_people_on_two_workers_converge(server, room):
    people = [signed_in(server, "p%d" % i) for i in range(8)]
    _, sent = people[0].post(room, "vote")
    stream = SSEStream("%s/rooms/%s/events" % (server.url, room))
    with stream:
        stream.until("ready")

        def go(person):
            for emoji in ("👍", "🎉"):
                assert react(person, room, sent["id"], emoji)[0] == 200

        threads = [threading.Thread(target=go, args=(p,)) for p in people]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        events = stream.messages(16, name="reaction")
        last = events[-1].json()["reactions"]
    stored = history(people[0], room)[0]["reactions"]
    assert stored == last
    assert {emoji: r["count"] for emoji, r in stored.items()} == {"👍": 8, "🎉": 8}
    assert sorted(stored["👍"]["users"]) == sorted(p.name for p in people)
    ids = [e.id for e in events]
    assert len(set(ids)) == 16


def test_reactions_made_while_away_arrive_on_resume_once(server, room):
    ann, bob = signed_in(server, "ann"), signed_in(server, "bob")
    _, sent = ann.post(room, "hi")
    stream = SSEStream("%s/rooms/%s/events" % (server.url, room))
    with stream:
        ready, _ = stream.until("ready")
    react(bob, room, sent["id"], "😂")
    react(bob, room, sent["id"], "😂", on=False)
    react(ann, room, sent["id"], "😮")
    resumed = SSEStream("%s/rooms/%s/events" % (server.url, room), {"Last-Event-ID": ready.id})
    with resumed:
        _, before = resumed.until("ready")
        got = [(e.json()["emoji"], e.json()["on"]) for e in before if e.name == "reaction"]
        assert got == [("😂", True), ("😂", False), ("😮", True)]
        assert before[-1].json()["reactions"] == {"😮": {"count": 1, "users": [ann.name], "uids": [uid_of(ann)]}}


def test_the_reaction_form_toggles_without_javascript(server, room):
    ann = signed_in(server, "ann")
    _, sent = ann.post(room, "hi")
    path = "/rooms/%s/messages/%s/reactions" % (room, sent["id"])
    for expected in ({"👍": {"count": 1, "users": [ann.name], "uids": [uid_of(ann)]}}, None):
        status, headers, _ = ann.request("POST", path, form={"emoji": "👍", "csrf_token": ann.token},
                                         headers={"Accept": "text/html"})
        assert status == 303 and headers["Location"].endswith("#m-" + sent["id"])
        assert history(ann, room)[0].get("reactions") == expected
    _, _, page = ann.request("POST", path, form={"emoji": "nope", "csrf_token": ann.token},
                             headers={"Accept": "text/html"})
    assert "A reaction must be one emoji" in page.decode()


def test_json_sent_to_the_reaction_form_is_415_pointing_to_the_put(server, room):
    ann = signed_in(server, "ann")
    _, sent = ann.post(room, "hi")
    path = "/rooms/%s/messages/%s/reactions" % (room, sent["id"])
    status, _, body = ann.request("POST", path, body={"emoji": "🎉"}, headers={"X-CSRF-Token": ann.token})
    answer = json.loads(body)
    assert (status, answer["code"]) == (415, "unsupported_type")
    assert "PUT /rooms/%s/messages/%s/reactions/<emoji>" % (room, sent["id"]) in answer["error"]
    assert history(ann, room)[0].get("reactions") is None


# -- who reacted is a uid, not a name: a freed guest name does not pass its reactions on ----------

@pytest.fixture(scope="module")
def short_idle_server(redis_url, tmp_path_factory):
    """A server whose guest names are freed 2 s after their holder's last request."""
    gunicorn = Gunicorn(tmp_path_factory.mktemp("reactions-idle"), redis_url=redis_url, workers=2,
                        env=dict(SERVER_ENV, RIPPLE_NAME_IDLE_SECONDS="2"))
    gunicorn.start()
    yield gunicorn
    gunicorn.halt()


def test_the_next_holder_of_a_freed_name_has_not_reacted_and_adds_their_own(short_idle_server, room):
    earlier = signed_in(short_idle_server, "ann")
    _, sent = earlier.post(room, "lunch?")
    assert react(earlier, room, sent["id"], "👍")[0] == 200
    later = Browser(short_idle_server.url)
    wait_until(lambda: later.sign_in(earlier.name) == 200, timeout=20, interval=0.25,
               message="the guest name to be freed after the idle window")
    assert uid_of(later) != uid_of(earlier)
    _, _, page = later.request("GET", "/rooms/%s" % room)
    chip = re.search(r'<button type="submit" class="chip[^"]*" aria-pressed="(\w+)"[^>]*data-emoji="👍"', page.decode())
    assert chip and chip.group(1) == "false"  # not "you reacted": that was the earlier holder
    status, _, _ = later.request("POST", "/rooms/%s/messages/%s/reactions" % (room, sent["id"]),
                                 form={"emoji": "👍", "csrf_token": later.token}, headers={"Accept": "text/html"})
    assert status == 303  # a toggle: on, as this person had not reacted
    assert history(later, room)[0]["reactions"] == {
        "👍": {"count": 2, "users": [earlier.name, earlier.name], "uids": [uid_of(earlier), uid_of(later)]}}
    assert react(later, room, sent["id"], "👍", on=False)[1]["reactions"]["👍"]["uids"] == [uid_of(earlier)]
