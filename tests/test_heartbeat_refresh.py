"""A signed-in stream's heartbeat (app/delivery/stream.py): its presence refresh and its name's
hold go to Redis together, and the refreshes of a worker's streams that come due together share
one round trip (app/delivery/heartbeats.py), with the rules of each kept. Real Redis."""
import uuid

import gevent
import pytest
import redis as redis_py

from app.delivery.heartbeats import HeadReads, Heartbeats
from app.ops.embedded_redis import EmbeddedRedis
from app.people.names import Names, NameTaken
from app.people.presence import Presence
from app.people.presence import now_ms as presence_now
from app.rooms import keys
from app.rooms.store import Store

from .servers import free_port, wait_until


class _Sub:
    """What Heartbeats reads of a Subscription."""

    def __init__(self, room, name, sid, conn, account=None):
        self.room, self.name, self.sid, self.conn, self.account = room, name, sid, conn, account


@pytest.fixture(scope="module")
def quiet_redis(tmp_path_factory):
    """A Redis of this module's own: the commands a refresh costs are counted in its
    INFO commandstats, where the suite's shared Redis counts every other test's too."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("heartbeat-redis"), port=free_port(), appendonly=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(quiet_redis):
    with redis_py.Redis.from_url(quiet_redis.url, decode_responses=True) as client:
        yield client


@pytest.fixture
def names(client):
    return Names(client, idle=600, grace=30)


@pytest.fixture
def presence(client, monkeypatch):
    """Without its sweeper: a sweep running while a test counts commands would be counted."""
    monkeypatch.setattr(Presence, "ensure_sweeper", lambda self: None)
    return Presence(client, heartbeat=5, grace=5, max_per_session=4, batch_ms=0)


def new_person(client, names, presence, room):
    """A signed-in person with one stream in ``room``: a _Sub."""
    name, sid = "ann-" + uuid.uuid4().hex[:6], "sid-" + uuid.uuid4().hex
    client.set("ripple:{u:%s}:session" % sid, '{"name": "%s"}' % name)
    names.claim(name, sid)
    conn = presence.admit(sid)
    presence.join(room, name, sid, conn)
    # Registered a second ago: a refresh in the same millisecond would change no score, and
    # ZADD XX CH would say "not registered".
    client.zadd("ripple:{u:%s}:streams" % sid, {conn: presence_now() + 1000}, xx=True)
    client.zadd(keys.RoomKeys(room).online, {"%s\n%s" % (name, conn): presence_now() + 1000}, xx=True)
    return _Sub(room, name, sid, conn)


@pytest.fixture
def person(client, names, presence, room):
    """(name, sid, conn) of new_person's."""
    sub = new_person(client, names, presence, room)
    return sub.name, sub.sid, sub.conn


def commands_of(client, act):
    """The commands Redis processed while ``act()`` ran ({INFO commandstats name: calls}), less
    INFO's and a new connection's greeting."""
    def calls():
        return {k: v["calls"] for k, v in client.info("commandstats").items()
                if k not in ("cmdstat_info", "cmdstat_hello") and not k.startswith("cmdstat_client")}
    before = calls()
    act()
    after = calls()
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


@pytest.fixture
def heartbeats(names, presence):
    return Heartbeats(presence, names)


def test_the_refresh_carries_the_names_hold_and_extends_it(client, names, heartbeats, person, room):
    name, sid, conn = person
    client.pexpire(names.key(name), 1000)  # about to lapse
    assert heartbeats.refresh(_Sub(room, name, sid, conn)) is None
    assert client.pttl(names.key(name)) > 20_000


def test_the_hold_says_when_someone_else_holds_the_name(client, names, heartbeats, person, room):
    name, sid, conn = person
    client.set(names.key(name), "another-session")
    with pytest.raises(NameTaken):
        heartbeats.refresh(_Sub(room, name, sid, conn))


