"""A room's names online are kept beside its connections (app/people/presence.py, issue 20): a
join reads whether its name is present from them, not from a scan of every connection, and the
sweeper takes out the names it announces gone and mends the names when they differ from the
connections (a host of the release before kept none). Real Redis."""
import json

import pytest

from app.people.presence import Presence
from app.people.presence import now_ms as presence_now
from app.rooms import keys

from .test_presence_batches import client, listener  # noqa: F401 (fixtures)


@pytest.fixture
def presence(client):  # noqa: F811 (the fixture above)
    """Announcements at once (no batches), lists while at most 2 names are online."""
    return Presence(client, heartbeat=5, grace=5, max_per_session=4, list_max=2, batch_ms=0)


def join(presence, room, name, guest=False, snapshot=False):
    conn = presence.new_conn(guest)
    return conn, presence.join(room, name, "sid-" + name, conn, snapshot=snapshot)


def lapse(client, room, *names):  # noqa: F811
    """Make every connection of ``names`` in ``room`` expired (as a dead worker's would be)."""
    online = keys.RoomKeys(room).online
    client.zadd(online, {m: 1 for m in client.zrange(online, 0, -1) if m.split("\n")[0] in names}, xx=True)


def test_a_second_connection_of_a_present_name_announces_nothing(presence, client, room, listener):  # noqa: F811
    join(presence, room, "ann")
    join(presence, room, "ann")
    join(presence, room, "bob")
    heard = [json.loads(p.split("\n", 1)[1]) for p in listener(2)]
    assert [(e["name"], e["action"], e["online_count"]) for e in heard] == [("ann", "join", 1), ("bob", "join", 2)]
    assert client.zrange(keys.RoomKeys(room).online_names, 0, -1) == ["ann", "bob"]


def test_connections_from_a_host_that_kept_no_names_count_as_present(presence, client, room, listener):  # noqa: F811
    # the release before kept the connections alone
    client.zadd(keys.RoomKeys(room).online, {"ann\nold-host-conn": presence_now() + 60_000})
    join(presence, room, "ann")  # already here: not a join
    join(presence, room, "bob")
    (payload,) = listener(1)
    event = json.loads(payload.split("\n", 1)[1])
    assert (event["name"], event["online_count"], event["online"]) == ("bob", 2, ["ann", "bob"])


def test_the_sweep_takes_out_the_names_it_announces_gone(presence, client, room, listener):  # noqa: F811
    join(presence, room, "ann")
    join(presence, room, "bob")
    lapse(client, room, "ann")
    presence.sweep_room(room, presence_now())
    assert client.zrange(keys.RoomKeys(room).online_names, 0, -1) == ["bob"]
    join(presence, room, "ann")  # back: announced again
    actions = [json.loads(p.split("\n", 1)[1]) for p in listener(4)]
    assert [(e["name"], e["action"]) for e in actions] == \
        [("ann", "join"), ("bob", "join"), ("ann", "leave"), ("ann", "join")]


def test_the_sweep_mends_names_that_differ_from_the_connections(presence, client, room):  # noqa: F811
    join(presence, room, "ann")
    join(presence, room, "bob")
    k = keys.RoomKeys(room)
    client.zadd(k.online_names, {"ghost": 0})  # a name with no connection (lost by a failover, say)
    lapse(client, room, "bob")
    presence.sweep_room(room, presence_now())
    assert client.zrange(k.online_names, 0, -1) == ["ann"]
    assert presence.online_counts([room]) == [1]


def test_a_name_whose_signed_in_connection_lapses_is_a_guest_again(presence, client, room):  # noqa: F811
    join(presence, room, "ann", guest=True)
    signed, _ = join(presence, room, "ann")  # signed in meanwhile: no longer a guest
    assert presence.people(room) == (["ann"], [])
    client.zadd(keys.RoomKeys(room).online, {"ann\n" + signed: 1}, xx=True)
    presence.sweep_room(room, presence_now())
    assert presence.people(room) == (["ann"], ["ann"])


def test_a_big_rooms_snapshot_keeps_a_name_that_sorts_past_the_list(presence, room):
    for name in ("ann", "bob", "cy"):
        join(presence, room, name)
    _, snapshot = join(presence, room, "zed", snapshot=True)
    event = json.loads(snapshot)
    assert (event["online"], event["online_count"]) == (["ann", "zed"], 4)


def test_a_batch_stored_by_the_release_before_goes_out_with_the_lists_of_now(client, room, listener):  # noqa: F811
    presence = Presence(client, heartbeat=5, grace=5, max_per_session=4, list_max=10, batch_ms=60_000)
    presence._flush_later = lambda room: None  # the test publishes the batch itself
    join(presence, room, "ann")
    join(presence, room, "bob")  # waits in the batch
    # an event as the release before queued it: its lists after a NUL
    stale = '{"room":"%s","name":"cy","action":"join","guest":false,"online_count":3' % room
    client.rpush(keys.RoomKeys(room).presence_batch, stale + '\0,"online":["old"],"guests":[]')
    assert presence.flush(room) == 2
    _, batch = listener(2)
    *_, last = batch.split("data: ")
    assert json.loads(last)["online"] == ["ann", "bob"]  # the room's names now, not the stored ones
