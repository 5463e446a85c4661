"""With RIPPLE_REPLICA_ACKS a write is acknowledged once a replica has it, and no reader hears,
replays, repairs or reads it before then: a reader that heard a write a failover then lost
would resume after it, past acknowledged messages the new master stored under earlier ids
(docs/scaling.md, "Replication and acknowledgements"). Real Redis (a master and its replica, which the tests pause
with SIGSTOP), real Gunicorn with 2 gevent workers."""
import contextlib
import json
import re
import signal
import urllib.request
import uuid

import pytest
import redis as redis_py

from app.ops.embedded_redis import EmbeddedRedis
from app.rooms.keys import RoomKeys

from .servers import Gunicorn, free_port, wait_until
from .sse import SSEStream
from .support import SERVER_ENV
from .web import Browser

WRITES = ("message", "edit", "delete", "reaction")  # the events a write publishes


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    """A server that acknowledges a write only once its replica has it: (gunicorn, replica)."""
    base = tmp_path_factory.mktemp("replicated")
    master = EmbeddedRedis(base / "master", port=free_port(), appendonly=False,
                           extra_args=["--repl-diskless-sync-delay", "0"]).start()
    replica = EmbeddedRedis(base / "replica", port=free_port(), appendonly=False,
                            extra_args=["--replicaof", "127.0.0.1", str(master.port)]).start()
    with redis_py.Redis.from_url(replica.url) as admin:
        wait_until(lambda: admin.info("replication").get("master_link_status") == "up", 15, 0.1, "the replica")
    gunicorn = Gunicorn(base, redis_url=master.url, workers=2,
                        env={**SERVER_ENV, "RIPPLE_REPLICA_ACKS": "1", "RIPPLE_REPLICA_TIMEOUT_MS": "300"}).start()
    yield gunicorn, replica
    gunicorn.halt()
    replica.process.send_signal(signal.SIGCONT)
    replica.stop()
    master.stop()


@contextlib.contextmanager
def replica_paused(replica):
    """The replica confirms nothing meanwhile (the master keeps taking writes)."""
    replica.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        replica.process.send_signal(signal.SIGCONT)


@pytest.fixture
def ann(replicated):
    browser = Browser(replicated[0].url)
    assert browser.sign_in("ann-%s" % uuid.uuid4().hex[:6]) == 200
    return browser


def say(person, room, text, key):
    status, _, body = person.request("POST", "/rooms/%s/messages" % room, body={"text": text},
                                     headers={"Idempotency-Key": key, "Accept": "application/json"})
    return status, json.loads(body)


def stream(server, room, after=None):
    """A stream of ``room``, subscribed when returned (its ``ready`` read: a stream's headers
    leave before it subscribes, and a write before that reaches a stream without a cursor never)."""
    opened = SSEStream("%s/rooms/%s/events" % (server.url, room), headers={"Last-Event-ID": after} if after else {})
    if after is None:
        opened.until("ready")
    return opened


def history(server, room):
    with urllib.request.urlopen("%s/rooms/%s/messages" % (server.url, room), timeout=10) as answer:
        return [message["text"] for message in json.loads(answer.read())["messages"]]


def heard_before_typing(reader, server, room):
    """The writes ``reader`` hears up to a typing signal someone sends now: typing is never
    held, and a held write published meanwhile would reach the reader before it (one channel,
    in order). Someone new each time: a person's typing is broadcast once per interval."""
    marker = Browser(server.url)
    assert marker.sign_in("marker-%s" % uuid.uuid4().hex[:6]) == 200
    assert marker.request("POST", "/rooms/%s/typing" % room)[0] == 204
    _, before = reader.until("typing")
    return [(event.name, json.loads(event.data).get("text")) for event in before if event.name in WRITES]


