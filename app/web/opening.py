"""A stream's opening checks in one Redis round trip: its rate limits, its room's gate, its
address's admission.

Opening streams is what a reload, a deploy or a crashed worker makes thousands of clients do at
once (issue 20), so the stream route does not go through Flask-Limiter's decorators: each cost a
round trip and a fifth of an open's CPU (docs/performance.md, "Opening streams"). One script
counts the limits that apply, reads the room's access (app/rooms/records.py's rule decides) and
admits the stream under its address's cap (app/people/addresses.py's rule, the same Lua).

Which limits apply (the settings hold limit strings, as Flask-Limiter reads them):
- a stream that resumes a cursor: STREAM_RESUME_RATE_IP, per address (a reload's reconnects);
- a new stream: STREAM_RATE_IP per address and, for a signed-in session, STREAM_RATE_SESSION;
- none with a publish token or with RATELIMIT_ENABLED off (as for every other limit).
Each limit is a sliding-window counter (Flask-Limiter's strategy here): the previous window's
count, weighted by how much of it still overlaps, plus this window's. A refused open counts
against none of them; nothing else is read or admitted then.

On a Redis Cluster the keys live in different slots: the same steps run as separate calls (the
limits script per limit, Rooms.access, AddressStreams.admit), the admission only after the gate.
"""
import functools
import logging
import math
import time
from collections import namedtuple

import redis
from flask import current_app, request
from limits import parse_many
from werkzeug.exceptions import TooManyRequests

from ..delivery import stream, wire
from ..ops import topology
from ..ops.services import services
from ..people import accounts, identity, names
from ..people import addresses as address_streams
from ..people import presence as people
from ..people import reading as reading_people
from ..rooms import keys, records
from . import gate, guard

logger = logging.getLogger(__name__)

# Checks every limit before counting any: an open one limit refuses costs the others nothing.
# KEYS from ``first``: per limit, this window's counter and the previous window's.
# ARGV from ``at``: the number of limits, then per limit: amount, window (ms), elapsed (ms).
# Returns nil when all allow it (and counts it), else {the refusing limit (1-based), prev, cur}.
_LIMITS_LUA = """
local function spend_limits(keys, first, argv, at)
  local n = tonumber(argv[at])
  for i = 1, n do
    local amount, window = tonumber(argv[at + 3 * i - 2]), tonumber(argv[at + 3 * i - 1])
    local elapsed = tonumber(argv[at + 3 * i])
    local cur = tonumber(redis.call('GET', keys[first + 2 * i - 2]) or '0')
    local prev = tonumber(redis.call('GET', keys[first + 2 * i - 1]) or '0')
    if prev * (window - elapsed) / window + cur + 1 > amount then return {i, prev, cur} end
  end
  for i = 1, n do
    if redis.call('INCR', keys[first + 2 * i - 2]) == 1 then
      redis.call('PEXPIRE', keys[first + 2 * i - 2], 2 * tonumber(argv[at + 3 * i - 1]))
    end
  end
  return nil
end
"""

# KEYS: the room's info, members, bans (records.access_keys); the address's streams; the room's
# tombstone (RecordKeys.gone); then the limits' counters.  ARGV: the three ban fields, the first
# also the member field (records.ban_fields); admit (1/0); the admission's four
# (AddressStreams.admit_args); the limits' (from 9).
# Returns {0, info, member, bans, admitted (1, 0, or -1: not asked), gone} or {1, limit, prev, cur}.
_OPEN_LUA = _LIMITS_LUA + address_streams.ADMIT_LUA + """
local limited = spend_limits(KEYS, 6, ARGV, 9)
if limited then return {1, limited[1], limited[2], limited[3]} end
local info = redis.call('HMGET', KEYS[1], 'visibility', 'slow', 'owner')
local member = redis.call('HGET', KEYS[2], ARGV[1])
local bans = redis.call('HMGET', KEYS[3], ARGV[1], ARGV[2], ARGV[3])
local admitted = -1
if ARGV[4] == '1' then admitted = admit_address(KEYS[4], ARGV, 5) end
return {0, info, member, bans, admitted, redis.call('GET', KEYS[5])}
"""

