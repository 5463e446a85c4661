"""A signed-in stream's heartbeat (app/delivery/stream.py): its presence refresh and its name's
hold go to Redis in one round trip (Presence.refresh's ``also``, Names.hold_in/held), with the
rules of each kept. Real Redis."""
import uuid

import pytest

from app.delivery.stream import _NameHold
from app.people.names import Names, NameTaken
from app.people.presence import Presence
from app.people.presence import now_ms as presence_now
from app.rooms import keys

from .servers import wait_until


class _Sub:
    """What _NameHold reads of a Subscription."""

    def __init__(self, name, sid, account=None):
        self.name, self.sid, self.account = name, sid, account


@pytest.fixture
def client(redis_client):
    """The suite's Redis, as str (conftest's redis_client)."""
    return redis_client


@pytest.fixture
def names(client):
    return Names(client, idle=600, grace=30)


@pytest.fixture
def presence(client):
    return Presence(client, heartbeat=5, grace=5, max_per_session=4, batch_ms=0)


@pytest.fixture
def person(client, names, presence, room):
    """A signed-in person with one stream in ``room``: (name, sid, conn)."""
    name, sid = "ann-" + uuid.uuid4().hex[:6], "sid-" + uuid.uuid4().hex
    client.set("ripple:{u:%s}:session" % sid, '{"name": "%s"}' % name)
    names.claim(name, sid)
    conn = presence.admit(sid)
    presence.join(room, name, sid, conn)
    # Registered a second ago: a refresh in the same millisecond would change no score, and
    # ZADD XX CH would say "not registered".
    client.zadd("ripple:{u:%s}:streams" % sid, {conn: presence_now() + 1000}, xx=True)
    client.zadd(keys.RoomKeys(room).online, {"%s\n%s" % (name, conn): presence_now() + 1000}, xx=True)
    return name, sid, conn


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


def test_the_refresh_carries_the_names_hold_and_extends_it(client, names, presence, person, room):
    name, sid, conn = person
    client.pexpire(names.key(name), 1000)  # about to lapse
    hold = _NameHold(names, _Sub(name, sid))
    assert presence.refresh(room, name, sid, conn, also=hold) is None
    names.held(hold.reply, name, sid)
    assert client.pttl(names.key(name)) > 20_000


def test_the_hold_says_when_someone_else_holds_the_name(client, names, presence, person, room):
    name, sid, conn = person
    client.set(names.key(name), "another-session")
    hold = _NameHold(names, _Sub(name, sid))
    presence.refresh(room, name, sid, conn, also=hold)
    with pytest.raises(NameTaken):
        names.held(hold.reply, name, sid)


def test_a_redis_that_lost_its_scripts_still_gets_the_hold(client, names, presence, person, room):
    name, sid, conn = person
    client.script_flush()
    hold = _NameHold(names, _Sub(name, sid))
    assert presence.refresh(room, name, sid, conn, also=hold) is None
    names.held(hold.reply, name, sid)  # NOSCRIPT in the pipeline: asked again the usual way
    assert client.get(names.key(name)) == sid


def test_the_session_ending_is_still_told_with_the_hold_along(client, names, presence, person, room):
    name, sid, conn = person
    client.delete("ripple:{u:%s}:session" % sid)
    assert presence.refresh(room, name, sid, conn, also=_NameHold(names, _Sub(name, sid))) == "session-ended"


def test_refresh_and_hold_cost_no_more_commands_than_before(client, names, presence, person, room):
    name, sid, conn = person
    hold = _NameHold(names, _Sub(name, sid))
    names.hold(name, sid)  # its script loaded (another test flushes them)
    together = commands_of(client, lambda: presence.refresh(room, name, sid, conn, also=hold))
    then = presence_now()  # a refresh in the same millisecond would change no score (a ZSCORE more)
    wait_until(lambda: presence_now() > then + 1, message="the clock moves on")
    apart = commands_of(client, lambda: (presence.refresh(room, name, sid, conn), names.hold(name, sid)))
    assert together == apart  # the same commands, one round trip fewer (a pipeline, no SCRIPT EXISTS)


def test_a_refresh_in_the_registrations_millisecond_is_no_replacement(client, presence, room, monkeypatch):
    from app.people import presence as presence_module
    monkeypatch.setattr(presence_module, "now_ms", lambda: 1_900_000_000_000)  # one frozen millisecond
    name, sid = "bo-" + uuid.uuid4().hex[:6], "sid-" + uuid.uuid4().hex
    client.set("ripple:{u:%s}:session" % sid, '{"name": "%s"}' % name)
    conn = presence.admit(sid)
    presence.join(room, name, sid, conn)
    assert presence.refresh(room, name, sid, conn) is None  # its scores unchanged, still registered


def test_a_refresh_of_a_stream_no_longer_registered_says_replaced(client, presence, person, room):
    name, sid, conn = person
    client.zrem("ripple:{u:%s}:streams" % sid, conn)  # a newer stream took its place
    assert presence.refresh(room, name, sid, conn) == "replaced"