def test_a_post_no_replica_confirmed_is_not_heard_replayed_or_read_until_its_retry_is(replicated, ann, room):
    server, replica = replicated
    reader = stream(server, room)
    assert say(ann, room, "first", "k1")[0] == 201
    reader.messages(1)
    with replica_paused(replica):
        status, body = say(ann, room, "held", "k2")
        assert (status, body["code"]) == (504, "unconfirmed")
        assert say(ann, room, "held", "k2")[0] == 504  # its retry is no proof either, while no replica has it
        late = stream(server, room, after="0-0")  # opens while it is held: its replay must not have it
        assert heard_before_typing(reader, server, room) == []
        assert [event.json()["text"] for event in late.messages(1)] == ["first"]
        assert heard_before_typing(late, server, room) == []
        assert history(server, room) == ["first"]
    assert say(ann, room, "held", "k2")[0] == 200  # the retry: stored once, now confirmed
    for each in (reader, late):
        assert [event.json()["text"] for event in each.messages(1)] == ["held"]
        assert heard_before_typing(each, server, room) == []  # once
        each.close()
    assert history(server, room) == ["first", "held"]


def test_writes_held_while_the_replica_was_away_are_published_in_order_by_the_next_confirmed_one(
        replicated, ann, room):
    server, replica = replicated
    reader = stream(server, room)
    assert say(ann, room, "one", "k1")[0] == 201
    first = reader.messages(1)[0]
    with replica_paused(replica):
        assert say(ann, room, "two", "k2")[0] == 504
        assert say(ann, room, "three", "k3")[0] == 504
        assert heard_before_typing(reader, server, room) == []
    assert say(ann, room, "four", "k4")[0] == 201  # no retry of the others: this confirms them
    heard = reader.messages(3)
    assert [event.json()["text"] for event in heard] == ["two", "three", "four"]
    assert [event.id for event in heard] == sorted(event.id for event in heard)
    assert heard_before_typing(reader, server, room) == []
    reader.close()
    resumed = stream(server, room, after=first.id)  # a resume replays them once, in order
    assert [event.json()["text"] for event in resumed.messages(3)] == ["two", "three", "four"]
    resumed.close()


def test_an_edit_no_replica_confirmed_is_not_heard_until_its_retry_is(replicated, ann, room):
    server, replica = replicated
    reader = stream(server, room)
    status, sent = say(ann, room, "draft", "k1")
    assert status == 201
    reader.messages(1)
    edit = ("PATCH", "/rooms/%s/messages/%s" % (room, sent["id"]))
    with replica_paused(replica):
        assert ann.request(*edit, body={"text": "final"})[0] == 503
        assert heard_before_typing(reader, server, room) == []
    status, _, body = ann.request(*edit, body={"text": "final"})  # changes nothing: confirms the held edit
    assert status == 200 and json.loads(body)["text"] == "final"
    event = reader.messages(1, name="edit")[0]
    assert event.json()["message_id"] == sent["id"] and event.json()["text"] == "final"
    assert heard_before_typing(reader, server, room) == []
    reader.close()


def test_the_python_client_is_acknowledged_only_once_a_replica_has_the_post(replicated, room, monkeypatch):
    from app.ops.cli import Unconfirmed, publish
    server, replica = replicated
    monkeypatch.setenv("RIPPLE_REPLICA_ACKS", "1")
    monkeypatch.setenv("RIPPLE_REPLICA_TIMEOUT_MS", "300")
    with replica_paused(replica):
        with pytest.raises(Unconfirmed):
            publish(room, "from a script", "feed", redis_url=server.env["REDIS_URL"], idempotency_key="s1", attempts=1)
        assert history(server, room) == []
    publish(room, "from a script", "feed", redis_url=server.env["REDIS_URL"], idempotency_key="s1", attempts=1)
    assert history(server, room) == ["from a script"]


def _form_key(html):
    return re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)


def test_a_form_post_stored_but_unconfirmed_is_retried_with_the_same_key_and_stored_once(replicated, ann, room):
    server, replica = replicated
    key = _form_key(ann.request("GET", "/rooms/%s" % room)[2].decode())
    with replica_paused(replica):  # the master stores; no replica confirms it
        status, headers, body = ann.request(
            "POST", "/rooms/%s/messages" % room, headers={"Accept": "text/html"},
            form={"text": "only once", "csrf_token": ann.token, "idempotency_key": key})
        page = body.decode()
        assert status == 504 and "We could not confirm your message was sent; sending again is safe." in page
        assert "only once</textarea>" in page and _form_key(page) == key  # the same key, the text kept
        assert history(server, room) == []  # stored, but held until a replica has it
    pages = [page]

    def send_again():  # as a person presses Send on the form shown again, until it goes
        status, _, body = ann.request("POST", "/rooms/%s/messages" % room, headers={"Accept": "text/html"},
                                      form={"text": "only once", "csrf_token": ann.token,
                                            "idempotency_key": _form_key(pages[-1])})
        pages.append(body.decode())
        return status == 303 or None
    wait_until(send_again, 15, 0.2, "the retried form post to be confirmed")
    assert history(server, room) == ["only once"]