# The same checks with, for a signed-in person on the fast path (app/web/faststream.py), their
# registration (_PERSON_LUA's) in the same round trip. It runs only where the checks surely let
# the stream through: no limit refused, the address admitted it, no ban record at all, a room
# that is not private, no tombstone; there the Python rules (records.access_from, gate.hidden,
# records.deleted_since) can only agree. Elsewhere (a private room's member, an old ban record)
# none of it runs and subscription() registers the person in a call of its own.
# KEYS and ARGV: _OPEN_LUA's, then _PERSON_LUA's five and eight after the limits'.
# Returns _OPEN_LUA's reply with one more element: nil (not run), _PERSON_LUA's reply, or
# {-1, the error} (it failed).
_OPEN_PERSON_LUA = (_OPEN_LUA.replace("return {0, info, member, bans, admitted, redis.call('GET', KEYS[5])}\n", "")
                    + names.CLAIM_FN_LUA + "-- ADMIT_FN_LUA\n" + """
local gone = redis.call('GET', KEYS[5])
local person = false
if admitted == 1 and not gone and info[1] ~= 'private' and not bans[1] and not bans[2] and not bans[3] then
  local k, a = 6 + 2 * tonumber(ARGV[9]), 10 + 3 * tonumber(ARGV[9])
  -- An error here (a key of another type) must not fail the checks, whose counts and admission
  -- stand: it is answered {-1, error} and subscription() registers apart (and answers the
  -- error), with the same connection id: what was written before the error takes no second
  -- place. The read that can fail goes before any write.
  local ok, answer = pcall(function()
    local rooms = redis.call('ZRANGE', KEYS[k + 4], 0, -1)
    local sessions = ARGV[a + 8] == '1' and redis.call('SMEMBERS', KEYS[k + 5])
    if claim_name(KEYS[k], KEYS[k + 1], ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]) == 0 then return {0} end
    local replaced = admit_stream(KEYS[k + 2], KEYS[k + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7])
    return {1, replaced, rooms, sessions}
  end)
  person = ok and answer or {-1, tostring(answer)}
end
return {0, info, member, bans, admitted, gone, person}
""")
assert "return {0, info, member, bans, admitted, gone, person}" in _OPEN_PERSON_LUA
assert "redis.call('GET', KEYS[5])}" not in _OPEN_PERSON_LUA  # _OPEN_LUA's own return is gone

_LIMITS_ONLY_LUA = _LIMITS_LUA + """
local limited = spend_limits(KEYS, 1, ARGV, 1)
if limited then return limited end
return 0
"""

# The Lua above hard-codes ACCESS_FIELDS' order.
assert records.ACCESS_FIELDS == ("visibility", "slow", "owner")

Limit = namedtuple("Limit", "amount window_ms key")


class Opened:
    """What the checks said: the room's Access (gate's rules apply to it), whether the address
    admitted the stream (None when it was not asked) and the room's tombstone (``gone``: the
    last id of its history when it was deleted, or None: records.deleted_since)."""

    def __init__(self, room, found, address, conn, admitted, gone=None):
        self.room, self.found, self.address, self.conn, self.admitted = room, found, address, conn, admitted
        self.gone = gone

    def give_back(self):
        """The stream is not opened after all: its address's place is free again (a round trip,
        on this rare path only)."""
        if self.admitted:
            services().addresses.give_back(self.address, self.conn)
            self.admitted = False


@functools.lru_cache(maxsize=64)
def _items(setting_value):
    return [(item.amount, int(item.get_expiry() * 1000)) for item in parse_many(setting_value)]


def limits():
    """The Limits an open of this request counts against (see the module's docstring)."""
    if not guard.limiter.enabled or guard.exempt():
        return []
    resuming = guard.resuming()
    return stream_limits(current_app.config, gate.address(), resuming,
                         None if resuming else guard.session_id())