def test_a_redis_that_lost_its_scripts_still_gets_the_hold(client, names, heartbeats, person, room):
    name, sid, conn = person
    client.script_flush()
    assert heartbeats.refresh(_Sub(room, name, sid, conn)) is None  # NOSCRIPT: asked again the usual way
    assert client.get(names.key(name)) == sid


def test_the_session_ending_is_still_told_with_the_hold_along(client, heartbeats, person, room):
    name, sid, conn = person
    client.delete("ripple:{u:%s}:session" % sid)
    assert heartbeats.refresh(_Sub(room, name, sid, conn)) == "session-ended"


def test_a_replaced_stream_is_told_so_by_the_shared_refresh(client, presence, heartbeats, person, room):
    name, sid, conn = person
    # Connection ids sort by their millisecond, then at random: the newer ones come a ms later.
    while int(conn[:12], 16) >= presence_now():
        pass
    for _ in range(presence.max_per_session):  # newer streams of the session: the oldest goes
        presence.admit(sid)
    assert client.zscore("ripple:{u:%s}:streams" % sid, conn) is None
    assert heartbeats.refresh(_Sub(room, name, sid, conn)) == "replaced"


def test_a_stream_whose_registration_lapsed_takes_it_back(client, presence, heartbeats, person, room):
    """A refresh that comes after the registration's ttl (a busy worker, a slow open) is no
    reason to end a stream nobody replaced: the page would stop for good."""
    name, sid, conn = person
    client.pexpire("ripple:{u:%s}:streams" % sid, 1)  # the session's streams lapsed
    wait_until(lambda: not client.exists("ripple:{u:%s}:streams" % sid), message="the lapse")
    assert heartbeats.refresh(_Sub(room, name, sid, conn)) is None
    assert client.zscore("ripple:{u:%s}:streams" % sid, conn) > presence_now()


def test_a_lapsed_stream_yields_when_newer_streams_fill_the_session(client, presence, heartbeats, person,
                                                                   room):
    name, sid, conn = person
    client.delete("ripple:{u:%s}:streams" % sid)  # lapsed...
    for _ in range(presence.max_per_session):  # ...and the session's places taken since
        presence.admit(sid)
    assert heartbeats.refresh(_Sub(room, name, sid, conn)) == "replaced"
    assert client.zcard("ripple:{u:%s}:streams" % sid) == presence.max_per_session


def test_refresh_and_hold_cost_no_more_commands_than_apart(client, names, presence, heartbeats, person, room):
    name, sid, conn = person
    names.hold(name, sid)  # its script loaded (another test flushes them)
    together = commands_of(client, lambda: heartbeats.refresh(_Sub(room, name, sid, conn)))
    then = presence_now()  # a refresh in the same millisecond would change no score (a ZSCORE more)
    wait_until(lambda: presence_now() > then + 1, message="the clock moves on")
    apart = commands_of(client, lambda: (presence.refresh(room, name, sid, conn), names.hold(name, sid)))
    assert together == apart  # the same commands, one round trip fewer (a pipeline, no SCRIPT EXISTS)


def test_refreshes_that_come_due_together_share_one_round_trip(client, names, presence, heartbeats, room,
                                                               monkeypatch):
    subs = [new_person(client, names, presence, room) for _ in range(5)]
    names.hold(subs[0].name, subs[0].sid)  # its script loaded
    pipelines = []
    real = presence.redis.pipeline
    monkeypatch.setattr(presence.redis, "pipeline", lambda *a, **k: pipelines.append(1) or real(*a, **k))
    streams = [gevent.spawn(heartbeats.refresh, sub) for sub in subs]
    gevent.joinall(streams, timeout=10, raise_error=True)
    assert [g.value for g in streams] == [None] * 5 and len(pipelines) == 1
    for sub in subs:
        assert client.zscore("ripple:{u:%s}:streams" % sub.sid, sub.conn) > presence_now() + 5_000


