"""Room history and publishing in Redis: one atomic script stores a message and publishes it."""
import logging
import time

import redis
from redis.cluster import RedisCluster
from redis.sentinel import MasterNotFoundError

from . import keys, messages

logger = logging.getLogger(__name__)

# KEYS: log, channel, meta, idempotency.  ARGV: body, history length, idempotency ttl (0 = none),
# payload prefix ("" for room messages, "@" for direct ones), "ask" to store nothing in a log
# that does not exist yet (returns {-1, ''}: creating a room is counted first), expiry of the log
# and meta in seconds (0 = none; a person's direct messages expire with their session).
# XADD, trim, record what was trimmed, PUBLISH: all or nothing, in one slot. The published
# payload is "<prefix><id> <previous id>\n<message json>" (app/delivery/position.py): a stream proves
# with one comparison that it missed nothing in between, and relays the JSON as is.
_PUBLISH_LUA = """
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  local prior = redis.call('GET', KEYS[4])
  if prior then return {0, prior} end
end
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = newest[1] and newest[1][1] or '0-0'
if ARGV[5] == 'ask' and not newest[1] then return {-1, ''} end
local id = redis.call('XADD', KEYS[1], '*', 'm', ARGV[1])
local json = '{"id":"' .. id .. '","ts":' .. string.match(id, '^(%d+)') .. ',' .. ARGV[1]
local excess = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[2])
if excess > 0 then
  local old = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', excess)
  redis.call('XTRIM', KEYS[1], 'MAXLEN', ARGV[2])
  redis.call('HSET', KEYS[3], 'trimmed', old[#old][1])
end
redis.call('HINCRBY', KEYS[3], 'count', 1)
local expiry = tonumber(ARGV[6])
if expiry > 0 then
  redis.call('EXPIRE', KEYS[1], expiry)
  redis.call('EXPIRE', KEYS[3], expiry)
end
if ttl > 0 then redis.call('SET', KEYS[4], json, 'EX', ttl) end
redis.call('PUBLISH', KEYS[2], ARGV[4] .. id .. ' ' .. prev .. '\\n' .. json)
return {1, json}
"""


# KEYS: a parking log, its meta.  ARGV: the ids moved out of it.  Drop them; drop the log once
# nothing else waits in it.
_FORGET_MOVED_LUA = """
local removed = redis.call('XDEL', KEYS[1], unpack(ARGV))
if redis.call('XLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[1], KEYS[2]) end
return removed
"""

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
    text = str(exc)
    return not ("connecting to" in text or text.startswith("No connection available"))


class NotReplicated(redis.ConnectionError):
    """Stored on the master, but too few replicas confirmed it: not acknowledged (503)."""


