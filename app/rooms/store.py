"""Room history and publishing in Redis: one atomic script stores a message and publishes it."""
import functools
import json
import json as json_module
import logging
import time

import redis
from redis.cluster import RedisCluster
from redis.sentinel import MasterNotFoundError

from ..ops import topology
from . import keys, messages

logger = logging.getLogger(__name__)

# Shared by the scripts that add to a log: trim it to the history length, remember the newest
# id trimmed, and drop the changed versions (app/rooms/conversation.py) of what was trimmed.
# ``pad`` writes an id the way keys.padded does.
TRIM_LUA = """
local function pad(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return string.rep('0', 20 - #ms) .. ms .. '-' .. string.rep('0', 20 - #seq) .. seq
end
local function trim(log, meta, changed, length)
  local excess = redis.call('XLEN', log) - length
  if excess > 0 then
    local old = redis.call('XRANGE', log, '-', '+', 'COUNT', excess)
    redis.call('XTRIM', log, 'MAXLEN', length)
    local last = old[#old][1]
    redis.call('HSET', meta, 'trimmed', last)
    redis.call('ZREMRANGEBYLEX', changed, '-', '(' .. pad(last) .. '}')
  end
end
"""

# KEYS: log, channel, meta, idempotency, changed, activity channel, the idempotency key's request
# digest, the key's legacy form (by display name: messages.legacy_idempotency_digest) and its
# request digest, the name's tombstone (keys.RoomKeys.gone), the idempotency key's withdrawal
# (_WITHDRAW_LUA).  ARGV: body, history length,
# idempotency ttl (0 = none), payload prefix ("" for room messages, "@" for direct ones), "ask" to
# store nothing in a log that does not exist yet (returns {-1, ''}: creating a room is counted
# first), expiry of the log and meta in seconds (0 = none; a person's direct messages expire with
# their session), the activity payload up to its id ("" = none: app/people/reading.py), the
# request's digest (messages.request_digest; "" = none): kept in a key of its own beside the
# idempotency key (whose value stays the id alone: a host of the previous release, or a
# rollback, reads it as before); a retry whose digest differs stores nothing and returns
# {-2, id} (messages.KeyReused). The legacy form, which only hosts of the previous release write,
# is read when the key itself is not found (a retry in flight across an upgrade finds its
# original): never written, as that would cost every post three more keys for a day.
# Each message's entry carries its ordinal "n" (the meta's count after it; change events have
# none): unread counts are then two numbers' difference, never a scan (app/people/reading.py).
# With webhooks (app/webhooks/queue.py) the last ARGV are "webhooks", the queue's cap, the room
# and "message", and the last two KEYS the queue's: a stored room message is queued in the same
# script.
# XADD, trim, record what was trimmed, PUBLISH: all or nothing, in one slot. The published
# payload is "<prefix><id> <previous id>\n<message json>" (app/delivery/position.py): a stream proves
# with one comparison that it missed nothing in between, and relays the JSON as is.
# A new log under the name of a deleted room starts past the deleted one's last id (its
# tombstone): a stream resuming from the new room is never taken for one from the deleted
# history (records.deleted_since), even when this master's clock is behind the one that wrote
# it (a failover). XADD at that id and XDEL it leave an empty stream whose next id is above it
# (XSETID needs a stream, and XADD's "<ms>-*" is Redis 7's).
# The idempotency key remembers the id (and its neighbour a digest), never the text: a retry answers with the
# message as it is now (edited, or deleted), and a deleted text is kept nowhere (returns {0, id}).
# A key withdrawn before anything was stored under it (_WITHDRAW_LUA) stores nothing: {-3, ''}.
# The withdrawal is a key of its own, so the key's value stays an id for a host of the previous
# release (which, knowing no withdrawals, stores a late attempt as before).
_PUBLISH_LUA = TRIM_LUA + """
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  if redis.call('EXISTS', KEYS[11]) == 1 then return {-3, ''} end
  local prior, request = redis.call('GET', KEYS[4]), KEYS[7]
  if not prior and KEYS[8] ~= KEYS[4] then prior, request = redis.call('GET', KEYS[8]), KEYS[9] end
  if prior then
    if ARGV[8] ~= '' then
      local digest = redis.call('GET', request)
      if digest and digest ~= ARGV[8] then return {-2, prior} end
    end
    -- on retry --
    return {0, prior}
  end
end
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = newest[1] and newest[1][1] or '0-0'
if ARGV[5] == 'ask' and not newest[1] then return {-1, ''} end
if not newest[1] and redis.call('EXISTS', KEYS[1]) == 0 then
  local gone = redis.call('GET', KEYS[10])
  if gone then
    redis.call('XADD', KEYS[1], gone, 's', '')
    redis.call('XDEL', KEYS[1], gone)
  end
end
local n = redis.call('HINCRBY', KEYS[3], 'count', 1)
local id = redis.call('XADD', KEYS[1], '*', 'm', ARGV[1], 'n', n)
local json = '{"id":"' .. id .. '","ts":' .. string.match(id, '^(%d+)') .. ',' .. ARGV[1]
trim(KEYS[1], KEYS[3], KEYS[5], tonumber(ARGV[2]))
local expiry = tonumber(ARGV[6])
if expiry > 0 then
  redis.call('EXPIRE', KEYS[1], expiry)
  redis.call('EXPIRE', KEYS[3], expiry)
end
if ttl > 0 then
  redis.call('SET', KEYS[4], id, 'EX', ttl)
  if ARGV[8] ~= '' then redis.call('SET', KEYS[7], ARGV[8], 'EX', ttl) end
end
-- publish --
redis.call('HDEL', KEYS[3], 'confirmed')
redis.call('PUBLISH', KEYS[2], ARGV[4] .. id .. ' ' .. prev .. '\\n' .. json)
if ARGV[7] ~= '' then redis.call('PUBLISH', KEYS[6], ARGV[7] .. id .. '"}') end
-- published --
-- webhooks --
return {1, json}
"""


# KEYS: a sender's idempotency key in a log's slot, its legacy form (as _PUBLISH_LUA reads
# them), its withdrawal (withdrawal_key).  ARGV: the idempotency ttl (s).  What the key stored
# (an id), or, when it stored nothing, false after writing the withdrawal for the ttl: the
# publish script then refuses every attempt with that key, however late it arrives (a stalled
# network delivers one after the person chose not to send it). Atomic with the publish: one or
# the other comes first.
_WITHDRAW_LUA = """
local prior = redis.call('GET', KEYS[1])
if not prior and KEYS[2] ~= KEYS[1] then prior = redis.call('GET', KEYS[2]) end
if prior then return prior end
redis.call('SET', KEYS[3], '1', 'EX', ARGV[1])
return false
"""


