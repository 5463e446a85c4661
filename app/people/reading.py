"""What a person has read: read positions, the rooms of their sidebar, unread and mention counts.

A *reader* is a person as far as reading goes: one per account (every device it is signed in
on), per host-application user, per guest session. Their keys share the hash tag
``{p:<reader>}`` (a digest of their stable id, app/identity.py ``uid``):

    rooms      sorted set  room -> when it joined the sidebar (ms)
    hidden     set         rooms the person hid: opening or posting no longer brings them back
    read       hash        room -> "<id> <n>": the newest message read and its ordinal
    mentions   sorted set  "<room>\\n<id>" -> ms: the person's recent mentions, every room
    at:<room>  sorted set  id -> id score: their mentions in one room (counted after the position)

Counting is O(1) per room, never a scan: every stored message carries its ordinal ``n`` (the
room's message count after it, app/store.py), so the unread count is ``count - n(read)`` minus
the messages deleted after the position (the room's ``deleted`` set holds their ordinals;
ZCOUNT is O(log n)). Posting costs nothing per member: a person's counts are computed when they
are asked for (a page, ``GET /me/rooms``, a stream opening) and kept current in the page by
``event: activity`` (one payload per message on the room's activity channel, which the streams
of people with the room in their sidebar listen to) and ``event: read`` / ``event: unread`` on
the person's own channels when their position moves on another device.
"""
import hashlib
import json
import time
from collections import namedtuple

from ..ops.services import services
from ..rooms import keys
from ..rooms.records import RecordKeys
from . import identity
from .names import fold

MAX_ROOMS = 200         # rooms a sidebar keeps (the least recently joined leave first)
READ_SLACK = 50         # read positions kept past MAX_ROOMS before those of rooms gone from it go
MAX_HIDDEN = 500        # rooms a person hid that are remembered (a random one is forgotten past it)
MAX_MENTIONS = 200      # mentions kept per person, and per person per room
ORDINAL_LOOKBACK = 20   # entries read back from a position to find the nearest message's ordinal

# KEYS: the reader's read hash.  ARGV: room, ms, seq, ordinal, expiry (s).  Move the position
# forward only: an id at or before the current one changes nothing (returns 0).
_MARK_LUA = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ms, seq = string.match(cur, '^(%d+)-(%d+)')
  if ms then
    ms, seq = tonumber(ms), tonumber(seq)
    local new_ms, new_seq = tonumber(ARGV[2]), tonumber(ARGV[3])
    if ms > new_ms or (ms == new_ms and seq >= new_seq) then return 0 end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '-' .. ARGV[3] .. ' ' .. ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""

# KEYS: the room's people hash, its seen sorted set.  ARGV: folded name, its JSON, now (ms), the
# cap.  Learn one name and forget the least recently seen beyond the cap; names learnt before the
# cap existed (in the hash, never in the set) go first, a bounded few per call.
_LEARN_LUA = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local cap = tonumber(ARGV[4])
local over = redis.call('HLEN', KEYS[1]) - cap
if over <= 0 then return 0 end
local unlisted = redis.call('HLEN', KEYS[1]) - redis.call('ZCARD', KEYS[2])
if unlisted > 0 then
  for _, name in ipairs(redis.call('HRANDFIELD', KEYS[1], math.min(over + 10, 100))) do
    if over > 0 and not redis.call('ZSCORE', KEYS[2], name) then
      redis.call('HDEL', KEYS[1], name)
      over = over - 1
    end
  end
end
if over > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[2], over)  -- name, score, name, score...
  for i = 1, #popped, 2 do redis.call('HDEL', KEYS[1], popped[i]) end
end
return 1
"""

Reader = namedtuple("Reader", "id sids")  # id: the digest in the keys; sids: sessions to tell


class Ahead(ValueError):
    """A read position past the room's newest message (422)."""


def current_reader():
    """The signed-in person as a reader (every session of an account is told), or None.
    Raises redis.RedisError."""
    name, sid = identity.current()
    if not name:
        return None
    account = identity.account()
    sids = sorted(services().accounts.session_ids(account)) if account else [sid]
    return Reader(reader_id(identity.uid()), sids or [sid])


def reader_id(uid):
    """The digest a person's keys are named by (their stable id may be any string)."""
    return hashlib.sha256(uid.encode()).hexdigest()[:24]


