"""Who is online in a room: a registry of open streams in Redis, per person, not per connection.

Each named stream keeps a member "<name>\\n<connection>" in the room's ``online`` sorted set,
scored by when it expires (a guest's connection id ends in ".g": the list marks guests); the
stream's heartbeat pushes that forward. A closing stream does not remove itself: it expires
after a grace window, so a reload or a quick reconnect emits neither a leave nor a join. A
crashed worker's members simply stop being refreshed. One sweeper at a time (a Redis lock)
removes expired members and announces who left.
"""
import hashlib
import logging
import secrets
import time

import gevent
import redis

from ..ops import outage
from ..rooms import keys
from ..webhooks.queue import NO_EVENT_FN_LUA

logger = logging.getLogger(__name__)

ROOMS = "ripple:presence:rooms"   # set of rooms that may have members (the sweeper's work list)
LOCK = "ripple:presence:sweeper"

# Shared Lua. A room keeps every stream's connection in ``online`` (expiry scores) and, beside it,
# the names announced present (``names``: sorted set, scores 0, so in byte order) and the guests
# among them (``guests``: set; a name whose live connections are all a guest's: GUEST ends their
# ids; one that is not means the name's holder now has an account or a token: a guest who just
# registered keeps their old connections' members for a while). A join reads the names, not
# every connection: O(log N) in a room of N (issue 20: the scan of every connection was most of
# a signed-in open's Redis time in big rooms). The sweeper, which scans the connections once a
# round anyway, takes out the names it announces gone and mends the names should they differ
# from the connections (a host of the release before, which kept no names).
#
# A join, leave or "here" costs every listener O(1) bytes (issue 20): the event carries the change
# ({room, name, action, guest, online_count}); only while the room has at most ``limit`` names
# online does it also carry the whole ``online`` and ``guests`` lists (small rooms, and the
# clients written before, stay as they were). A stream's own first event, the snapshot, always
# has a list: at most ``limit`` names (its own among them) and the count.
_ONLINE = """
local function online(zset, now)
  local names, seen, guests, signed = {}, {}, {}, {}
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', zset, now, '+inf')) do
    local name = string.match(m, '^(.-)\\n')
    if not seen[name] then seen[name] = true; names[#names + 1] = name end
    if string.sub(m, -2) == '.g' then guests[name] = true else signed[name] = true end
  end
  for name in pairs(signed) do guests[name] = nil end
  return names, guests, seen
end
-- The room's names and guests keys (each script sets them first).
local names_key, guests_key = nil, nil
-- The guests among ``shown`` (names), as a set: one SMISMEMBER (Redis 6.2+).
local function guests_among(shown)
  local guests = {}
  if #shown == 0 then return guests end
  local found = redis.call('SMISMEMBER', guests_key, unpack(shown))
  for i, n in ipairs(shown) do
    if found[i] == 1 then guests[n] = true end
  end
  return guests
end
-- Set the names and guests to ``names`` and ``guests`` (what a scan of the connections found).
local function store_names(names, guests)
  redis.call('DEL', names_key, guests_key)
  for i = 1, #names, 500 do
    local args, listed = {}, {}
    for j = i, math.min(#names, i + 499) do
      args[#args + 1] = 0; args[#args + 1] = names[j]
      if guests[names[j]] then listed[#listed + 1] = names[j] end
    end
    redis.call('ZADD', names_key, unpack(args))
    if #listed > 0 then redis.call('SADD', guests_key, unpack(listed)) end
  end
end
local function quote(names, only)
  local quoted = {}
  for _, n in ipairs(names) do
    if not only or only[n] then quoted[#quoted + 1] = cjson.encode(n) end
  end
  return '[' .. table.concat(quoted, ',') .. ']'
end
-- Built by hand: cjson encodes an empty table as {} where the lists need [].  ``ordered``: the
-- names come from the names key, already in byte order (UTF-8's is the code points', as pages
-- sort); others (a sweep's scan) are sorted here.
local function lists(names, guests, ordered)
  if not ordered then table.sort(names) end
  return ',"online":' .. quote(names) .. ',"guests":' .. quote(names, guests)
end
-- A room's announcements go out at once while it is calm; one that comes within the batch
-- interval (``batch_ms``) of the last one sent waits in the room's batch, in order, and the
-- batch goes out one interval later in one payload (Presence.flush: one PUBLISH, one wake-up of
-- each stream for many joins). In a batch only the last event carries the ``online``/``guests``
-- lists, read when the batch goes out: N people coming into a room of M cost about M wake-ups
-- and M lists per interval, not N x M, and Redis one list per batch, not one per join. ``due``
-- is set when this script's caller must have the batch published after the interval: the batch
-- was empty, or its publisher is overdue (its worker died first). The batch's time to live
-- tells its age: set to batch_life() when a publisher is due, it is overdue two intervals
-- later; the sweeper publishes an overdue batch too (_SWEEP_LUA), so only a minute without
-- either loses it. Each script sets the room's batch and hold keys, the interval and the list
-- limit first.
local batch_key, hold_key, batch_ms, list_limit = nil, nil, 0, 0
local due = 0
local function batch_life() return math.max(60000, 4 * batch_ms) end
local function overdue()
  local left = redis.call('PTTL', batch_key)
  return left >= 0 and left < batch_life() - 2 * batch_ms
end
local function queue(stored)
  local waiting = redis.call('RPUSH', batch_key, stored)
  if waiting == 1 or overdue() then
    redis.call('PEXPIRE', batch_key, batch_life())
    due = 1
  end
end
-- The room's lists as they are now, or '' above the limit.
local function lists_now()
  if redis.call('ZCARD', names_key) > list_limit then return '' end
  local names = redis.call('ZRANGE', names_key, 0, -1)
  return lists(names, guests_among(names), true)
end
-- A batch's events are stored as "<event>\\0" (the release before stored its lists after the
-- \\0: they are left out); the last one gets the room's lists as they are when it goes out.
local function publish_batch(channel)
  local stored = redis.call('LRANGE', batch_key, 0, -1)
  if #stored == 0 then return 0 end
  redis.call('DEL', batch_key)
  local events = {}
  for i, one in ipairs(stored) do
    local cut = string.find(one, '\\0', 1, true)
    events[i] = string.sub(one, 1, (cut or #one + 1) - 1) .. (i == #stored and lists_now() or '') .. '}'
  end
  redis.call('PUBLISH', channel, '!presence\\n' .. table.concat(events, '\\n\\nevent: presence\\ndata: '))
  redis.call('SET', hold_key, '1', 'PX', batch_ms)  -- a busy room: what comes next waits too
  return #stored
end
-- Announce a change: at once in a calm room, with the lists (``names`` and ``guests``, else the
-- room's as they are) while at most ``list_limit`` names are online; queued in a busy one,
-- where the lists wait for the batch. Returns the event with its lists for a webhook when
-- ``hook`` and one wants it, else nil.
local function tell(channel, room, name, action, guest, count, names, guests, hook)
  local event = '{"room":' .. cjson.encode(room) .. ',"name":' .. cjson.encode(name) ..
    ',"action":"' .. action .. '","guest":' .. (guest and 'true' or 'false') ..
    ',"online_count":' .. string.format('%d', count)
  local queued = batch_ms > 0 and (redis.call('EXISTS', batch_key) == 1 or redis.call('EXISTS', hold_key) == 1)
  local listed = nil
  if count <= list_limit and (not queued or (hook and webhook_wanted())) then
    listed = names and lists(names, guests) or lists_now()
  end
  if queued then
    queue(event .. '\\0')
  else
    redis.call('PUBLISH', channel, '!presence\\n' .. event .. (listed or '') .. '}')
    if batch_ms > 0 then redis.call('SET', hold_key, '1', 'PX', batch_ms) end
  end
  if hook then return event .. (listed or '') .. '}' end
end
local function announce(channel, room, name, action, guest, count, names, guests)
  webhook_event(action, room, tell(channel, room, name, action, guest, count, names, guests, true))
end
-- The snapshot: the first ``limit`` names in order, ``keep`` always among them, and the count.
local function snapshot(room, keep)
  local limit = list_limit
  local count = redis.call('ZCARD', names_key)
  local shown = redis.call('ZRANGE', names_key, 0, limit - 1)
  if count > limit and limit > 0 and redis.call('ZRANK', names_key, keep) >= limit then
    shown[limit] = keep  -- after every shown name in order: it ranks past them all
  end
  return '{"room":' .. cjson.encode(room) .. ',"action":"here"' .. lists(shown, guests_among(shown), true) ..
    ',"online_count":' .. string.format('%d', count) .. '}'
end
"""