# A direct message is stored in several logs (each recipient device's, then the sender's own),
# in different slots: no one script can check a withdrawal atomically with all of them. So an
# attempt first claims its key in the sender's slot (_CLAIM_LUA), and a withdrawal decides in
# that slot too (_WITHDRAW_DIRECT_LUA): whichever comes first wins. KEYS: the key, its legacy
# form, its withdrawal, its claim (claim_key).  ARGV: the claim's ttl (s): the idempotency
# ttl, as a withdrawal's.  Withdrawn: -3; else the claim is set (again) to its time (s): 1.
_CLAIM_LUA = """
if redis.call('EXISTS', KEYS[3]) == 1 then return -3 end
redis.call('SET', KEYS[4], redis.call('TIME')[1], 'EX', ARGV[1])
return 1
"""

# KEYS as _CLAIM_LUA's.  ARGV: the idempotency ttl (s), how long a claim is in flight (s).
# {1, what the key stored} when the sender's copy is stored; {2, ''} when an attempt claimed
# the key lately and its copy is not stored yet (it is on its way through the recipients'
# logs); {3, ''} when one claimed it longer ago and never stored the sender's copy (it failed,
# or its worker died, on the way: a recipient's log may hold it, so it is never withdrawn);
# else {0, ''}, the withdrawal written.
_WITHDRAW_DIRECT_LUA = """
local prior = redis.call('GET', KEYS[1])
if not prior and KEYS[2] ~= KEYS[1] then prior = redis.call('GET', KEYS[2]) end
if prior then return {1, prior} end
local claimed = redis.call('GET', KEYS[4])
if claimed then
  if tonumber(redis.call('TIME')[1]) - (tonumber(claimed) or 0) < tonumber(ARGV[2]) then return {2, ''} end
  return {3, ''}
end
redis.call('SET', KEYS[3], '1', 'EX', ARGV[1])
return {0, ''}
"""

# How long a direct message's claim (_CLAIM_LUA) is taken to be on its way (s): an attempt that
# claimed it stores its copies within a post's timeout (RIPPLE_POST_TIMEOUT_SECONDS, 12 s by
# default); a withdrawal waits that long at most for the outcome. The claim itself stands as
# long as the key: an attempt that failed after a recipient's log stored it (a Redis error,
# NotReplicated) must not let a later withdrawal say nothing was sent.
CLAIM_SECONDS = 60


def claim_key(idempotency_key):
    """The key (str) that marks ``idempotency_key`` (a Redis key of a person's log's slot)
    claimed by a direct message's attempt on its way (_CLAIM_LUA)."""
    return idempotency_key + ":claimed"


def withdrawal_key(idempotency_key):
    """The key (str) that marks ``idempotency_key`` (a Redis key of a log's slot: RoomKeys.
    idempotency) withdrawn: beside it in the slot, apart from its value, which stays an id."""
    return idempotency_key + ":withdrawn"


# With replica acks (RIPPLE_REPLICA_ACKS) a stored entry is held, not published: the writing
# scripts leave out what lies between these markers (hold()), and once WAIT confirms the entry,
# _CONFIRM_LUA publishes it. A reader only ever hears, replays, repairs or reads what replicas
# have: one that heard an entry a failover then lost would resume after it, past acknowledged
# messages the new master stored under earlier ids (docs/scaling.md, "Replication and
# acknowledgements"). A script that publishes at once (replica acks off) drops the mark: all
# hosts on one Redis must share the setting, and one turned off shows what was held.
_PUBLISH_BLOCK = ("-- publish --", "-- published --")
# In place of the publish. The meta's "confirmed" mark exists while something is held: the
# last id published (so the first held entry's "previous id"); readers show nothing past it.
_HOLD_LUA = "if not redis.call('HGET', KEYS[3], 'confirmed') then redis.call('HSET', KEYS[3], 'confirmed', prev) end\n"
# A held message's sidebar payload (the store script's ARGV[7]) waits in the meta beside it.
HOLD_MESSAGE_LUA = _HOLD_LUA + (
    "if ARGV[7] ~= '' then redis.call('HSET', KEYS[3], 'activity:' .. id, ARGV[7] .. id .. '\"}') end\n")
# A retry answered from its idempotency key writes nothing: while something is held, it writes
# the mark as it is, so the WAIT after it counts the replicas that have every earlier write
# (the original included) and the confirmation that follows is true.
_RETRY_LUA = ("local held = redis.call('HGET', KEYS[3], 'confirmed')\n"
              "if held then redis.call('HSET', KEYS[3], 'confirmed', held) end\n")