def test_one_streams_failure_in_a_shared_refresh_is_its_own(client, names, presence, heartbeats, room):
    ok, broken = new_person(client, names, presence, room), new_person(client, names, presence, room)
    client.delete("ripple:{u:%s}:streams" % broken.sid)
    client.set("ripple:{u:%s}:streams" % broken.sid, "not a sorted set")  # WRONGTYPE for its ZADD
    streams = [gevent.spawn(heartbeats.refresh, sub) for sub in (ok, broken)]
    gevent.joinall(streams, timeout=10)
    assert streams[0].successful() and streams[0].value is None
    assert isinstance(streams[1].exception, redis_py.ResponseError) and "WRONGTYPE" in str(streams[1].exception)


def test_a_full_batch_goes_at_once_and_the_rest_wait_for_the_next(client, names, presence, room):
    heartbeats = Heartbeats(presence, names, window=5, most=3)  # a batch waits 5 s unless full
    subs = [new_person(client, names, presence, room) for _ in range(3)]
    streams = [gevent.spawn(heartbeats.refresh, sub) for sub in subs]
    gevent.joinall(streams, timeout=2, raise_error=True)  # well before the window's end
    assert [g.value for g in streams] == [None] * 3


def test_a_failed_round_trip_is_each_waiting_streams_failure(names, room):
    nobody = redis_py.Redis(port=free_port(), socket_connect_timeout=1)  # nothing listens
    heartbeats = Heartbeats(Presence(nobody, heartbeat=5, grace=5, max_per_session=4, batch_ms=0),
                            Names(nobody, idle=600, grace=30))
    streams = [gevent.spawn(heartbeats.refresh, _Sub(room, "n%d" % i, "sid-%d" % i, "c%d" % i))
               for i in range(3)]
    gevent.joinall(streams, timeout=10)
    assert all(isinstance(g.exception, redis_py.ConnectionError) for g in streams)


def test_a_refresh_in_the_registrations_millisecond_is_no_replacement(client, presence, room, monkeypatch):
    from app.people import presence as presence_module
    monkeypatch.setattr(presence_module, "now_ms", lambda: 1_900_000_000_000)  # one frozen millisecond
    name, sid = "bo-" + uuid.uuid4().hex[:6], "sid-" + uuid.uuid4().hex
    client.set("ripple:{u:%s}:session" % sid, '{"name": "%s"}' % name)
    conn = presence.admit(sid)
    presence.join(room, name, sid, conn)
    assert presence.refresh(room, name, sid, conn) is None  # its scores unchanged, still registered


def test_silent_streams_head_reads_share_one_round_trip_and_each_gets_its_own(client, room, monkeypatch):
    store = Store(client, 10, 60)
    room_keys = keys.RoomKeys(room)
    client.xadd(room_keys.log, {"m": "1"}, id="5-1")
    people = [keys.PersonKeys("sid-" + uuid.uuid4().hex) for _ in range(4)]
    client.xadd(people[1].log, {"m": "dm"}, id="7-1")
    pipelines = []
    real = client.pipeline
    monkeypatch.setattr(client, "pipeline", lambda *a, **k: pipelines.append(1) or real(*a, **k))
    reads = HeadReads(store)
    streams = [gevent.spawn(reads.heads, [room_keys, person]) for person in people]
    gevent.joinall(streams, timeout=10, raise_error=True)
    assert [g.value for g in streams] == [["5-1", "0-0"], ["5-1", "7-1"], ["5-1", "0-0"], ["5-1", "0-0"]]
    assert len(pipelines) == 1


def test_a_failed_shared_head_read_is_each_askers_failure(client, room):
    room_keys = keys.RoomKeys(room)
    client.set(room_keys.log, "not a stream")  # WRONGTYPE for its XREVRANGE
    reads = HeadReads(Store(client, 10, 60))
    streams = [gevent.spawn(reads.heads, [room_keys]) for _ in range(3)]
    gevent.joinall(streams, timeout=10)
    assert all(isinstance(g.exception, redis_py.ResponseError) for g in streams)