def stream_limits(cfg, address, resuming, sid):
    """The Limits of an open from ``address`` (str) that resumes a cursor or not, of session
    ``sid`` (str or None); needs no request (app/web/faststream.py opens without one)."""
    if resuming:
        wanted = [("STREAM_RESUME_RATE_IP", "resume:" + address)]
    else:
        wanted = [("STREAM_RATE_IP", "ip:" + address)]
        if sid:
            wanted.append(("STREAM_RATE_SESSION", "sid:" + sid))
    found, prefix = [], cfg["RATELIMIT_KEY_PREFIX"]
    for setting, who in wanted:
        for amount, window_ms in _items(cfg[setting]):
            # Named by the limit, as Flask-Limiter names its counters: a changed limit counts anew.
            found.append(Limit(amount, window_ms, "%s:{stream:%s}:%d/%d" % (prefix, who, amount, window_ms)))
    return found


def _keys_and_args(found, now_ms):
    keys, args = [], [len(found)]
    for limit in found:
        window = now_ms // limit.window_ms
        keys += ["%s:%d" % (limit.key, window), "%s:%d" % (limit.key, window - 1)]
        args += [limit.amount, limit.window_ms, now_ms - window * limit.window_ms]
    return keys, args


def _refuse(limit, prev, cur, now_ms):
    """Raise the 429 of ``limit`` refusing an open; its Retry-After is when one more fits."""
    window, amount = limit.window_ms, limit.amount
    left = window - now_ms % window  # of this window
    if cur + 1 <= amount and prev:  # the previous window's weight must fade enough
        wait_ms = left - (amount - cur - 1) * window / prev
    else:  # this window's count alone is too many: it becomes the previous one's
        wait_ms = left + (window * (1 - (amount - 1) / cur) if cur else 0)
    wait = max(1, math.ceil(wait_ms / 1000))
    raise TooManyRequests(retry_after=wait)


# The WSGI environ's key under which app/web/faststream.py hands Flask the checks it ran for a
# stream it did not open itself: (now in ms, the admission's conn, the script's reply).
CHECKED = "ripple.stream_checks"


def open_stream(room, admit):
    """Count this request's open of ``room`` against its limits (429 past one: the error
    handler answers it in the form an EventSource retries), read its access (gate's cache holds
    it: gate.require_open decides) and, when ``admit``, admit it under its address's cap.
    Raises redis.RedisError when Redis fails.

    When the fast path (app/web/faststream.py) ran the checks already, their reply is used:
    nothing is counted twice."""
    ripple = services()
    streams, address = ripple.addresses, gate.address()
    checked = request.environ.pop(CHECKED, None)
    try:
        found, uid, name = limits(), identity.uid(), identity.current()[0]
    except Exception:  # Redis failing now: an admission the fast path handed on is given back
        if checked is not None and checked[2][0] == 0 and checked[2][4] == 1:
            streams.give_back(address, checked[1])
        raise
    if checked is not None:
        now_ms, conn, reply = checked
    else:
        now_ms, conn = int(time.time() * 1000), streams.new_conn()
        if isinstance(ripple.redis, redis.RedisCluster):
            return _open_apart(room, found, now_ms, uid, address, admit, conn)
        reply = run_checks(ripple.redis, room, found, now_ms, uid, address, admit, streams.admit_args(conn), name)
    if reply[0] == 1:
        _, which, prev, cur = reply
        _refuse(found[which - 1], int(prev), int(cur), now_ms)
    info, member, bans, admitted, gone = reply[1:6]  # (a fast path's registration: not handed on)
    gate.remember(room, records.access_from(uid, info, member, bans))
    if admitted == 1:
        streams.keep(address, conn)
    return Opened(room, gate.access(room), address, conn, None if admitted == -1 else bool(admitted), gone)