# KEYS: online, channel, batch, hold, names, guests, and ROOMS when ARGV[9] is "1" (not on a
# Cluster: another slot).
# ARGV: member, name, expiry, now, room, limit, "snapshot" or "", batch interval (ms; 0: publish
# at once), "1"/"0". Whether the name was present before this member, then what its coming
# changes; the room goes on the sweeper's list. Returns {the snapshot event's JSON when asked for
# it (else ""), due (1: publish the batch after the interval)}.
_JOIN_LUA = _ONLINE + """
local name, guest = ARGV[2], string.sub(ARGV[1], -2) == '.g'
batch_key, hold_key, batch_ms, list_limit = KEYS[3], KEYS[4], tonumber(ARGV[8]), tonumber(ARGV[6])
names_key, guests_key = KEYS[5], KEYS[6]
if redis.call('EXISTS', names_key) == 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  local names, guests = online(KEYS[1], ARGV[4])  -- connections from before the names were kept
  store_names(names, guests)
end
local present = redis.call('ZSCORE', names_key, name)
local was_guest = present and redis.call('SISMEMBER', guests_key, name) == 1
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
if ARGV[9] == '1' then redis.call('SADD', KEYS[7], ARGV[5]) end
if not present then
  redis.call('ZADD', names_key, 0, name)
  if guest then redis.call('SADD', guests_key, name) end
  announce(KEYS[2], ARGV[5], name, 'join', guest, redis.call('ZCARD', names_key))
elseif was_guest and not guest then
  -- a guest who just registered or signed in (their guest connections linger): not a join
  -- (no webhook), but everyone's list stops calling them a guest now
  redis.call('SREM', guests_key, name)
  tell(KEYS[2], ARGV[5], name, 'here', false, redis.call('ZCARD', names_key))
end
if ARGV[7] == 'snapshot' then return {snapshot(ARGV[5], name), due} end
return {'', due}
"""

