"""A big room's presence announcements go out together (app/people/presence.py, issue 20): above
the list limit a join or leave waits in the room's batch and one payload carries them all, in
order, framed as separate ``presence`` events; a small room's stay immediate. Real Redis."""
import json
import uuid

import pytest

from app.delivery.position import Position
from app.people.presence import ROOMS, Presence
from app.people.presence import now_ms as presence_now
from app.rooms import keys

from .servers import wait_until


@pytest.fixture
def client(redis_client):
    """The suite's Redis, as str (conftest's redis_client)."""
    return redis_client


@pytest.fixture
def presence(client, monkeypatch):
    """A list limit of 1 (two people make a big room); the flushes it would schedule are
    recorded, not run (the test publishes the batch itself)."""
    found = Presence(client, heartbeat=5, grace=5, max_per_session=4, list_max=1, batch_ms=60_000)
    found.scheduled = []
    monkeypatch.setattr(found, "_flush_later", found.scheduled.append)
    return found


@pytest.fixture
def listener(client, room):
    """The room's channel as the streams hear it: a list of payloads (str), filled on demand."""
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.RoomKeys(room).channel)
    wait_until(lambda: pubsub.get_message(timeout=0.05) is None and pubsub.subscribed, message="subscribed")
    heard = []

    def hear(until=1, timeout=5):
        def more():
            message = pubsub.get_message(timeout=0.05)
            if message is not None:
                heard.append(message["data"])
            return len(heard) >= until
        wait_until(more, timeout=timeout, message="%d payload(s)" % until)
        return heard
    yield hear
    pubsub.close()


def join(presence, room, name):
    return presence.join(room, name, "sid-" + name, presence.new_conn())


def events(payload):
    """The SSE events a stream makes of one payload: [(event name, data as dict)]."""
    frame = b"".join(Position(b"0-0").take([payload.encode()])).decode()
    found = []
    for block in frame.strip("\n").split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        found.append((lines["event"], json.loads(lines["data"])))
    return found


def test_a_small_rooms_join_is_published_at_once(presence, room, listener):
    join(presence, room, "ann")
    [payload] = listener(1)
    assert events(payload) == [("presence", json.loads(payload.split("\n", 1)[1]))]
    assert presence.scheduled == []


def test_joins_in_a_big_room_wait_and_go_out_as_one_payload_in_order(presence, room, listener, client):
    join(presence, room, "ann")  # one online: within the limit, at once
    join(presence, room, "bob")
    join(presence, room, "cy")
    assert presence.scheduled == [room]  # the first to wait asks for the flush; the second does not
    assert client.llen(keys.RoomKeys(room).presence_batch) == 2
    assert presence.flush(room) == 2
    first, batch = listener(2)
    assert [(e["name"], e["action"], e["online_count"]) for _, e in events(first)] == [("ann", "join", 1)]
    assert [(name, e["name"], e["online_count"]) for name, e in events(batch)] == \
        [("presence", "bob", 2), ("presence", "cy", 3)]
    assert all("online" not in e for _, e in events(batch))  # a big room's change alone
    assert not client.exists(keys.RoomKeys(room).presence_batch)


def test_a_small_rooms_announcement_waits_behind_a_waiting_batch(presence, room, listener, client):
    join(presence, room, "ann")
    join(presence, room, "bob")  # waits
    # ann's only connection lapses: the sweep's leave leaves one online (a small room again),
    # but it must not overtake bob's join
    online = keys.RoomKeys(room).online
    client.zadd(online, {m: 1 for m in client.zrange(online, 0, -1) if m.startswith("ann\n")}, xx=True)
    assert presence.sweep_room(room, presence_now()) == 1
    presence.flush(room)
    _, batch = listener(2)
    assert [(e["name"], e["action"], e["online_count"]) for _, e in events(batch)] == \
        [("bob", "join", 2), ("ann", "leave", 1)]


def test_an_overdue_batch_is_handed_to_the_next_announcer(presence, room, client):
    join(presence, room, "ann")
    join(presence, room, "bob")
    assert presence.scheduled == [room]
    # Its flush never ran (its worker died): two intervals on, the next announcement takes it over.
    client.pexpire(keys.RoomKeys(room).presence_batch, presence.batch_ms)
    join(presence, room, "cy")
    assert presence.scheduled == [room, room]
    assert client.llen(keys.RoomKeys(room).presence_batch) == 2  # nothing lost meanwhile


def test_with_batches_off_every_announcement_is_published_at_once(client, room, listener):
    presence = Presence(client, heartbeat=5, grace=5, max_per_session=4, list_max=1, batch_ms=0)
    for name in ("ann", "bob", "cy"):
        join(presence, room, name + uuid.uuid4().hex[:4])
    assert [len(events(p)) for p in listener(3)] == [1, 1, 1]


def test_the_sweeper_publishes_a_batch_whose_publisher_is_overdue(presence, room, listener, client):
    join(presence, room, "ann")
    join(presence, room, "bob")  # waits; its flush never runs (its worker died)
    client.pexpire(keys.RoomKeys(room).presence_batch, presence.batch_ms)  # two intervals on
    presence.sweep_room(room, presence_now())
    _, batch = listener(2)
    assert [e["name"] for _, e in events(batch)] == ["bob"]


def test_a_batch_not_yet_due_waits_for_its_publisher(presence, room, client):
    join(presence, room, "ann")
    join(presence, room, "bob")
    presence.sweep_room(room, presence_now())
    assert client.llen(keys.RoomKeys(room).presence_batch) == 1


def test_a_sweep_that_leaves_a_room_empty_takes_it_off_the_sweepers_list(presence, room, client):
    join(presence, room, "ann")
    assert client.sismember(ROOMS, room)
    online = keys.RoomKeys(room).online
    client.zadd(online, {m: 1 for m in client.zrange(online, 0, -1)}, xx=True)
    assert presence.sweep_room(room, presence_now()) == 0
    assert not client.sismember(ROOMS, room)


def test_in_a_busy_small_room_only_a_batchs_last_event_carries_the_lists(client, room, listener, monkeypatch):
    presence = Presence(client, heartbeat=5, grace=5, max_per_session=4, list_max=10, batch_ms=60_000)
    monkeypatch.setattr(presence, "_flush_later", lambda room: None)
    for name in ("ann", "bob", "cy"):  # ann's goes at once (a calm room); the others come too soon
        join(presence, room, name)
    presence.flush(room)
    first, batch = listener(2)
    assert events(first)[0][1]["online"] == ["ann"]
    (_, bob), (_, cy) = events(batch)
    assert "online" not in bob and bob["online_count"] == 2  # the change alone
    assert cy["online"] == ["ann", "bob", "cy"] and cy["guests"] == [] and cy["online_count"] == 3


def test_a_calm_rooms_announcement_goes_at_once_after_the_interval(client, room, listener):
    presence = Presence(client, heartbeat=5, grace=5, max_per_session=4, list_max=10, batch_ms=50)
    join(presence, room, "ann")
    wait_until(lambda: not client.exists(keys.RoomKeys(room).presence_hold), message="the hold lapses")
    join(presence, room, "bob")
    assert [e["name"] for p in listener(2) for _, e in events(p)] == ["ann", "bob"]