def run_checks(client, room, found, now_ms, uid, address, admit, admit_args, name=None, person=None):
    """Run the opening script on a single Redis (not a Cluster): ``found`` the Limits,
    ``now_ms`` (int, ms since the epoch) the limits' clock, ``uid`` (str or None, signed in as
    ``name``) and ``address`` (str) whose access and admission, ``admit`` (bool), ``admit_args``
    AddressStreams.admit_args' list. Returns the reply ``_OPEN_LUA`` documents: {1, limit
    (1-based), prev, cur} when a limit refuses (nothing counted), else {0, info, member, bans,
    admitted (1, 0, or -1: not asked), the room's tombstone (RecordKeys.gone) or None}.
    ``person``: a PersonAdmission to run in the same round trip where the checks surely let the
    stream through (_OPEN_PERSON_LUA); the reply then has a seventh element, its script's answer
    (None: not run; {-1, error}: failed), for PersonAdmission.answer. Needs no request. Raises
    redis.RedisError (then the script may have run: a new try reuses the PersonAdmission)."""
    limit_keys, limit_args = _keys_and_args(found, now_ms)
    keys = records.access_keys(room) + [address_streams.key(address), records.RecordKeys(room).gone] + limit_keys
    args = records.ban_fields(uid, address, name) + [1 if admit else 0] + admit_args + limit_args
    pool = topology.plain_pool(client)  # the EVALSHA without redis-py's layers, where it can
    if person is None:
        return topology.run_script(pool, _script(client), keys, args)
    script = _registered(client, "open-person", person.source(_OPEN_PERSON_LUA))
    return topology.run_script(pool, script, keys + person.keys, args + person.args)


def _open_apart(room, found, now_ms, uid, address, admit, conn):
    """open_stream on a cluster: the limits (each limit's two keys share a slot), the room's
    access, then the admission, one call each."""
    client = services().redis
    for i, limit in enumerate(found):
        keys, args = _keys_and_args([limit], now_ms)
        reply = _limits_script(client)(keys=keys, args=args)
        if reply != 0:
            _refuse(found[i], int(reply[1]), int(reply[2]), now_ms)
    gate.access(room)  # Rooms.access, cached for the request
    gone = client.get(records.RecordKeys(room).gone)
    admitted = None
    if admit and not gate.hidden(gate.access(room)) and gate.access(room).ban is None:
        admitted = services().addresses.admit(address, conn)  # the place give_back frees
    elif admit:
        admitted = False  # refused by the gate: require_open answers it before admission matters
    return Opened(room, gate.access(room), address, conn, admitted, gone)


# KEYS: the name's claim and account index; the session's streams and channel; the reader's rooms;
# the account's sessions (read when ARGV[9] is "1": the person has an account).
# ARGV: the claim's four (Names.claim_args), the admission's four (Presence.admit_args), "1"/"0".
# Returns {0} when the name is someone else's (nothing else done), else {1, replaced, rooms,
# the account's sessions or nil}.
_PERSON_LUA = names.CLAIM_FN_LUA + "-- ADMIT_FN_LUA\n" + """
if claim_name(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) == 0 then return {0} end
local replaced = admit_stream(KEYS[3], KEYS[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
return {1, replaced, redis.call('ZRANGE', KEYS[5], 0, -1), ARGV[9] == '1' and redis.call('SMEMBERS', KEYS[6])}
"""


def admit_person_of(ripple, name, sid, guest, account, uid, admission=None):
    """For a signed-in person's stream: refresh their claim on ``name`` (Names.claim), register
    the stream with their session ``sid`` (Presence.admit: past the session's cap its oldest
    ends) and read the rooms of their sidebar (Reading.rooms, of stable id ``uid``), in one
    round trip; ``account``: their account id or None; ``ripple``: the app's Services;
    ``admission``: the PersonAdmission the fast path made for this open (its answer when its
    script ran, else made again with its connection id: a registration that may have been
    written takes no second place). Returns (the stream's presence connection id, the sidebar's
    rooms, the account's session ids or None: not read), or None when the name is someone else's
    now (then nothing is registered: the stream listens anonymously). Needs no request. Raises
    redis.RedisError."""
    presence, claims = ripple.presence, ripple.names
    if isinstance(ripple.redis, redis.RedisCluster):  # three slots: three calls
        try:
            claims.claim(name, sid, account=account)
        except names.NameTaken:
            return None
        rooms_key = reading_people.ReaderKeys(reading_people.reader_id(uid)).rooms
        return presence.admit(sid, guest=guest), ripple.redis.zrange(rooms_key, 0, -1), None
    if admission is None:
        admission = PersonAdmission(ripple, name, sid, guest, account, uid)
    elif admission.done:
        return admission.result
    admission.answer(_registered(ripple.redis, "person", admission.source(_PERSON_LUA))(
        keys=admission.keys, args=admission.args))
    return admission.result