def redis_of(server):
    return redis_py.Redis.from_url(server.env["REDIS_URL"], decode_responses=True)


def channel(server, name):
    """A raw pub/sub subscription to ``name``, subscribed when returned."""
    listener = redis_of(server).pubsub()
    listener.subscribe(name)
    assert listener.get_message(timeout=5)["type"] == "subscribe"
    return listener


def payloads(listener, count):
    return [wait_until(lambda: listener.get_message(timeout=1), 5)["data"] for _ in range(count)]


def test_a_change_events_previous_id_is_the_entry_it_moved_out_of_the_log(replicated, ann, room):
    # A reaction moves its message's entry out of the log (to its changed versions): a stream
    # that missed that message must still see that the event follows it, not the one before.
    server, _ = replicated
    say(ann, room, "older", "k1")
    newest = say(ann, room, "newest", "k2")[1]
    listener = channel(server, RoomKeys(room).channel)
    thumbs = "/rooms/%s/messages/%s/reactions/%%F0%%9F%%91%%8D" % (room, newest["id"])
    assert ann.request("PUT", thumbs)[0] in (200, 204)
    (payload,) = payloads(listener, 1)
    assert payload.startswith("~") and payload.split("\n")[0].split(" ")[1] == newest["id"]
    listener.close()


def test_a_resume_from_an_entry_past_a_mark_a_failover_set_back_takes_nothing_twice(replicated, ann, room):
    server, _ = replicated
    say(ann, room, "before", "k1")
    a1 = say(ann, room, "a1", "k2")[1]
    with redis_of(server) as client:  # the mark's last move lost in a failover: it is back before a1
        before = client.xrevrange(RoomKeys(room).log, "(" + a1["id"], "-", count=1)[0][0]
        client.hset(RoomKeys(room).meta, "confirmed", before)
    reader = stream(server, room, after=a1["id"])
    reader.until("ready")
    say(ann, room, "b1", "k3")
    assert [event.json()["text"] for event in reader.messages(1)] == ["b1"]
    assert heard_before_typing(reader, server, room) == []
    reader.close()


def test_held_messages_published_by_a_later_confirmation_reach_the_sidebars_too(replicated, ann, room):
    server, replica = replicated
    say(ann, room, "opening", "k0")
    sidebar = channel(server, RoomKeys(room).activity)
    with replica_paused(replica):
        assert say(ann, room, "two", "k2")[0] == 504
        assert say(ann, room, "three", "k3")[0] == 504
    four = say(ann, room, "four", "k4")[1]
    said = [json.loads(payload.partition("\n")[2]) for payload in payloads(sidebar, 3)]
    assert [activity["id"] for activity in said][-1] == four["id"] and len({a["id"] for a in said}) == 3
    with redis_of(server) as client:  # the held payloads left the meta with their publication
        assert not [field for field in client.hkeys(RoomKeys(room).meta) if field.startswith("activity:")]
    sidebar.close()