# KEYS: online, channel, batch, hold, names, guests, and ROOMS when ARGV[5] is "1" (as the
# join's).  ARGV: now, room, limit, batch interval (ms), "1"/"0".  Publish the room's batch if it
# is overdue; remove expired members; announce names now gone, each with the room as it is once
# it and those announced before it left, and take them out of the names; with no member left,
# take the room off the sweeper's list (in the script: a join between a separate count and
# removal would be left unswept). Returns {members left, due (as the join's)}.
_SWEEP_LUA = _ONLINE + """
batch_key, hold_key, batch_ms, list_limit = KEYS[3], KEYS[4], tonumber(ARGV[4]), tonumber(ARGV[3])
local limit = list_limit
names_key, guests_key = KEYS[5], KEYS[6]
if batch_ms > 0 and overdue() then publish_batch(KEYS[2]) end
local function done()
  local left = redis.call('ZCARD', KEYS[1])
  if left == 0 and ARGV[5] == '1' then redis.call('SREM', KEYS[7], ARGV[2]) end
  return {left, due}
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
if #expired == 0 then return done() end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
local names, guests, still = online(KEYS[1], ARGV[1])
local gone, order, signed = {}, {}, {}
for _, m in ipairs(expired) do
  local name = string.match(m, '^(.-)\\n')
  if not still[name] then
    if not gone[name] then gone[name] = true; order[#order + 1] = name end
    if string.sub(m, -2) ~= '.g' then signed[name] = true end
  end
end
for i, name in ipairs(order) do
  local count = #names + #order - i
  local now_names, now_guests = names, guests
  if count <= limit and i < #order then  -- the lists name those still to be announced
    now_names, now_guests = {}, {}
    for _, n in ipairs(names) do now_names[#now_names + 1] = n end
    for n in pairs(guests) do now_guests[n] = true end
    for j = i + 1, #order do
      now_names[#now_names + 1] = order[j]
      if not signed[order[j]] then now_guests[order[j]] = true end
    end
  end
  announce(KEYS[2], ARGV[2], name, 'leave', not signed[name], count, now_names, now_guests)
end
for i = 1, #order, 500 do  -- (unpack has a limit)
  redis.call('ZREM', names_key, unpack(order, i, math.min(#order, i + 499)))
  redis.call('SREM', guests_key, unpack(order, i, math.min(#order, i + 499)))
end
for _, m in ipairs(expired) do  -- a name still here may have lost its last signed-in connection
  local name = string.match(m, '^(.-)\\n')
  if still[name] then
    if guests[name] then redis.call('SADD', guests_key, name) else redis.call('SREM', guests_key, name) end
  end
end
if redis.call('ZCARD', names_key) ~= #names then store_names(names, guests) end
return done()
"""