class PersonAdmission:
    """admit_person_of's work as a script's part (_PERSON_LUA's KEYS and ARGV: ``keys``,
    ``args``), run alone or with the opening checks (_OPEN_PERSON_LUA), with one connection id
    (``conn``) however often it is run. Single Redis only. ``done`` once answered; ``result``
    is then admit_person_of's answer."""

    def __init__(self, ripple, name, sid, guest, account, uid):
        presence, claims = ripple.presence, ripple.names
        self.presence, self.conn = presence, presence.new_conn(guest)
        rooms_key = reading_people.ReaderKeys(reading_people.reader_id(uid)).rooms
        # An account's sessions are read along (the sidebar's counts are the account's).
        sessions_key = accounts.sessions_key(account) if account else rooms_key
        self.keys = claims.claim_keys(name) + presence.admit_keys(sid) + [rooms_key, sessions_key]
        self.args = (claims.claim_args(sid, account=account) + presence.admit_args(self.conn, people.now_ms())
                     + ["1" if account else "0"])
        self.done, self.result = False, None

    def source(self, lua):
        """``lua`` with this app's admission function (its PUBLISH command) in place."""
        return lua.replace("-- ADMIT_FN_LUA\n", self.presence.admit_fn_lua)

    def answer(self, reply):
        """Take the script's {0} (the name is someone else's), {1, replaced, rooms, sessions} or,
        from _OPEN_PERSON_LUA, None (not run) or {-1, error} (failed: logged, left to run
        alone)."""
        if not reply:
            return
        if reply[0] == -1:
            logger.warning("stream registration failed in the opening script, made apart: %s", reply[1])
            return
        if reply[0] == 1:
            self.presence.admitted(reply[1])
        self.done, self.result = True, (self.conn, reply[2], reply[3]) if reply[0] == 1 else None


# The WSGI environ's key under which app/web/faststream.py hands Flask's path the PersonAdmission
# of an open it did not finish (its connection id is used again: no second place in the session).
ADMISSION = "ripple.person_admission"


# Who opens a signed-in stream: name, session id, stable id (identity.stable_id), account id
# (or None), whether a guest, when the session ends by itself (epoch s, or None).
Person = namedtuple("Person", "name sid uid account guest expires")
_FRAMING = {"HTTP/1.1": True, "HTTP/1.0": False}  # gunicorn's framing of a body: chunked?


def subscription(ripple, cfg, environ, room, access, cursor, backlog, address, person=None, admin=None,
                 admission=None):
    """The Subscription of a stream its checks admitted: of ``room`` (whose Access was
    ``access``), resuming after ``cursor`` (or None) with ``backlog`` messages, opened from
    ``address`` by ``person`` (a Person, or None: nobody signed in), on the request of WSGI
    ``environ``; its person's registration and sidebar, its socket's settings. ``ripple``, ``cfg``:
    the app's Services and config. ``admin``: True for the admin token (administrators read every
    room); None: whether the person's account is an admin account, asked only if a private room
    would otherwise be out of their reach, and asked again every heartbeat once that let it in
    (AdminPower). Needs no request (both stream paths build it here: the route and
    app/web/faststream.py). ``admission``: the fast path's PersonAdmission for ``person`` (None:
    the one it handed on in ``environ``, if any; admit_person_of says how it is used). Raises
    redis.RedisError when Redis fails."""
    power = None
    if admin is None:
        account = person.account if person is not None else None
        power = AdminPower(ripple.accounts, account) if account else None
        admin = power or False
    hub = ripple.hub
    hub.presence.ensure_sweeper()
    if cursor is not None:
        hub.metrics.resumes.inc()
    client = environ.get("gunicorn.socket")
    # gunicorn frames a body in chunks for HTTP/1.1 and not for 1.0, and the stream writes in
    # the same framing; anything else (another protocol) it leaves to gunicorn (None).
    framing = _FRAMING.get(environ.get("SERVER_PROTOCOL")) if hub.direct_writes else None
    sub = stream.Subscription(room, cursor, backlog, client=client, environ=environ, chunked=framing)
    uid = person.uid if person is not None else None
    if person is not None:
        # The name's claim refreshed, the stream registered with the session (past its cap, its
        # oldest stream ends; a guest's is marked in the online list), the sidebar's rooms read:
        # one round trip. None: the name is someone else's now: this stream listens anonymously.
        admitted = admit_person_of(ripple, person.name, person.sid, person.guest, person.account, uid,
                                   admission or environ.get(ADMISSION))
        if admitted is not None:
            sub.name, sub.sid, sub.account, sub.expires = person.name, person.sid, person.account, person.expires
            sub.conn, sidebar, sessions = admitted
            _follow_sidebar(ripple, sub, sidebar, person, address, admin, sessions)
    sub.gate = gate.stream_gate_of(ripple.rooms, room, access, uid, address,  # a ban, a removal...
                                   person.name if person is not None else None, admin)
    if power is not None:
        sub.powers = power.holds
    if client is not None:
        # A reader that stops reading would block this stream's writes forever while Redis
        # buffers for it; with a send timeout the write fails and the stream ends (the client
        # can resume with its cursor). The kernel's socket buffers bound the memory meanwhile.
        client.settimeout(float(cfg["SEND_TIMEOUT_SECONDS"]))
        # A client that vanished without a word (a phone off the network) acknowledges
        # nothing more: the kernel gives up on it within about two heartbeats.
        wire.keep_alive(client, hub.heartbeat, float(cfg["SEND_TIMEOUT_SECONDS"]))
    return sub