class Store:
    """Reads and writes rooms through one Redis client (decode_responses=True)."""

    def __init__(self, client, history_length, idempotency_seconds, replica_acks=0, replica_timeout_ms=1000,
                 publish_command="PUBLISH", direct_seconds=0, lobby_max=10000):
        self.redis = client
        self.direct_seconds = int(direct_seconds)  # a person's direct messages outlive their last one this long
        self.lobby_max = int(lobby_max)  # rooms the lobby's index keeps (the most recently active)
        self.history_length = int(history_length)
        self.idempotency_seconds = int(idempotency_seconds)
        self.replica_acks = int(replica_acks)
        self.replica_timeout_ms = int(replica_timeout_ms)
        self._touched = {}  # room -> when this process last updated the lobby's index
        # SPUBLISH on a cluster: the message goes to the shard owning the room, not everywhere.
        self._publish = client.register_script(_PUBLISH_LUA.replace("'PUBLISH'", "'%s'" % publish_command))
        self._forget_moved = client.register_script(_FORGET_MOVED_LUA)

    def publish(self, room, user, text, idempotency_key=None, may_create=None, bot=False, uid=None):
        """Store and publish a message; return (message json, created).

        ``created`` is False when the idempotency key was seen before: the json is then the
        message stored the first time. ``may_create``, when given, is called before a post
        creates a room (its log does not exist yet); it raises to refuse (a creation cap).
        ``bot``: sent by a program (publish token, CLI), not a signed-in person. ``uid``: the
        signed-in author's stable id (messages.body).
        """
        k, body = keys.RoomKeys(room), messages.body(room, user, text, bot, uid)
        json, created = self._append(k, body, user, idempotency_key, "", ask=may_create is not None)
        if created is None:  # a new room: counted first, then stored
            may_create()
            json, created = self._append(k, body, user, idempotency_key, "")
        if created:
            self._touch(room)
        return json, created

    def publish_direct(self, sender, recipient, text, idempotency_key=None, bot=False):
        """Store a direct message in the recipient's and the sender's own log; publish both.

        ``sender`` and ``recipient`` are (name, session id); a server-to-server sender has no
        session id and keeps no copy. Two scripts, one per person's slot: each copy is atomic on
        its own, and the recipient's is written first, so an acknowledged message has always
        reached the recipient's log. Returns the sender's copy (the recipient's if none).
        """
        body = messages.direct_body(sender[0], recipient[0], text, bot)
        expiry = self.direct_seconds
        delivered = self._append(keys.PersonKeys(recipient[1]), body, sender[0], idempotency_key, "@",
                                 expiry=expiry)
        if sender[1] is None or recipient[1] == sender[1]:  # no copy, or a note to oneself
            return delivered
        return self._append(keys.PersonKeys(sender[1]), body, sender[0], idempotency_key, "@", expiry=expiry)

    def move_direct(self, from_sid, to_sid):
        """Deliver the direct messages parked under ``from_sid`` (an account signed in nowhere)
        into session ``to_sid``'s log, oldest first, each keeping its send time as ``"sent"``
        (ms), then drop them. Each move carries the parked id as its idempotency key, so a
        move repeated after a failure stores nothing twice in that log. Returns how many."""
        source = keys.PersonKeys(from_sid)
        entries = self.redis.xrange(source.log)
        for entry_id, fields in entries:
            body = _body(fields)
            body = body[:-1] + ',"sent":%s}' % entry_id.split("-", 1)[0]
            self._append(keys.PersonKeys(to_sid), body, "parked", entry_id, "@", expiry=self.direct_seconds)
        if entries:  # only what was moved: a message parked meanwhile waits for the next move
            self._forget_moved(keys=[source.log, source.meta], args=[entry_id for entry_id, _ in entries])
        return len(entries)

    def _append(self, k, body, user, idempotency_key, prefix, ask=False, expiry=0):
        """Run the publish script; ``created`` is None when ``ask`` found no log (nothing stored)."""
        ttl = 0
        idem = k.idempotency("-")
        if idempotency_key is not None:
            ttl = self.idempotency_seconds
            idem = k.idempotency(messages.idempotency_digest(user, idempotency_key))
        keys_ = [k.log, k.channel, k.meta, idem]
        args = [body, self.history_length, ttl, prefix, "ask" if ask else "", int(expiry)]
        if not self.replica_acks:
            created, json = self._publish(keys=keys_, args=args)
            return json, _created(created)
        # WAIT on the same connection as the write: acknowledge only what replicas have too.
        # A retry (same idempotency key) returns the stored message and waits again.
        node = self.redis
        if isinstance(node, RedisCluster):  # its pipelines refuse EVALSHA: talk to the slot's node
            node = node.get_node_from_key(k.log).redis_connection
        try:
            with node.pipeline(transaction=False) as pipe:
                self._publish(keys=keys_, args=args, client=pipe)
                pipe.execute_command("WAIT", self.replica_acks, self.replica_timeout_ms)
                (created, json), replicas = pipe.execute()
        except (redis.ConnectionError, redis.ResponseError):
            if isinstance(self.redis, RedisCluster):  # a failover (or MOVED): re-read the slot map
                self.redis.nodes_manager.initialize()
            raise
        if created == -1:
            return json, None  # nothing was written: nothing to wait for
        if replicas < self.replica_acks:
            raise NotReplicated("%d of %d replicas confirmed within %d ms"
                                % (replicas, self.replica_acks, self.replica_timeout_ms))
        return json, bool(created)

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
        beyond the page. One round trip (a pipeline of range reads on one key).
        """
        log = keys.RoomKeys(room).log
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
        with self.redis.pipeline(transaction=False) as pipe:
            # One more than wanted on each side: its presence answers "is there more?".
            if older_top is not None:
                pipe.xrevrange(log, max=older_top, min="-", count=want_older + 1)
            if newer_bottom is not None:
                pipe.xrange(log, min=newer_bottom, max="+", count=want_newer + 1)
            found = pipe.execute()
        older = found.pop(0) if older_top is not None else []
        newer = found.pop(0) if newer_bottom is not None else []
        if around is None:
            take_older, take_newer = min(len(older), want_older), min(len(newer), want_newer)
        else:
            take_older = min(len(older), max((limit - 1) // 2, limit - len(newer)))
            take_newer = min(len(newer), limit - take_older)
        entries = older[:take_older][::-1] + newer[:take_newer]
        return ([messages.assemble(mid, fields["m"]) for mid, fields in entries],
                len(older) > take_older, len(newer) > take_newer)

    def directs(self, sid, count):
        """Return the newest ``count`` direct messages of session ``sid`` (JSON), oldest first."""
        entries = self.redis.xrevrange(keys.PersonKeys(sid).log, max="+", min="-", count=count)
        entries.reverse()
        return [messages.assemble(mid, fields["m"]) for mid, fields in entries]

    def replay(self, k, after=None, backlog=0):
        """Read what a new stream owes its client from one log (a room's or a person's).

        Returns (entries, head, dropped): entries are (id, json) pairs oldest first, head is the
        newest id in the room as a tuple ((0, 0) when empty), and dropped tells that messages
        after ``after`` were trimmed away before the client could get them.
        """
        with self.redis.pipeline(transaction=True) as pipe:  # one slot: a consistent snapshot
            if after is not None:
                if after != _LAST_ID:  # nothing follows it, and Redis refuses the interval
                    pipe.xrange(k.log, min="(" + keys.format_stream_id(after), max="+")
            elif backlog:
                pipe.xrevrange(k.log, max="+", min="-", count=backlog)
            pipe.xrevrange(k.log, max="+", min="-", count=1)
            pipe.hget(k.meta, "trimmed")
            *found, newest, trimmed = pipe.execute()
        entries = found[0] if found else []
        if after is None:
            entries.reverse()
        head = keys.parse_stream_id(newest[0][0]) if newest else (0, 0)
        dropped = False
        if after is not None and trimmed:
            dropped = after < keys.parse_stream_id(trimmed)
        return [(mid, messages.assemble(mid, _body(f))) for mid, f in entries], head, dropped

    def heads(self, logs):
        """Return the newest id (str, ``"0-0"`` when empty) of each of ``logs`` (RoomKeys or
        PersonKeys), in one round trip: a silent stream's check that it missed nothing."""
        with self.redis.pipeline(transaction=False) as pipe:
            for k in logs:
                pipe.xrevrange(k.log, max="+", min="-", count=1)
            found = pipe.execute()
        return [newest[0][0] if newest else "0-0" for newest in found]

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


def _created(flag):
    return None if flag == -1 else bool(flag)


def _body(fields):
    # A cluster's MULTI pipeline hands back the raw [field, value, ...] list, not a dict.
    return fields["m"] if isinstance(fields, dict) else dict(zip(fields[::2], fields[1::2]))["m"]