# KEYS: log, channel, meta, activity channel, changed.  ARGV: an id WAIT confirmed, the payload
# prefix ("" room, "@" direct).  Publishes what the log holds up to that id, oldest first, as
# the writing scripts would have: a message as "<prefix><id> <previous id>\n<json>" (a held
# message changed before its confirmation, e.g. a reply whose quote a deletion scrubbed, as it
# is now, from ``changed``), a change event as "~<id> <previous id> <event>\n<json>", each
# message's sidebar payload after it. WAIT for one id proves every earlier write reached the
# replicas too (one replication stream). The first "previous id" is the mark (the last id
# published: an entry changed since has left the log, and must not leave the chain). Then the
# mark moves to that id, or goes when nothing newer is held; a later (or concurrent)
# confirmation of an earlier id publishes nothing twice. Returns how many it published.
_CONFIRM_LUA = TRIM_LUA + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local mark = redis.call('HGET', KEYS[3], 'confirmed')
if not mark or pad(mark) >= pad(ARGV[1]) then return 0 end
local held = {}
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '(' .. mark, ARGV[1])) do
  local id, fields, event, body = entry[1], entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'e' then event = fields[i + 1] elseif fields[i] == 'm' then body = fields[i + 1] end
  end
  held[#held + 1] = {pad(id), id, event, '{"id":"' .. id .. '","ts":' .. string.match(id, '^(%d+)') .. ',' .. body}
end
for _, member in ipairs(redis.call('ZRANGEBYLEX', KEYS[5], '(' .. pad(mark) .. '}', '(' .. pad(ARGV[1]) .. '}')) do
  local bar = string.find(member, '|', 1, true)
  local padded = string.sub(member, 1, bar - 1)
  local ms, seq = string.match(padded, '^0*(%d-)%-0*(%d-)$')
  held[#held + 1] = {padded, (ms == '' and '0' or ms) .. '-' .. (seq == '' and '0' or seq), nil,
                     string.sub(member, bar + 1)}
end
table.sort(held, function(a, b) return a[1] < b[1] end)
local prev = mark
for _, item in ipairs(held) do
  local id = item[2]
  if item[3] then
    redis.call('PUBLISH', KEYS[2], '~' .. id .. ' ' .. prev .. ' ' .. item[3] .. '\\n' .. item[4])
  else
    redis.call('PUBLISH', KEYS[2], ARGV[2] .. id .. ' ' .. prev .. '\\n' .. item[4])
    local activity = redis.call('HGET', KEYS[3], 'activity:' .. id)
    if activity then redis.call('PUBLISH', KEYS[4], activity) end
  end
  prev = id
end
local fields = redis.call('HKEYS', KEYS[3])
for _, field in ipairs(fields) do  -- sidebar payloads up to the id: published, or trimmed unheard
  if string.sub(field, 1, 9) == 'activity:' and pad(string.sub(field, 10)) <= pad(ARGV[1]) then
    redis.call('HDEL', KEYS[3], field)
  end
end
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if newest[1] and pad(newest[1][1]) > pad(ARGV[1]) then
  redis.call('HSET', KEYS[3], 'confirmed', ARGV[1])
else
  redis.call('HDEL', KEYS[3], 'confirmed')
end
return #held
"""

# KEYS: log, meta.  While something is held: the newest entry's id, after writing the mark as it
# is (the WAIT after it then counts the replicas that have every earlier write); else false.
_SETTLE_LUA = """
local mark = redis.call('HGET', KEYS[2], 'confirmed')
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if not mark or not newest[1] then return false end
redis.call('HSET', KEYS[2], 'confirmed', mark)
return newest[1][1]
"""


def hold(script, held=_HOLD_LUA):
    """``script`` (a writing script's Lua) with its publish left out: the entry waits for
    _CONFIRM_LUA; ``held`` (Lua) runs in its place. Raises ValueError when the script has
    no publish block."""
    start, end = script.index(_PUBLISH_BLOCK[0]), script.index(_PUBLISH_BLOCK[1])
    return script[:start] + held + script[end + len(_PUBLISH_BLOCK[1]):].replace("-- on retry --", _RETRY_LUA)


def beyond(mid, mark):
    """Tell whether stream id ``mid`` (str) is newer than a log's confirmed ``mark`` (str, or
    None: no bound), so held (_CONFIRM_LUA) and not to be shown yet."""
    return mark is not None and _pair(mid) > _pair(mark)


# KEYS: a parking log, its meta.  ARGV: the ids moved out of it.  Drop them; drop the log once
# nothing else waits in it.
_FORGET_MOVED_LUA = """
local removed = redis.call('XDEL', KEYS[1], unpack(ARGV))
if redis.call('XLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[1], KEYS[2]) end
return removed
"""

ACTIVITY_EXCERPT = 140  # characters of a mentioning message's text in its activity event

# The smallest and largest stream ids: Redis refuses an exclusive bound that steps past them.
_FIRST_ID = (0, 0)
_LAST_ID = (2**64 - 1, 2**64 - 1)


def unconfirmed(exc):
    """Tell whether a publish that raised ``exc`` may have been stored all the same.

    Only a failure before the command left this process proves nothing was stored: no
    connection could be made (refused, or none free in the pool). A timeout or a connection
    lost after sending leaves the outcome unknown (Redis may run the script once it is free
    again: a busy or paused server answers late, not never), and too few replicas means the
    master has it. Then the honest answer is "not confirmed", and a retry with the same
    idempotency key returns the original if it was stored.
    """
    if isinstance(exc, NotReplicated):
        return True
    if not isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return False  # Redis answered with an error: the script did not run (e.g. OOM, BUSY)
    if isinstance(exc, MasterNotFoundError):
        return False  # no sentinel named a master: nothing was sent anywhere
    if isinstance(exc, redis.AuthenticationError):
        return False  # refused at the handshake (a wrong or missing password), or NOAUTH: nothing ran
    text = str(exc)
    return not ("connecting to" in text or text.startswith("No connection available"))


class NotReplicated(redis.ConnectionError):
    """Stored on the master, but too few replicas confirmed it: not acknowledged (503)."""


class Store:
    """Reads and writes rooms through one Redis client (decode_responses=True)."""

    def __init__(self, client, history_length, idempotency_seconds, replica_acks=0, replica_timeout_ms=1000,
                 publish_command="PUBLISH", direct_seconds=0, lobby_max=10000, outbox=None):
        self.redis = client
        self.outbox = outbox  # the webhooks' queue (app/webhooks/queue.py), None: no webhooks
        self.direct_seconds = int(direct_seconds)  # a person's direct messages outlive their last one this long
        self.lobby_max = int(lobby_max)  # rooms the lobby's index keeps (the most recently active)
        self.history_length = int(history_length)
        self.idempotency_seconds = int(idempotency_seconds)
        self.replica_acks = int(replica_acks)
        self.replica_timeout_ms = int(replica_timeout_ms)
        self._touched = {}  # room -> when this process last updated the lobby's index
        self.after_post = None  # called with a room at most once a second after a post there
        # SPUBLISH on a cluster: the message goes to the shard owning the room, not everywhere.
        script = _PUBLISH_LUA.replace("-- webhooks --", outbox.PUBLISH_LUA if outbox is not None else "")
        if self.replica_acks:
            script = hold(script, HOLD_MESSAGE_LUA)
        command = "'%s'" % publish_command  # as a Lua string
        self._publish = client.register_script(script.replace("'PUBLISH'", command))
        self._confirm = client.register_script(_CONFIRM_LUA.replace("'PUBLISH'", command))
        self._settle = client.register_script(_SETTLE_LUA)
        # A plain client's pool: the publish script is sent on one of its connections directly
        # (topology.run_script); Sentinel's and Cluster's clients keep redis-py's whole path.
        self._pool = topology.plain_pool(client)
        self._forget_moved = client.register_script(_FORGET_MOVED_LUA)
        self._withdraw = client.register_script(_WITHDRAW_LUA)
        self._claim = client.register_script(_CLAIM_LUA)
        self._withdraw_direct = client.register_script(_WITHDRAW_DIRECT_LUA)
        self.mentions = None  # app/rooms/mentions.py: resolves "@name" when a message is stored

    def publish(self, room, user, text, idempotency_key=None, may_create=None, bot=False, uid=None,
                reply_to=None):
        """Store and publish a message; return (message json, created).

        ``created`` is False when the idempotency key was seen before: the json is then the
        message stored the first time. ``may_create``, when given, is called before a post
        creates a room (its log does not exist yet); it raises to refuse (a creation cap).
        ``bot``: sent by a program (publish token, CLI), not a signed-in person. ``uid``: the
        signed-in author's stable id (messages.body). ``reply_to``: the quote of the message
        this one answers (messages.quote).
        """
        mentioned = self.mentions.resolve(room, text, user) if self.mentions is not None else []
        k = keys.RoomKeys(room)
        body = messages.body(room, user, text, bot, uid, reply_to, [person["name"] for person in mentioned])
        activity = _activity(room, user, text, mentioned)
        digest = messages.request_digest(text, reply_to["id"] if reply_to else "")
        json, created = self._append(k, body, user, idempotency_key, "", ask=may_create is not None,
                                     activity=activity, digest=digest, uid=uid)
        if created is None:  # a new room: counted first, then stored
            may_create()
            json, created = self._append(k, body, user, idempotency_key, "", activity=activity, digest=digest,
                                         uid=uid)
        if created:
            self._touch(room)
            if self.outbox is not None and not self.outbox.atomic:
                self.emit_after(room, "message", json)
                if mentioned:
                    self.emit_after(room, "mention", json)
            if mentioned:
                self.mentions.record(room, json[7:json.index('"', 7)], mentioned)
        return json, created

    def emit_after(self, room, kind, json):
        """Queue a stored event for the webhooks on a Redis Cluster, where the room's slot is not
        the queue's: after it is stored, not with it; the change stands either way (a failure
        here is logged: docs/webhooks.md, "The guarantee")."""
        try:
            self.outbox.emit(kind, room, json)
        except redis.RedisError:
            logger.warning("could not queue a %s event for webhooks room=%s", kind, room, exc_info=True)

    def publish_direct(self, sender, recipient, text, idempotency_key=None, bot=False, uid=None):
        """Store a direct message in the recipient's and the sender's own log; publish both.

        ``sender`` and ``recipient`` are (name, session id); a server-to-server sender has no
        session id and keeps no copy. Two scripts, one per person's slot: each copy is atomic on
        its own, and the recipient's is written first, so an acknowledged message has always
        reached the recipient's log. Returns the sender's copy (the recipient's if none).
        ``uid``: the signed-in sender's stable id (messages.body).
        """
        body = messages.direct_body(sender[0], recipient[0], text, bot, uid)
        expiry = self.direct_seconds
        digest = messages.request_digest(text, "@" + recipient[0])
        copy = sender[1] is not None and recipient[1] != sender[1]  # not a note to oneself
        if copy and idempotency_key is not None:
            # The key reused for someone else: refused before their log stores it.
            self._remembered(keys.PersonKeys(sender[1]), sender[0], idempotency_key, digest, uid)
        delivered = self._append(keys.PersonKeys(recipient[1]), body, sender[0], idempotency_key, "@",
                                 expiry=expiry, digest=digest, uid=uid)
        if not copy:
            return delivered
        return self._append(keys.PersonKeys(sender[1]), body, sender[0], idempotency_key, "@", expiry=expiry,
                            digest=digest, uid=uid)

    def logged_since(self, k, since_ms, most=1000):
        """The messages log ``k`` (a room's or a person's) took in since ``since_ms`` (ms since
        the epoch), newest first, as stored (dicts; change events left out; at most ``most``):
        what a person sent just now (app/web/api.py SentJustNow)."""
        found = []
        for mid, fields in self.redis.xrevrange(k.log, max="+", min="%d-0" % since_ms, count=most):
            fields = entry_fields(fields)
            if "e" not in fields:
                found.append(json.loads(messages.assemble(mid, fields["m"])))
        return found

    def sent_direct(self, sender, recipient_name, text, idempotency_key, uid=None):
        """Tell whether ``sender`` (name, session id) stored this direct message to
        ``recipient_name`` with ``idempotency_key`` already (its own log remembers it); raises
        messages.KeyReused when that key stored another one."""
        digest = messages.request_digest(text, "@" + recipient_name)
        return self._remembered(keys.PersonKeys(sender[1]), sender[0], idempotency_key, digest, uid) is not None

    def check_direct_key(self, sender, recipient_name, sids, text, idempotency_key, uid=None):
        """Raise messages.KeyReused when ``idempotency_key`` already stored another direct
        message in any of sessions ``sids``' logs: for a sender without a copy of their own (a
        program), whose key is otherwise checked one device at a time, after the first stored.
        ``uid``: the sender's stable id (messages.idempotency_scope)."""
        digest = messages.request_digest(text, "@" + recipient_name)
        for sid in sids:
            self._remembered(keys.PersonKeys(sid), sender[0], idempotency_key, digest, uid)

    def move_direct(self, from_sid, to_sid):
        """Deliver the direct messages parked under ``from_sid`` (an account signed in nowhere)
        into session ``to_sid``'s log, oldest first, each keeping its send time as ``"sent"``
        (ms), then drop them. Each move carries the parked id as its idempotency key, so a
        move repeated after a failure stores nothing twice in that log. Returns how many."""
        source = keys.PersonKeys(from_sid)
        entries = self.redis.xrange(source.log)
        self._carry(entries, to_sid, "parked")
        if entries:  # only what was moved: a message parked meanwhile waits for the next move
            self._forget_moved(keys=[source.log, source.meta], args=[entry_id for entry_id, _ in entries])
        return len(entries)

    def copy_direct(self, from_sids, to_sid, count):
        """Copy the newest ``count`` direct messages of whichever of sessions ``from_sids`` has
        the newest one into session ``to_sid``'s log (an account's new device gets its recent
        conversations), oldest first, each keeping its send time as ``"sent"``. Returns how many."""
        newest, source = None, None
        for sid in from_sids:
            last = self.redis.xrevrange(keys.PersonKeys(sid).log, count=1)
            if last and (newest is None or keys.parse_stream_id(last[0][0]) > newest):
                newest, source = keys.parse_stream_id(last[0][0]), sid
        if source is None or count <= 0:
            return 0
        entries = self.redis.xrevrange(keys.PersonKeys(source).log, count=count)
        self._carry(entries[::-1], to_sid, "copy:" + source)
        return len(entries)

    def keep_direct(self, sender, recipient_name, text, idempotency_key, bot=False, uid=None):
        """Store the sender's copy of a direct message in one more log of theirs (``sender``:
        (name, session id): another device of their account)."""
        body = messages.direct_body(sender[0], recipient_name, text, bot, uid)
        return self._append(keys.PersonKeys(sender[1]), body, sender[0], idempotency_key, "@",
                            expiry=self.direct_seconds, digest=messages.request_digest(text, "@" + recipient_name),
                            uid=uid)

    def _carry(self, entries, to_sid, origin):
        """Append stored direct messages to ``to_sid``'s log with their send time as "sent"; each
        carries its origin and id as its idempotency key: a repeated carry stores nothing twice."""
        for entry_id, fields in entries:
            body = _body(fields)
            if '"sent":' not in body:  # carried before: it has its send time (a text's quotes are escaped)
                body = body[:-1] + ',"sent":%s}' % entry_id.split("-", 1)[0]
            self._append(keys.PersonKeys(to_sid), body, origin, entry_id, "@", expiry=self.direct_seconds)

    def _append(self, k, body, user, idempotency_key, prefix, ask=False, expiry=0, activity="", digest="",
                uid=None):
        """Run the publish script; ``created`` is None when ``ask`` found no log (nothing stored).
        ``digest``: the request's (messages.request_digest), kept with the key; raises
        messages.KeyReused when the key stored a message of another digest. The key is
        ``user``'s (a display name) whose stable id is ``uid`` (messages.idempotency_scope)."""
        ttl = 0
        scope = messages.idempotency_scope(user, uid)
        idem = legacy = k.idempotency("-")
        if idempotency_key is not None:
            ttl = self.idempotency_seconds
            idem, legacy = self._idempotency_keys(k, scope, user, idempotency_key)
        keys_ = [k.log, k.channel, k.meta, idem, k.changed, getattr(k, "activity", k.channel), idem + ":request",
                 legacy, legacy + ":request", k.gone, withdrawal_key(idem)]
        args = [body, self.history_length, ttl, prefix, "ask" if ask else "", int(expiry), activity, digest]
        if self.outbox is not None and not prefix:  # a room message: queued for webhooks too
            extra_keys, extra_args = self.outbox.publish_keys(k.room)
            keys_ += extra_keys
            args += extra_args
        if not self.replica_acks:
            created, json = self._run_publish(keys_, args)
            _refusal(created)
            return self._prior(k, json, created, body, prefix), _created(created)
        # A retry (same idempotency key) returns the stored message and waits again.
        (created, json), replicas = self.run_replicated(self._publish, k.log, keys_, args)
        if created == -1:
            return json, None  # nothing was written: nothing to wait for
        _refusal(created)
        self.check_replicas(replicas)
        if created or not json.startswith("{"):  # not a retry answered by a json from before ids
            self.confirm(k, json[7:json.index('"', 7)] if created else json, prefix)
        return self._prior(k, json, created, body, prefix), bool(created)

    def run_replicated(self, script, log, keys_, args):
        """Run ``script`` (a registered Script) and WAIT on the same connection, so the WAIT
        counts the replicas that have this write. Returns (script's answer, replicas: int).
        Raises redis errors as the script does (on a Cluster the slot map is read again: a
        failover, or MOVED). ``log``: a key of the script's slot."""
        node = self.redis
        if isinstance(node, RedisCluster):  # its pipelines refuse EVALSHA: talk to the slot's node
            node = node.get_node_from_key(log).redis_connection
        try:
            with node.pipeline(transaction=False) as pipe:
                script(keys=keys_, args=args, client=pipe)
                pipe.execute_command("WAIT", self.replica_acks, self.replica_timeout_ms)
                return tuple(pipe.execute())
        except (redis.ConnectionError, redis.ResponseError):
            if isinstance(self.redis, RedisCluster):
                self.redis.nodes_manager.initialize()
            raise

    def check_replicas(self, replicas):
        """Raise NotReplicated when fewer than RIPPLE_REPLICA_ACKS replicas confirmed a write."""
        shortfall = self.shortfall(replicas)
        if shortfall is not None:
            raise shortfall

    def shortfall(self, replicas):
        """The NotReplicated for a write ``replicas`` (int) confirmed, or None when enough did."""
        if replicas >= self.replica_acks:
            return None
        return NotReplicated("%d of %d replicas confirmed within %d ms"
                             % (replicas, self.replica_acks, self.replica_timeout_ms))

    def confirm(self, k, mid, prefix=""):
        """Publish what log ``k`` holds up to ``mid`` (str), which WAIT confirmed
        (_CONFIRM_LUA). Returns how many entries were published; raises redis errors (they
        stay held: a retry confirms them, as does any later confirmed write to the log)."""
        return self._confirm(keys=[k.log, k.channel, k.meta, getattr(k, "activity", k.channel), k.changed],
                             args=[mid, prefix])

    def settle(self, k, prefix=""):
        """Confirm what log ``k`` holds, if anything (a change stored while replicas did not
        confirm it, then retried: the retry changes nothing, so nothing else would confirm it).
        ``prefix``: the log's payload prefix (confirm). Raises NotReplicated when replicas
        still do not confirm it."""
        if not self.redis.hexists(k.meta, "confirmed"):
            return  # nothing held: no WAIT (it would wait its whole timeout with a replica away)
        newest, replicas = self.run_replicated(self._settle, k.log, [k.log, k.meta], [])
        if newest:
            self.check_replicas(replicas)
            self.confirm(k, newest, prefix)

    def confirmed(self, pipe, k):
        """Queue on ``pipe`` the read of log ``k``'s confirmed mark (str, or None: no bound),
        when replica acks are on; readers show nothing newer (_CONFIRM_LUA). Returns whether
        it queued a read."""
        if self.replica_acks:
            pipe.hget(k.meta, "confirmed")
        return bool(self.replica_acks)

    def _run_publish(self, keys_, args):
        """Run the publish script (topology.run_script): no retry, as this client's connections
        have none: a post that may have been stored is answered "unconfirmed", never sent twice."""
        return topology.run_script(self._pool, self._publish, keys_, args)

    def prior(self, room, user, idempotency_key, text, reply_to_id="", uid=None, body=None):
        """The message ``user`` (stable id ``uid``) already posted to ``room`` with
        ``idempotency_key`` (its json as it is now, see _prior; ``body``: this request's,
        messages.body), or None when that key stored nothing (or was forgotten). Raises
        messages.KeyReused when that key stored another ``text`` (or a reply to another id)."""
        k = keys.RoomKeys(room)
        found = self._remembered(k, user, idempotency_key, messages.request_digest(text, reply_to_id or ""), uid)
        return None if found is None else self._prior(k, found, 0, body)

    @staticmethod
    def _idempotency_keys(k, scope, user, idempotency_key):
        """(the key, its legacy form) in log ``k``'s slot of a sender's ``idempotency_key``."""
        return (k.idempotency(messages.idempotency_digest(scope, idempotency_key)),
                k.idempotency(messages.legacy_idempotency_digest(user, idempotency_key)))

    def _remembered(self, k, user, idempotency_key, digest, uid=None):
        """What log ``k``'s idempotency key of ``user`` (stable id ``uid``) remembers (an id, or
        a whole json from before ids were kept), None if nothing; raises messages.KeyReused when
        it stored a request of another ``digest``. The publish script decides the same way (the
        legacy form included)."""
        scope = messages.idempotency_scope(user, uid)
        idem, legacy = self._idempotency_keys(k, scope, user, idempotency_key)
        # One slot: the keys' hash tag.
        found, kept, old, old_kept, withdrawn = self.redis.mget(
            [idem, idem + ":request", legacy, legacy + ":request", withdrawal_key(idem)])
        if found is None:
            found, kept = old, old_kept
        if withdrawn is not None:
            raise messages.Withdrawn()
        if found is not None and kept is not None and kept != digest:
            raise messages.KeyReused()
        return found

    def change_keys(self, k, scope, idempotency_key):
        """[the key, its request digest's, its withdrawal's] (Redis keys of log ``k``'s slot) of
        a change's ``idempotency_key`` (str) from sender ``scope`` (messages.idempotency_scope):
        the slots a post's key would use, so one withdrawal reaches either."""
        idem = k.idempotency(messages.idempotency_digest(scope, idempotency_key))
        return [idem, idem + ":request", withdrawal_key(idem)]

    def withdraw(self, room, user, idempotency_key, uid=None):
        """Withdraw the post ``user`` (stable id ``uid``) sent to ``room`` with
        ``idempotency_key`` (str) whose outcome it does not know: if nothing is stored under the
        key, nothing ever will be (for RIPPLE_IDEMPOTENCY_SECONDS), and None is returned; if it
        was stored, its json as it is now (str; a retry's answer, see _prior). Atomic with the
        publish script. Raises messages.Invalid (409 "withdraw_unavailable") when keys are kept
        no time (RIPPLE_IDEMPOTENCY_SECONDS=0), NotReplicated when replica acks are on and too
        few replicas confirmed the tombstone, and redis errors."""
        if self.idempotency_seconds <= 0:
            raise messages.Invalid(messages.NO_WITHDRAWING, 409, "withdraw_unavailable")
        k = keys.RoomKeys(room)
        idem, legacy = self._idempotency_keys(k, messages.idempotency_scope(user, uid), user, idempotency_key)
        args = [self.idempotency_seconds]
        keys_ = [idem, legacy, withdrawal_key(idem)]
        if self.replica_acks:
            found, replicas = self.run_replicated(self._withdraw, k.log, keys_, args)
            if found is None:
                self.check_replicas(replicas)
        else:
            found = self._withdraw(keys=keys_, args=args)
        return None if found is None else self._prior(k, found, 0)

    def _direct_keys(self, sender, idempotency_key, uid):
        """(log keys, [key, legacy, withdrawal, claim]) of a direct message's ``idempotency_key``
        in sender ``sender`` (name, session id)'s own log's slot."""
        k = keys.PersonKeys(sender[1])
        idem, legacy = self._idempotency_keys(k, messages.idempotency_scope(sender[0], uid), sender[0],
                                              idempotency_key)
        return k, [idem, legacy, withdrawal_key(idem), claim_key(idem)]

    def claim_direct(self, sender, idempotency_key, uid=None):
        """Claim a direct message's ``idempotency_key`` (str) for the attempt about to store it,
        before any recipient's log does (_CLAIM_LUA): ``sender`` (name, session id: a page's
        person, who may withdraw it) and stable id ``uid``. Raises messages.Withdrawn (409) when
        the sender withdrew it first, and redis errors. Nothing is claimed when keys are kept no
        time (nothing can be withdrawn then). Not waited for by replicas (RIPPLE_REPLICA_ACKS):
        the withdrawal is; a failover losing a claim lets a withdrawal in the ms before the copies."""
        if self.idempotency_seconds <= 0:
            return
        _, keys_ = self._direct_keys(sender, idempotency_key, uid)
        if self._claim(keys=keys_, args=[self.idempotency_seconds]) == -3:
            raise messages.Withdrawn()

    def withdraw_direct(self, sender, idempotency_key, uid=None):
        """Withdraw the direct message ``sender`` (name, session id) sent with
        ``idempotency_key`` (str) whose outcome it does not know, as ``withdraw`` does a post:
        None when nothing was stored, and nothing will be (its attempts are refused by
        claim_direct, and by the sender's copy's publish); the sender's copy's json (str) when it
        was stored. Raises messages.Invalid: 503 "withdraw_in_flight" while an attempt that
        claimed the key is storing it (ask again shortly: it is then stored), 409
        "withdraw_unknown" when one claimed it over CLAIM_SECONDS ago and did not store the
        sender's copy (a recipient's log may hold it: sending it again with the key tells), 409
        "withdraw_unavailable" when keys are kept no time;
        NotReplicated and redis errors as ``withdraw``."""
        if self.idempotency_seconds <= 0:
            raise messages.Invalid(messages.NO_WITHDRAWING, 409, "withdraw_unavailable")
        k, keys_ = self._direct_keys(sender, idempotency_key, uid)
        args = [self.idempotency_seconds, CLAIM_SECONDS]
        if self.replica_acks:
            (state, found), replicas = self.run_replicated(self._withdraw_direct, k.log, keys_, args)
            if state == 0:
                self.check_replicas(replicas)
        else:
            state, found = self._withdraw_direct(keys=keys_, args=args)
        if state == 2:
            raise messages.Invalid(messages.WITHDRAW_IN_FLIGHT, 503, "withdraw_in_flight")
        if state == 3:
            raise messages.Invalid(messages.WITHDRAW_UNKNOWN, 409, "withdraw_unknown")
        return None if state == 0 else self._prior(k, found, 0, prefix="@")

    def _prior(self, k, answer, created, body=None, prefix=""):
        """The answer to a post: its json, or for a retry (the script answered the original's
        id) the original as it is now. One that is gone from the log (trimmed) is built from the
        original's id and the retry's ``body`` (messages.body: the same text, its digest
        matched), marked ``"trimmed":true``; without a body, its id alone."""
        if created != 0 or answer.startswith("{"):  # stored now, or remembered whole (before ids)
            return answer
        found, held = self._lookup(k, answer)
        if held:
            # Stored, but replicas have not confirmed it (replica acks): not trimmed. The retry
            # waits for them as a retry through the publish script does, and answers the whole
            # message once they have it; else NotReplicated, what the first attempt got.
            self.settle(k, prefix)
            found, held = self._lookup(k, answer)
            if held:  # held again meanwhile (a mark set back): still not confirmed
                raise NotReplicated("message %s is not confirmed by replicas yet" % answer)
        if found is not None:
            return found
        if body is not None:
            return messages.assemble(answer, body[:-1] + ',"trimmed":true}')
        return '{"id":"%s","ts":%s}' % (answer, answer.split("-", 1)[0])

    def current(self, k, mid):
        """The json of message ``mid`` (str) in log ``k`` as it is now, or None if it is not
        there (never was, or trimmed) or not shown yet (held: _CONFIRM_LUA). One round trip:
        the log and its changed versions."""
        return self._lookup(k, mid)[0]

    def _lookup(self, k, mid):
        """(current's answer, held): ``held`` tells a message stored but not confirmed yet
        (its json is then None) from one that is not there."""
        prefix = keys.padded(mid)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.xrange(k.log, min=mid, max=mid)
            pipe.zrangebylex(k.changed, "[" + prefix + "|", "(" + prefix + "}", start=0, num=1)
            bounded = self.confirmed(pipe, k)
            stored, changed, *mark = pipe.execute()
        if changed:
            found = changed[0].partition("|")[2]
        elif stored and "e" not in entry_fields(stored[0][1]):
            found = messages.assemble(mid, _body(stored[0][1]))
        else:
            return None, False
        if bounded and beyond(mid, mark[0]):
            return None, True  # held: not shown yet
        return self._fresh_quotes(k, [(mid, found)])[0][1], False  # a retried reply: the quote as it is now

    def _touch(self, room):
        # The lobby's index spans rooms (and so cluster slots): kept outside the script,
        # and a failure here must not fail a post that is already stored. A busy room costs
        # one extra round trip a second, not one per post.
        now = time.monotonic()
        if now - self._touched.get(room, -1.0) < 1.0:
            return
        if len(self._touched) > 10000:
            self._touched.clear()
        self._touched[room] = now
        try:
            if self.after_post is not None:  # trimming by age (app/rooms/retention.py)
                self.after_post(room)
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.zadd(keys.ROOMS_INDEX, {room: int(time.time() * 1000)})
                # Bounded: the least recently active rooms leave the index (their history stays).
                pipe.zremrangebyrank(keys.ROOMS_INDEX, 0, -self.lobby_max - 1)
                pipe.execute()
        except Exception:  # noqa: BLE001 - best effort, logged
            logger.warning("could not update the rooms index room=%s", room, exc_info=True)

    def page(self, room, before=None, limit=50):
        """Return (messages oldest first, more) for the ``limit`` messages before ``before``."""
        found, more_before, _ = self.window(room, before=before, limit=limit)
        return found, more_before

    def window(self, room, before=None, after=None, around=None, limit=50):
        """Return a page of history: (message jsons oldest first, more_before, more_after).

        At most one of the bounds, each an (ms, seq) tuple: ``before`` gives the ``limit``
        messages just older than it (exclusive), ``after`` the ``limit`` just newer (exclusive),
        ``around`` up to ``limit`` in all with that id in the middle (itself included when it
        exists; a side that runs short leaves its share to the other). None of them: the newest
        ``limit``. ``more_before``/``more_after`` tell whether older/newer messages exist
        beyond the page. Messages are as they are now (edited, deleted); the log's change
        events are not messages and are skipped. Usually one round trip per side.
        """
        k = keys.RoomKeys(room)
        older_top = newer_bottom = None  # exclusive/inclusive id strings, None = that side is empty
        want_older = want_newer = 0
        if around is not None:
            older_top, newer_bottom = _below(around), keys.format_stream_id(around)
            want_older = want_newer = limit
        elif after is not None:
            older_top, newer_bottom = keys.format_stream_id(after), _above(after)
            want_older, want_newer = 0, limit
        elif before is not None:
            older_top, newer_bottom = _below(before), keys.format_stream_id(before)
            want_older, want_newer = limit, 0
        else:
            older_top, want_older = "+", limit
        # One more than wanted on each side: its presence answers "is there more?".
        older = self.messages(k, older_top, want_older + 1, newer=False) if older_top is not None else []
        newer = self.messages(k, newer_bottom, want_newer + 1, newer=True) if newer_bottom is not None else []
        if around is None:
            take_older, take_newer = min(len(older), want_older), min(len(newer), want_newer)
        else:
            take_older = min(len(older), max((limit - 1) // 2, limit - len(newer)))
            take_newer = min(len(newer), limit - take_older)
        entries = older[:take_older][::-1] + newer[:take_newer]
        return [body for _, body in entries], len(older) > take_older, len(newer) > take_newer

    def messages(self, k, bound, count, newer):
        """Up to ``count`` messages of log ``k`` from ``bound`` on, nearest first: (id, json)
        pairs, each as it is now. ``bound`` is a range end as XRANGE takes it ("+" and "-",
        "<id>" inclusive, "(<id>" exclusive); ``newer`` reads towards newer ids, else older.

        A message that was changed lives in ``k.changed`` (its entry left the log), and the
        log holds change events between the messages: both are merged in id order here, the
        events skipped (reading on in batches while they crowd the messages out).
        """
        if bound in ("+", "-"):
            lex = bound
        else:
            exclusive = bound.startswith("(")
            mark = keys.padded(bound.lstrip("("))
            if newer:
                lex = "(" + mark + "}" if exclusive else "[" + mark + "|"
            else:
                lex = "(" + mark + "|" if exclusive else "[" + mark + "}"
        batch = max(count, 16)
        found, changed_seen, from_log, mark = {}, False, 0, None
        while True:
            with self.redis.pipeline(transaction=True) as pipe:  # one slot: a consistent snapshot
                if newer:
                    pipe.xrange(k.log, min=bound, max="+", count=batch)
                else:
                    pipe.xrevrange(k.log, max=bound, min="-", count=batch)
                if not changed_seen:
                    if newer:
                        pipe.zrangebylex(k.changed, lex, "+", start=0, num=count)
                    else:
                        pipe.zrevrangebylex(k.changed, lex, "-", start=0, num=count)
                    bounded = self.confirmed(pipe, k)
                results = pipe.execute()
            if not changed_seen:
                changed_seen = True
                mark = results[2] if bounded else None
                for member in results[1]:
                    mid_padded, _, body = member.partition("|")
                    mid = keys.unpadded(mid_padded)
                    if not beyond(mid, mark):
                        found[mid] = body
            entries = results[0]
            for mid, fields in entries:
                fields = entry_fields(fields)
                if "e" in fields or mid in found or beyond(mid, mark):
                    continue
                found[mid] = messages.assemble(mid, fields["m"])
                from_log += 1
            if len(entries) < batch or from_log >= count:
                break
            bound = "(" + entries[-1][0]
        ordered = sorted(found.items(), key=lambda item: _pair(item[0]), reverse=not newer)[:count]
        return self._fresh_quotes(k, ordered)

    def _fresh_quotes(self, k, entries):
        """Bring the quotes of replies among ``entries`` ((id, json) pairs) up to date: a quote
        is stored as the answered message read when the reply was sent, and only a message
        that changed since (it is in ``k.changed`` then) can make it stale. One round trip,
        only when there are replies."""
        replies = [(i, json.loads(entry[1])) for i, entry in enumerate(entries)
                   if len(entry) == 2 and '"reply_to":{' in entry[1]]  # messages, not change events
        if not replies:
            return entries
        targets = sorted({message["reply_to"]["id"] for _, message in replies})
        with self.redis.pipeline(transaction=False) as pipe:
            for target in targets:
                mark = keys.padded(target)
                pipe.zrangebylex(k.changed, "[" + mark + "|", "(" + mark + "}", start=0, num=1)
            changed = dict(zip(targets, pipe.execute()))
        for i, message in replies:
            now = changed.get(message["reply_to"]["id"])
            if now:
                fresh = messages.quote(json.loads(now[0].partition("|")[2]))
                if fresh != message["reply_to"]:
                    message["reply_to"] = fresh
                    entries[i] = (entries[i][0], json.dumps(message, ensure_ascii=False, separators=(",", ":")))
        return entries

    def directs(self, sid, count):
        """Return the newest ``count`` direct messages of session ``sid`` (JSON), oldest first
        (none still held: _CONFIRM_LUA)."""
        k = keys.PersonKeys(sid)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.xrevrange(k.log, max="+", min="-", count=count)
            bounded = self.confirmed(pipe, k)
            entries, *mark = pipe.execute()
        mark = mark[0] if bounded else None
        return [messages.assemble(mid, fields["m"]) for mid, fields in reversed(entries) if not beyond(mid, mark)]

    def replay(self, k, after=None, backlog=0):
        """Read what a new stream owes its client from one log (a room's or a person's).

        Returns (entries, head, dropped): entries are oldest first, (id, json) pairs for
        messages and (id, json, event name) triples for a room's change events ("edit",
        "delete", "reaction"); head is the newest id in the log as a tuple ((0, 0) when empty),
        and dropped tells that messages after ``after`` were trimmed away before the client
        could get them. After a cursor: every message and change event past it, each message
        as it is now (the events that changed it follow it). A backlog (no cursor): the newest
        ``backlog`` messages as they are now, without events (they are already applied).
        """
        with self.redis.pipeline(transaction=True) as pipe:  # one slot: a consistent snapshot
            finish = self.replay_reads(pipe, k, after, backlog)
            return finish(pipe.execute())

    def replay_reads(self, pipe, k, after=None, backlog=0):
        """Queue on ``pipe`` (a MULTI pipeline: a consistent snapshot; other reads may share it,
        app/rooms/reads.py) the reads of ``replay(k, after, backlog)``. Returns finish(replies):
        replies are those commands' answers, in order; it returns replay's (entries, head,
        dropped), reading once more when it must (a backlog's messages, replies' fresh quotes),
        and raises redis.RedisError when those reads fail."""
        if after is not None and after != _LAST_ID:  # nothing follows the last id
            pipe.xrange(k.log, min="(" + keys.format_stream_id(after), max="+")
            pipe.zrangebylex(k.changed, "(" + keys.padded(keys.format_stream_id(after)) + "}", "+")
        pipe.xrevrange(k.log, max="+", min="-", count=1)
        pipe.hget(k.meta, "trimmed")
        bounded = self.confirmed(pipe, k)
        since = None
        if bounded and after is not None:  # is the client's own last entry here?
            since = keys.format_stream_id(after)
            pipe.xrange(k.log, min=since, max=since)
            pipe.zrangebylex(k.changed, "[" + keys.padded(since) + "|", "(" + keys.padded(since) + "}", 0, 1)
        return functools.partial(self._replayed, k, after, backlog, bounded, since)

    def _replayed(self, k, after, backlog, bounded, since, results):
        """replay's answer from the replies of the reads replay_reads queued."""
        results = list(results)
        had = None
        if bounded and after is not None:
            changed_since, logged_since = results.pop(), results.pop()
            had = bool(changed_since or logged_since)
        mark = results.pop() if bounded else None
        *found, newest, trimmed = results
        newest = newest[0][0] if newest else None
        if newest is not None and beyond(newest, mark):  # held entries are not shown yet
            newest = mark if mark != "0-0" else None
            # A client that heard entries past the mark (published, and the mark's move lost
            # in a failover) keeps its place: moved back, it would take them again.
            if had and (newest is None or _pair(since) > _pair(newest)):
                newest = since
        head = keys.parse_stream_id(newest) if newest else (0, 0)
        if after is None:
            entries = []
            if backlog and newest:
                entries = self.messages(k, newest, backlog, newer=False)[::-1]
            return entries, head, False
        dropped = bool(trimmed) and after < keys.parse_stream_id(trimmed)
        if not found:
            return [], head, dropped
        logged, changed = found
        if mark is not None:
            logged = [entry for entry in logged if not beyond(entry[0], mark)]
            changed = [member for member in changed if not beyond(keys.unpadded(member.partition("|")[0]), mark)]
        entries = []
        for mid, fields in logged:
            fields = entry_fields(fields)
            body = messages.assemble(mid, fields["m"])
            entries.append((mid, body, fields["e"]) if "e" in fields else (mid, body))
        if changed:
            for member in changed:
                mid_padded, _, body = member.partition("|")
                entries.append((keys.unpadded(mid_padded), body))
            entries.sort(key=lambda entry: _pair(entry[0]))
        return self._fresh_quotes(k, entries), head, dropped  # a resume never shows a stale quote

    def heads(self, logs):
        """Return the newest id (str, ``"0-0"`` when empty) of each of ``logs`` (RoomKeys or
        PersonKeys), in one round trip: a silent stream's check that it missed nothing."""
        with self.redis.pipeline(transaction=False) as pipe:
            for k in logs:
                pipe.xrevrange(k.log, max="+", min="-", count=1)
                self.confirmed(pipe, k)
            found = pipe.execute()
        if not self.replica_acks:
            return [newest[0][0] if newest else "0-0" for newest in found]
        return [mark if newest and beyond(newest[0][0], mark) else (newest[0][0] if newest else "0-0")
                for newest, mark in zip(found[::2], found[1::2])]  # held entries are not shown yet

    def rooms(self, limit):
        """Return the most recently active rooms as dicts: room, last (ms), count."""
        recent = self.redis.zrevrange(keys.ROOMS_INDEX, 0, limit - 1, withscores=True)
        with self.redis.pipeline(transaction=False) as pipe:
            for room, _ in recent:
                pipe.hget(keys.RoomKeys(room).meta, "count")
            counts = pipe.execute()
        return [{"room": room, "last": int(score), "count": int(count or 0)}
                for (room, score), count in zip(recent, counts)]

    def ping(self):
        return self.redis.ping()




def _below(bound):
    """The exclusive upper bound of ids older than ``bound``; None when nothing can be."""
    return None if bound == _FIRST_ID else "(" + keys.format_stream_id(bound)


def _above(bound):
    """The exclusive lower bound of ids newer than ``bound``; None when nothing can be."""
    return None if bound == _LAST_ID else "(" + keys.format_stream_id(bound)


def _pair(mid):
    ms, _, seq = mid.partition("-")
    return int(ms), int(seq)


def _activity(room, user, text, mentioned):
    """The activity payload of a room message up to its id (the script appends the id and the
    closing brace): ``!activity\\n{"room", "user", "mentions", "text"?, "id"}``, relayed as an
    unnumbered ``event: activity`` to the sidebars of people reading other rooms. Only a message
    that mentions someone carries an excerpt of its text (for their notification)."""
    fields = {"room": room, "user": user, "mentions": [p["name"] for p in mentioned]}
    if mentioned:
        fields["text"] = text[:ACTIVITY_EXCERPT]
    head = json_module.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return "!activity\n" + head[:-1] + ',"id":"'


def _refusal(flag):
    """Raise what the publish script's answer ``flag`` (int) refused: a key reused for another
    message (-2), or withdrawn (-3)."""
    if flag == -2:
        raise messages.KeyReused()
    if flag == -3:
        raise messages.Withdrawn()


def _created(flag):
    return None if flag == -1 else bool(flag)


def entry_fields(fields):
    # A cluster's MULTI pipeline hands back the raw [field, value, ...] list, not a dict.
    return fields if isinstance(fields, dict) else dict(zip(fields[::2], fields[1::2]))


def _body(fields):
    return entry_fields(fields)["m"]