class AdminPower:
    """An account's administrator power as one stream uses it (no request needed): called, it
    answers whether account ``account`` is an administrator now (gate.admin_account), asked
    only where a private room would otherwise be out of the person's reach (the stream's room,
    a sidebar's); ``used`` once it let one in. A stream opened on that power keeps asking
    (``holds``, every heartbeat: app/delivery/stream.py Subscription.powers): revoked, or the
    account disabled, the stream ends with a reconnect, whose checks decide afresh. Nothing is
    published when an account changes (an operator may change it in Redis itself), so the
    stream asks; only the streams that used the power pay the read."""

    __slots__ = ("accounts", "account", "used")

    def __init__(self, accounts, account):
        self.accounts, self.account, self.used = accounts, account, False

    def __call__(self):
        held = gate.admin_account(self.accounts, self.account)
        self.used = self.used or held
        return held

    def holds(self):
        """Tell whether the power still holds, or was never used: the heartbeat's question."""
        return not self.used or self()


def _follow_sidebar(ripple, sub, rooms, person, address, admin=False, sessions=None):
    """Let a signed-in stream carry the person's sidebar (``rooms``: Reading.rooms'): their
    other rooms' activity (at most WATCHED of them) and, once it is subscribed, the counts of
    all; ``sessions``: their account's session ids when the registration read them (None: read
    here). Without Redis the stream opens without it (its own replay says whether Redis is back)."""
    reading = ripple.reading
    try:
        if sessions is None and person.account:
            sessions = ripple.accounts.session_ids(person.account)
        sids = sorted(sessions) if person.account else [person.sid]
        reader = reading_people.Reader(reading_people.reader_id(person.uid), sids or [person.sid])
        rooms = gate.readable_of(ripple.redis, rooms, person.uid, address, person.name,  # members only in private
                                 admin=admin)
    except redis.RedisError:
        return
    sub.watch = [keys.RoomKeys(r).activity for r in rooms if r != sub.room][:stream.WATCHED]
    sub.greet = lambda pipe: reading.snapshot_reads(pipe, reader, rooms)


def _script(client):
    return _registered(client, "open", _OPEN_LUA)


def _limits_script(client):
    return _registered(client, "limits", _LIMITS_ONLY_LUA)


_SCRIPTS = {}


def _registered(client, name, source):
    """One registered Script per client and script (registering hashes the source)."""
    found = _SCRIPTS.get((id(client), name))
    if found is None or found[0] is not client:
        found = _SCRIPTS[(id(client), name)] = (client, client.register_script(source))
    return found[1]