class ReaderKeys:
    """The Redis names of one reader, all in one slot."""

    __slots__ = ("tag", "rooms", "hidden", "read", "mentions")

    def __init__(self, reader):
        self.tag = "ripple:{p:%s}" % reader
        self.rooms = self.tag + ":rooms"
        self.hidden = self.tag + ":hidden"
        self.read = self.tag + ":read"
        self.mentions = self.tag + ":mentions"

    def at(self, room):
        return self.tag + ":at:" + room


class Reading:
    """Read positions, sidebars and counts in Redis (decode_responses=True)."""

    def __init__(self, client, lifetime, publish_command="PUBLISH", max_names=1000):
        self.redis = client
        self.max_names = max(1, int(max_names))  # RIPPLE_ROOM_MENTION_NAMES_MAX
        self.lifetime = int(getattr(lifetime, "total_seconds", lambda: lifetime)())  # idle expiry
        self.publish_command = publish_command
        self._mark = client.register_script(_MARK_LUA)
        self._learn = client.register_script(_LEARN_LUA)
        self._visited = {}  # (reader, room) -> when this process last recorded a visit

    # -- the sidebar ---------------------------------------------------------------------------

    def visit(self, reader, room, name):
        """Record that the person opened or posted in ``room`` as ``name``: the room joins their
        sidebar (unless they hid it) with the position at its newest message if they had none,
        and the room learns their name (for @mentions; the most recent RIPPLE_ROOM_MENTION_NAMES_MAX
        names only). At most once a minute per process."""
        now = time.monotonic()
        key = (reader.id, room, name)
        if now - self._visited.get(key, -60.0) < 60.0:
            return
        if len(self._visited) > 10000:
            self._visited.clear()
        self._visited[key] = now
        k = keys.RoomKeys(room)
        self._learn(keys=[k.people, k.seen], args=[
            fold(name), json.dumps({"name": name, "reader": reader.id}, ensure_ascii=False),
            int(time.time() * 1000), self.max_names])
        if not self.redis.sismember(ReaderKeys(reader.id).hidden, room):
            self._join(reader, room)

    def show(self, reader, room):
        """Put ``room`` in the person's sidebar (again); True if it was not there."""
        self.redis.srem(ReaderKeys(reader.id).hidden, room)
        return self._join(reader, room)

    def hide(self, reader, room):
        """Take ``room`` out of the person's sidebar for good (until they show it again)."""
        rk = ReaderKeys(reader.id)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(rk.hidden, room)
            pipe.zrem(rk.rooms, room)
            pipe.expire(rk.hidden, self.lifetime)
            pipe.scard(rk.hidden)
            hidden = pipe.execute()[-1]
        if hidden > MAX_HIDDEN:  # any name may be hidden: a loop must not grow the set for ever
            self.redis.spop(rk.hidden, hidden - MAX_HIDDEN)
        self._tell(reader, "unread", {"rooms": [], "hidden": [room]})

    def drop(self, reader, room):
        """Take ``room`` out of the person's sidebar and forget their place in it (the room is
        gone), without hiding it: a room made under that name later may join it again."""
        rk = ReaderKeys(reader.id)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(rk.rooms, room)
            pipe.hdel(rk.read, room)
            pipe.delete(rk.at(room))
            pipe.execute()
        self._tell(reader, "unread", {"rooms": [], "hidden": [room]})  # their other pages drop it too

    def rooms(self, reader):
        """The rooms in the person's sidebar (any order)."""
        return self.redis.zrange(ReaderKeys(reader.id).rooms, 0, -1)

    def _join(self, reader, room):
        rk = ReaderKeys(reader.id)
        head = self._head(room)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(rk.rooms, {room: int(time.time() * 1000)}, nx=True)
            pipe.zremrangebyrank(rk.rooms, 0, -MAX_ROOMS - 1)
            pipe.expire(rk.rooms, self.lifetime)
            # Nothing before joining counts as unread (in an empty room: everything after).
            pipe.hsetnx(rk.read, room, "%s %d" % (head or ("0-0", 0)))
            pipe.expire(rk.read, self.lifetime)
            pipe.hlen(rk.read)
            found = pipe.execute()
        added = found[0]
        if found[-1] > MAX_ROOMS + READ_SLACK:
            self._forget_positions(rk)
        if added:
            # First the word for the person's open streams to follow it (each subscribes before
            # it writes what came with it), then its counts for their pages.
            self._tell(reader, "#watch", room, raw=True)
            self._tell(reader, "unread", {"rooms": self.entries(reader, [room])})
        return bool(added)

    def holders(self, room):
        """The readers (ids) who may have ``room`` in their sidebar: the people it learnt (its
        ``people``: the most recent RIPPLE_ROOM_MENTION_NAMES_MAX) and its members. Asked before
        the room is deleted, which takes both."""
        with self.redis.pipeline(transaction=False) as pipe:  # one slot: the room's
            pipe.hvals(keys.RoomKeys(room).people)
            pipe.hkeys(RecordKeys(room).members)
            people, members = pipe.execute()
        found = {reader_id(uid) for uid in members}
        for raw in people:
            try:
                found.add(json.loads(raw)["reader"])
            except (ValueError, KeyError, TypeError):
                continue
        return sorted(found)

    def forget_room(self, room, readers):
        """Take the deleted ``room`` out of the sidebars of ``readers`` (ids, from ``holders``):
        its entry, read position, hidden mark and mentions count, so that a new room of the name
        starts afresh; the pages that list it drop it (their streams follow its activity
        channel: app/delivery/stream.py ``_watch``). A pipeline of 500 people at a time."""
        for start in range(0, len(readers), 500):
            with self.redis.pipeline(transaction=False) as pipe:
                for reader in readers[start:start + 500]:
                    rk = ReaderKeys(reader)
                    pipe.zrem(rk.rooms, room)
                    pipe.hdel(rk.read, room)
                    pipe.srem(rk.hidden, room)
                    pipe.delete(rk.at(room))
                pipe.execute()
        self._visited = {key: at for key, at in self._visited.items() if key[1] != room}  # visits count again
        # The hiding a person does (hide), told to everyone who follows the room at once.
        self.redis.execute_command(self.publish_command, keys.RoomKeys(room).activity,
                                   "!unread\n" + json.dumps({"rooms": [], "hidden": [room]}, ensure_ascii=False,
                                                             separators=(",", ":")))

    def _forget_positions(self, rk):
        """Drop the read positions of rooms no longer in the sidebar (trimmed or hidden): the
        sidebar is capped, and its positions must be too. A room shown again starts from its
        newest message, as any room joining the sidebar does."""
        rooms = self.redis.hkeys(rk.read)
        scores = self.redis.zmscore(rk.rooms, rooms) if rooms else []
        gone = [room for room, score in zip(rooms, scores) if score is None]
        for start in range(0, len(gone), 500):
            self.redis.hdel(rk.read, *gone[start:start + 500])

    # -- read positions ------------------------------------------------------------------------

    def mark(self, reader, room, mid):
        """Move the person's position in ``room`` forward to message ``mid`` (an id str); tell
        their other devices. Returns True if it moved (False: it was there or further already).
        Raises Ahead if ``mid`` is past the room's newest message."""
        log = keys.RoomKeys(room).log
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.xrevrange(log, max="+", min="-", count=1)
            pipe.xrevrange(log, max=mid, min="-", count=ORDINAL_LOOKBACK)
            newest, before = pipe.execute()
        if not newest or keys.parse_stream_id(mid) > keys.parse_stream_id(newest[0][0]):
            raise Ahead(mid)
        ordinal = self._ordinal_at(room, mid, before)
        ms, _, seq = mid.partition("-")
        if not self._mark(keys=[ReaderKeys(reader.id).read], args=[room, ms, seq, ordinal, self.lifetime]):
            return False
        # The position is what the script just wrote: the counts need not read it back.
        entries = self.entries(reader, [room], positions={room: "%s %d" % (mid, ordinal)})
        self._tell(reader, "read", {"room": room, "read_id": mid}, then=("unread", {"rooms": entries}))
        return True

    def _head(self, room):
        """(newest id, its ordinal) of a room, or None when it is empty."""
        newest = self.redis.xrevrange(keys.RoomKeys(room).log, max="+", min="-", count=ORDINAL_LOOKBACK)
        if not newest:
            return None
        return newest[0][0], self._ordinal_at(room, newest[0][0], newest)

    def _ordinal_at(self, room, mid, entries):
        """The ordinal of the position ``mid``: the number of messages up to it. ``entries``:
        the log's entries at and before ``mid``, newest first. A message that was edited,
        reacted to or deleted left the log for the room's ``changed`` set
        (app/rooms/conversation.py): those between the nearest entry with an ordinal and
        ``mid`` count too (one ZLEXCOUNT)."""
        k = keys.RoomKeys(room)
        for found, fields in entries:
            if isinstance(fields, list):  # a cluster's MULTI pipeline: the raw field list
                fields = dict(zip(fields[::2], fields[1::2]))
            if "n" in fields:
                if found == mid:  # the position is a message as stored (a post's own): nothing between
                    return int(fields["n"])
                moved = self.redis.zlexcount(k.changed, "(" + keys.padded(found) + "}", "(" + keys.padded(mid) + "}")
                return int(fields["n"]) + moved
        return self._count_back(room, mid)

    def _count_back(self, room, mid):
        """The ordinal at ``mid`` when no entry near it carries one (older than what the room
        keeps, stored before ordinals existed, or behind many change events): the count less
        the messages after it. Rare, and bounded by the history length."""
        k = keys.RoomKeys(room)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(k.meta, "count")
            pipe.xrange(k.log, min="(" + mid, max="+")
            pipe.zlexcount(k.changed, "(" + keys.padded(mid) + "}", "+")
            count, after, moved = pipe.execute()
        later = sum(1 for _, fields in after if "e" not in _fields(fields))
        return max(0, int(count or 0) - later - moved)

    # -- counts --------------------------------------------------------------------------------

    def entries(self, reader, only=None, allow=None, positions=None):
        """The person's sidebar rooms, the most recently active first: {"room", "unread",
        "mentions", "last_id", "read_id", "last_activity"} (ms; 0 and None for an empty room).
        ``only``: just these rooms (in the sidebar or not). ``allow``: a filter of room names
        (the rooms the person may still read: app/web/gate.py ``readable``). ``positions``:
        the read hash (or its values of the ``only`` rooms) when the caller has it (it just
        wrote or read it), not read again. Two round trips, three with ``allow``, one with ``positions``."""
        rk = ReaderKeys(reader.id)
        if positions is not None and only is not None:
            found = [positions]
        else:
            with self.redis.pipeline(transaction=False) as pipe:
                if only is None:
                    pipe.zrange(rk.rooms, 0, -1)
                pipe.hgetall(rk.read)
                found = pipe.execute()
        rooms = list(only) if only is not None else found.pop(0)
        if allow is not None:
            rooms = allow(rooms)
        positions = found[0]
        reads = {}
        with self.redis.pipeline(transaction=False) as pipe:
            for room in rooms:
                k = keys.RoomKeys(room)
                read_id, ordinal = _position(positions.get(room))
                reads[room] = (read_id, ordinal)
                pipe.hget(k.meta, "count")
                pipe.xrevrange(k.log, max="+", min="-", count=1)
                pipe.zcount(k.deleted, "(%d" % keys.id_score(read_id) if read_id else "-inf", "+inf")
                pipe.zcount(rk.at(room), "(%d" % keys.id_score(read_id) if read_id else "-inf", "+inf")
            counts = pipe.execute()
        out = []
        for i, room in enumerate(rooms):
            count, newest, deleted, mentions = counts[4 * i:4 * i + 4]
            read_id, ordinal = reads[room]
            last_id = newest[0][0] if newest else None
            unread = max(0, int(count or 0) - ordinal - int(deleted)) if read_id else 0
            out.append({"room": room, "unread": unread, "mentions": int(mentions) if read_id else 0,
                        "last_id": last_id, "read_id": read_id,
                        "last_activity": int(last_id.split("-")[0]) if last_id else 0})
        out.sort(key=lambda entry: (-entry["last_activity"], entry["room"]))
        return out

    def position(self, reader, room):
        """The id of the newest message the person read in ``room``, or None."""
        return _position(self.redis.hget(ReaderKeys(reader.id).read, room))[0]

    def snapshot_reads(self, pipe, reader, rooms):
        """The data (str) of the ``event: unread`` a stream opens with: the counts of ``rooms``
        (the sidebar's that the person may still read). Its first read (the person's read
        positions) is queued on ``pipe``, a round trip that carries others
        (app/rooms/reads.py); returns finish(replies) -> that str, reading the rooms' counts in
        one more round trip when there are ``rooms``. Raises redis.RedisError."""
        pipe.hgetall(ReaderKeys(reader.id).read)

        def finish(replies):
            entries = self.entries(reader, rooms, positions=replies[0])
            return json.dumps({"rooms": entries, "complete": True}, ensure_ascii=False, separators=(",", ":"))
        return finish

    # -- mentions ------------------------------------------------------------------------------

    def mentioned(self, room, mid, readers):
        """Record that message ``mid`` of ``room`` mentions each of ``readers`` (reader ids)."""
        ms = int(mid.split("-")[0])
        with self.redis.pipeline(transaction=False) as pipe:
            for reader in readers:
                rk = ReaderKeys(reader)
                pipe.zadd(rk.mentions, {"%s\n%s" % (room, mid): ms})
                pipe.zremrangebyrank(rk.mentions, 0, -MAX_MENTIONS - 1)
                pipe.expire(rk.mentions, self.lifetime)
                pipe.zadd(rk.at(room), {mid: keys.id_score(mid)})
                pipe.zremrangebyrank(rk.at(room), 0, -MAX_MENTIONS - 1)
                pipe.expire(rk.at(room), self.lifetime)
            pipe.execute()

    def unmentioned(self, room, mid, readers):
        """Message ``mid`` of ``room`` (deleted) no longer mentions ``readers`` (reader ids)."""
        with self.redis.pipeline(transaction=False) as pipe:
            for reader in readers:
                rk = ReaderKeys(reader)
                pipe.zrem(rk.mentions, "%s\n%s" % (room, mid))
                pipe.zrem(rk.at(room), mid)
            pipe.execute()

    def mentions(self, reader, before=None, limit=50, allow=None):
        """The person's mentions, newest first, older than ``before`` (ms) when given: (list of
        {"room", "id", "ts", "user", "text"}, more). Messages gone from their room are left out."""
        rk = ReaderKeys(reader.id)
        top = "(%d" % before if before is not None else "+inf"
        # All of them (at most MAX_MENTIONS are kept): those of rooms the person may no longer
        # read, and of messages gone, are left out *before* the page is cut, so a page is never
        # short (or empty with "more") for them, and its last mention is the next page's anchor.
        found = self.redis.zrevrangebyscore(rk.mentions, top, "-inf", start=0, num=MAX_MENTIONS)
        pairs = [member.split("\n", 1) for member in found]
        if allow is not None:  # a private room's messages only while the person is a member
            allowed = set(allow(list(dict.fromkeys(room for room, _ in pairs))))
            pairs = [(room, mid) for room, mid in pairs if room in allowed]
        out = []
        for start in range(0, len(pairs), limit + 1):  # a page (and one more) at a time
            batch = pairs[start:start + limit + 1]
            with self.redis.pipeline(transaction=False) as pipe:
                for room, mid in batch:
                    # The message as it is now: an edited or reacted-to one has left the log
                    # for the room's ``changed`` versions (app/rooms/conversation.py).
                    rk, padded = keys.RoomKeys(room), keys.padded(mid)
                    pipe.xrange(rk.log, min=mid, max=mid, count=1)
                    pipe.zrangebylex(rk.changed, "[" + padded + "|", "(" + padded + "}", start=0, num=1)
                found = pipe.execute()
            for (room, mid), entry, changed in zip(batch, found[::2], found[1::2]):
                if changed:
                    message = json.loads(changed[0].partition("|")[2])
                elif entry and "e" not in entry[0][1]:
                    message = json.loads('{"id":"%s","ts":%s,%s' % (mid, mid.split("-")[0], entry[0][1]["m"]))
                else:
                    continue  # trimmed away
                if message.get("deleted"):
                    continue
                out.append({"room": room, "id": mid, "ts": message["ts"], "user": message.get("user"),
                            "text": message.get("text", "")})
            if len(out) > limit:
                break
        return out[:limit], len(out) > limit

    # -- telling the person's devices ---------------------------------------------------------

    def _tell(self, reader, event, data, raw=False, then=None):
        """Publish an unnumbered event on each of the person's session channels: every open
        stream of theirs, on every device, relays it (app/delivery/position.py, ``!<event>``);
        ``#<verb>`` with ``raw`` text is a control the streams act on instead. ``then``: a
        second (event, data) told right after it, in the same round trip."""
        if not reader.sids:
            return
        text = data if raw else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        payloads = ["!%s\n%s" % (event, text)]
        if then is not None:
            payloads.append("!%s\n%s" % (then[0], json.dumps(then[1], ensure_ascii=False, separators=(",", ":"))))
        with self.redis.pipeline(transaction=False) as pipe:
            for payload in payloads:
                for sid in reader.sids:
                    pipe.execute_command(self.publish_command, keys.PersonKeys(sid).channel, payload)
            pipe.execute()


def _fields(fields):
    # A cluster's MULTI pipeline hands back the raw [field, value, ...] list, not a dict.
    return dict(zip(fields[::2], fields[1::2])) if isinstance(fields, list) else fields


def _position(raw):
    """(read id, ordinal) from a read hash value, or (None, 0)."""
    if not raw:
        return None, 0
    mid, _, ordinal = raw.partition(" ")
    try:
        return mid, int(ordinal)
    except ValueError:
        return mid, 0