# KEYS: batch, channel, hold, names, guests.  ARGV: batch interval (ms), list limit.  Publish a
# room's waiting announcements as one payload (the lists on the last only): the first
# event's "!presence\n<json>", each further one framed after it ("\n\nevent: presence\ndata:
# <json>"), so every stream relays them as they are (app/delivery/position.py: an unnumbered
# payload's text is framed once, as ``event: presence``). Returns how many went.
_FLUSH_LUA = NO_EVENT_FN_LUA + _ONLINE + """
batch_key, hold_key, batch_ms, list_limit = KEYS[1], KEYS[3], tonumber(ARGV[1]), tonumber(ARGV[2])
names_key, guests_key = KEYS[4], KEYS[5]
return publish_batch(KEYS[2])
"""


# KEYS: the session's streams, its channel.  ARGV: connection, now (ms), ttl (ms), cap.
# Register a stream; past the cap, unregister the oldest ones and tell them to end (wherever
# they run: every stream of the session listens on its channel). Connection ids begin with
# their admission time, so sorting them sorts by age. Returns the ids replaced.
ADMIT_FN_LUA = """
local function admit_stream(streams, channel, conn, now, ttl, cap)
  redis.call('ZREMRANGEBYSCORE', streams, '-inf', '(' .. now)
  redis.call('ZADD', streams, tonumber(now) + tonumber(ttl), conn)
  redis.call('PEXPIRE', streams, ttl)
  local members = redis.call('ZRANGE', streams, 0, -1)
  local excess = #members - tonumber(cap)
  local replaced = {}
  if excess <= 0 then return replaced end
  table.sort(members)
  for _, m in ipairs(members) do
    if #replaced >= excess then break end
    if m ~= conn then
      redis.call('ZREM', streams, m)
      redis.call('PUBLISH', channel, '!#replaced\\n' .. m)
      replaced[#replaced + 1] = m
    end
  end
  return replaced
end
"""
_ADMIT_LUA = ADMIT_FN_LUA + "return admit_stream(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])\n"

# KEYS: the session's streams.  ARGV: connection id, now (ms), ttl (ms), the session's cap.
# A stream whose registration lapsed (its refresh came more than a ttl after the last: a busy
# worker, a slow open) takes it back if the session has room, and answers 1; 0 when the
# session is full (newer streams have the places: it yields, as the oldest would). A stream
# replaced while its notice was lost comes back too if a place has freed since: the script
# cannot tell the two apart, and the cap holds either way.
_READMIT_LUA = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


# The end of a guest's connection id: presence lists say who is a guest (no account, no token).
GUEST = ".g"

# Why refresh() says a stream must end.
SESSION_ENDED = "session-ended"
REPLACED = "replaced"
REFRESH_REPLIES = 4  # the replies of one refresh_in (Presence.refreshed takes them)


def now_ms():
    return int(time.time() * 1000)