def test_a_deletion_replicas_did_not_confirm_still_scrubs_its_quotes_and_a_held_reply_is_published(
        replicated, ann, room):
    server, replica = replicated
    reader = stream(server, room)
    original = say(ann, room, "the secret plan", "k1")[1]
    reader.messages(1)
    with replica_paused(replica):
        status, _, _ = ann.request("POST", "/rooms/%s/messages" % room, body={"text": "re", "reply_to": original["id"]},
                                   headers={"Idempotency-Key": "k2", "Accept": "application/json"})
        assert status == 504  # a held reply quoting it
        assert ann.request("DELETE", "/rooms/%s/messages/%s" % (room, original["id"]))[0] == 503
    assert ann.request("DELETE", "/rooms/%s/messages/%s" % (room, original["id"]))[0] == 204  # confirms it
    heard = [(event.name, event.json()) for event in (reader.next() for _ in range(2))]
    assert [name for name, _ in heard] == ["message", "delete"]
    assert heard[0][1]["text"] == "re" and "secret" not in json.dumps(heard[0][1])
    with redis_of(server) as client:  # nowhere in storage either
        k = RoomKeys(room)
        stored = json.dumps([client.xrange(k.log), client.zrange(k.changed, 0, -1)])
        assert "the secret plan" not in stored
    reader.close()


def test_a_held_message_is_not_found_by_its_id_until_it_is_confirmed(replicated, ann, room):
    server, replica = replicated
    with replica_paused(replica):
        assert say(ann, room, "held", "k1")[0] == 504
        with redis_of(server) as client:
            held = client.xrevrange(RoomKeys(room).log, count=1)[0][0]
        status, _, _ = ann.request("PATCH", "/rooms/%s/messages/%s" % (room, held), body={"text": "edited"})
        assert status == 404
    assert say(ann, room, "held", "k1")[0] == 200
    assert ann.request("PATCH", "/rooms/%s/messages/%s" % (room, held), body={"text": "edited"})[0] == 200


def test_a_host_with_replica_acks_off_shows_what_was_held(replicated, room):
    # All hosts on one Redis should share the setting; one turned off must not leave a log
    # hidden behind a mark nobody moves any more.
    from app.rooms.store import NotReplicated, Store
    server, replica = replicated
    with redis_of(server) as client:
        held, plain = Store(client, 100, 60, replica_acks=1, replica_timeout_ms=200), Store(client, 100, 60)
        with replica_paused(replica):
            with pytest.raises(NotReplicated):
                held.publish(room, "ann", "held")
            plain.publish(room, "ann", "plain")
        assert [json.loads(body)["text"] for body in held.page(room)[0]] == ["held", "plain"]


def test_a_retried_reply_whose_original_is_held_is_unconfirmed_not_trimmed(replicated, ann, room):
    # The retry of a reply whose quoted message was deleted meanwhile is answered from its
    # idempotency key: a held original is still unconfirmed (504, as its first attempt), and
    # once confirmed the whole message, never a stand-in for one trimmed from history.
    server, replica = replicated
    original = say(ann, room, "quoted", "k1")[1]

    def reply():
        status, _, body = ann.request("POST", "/rooms/%s/messages" % room,
                                      body={"text": "re", "reply_to": original["id"]},
                                      headers={"Idempotency-Key": "k2", "Accept": "application/json"})
        return status, json.loads(body)
    with replica_paused(replica):
        assert reply()[0] == 504
        assert ann.request("DELETE", "/rooms/%s/messages/%s" % (room, original["id"]))[0] == 503
        status, body = reply()
        assert (status, body.get("code"), body.get("trimmed")) == (504, "unconfirmed", None)
    status, body = reply()
    assert status == 200 and body["text"] == "re" and "trimmed" not in body
    assert history(server, room) == ["", "re"]  # readers have it now (after the deleted one)


def test_a_withdrawal_is_answered_only_once_a_replica_has_it(replicated, ann, room):
    # "Not sent" must hold after a failover too: the tombstone is on a replica before it is said.
    server, replica = replicated
    path = "/rooms/%s/withdrawals" % room
    with replica_paused(replica):
        assert ann.request("POST", path, body={"idempotency_key": "w1"})[0] == 503
        assert say(ann, room, "held", "w2")[0] == 504
        assert ann.request("POST", path, body={"idempotency_key": "w2"})[0] == 503  # stored, unconfirmed
    status, _, body = ann.request("POST", path, body={"idempotency_key": "w1"})
    assert (status, json.loads(body)) == (200, {"withdrawn": True})
    assert say(ann, room, "late", "w1")[1]["code"] == "withdrawn"
    status, _, body = ann.request("POST", path, body={"idempotency_key": "w2"})
    assert (status, json.loads(body)["message"]["text"]) == (409, "held")
