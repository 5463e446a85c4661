"""Streams prove continuity: a message that pub/sub never brought is read from history, in order."""
import json
import time
import urllib.request

from app.rooms import messages
from app.rooms.keys import PersonKeys, RoomKeys

from .support import post
from .test_streams import open_ready
from .web import Browser


def store_unpublished(redis_client, log, body):
    """XADD straight into a log: stored, never published (as a lost PUBLISH would leave it)."""
    return redis_client.xadd(log, {"m": body})


def gap_count(server, log):
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith('ripple_stream_gaps_total{log="%s"}' % log))


def test_a_message_missing_from_the_live_feed_arrives_before_the_next_one(server, room, redis_client):
    stream, _ = open_ready(server, room)
    with stream:
        lost = store_unpublished(redis_client, RoomKeys(room).log, messages.body(room, "ann", "lost"))
        _, sent = post(server.url, room, "after")
        got = stream.messages(2, timeout=10)
    assert [m.json()["text"] for m in got] == ["lost", "after"]
    assert [m.id for m in got] == [lost, sent["id"]]


def test_a_lost_last_message_arrives_while_the_room_is_silent(server, room, redis_client):
    stream, _ = open_ready(server, room)
    with stream:
        post(server.url, room, "first")
        stream.messages(1)
        lost = store_unpublished(redis_client, RoomKeys(room).log, messages.body(room, "ann", "last"))
        got = stream.messages(1, timeout=10)  # heartbeats are 0.5 s: found within about two
    assert got[0].id == lost and got[0].json()["text"] == "last"


def test_a_repaired_gap_is_counted(server, room, redis_client):
    before = gap_count(server, "room")
    stream, _ = open_ready(server, room)
    with stream:
        store_unpublished(redis_client, RoomKeys(room).log, messages.body(room, "ann", "lost"))
        post(server.url, room, "after")
        stream.messages(2)
    assert gap_count(server, "room") >= before + 1


def test_nothing_is_repeated_after_a_repair(server, room, redis_client):
    stream, _ = open_ready(server, room)
    with stream:
        store_unpublished(redis_client, RoomKeys(room).log, messages.body(room, "ann", "lost"))
        sent = [post(server.url, room, "m%d" % i)[1]["id"] for i in range(5)]
        got = stream.messages(6)
        ids = [m.id for m in got]
        assert ids[1:] == sent and len(set(ids)) == 6
        post(server.url, room, "one more")
        assert [m.json()["text"] for m in stream.messages(1)] == ["one more"]


def test_a_direct_message_missing_from_the_live_feed_is_repaired(server, room, redis_client, app):
    ann, bob = Browser(server.url), Browser(server.url)
    ann.sign_in("ann-gap-" + room[-6:])
    bob.sign_in("bob-gap-" + room[-6:])
    cookie = next(c.value for c in bob.jar if c.name == app.config["SESSION_COOKIE_NAME"])
    sid = app.session_interface.get_signing_serializer(app).loads(cookie)["sid"]
    with bob.stream(room) as stream:
        stream.until("ready")
        body = messages.direct_body(ann.name, bob.name, "lost note")
        lost = store_unpublished(redis_client, PersonKeys(sid).log, body)
        ann.direct(bob.name, "after the note")
        got = stream.messages(2, name="direct")
    assert [json.loads(m.data)["text"] for m in got] == ["lost note", "after the note"]
    assert got[0].id.endswith("." + lost)


def test_a_message_lost_in_a_later_silence_is_still_found(server, room, redis_client):
    stream, _ = open_ready(server, room)
    with stream:
        post(server.url, room, "first")
        stream.messages(1)
        # The scenario is a silence of several heartbeats (0.5 s each) in which idle checks run
        # and find nothing; its length is the input, not a wait for a condition.
        time.sleep(2.5)
        lost = store_unpublished(redis_client, RoomKeys(room).log, messages.body(room, "ann", "later"))
        got = stream.messages(1, timeout=15)  # checks back off (1, 2, 4... heartbeats), never stop
    assert got[0].id == lost


def test_an_unconfirmed_answer_is_only_for_what_may_have_been_sent():
    from redis.sentinel import MasterNotFoundError

    from app.rooms import store
    assert store.unconfirmed(MasterNotFoundError("No master found for 'mymaster'")) is False