class Presence:
    """The registry, the per-session stream count, and the sweeper of this worker."""

    def __init__(self, client, heartbeat, grace, max_per_session, publish_command="PUBLISH", outbox=None,
                 list_max=200, batch_ms=1000):
        self.redis = client
        # Above this many names online, announcements carry the change alone, and snapshots this
        # many names and the count (the module's comment above _ONLINE says why).
        self.list_max = max(1, int(list_max))
        # Announcements this close (ms) to a room's previous one wait and go out together
        # (0: each at once): N people coming into a room of M cost M wake-ups per batch
        # instead of N x M (the comment above tell says how).
        self.batch_ms = max(0, int(batch_ms))
        # Join and leave go to the webhooks from the script that announces them (app/webhooks/).
        self._hook_keys, self._hook_args = outbox.event_keys() if outbox is not None else ((), ())
        announce = outbox.EVENT_FN_LUA if outbox is not None else NO_EVENT_FN_LUA
        self.heartbeat = float(heartbeat)
        self.grace = float(grace)
        self.outage = None  # the worker's OutageLog (app/ops/services.py): the sweeper's failures go there
        self.max_per_session = int(max_per_session)
        command = "'%s'" % publish_command
        self._join = client.register_script(announce + _JOIN_LUA.replace("'PUBLISH'", command))
        self._sweep = client.register_script(announce + _SWEEP_LUA.replace("'PUBLISH'", command))
        self._admit = client.register_script(_ADMIT_LUA.replace("'PUBLISH'", command))
        self._readmit = client.register_script(_READMIT_LUA)
        self._flush = client.register_script(_FLUSH_LUA.replace("'PUBLISH'", command))
        self.admit_fn_lua = ADMIT_FN_LUA.replace("'PUBLISH'", command)  # for app/web/opening.py
        self._sweeper = None
        # The join's script puts the room on the sweeper's list itself, but on a Cluster (the
        # list is in another slot) a call of its own does.
        single = not isinstance(client, redis.RedisCluster)
        self._rooms_key, self._rooms_flag = ((ROOMS,), "1") if single else ((), "0")

    @property
    def ttl_ms(self):
        # Refreshed every heartbeat; three heartbeats of life leave room for a busy worker's
        # late refresh, and a dead worker's streams still go within about two or three.
        return int(self.heartbeat * 3000)

    def admit(self, sid, guest=False):
        """Register a new stream of session ``sid`` (a guest's, when ``guest``); return its
        connection id.

        A session holds at most ``max_per_session`` streams across every worker and host: a
        new one replaces the oldest, which is told to end (a "replaced" control payload on the
        session's channel), instead of being refused. The dead streams of a phone that lost
        its network must never lock the same person out when they come back.
        """
        conn, now = self.new_conn(guest), now_ms()
        self.admitted(self._admit(keys=self.admit_keys(sid), args=self.admit_args(conn, now)))
        return conn

    def new_conn(self, guest=False):
        """A new stream's connection id (a guest's ends in GUEST); ids sort by admission time."""
        return "%012x%s%s" % (now_ms(), secrets.token_hex(4), GUEST if guest else "")

    @staticmethod
    def admit_keys(sid):
        """KEYS of ADMIT_FN_LUA's ``admit_stream`` for session ``sid`` (one slot)."""
        person = keys.PersonKeys(sid)
        return [person.streams, person.channel]

    def admit_args(self, conn, now):
        return [conn, now, self.ttl_ms, self.max_per_session]

    @staticmethod
    def admitted(replaced):
        """Note what an admission replaced (admit_stream's answer)."""
        if replaced:
            logger.info("stream replaced the session's oldest replaced=%d", len(replaced))

    def join(self, room, name, sid, conn, snapshot=False):
        """Mark ``name`` online in ``room`` through this stream; announce a first connection.

        With ``snapshot``, return the stream's first presence event's JSON (str), read in the
        same script: {"room", "action": "here", "online": [at most list_max names, ``name``
        among them, sorted], "guests": [the guests among those], "online_count": all names}.
        """
        k = keys.RoomKeys(room)
        now = now_ms()
        event, due = self._join(keys=[*self._batch_keys(k), *self._rooms_key, *self._hook_keys],
                                args=[_member(name, conn), name, now + self.ttl_ms, now, room, self.list_max,
                                      "snapshot" if snapshot else "", self.batch_ms, self._rooms_flag,
                                      *self._hook_args])
        if not self._rooms_key:
            self.redis.sadd(ROOMS, room)  # a Cluster: another slot, outside the script
        if due:
            self._flush_later(room)
        return event.decode() if isinstance(event, bytes) else event

    def visit(self, room, name, sid, seconds, guest=False):
        """Mark ``name`` online in ``room`` for ``seconds``, for a page without a stream.

        JavaScript off, loading pages is a person's only sign of life: one membership per
        session and room, pushed forward by each page it loads; once it lapses the sweeper
        announces the leave. Announces a join like a stream's first connection.
        """
        k = keys.RoomKeys(room)
        now = now_ms()
        conn = _page_conn(sid) + (GUEST if guest else "")
        _, due = self._join(keys=[*self._batch_keys(k), *self._rooms_key, *self._hook_keys],
                            args=[_member(name, conn), name, now + int(seconds * 1000), now, room,
                                  self.list_max, "", self.batch_ms, self._rooms_flag, *self._hook_args])
        if not self._rooms_key:
            self.redis.sadd(ROOMS, room)
        if due:
            self._flush_later(room)
        with self.redis.pipeline(transaction=False) as pipe:  # the session's slot: what end_visits ends
            visits = _visits(sid)
            pipe.zadd(visits, {room: now + int(seconds * 1000)})
            pipe.zremrangebyscore(visits, "-inf", now)  # lapsed ones: bounded by the rooms visited lately
            pipe.pexpire(visits, int(seconds * 1000))
            pipe.execute()
        self.ensure_sweeper()

    def end_visits(self, sid, name):
        """End the page visits of session ``sid`` (signed in as ``name``) in every room it
        visited: signing out ends a page's presence as closing ends a stream's (``leave``: it
        lapses after the grace window, and the sweeper announces the leave), not when the idle
        window would. Returns how many rooms it was in."""
        rooms = self.redis.zrangebyscore(_visits(sid), now_ms(), "+inf")
        expiry = now_ms() + int(self.grace * 1000)
        conn = _page_conn(sid)
        with self.redis.pipeline(transaction=False) as pipe:
            for room in rooms:  # as a guest or not (a guest who registered keeps their visit)
                online = keys.RoomKeys(room).online
                pipe.zadd(online, {_member(name, conn): expiry, _member(name, conn + GUEST): expiry}, xx=True)
            pipe.delete(_visits(sid))
            pipe.execute()
        return len(rooms)

    def refresh(self, room, name, sid, conn):
        """Push this stream's expiry forward (called once per heartbeat interval).

        If the sweeper already removed the membership (a refresh far too late), join again:
        the person is here, and the others hear so. Returns None while the stream may go on,
        else why it must end: SESSION_ENDED (its session's record is gone: signed out, and the
        word missed this worker) or REPLACED (a newer stream of the session took its place
        while its notice was lost). One round trip for all of it in the usual case; on a
        single Redis a worker's streams send theirs together (app/delivery/heartbeats.py).
        """
        with self.redis.pipeline(transaction=False) as pipe:
            self.refresh_in(pipe, room, name, sid, conn)
            found = pipe.execute()
        return self.refreshed(found, room, name, sid, conn)

    def refresh_in(self, pipe, room, name, sid, conn):
        """Queue ``refresh``'s commands (REFRESH_REPLIES of them) in pipeline ``pipe``: a
        worker's heartbeats send many streams' refreshes in one round trip
        (app/delivery/heartbeats.py). Their replies go to ``refreshed``."""
        expiry = now_ms() + self.ttl_ms
        person = keys.PersonKeys(sid)
        pipe.exists(person.session)
        pipe.zadd(keys.RoomKeys(room).online, {_member(name, conn): expiry}, xx=True, ch=True)
        pipe.zadd(person.streams, {conn: expiry}, xx=True, ch=True)
        pipe.pexpire(person.streams, self.ttl_ms)

    def refreshed(self, found, room, name, sid, conn):
        """Act on ``refresh_in``'s replies (a list, exceptions included: the first is raised);
        returns what ``refresh`` returns."""
        for reply in found:
            if isinstance(reply, Exception):
                raise reply
        alive, updated, registered, _ = found
        person = keys.PersonKeys(sid)
        if not alive:
            return SESSION_ENDED
        # CH counts changed scores: 0 also when this refresh falls in the registration's
        # millisecond (the same expiry), or when the registration lapsed: a stream that is
        # alive takes it back unless a newer one of the session has its place.
        if not registered and not self._readmit(keys=[person.streams],
                                                args=[conn, now_ms(), self.ttl_ms, self.max_per_session]):
            return REPLACED
        if not updated and not self.redis.zscore(keys.RoomKeys(room).online, _member(name, conn)):
            self.join(room, name, sid, conn)
        return None

    def leave(self, room, name, sid, conn):
        """Let this stream's membership lapse after the grace window (the sweeper announces)."""
        expiry = now_ms() + int(self.grace * 1000)
        with self.redis.pipeline(transaction=False) as pipe:
            if name:
                pipe.zadd(keys.RoomKeys(room).online, {_member(name, conn): expiry}, xx=True)
            pipe.zrem(keys.PersonKeys(sid).streams, conn)
            pipe.execute()

    def online(self, room):
        """Return the names online in ``room``, each once, sorted."""
        return self.people(room)[0]

    def people(self, room):
        """Return (the names online in ``room``, the guests among them), each sorted: the
        names its streams were told of (_ONLINE says how they are kept)."""
        k = keys.RoomKeys(room)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrange(k.online_names, 0, -1)
            pipe.smembers(k.online_guests)
            names, guests = pipe.execute()
        # names come in byte order, which for UTF-8 is code point order: Python's own sort
        return names, [name for name in names if name in guests]

    def bounded(self, names, guests, keep=None):
        """Bound a (sorted) list to what a page shows: (at most list_max names, ``keep`` among
        them when it is online, the guests among them, how many are online in all)."""
        shown = names[:self.list_max]
        if keep in names and keep not in shown:
            shown = sorted(shown[:-1] + [keep])
        listed = set(shown)
        return shown, [g for g in guests if g in listed], len(names)

    def online_counts(self, rooms):
        """Return how many people are online in each of ``rooms`` (one round trip)."""
        with self.redis.pipeline(transaction=False) as pipe:
            for room in rooms:
                pipe.zcard(keys.RoomKeys(room).online_names)
            return pipe.execute()

    def ensure_sweeper(self):
        """Start this worker's sweeper greenlet once; only the lock holder sweeps each round."""
        if self._sweeper is None or self._sweeper.dead:
            self._sweeper = gevent.spawn(self._sweep_forever)

    def _sweep_forever(self):
        interval = max(0.2, min(self.heartbeat, self.grace) / 2)
        token = secrets.token_hex(8)
        while True:
            try:
                if self.redis.set(LOCK, token, nx=True, px=int(interval * 3000)) or self.redis.get(LOCK) == token:
                    self.redis.pexpire(LOCK, int(interval * 3000))
                    self.sweep()
                outage.ok_round(self.outage)
            except redis.RedisError as exc:
                outage.failed_round(self.outage, "presence.sweep", exc, logger)
            gevent.sleep(interval)

    def sweep(self):
        """Remove expired members in every room with members; announce who left."""
        now = now_ms()
        for room in self.redis.smembers(ROOMS):
            if not self.sweep_room(room, now) and not self._rooms_key:
                self.redis.srem(ROOMS, room)  # a Cluster: another slot (the script does it otherwise)

    def sweep_room(self, room, now):
        """Remove ``room``'s members expired at ``now`` (ms); announce who left. Returns how
        many members are left (live or in their grace window)."""
        k = keys.RoomKeys(room)
        left, due = self._sweep(keys=[*self._batch_keys(k), *self._rooms_key, *self._hook_keys],
                                args=[now, room, self.list_max, self.batch_ms, self._rooms_flag, *self._hook_args])
        if due:
            self._flush_later(room)
        return left

    @staticmethod
    def _batch_keys(k):
        """The first KEYS of the join's and the sweep's scripts, for RoomKeys ``k``."""
        return [k.online, k.channel, k.presence_batch, k.presence_hold, k.online_names, k.online_guests]

    def _flush_later(self, room):
        """Publish ``room``'s waiting announcements after the batch interval, in a greenlet of
        this worker (should it die first, the next announcement's script finds the batch
        overdue and hands it to its own worker)."""
        gevent.spawn_later(self.batch_ms / 1000, self.flush, room)

    def flush(self, room):
        """Publish ``room``'s waiting announcements now, in one payload; return how many.
        Never raises: with Redis failing they wait for the next announcement's worker."""
        k = keys.RoomKeys(room)
        try:
            return self._flush(keys=[k.presence_batch, k.channel, k.presence_hold, k.online_names, k.online_guests],
                               args=[self.batch_ms, self.list_max])
        except redis.RedisError as exc:
            logger.info("presence batch not published room=%s error=%s", room, exc)
            return 0


def _member(name, conn):
    return "%s\n%s" % (name, conn)


def _page_conn(sid):
    """The connection id of a session's page visits (a guest's adds GUEST): the session id stays out."""
    return "page:" + hashlib.sha256(sid.encode()).hexdigest()[:16]


def _visits(sid):
    """The session's sorted set of rooms its pages visited -> until when (ms), in its slot
    (keys.PersonKeys's tag)."""
    return keys.PersonKeys(sid).tag + ":visits"

