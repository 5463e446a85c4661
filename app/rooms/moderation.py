"""Moderation that takes effect at once, everywhere: removals, bans, slow mode, deleting a room,
and the record of every action.

A removal, a ban or a deletion is one script on the room's slot that changes the record and
publishes a control payload (app/position.py: ``!#<verb>\\n<argument>``) on the room's channel.
Every open stream of the room, on every worker and host, hears it within a pub/sub hop and asks
its ``StreamGate`` whether the word is for it; if so it sends the event that says why and ends.
Its reconnect meets the gate in front of the stream (404 or 403): an EventSource stops there.

Control verbs on a room's channel:
  ``removed <uid>``   the member was removed from the room's members (streams of that person end)
  ``left <uid>``      the member left by themselves (the same, but their streams say so)
  ``banned <key>\n<until>``  a uid, "addr:<address>" or a guest's "name:<folded name>" was
                      banned until that time (ms; 0: for good): their streams end
  ``access``          the room's visibility changed: each stream checks its access again
  ``deleted``         the room is gone: every stream ends with ``event: room-deleted``
Control verb on a room's activity channel (heard by the streams of *other* rooms that follow
this one for their person's sidebar, app/web/api.py ``_follow_sidebar``):
  ``unwatch <room>``  someone may have lost this room (a removal, a ban, made private): each
                      such stream asks whether its person still reads it, and if not ends with
                      a reconnect, whose sidebar no longer follows it (nothing is lost: the
                      reconnect resumes from its cursor)

Records of actions: ``ripple:{r:<room>}:audit`` (the room's own, capped) and ``ripple:audit``
(every room's, for administrators), Redis Streams of {"at", "room", "actor", "actor_name",
"action", "target", "detail"}. Nothing here knows about Flask.
"""
import hashlib
import json
import secrets

from . import deletions, keys
from .records import REGISTRY, RecordKeys, now_ms

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

AUDIT = "ripple:audit"
ROOM_AUDIT_LENGTH = 1000
AUDIT_LENGTH = 10000
VERBS = frozenset((b"removed", b"left", b"banned", b"access", b"deleted", b"unwatch"))
RECONNECT_FRAME = b"retry: 1000\n\n"  # the end of a stream that must come back following less

SENTENCES = {
    "removed": N_("You were removed from #%s."),
    "left": N_("You left #%s."),
    "banned": N_("You were banned from #%s."),
    "banned_for_good": N_("You are banned from #%s."),
    "deleted": N_("#%s was deleted by its owner or an administrator."),
    "private": N_("#%s is now private: only its members can read it."),
    "slow": N_("Slow mode is on in #%s: one message every %d s. You can post again in %d s."),
}

# KEYS: bans, members, channel, activity channel, info, removed.  ARGV: key, ban JSON, payload,
# unwatch payload, now (ms), the person's uid (the key, but for a guest's name's key:
# records.guest_ban_key).  Record the ban,
# end the person's membership, mark a person (not an address) removed (older invitations no
# longer admit them, even once the ban lapses), tell their streams (this room's, and, in a
# private room, their other rooms' that follow this one's activity: a public room's activity is
# anyone's, and its watchers need not all look again).
_BAN_LUA = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[6])
if string.sub(ARGV[1], 1, 5) ~= 'addr:' then redis.call('HSET', KEYS[6], ARGV[6], ARGV[5]) end
redis.call('PUBLISH', KEYS[3], ARGV[3])
if redis.call('HGET', KEYS[5], 'visibility') == 'private' then redis.call('PUBLISH', KEYS[4], ARGV[4]) end
return 1
"""

# KEYS: members, channel, activity channel, info, removed.  ARGV: uid, payload, unwatch payload,
# now (ms) or "" (they left by themselves: no mark).
# Returns 1 if they were a member.
_REMOVE_LUA = """
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[5], ARGV[1], ARGV[4]) end
redis.call('PUBLISH', KEYS[2], ARGV[2])
if redis.call('HGET', KEYS[4], 'visibility') == 'private' then redis.call('PUBLISH', KEYS[3], ARGV[3]) end
return removed
"""

# KEYS: the room's history, its tombstone (RecordKeys.gone), its other fixed keys, its channel
# last.  ARGV: how long the tombstone stays (s).  Keep the last id the history ever gave as the
# tombstone (a stream resuming from it is refused: the room is gone, not empty), delete the keys,
# then tell the streams. The last id it gave, not its last entry's: entries after that one may
# have left it (a changed message moves to the changed versions, a trim by age), and their ids
# are cursors clients hold. XINFO STREAM answers a script a flat list (RESP2) on Redis 6.2, 7
# and Valkey alike.
_DELETE_LUA = """
local log, tombstone = KEYS[1], KEYS[2]
local upto = false
if redis.call('EXISTS', log) == 1 then
  local info = redis.call('XINFO', 'STREAM', log)
  for i = 1, #info, 2 do if info[i] == 'last-generated-id' then upto = info[i + 1] end end
end
local channel = table.remove(KEYS)
table.remove(KEYS, 2)
local gone = redis.call('DEL', unpack(KEYS))
if upto and upto ~= '0-0' then redis.call('SET', tombstone, upto, 'EX', ARGV[1]) end
redis.call('PUBLISH', channel, '!#deleted\\n')
return gone
"""
GONE_SECONDS = 7 * 86400  # how long a deleted room's streams are refused their reconnect

# KEYS: the person's slow-mode key, the post's idempotency key.  ARGV: interval (ms).
# A retry of a post already stored (its idempotency key is known) is never held back.
# Returns 0 (post now: the wait starts, holding ARGV[2]), -1 (a retry: post, nothing starts)
# or the ms to wait.
_SLOW_LUA = """
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[1]) then return 0 end
return math.max(1, redis.call('PTTL', KEYS[1]))
"""
# Gives a wait back only if it is still the one this post started (its token).
_SLOW_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Moderation:
    """Bans, removals, slow mode, deletion and the audit records of the rooms."""

    def __init__(self, client, publish_command="PUBLISH", max_bans=1000):
        self.redis = client
        self.max_bans = int(max_bans)
        command = "'%s'" % publish_command
        self._ban = client.register_script(_BAN_LUA.replace("'PUBLISH'", command))
        self._remove = client.register_script(_REMOVE_LUA.replace("'PUBLISH'", command))
        self._delete = client.register_script(_DELETE_LUA.replace("'PUBLISH'", command))
        self._slow = client.register_script(_SLOW_LUA)
        self._slow_release = client.register_script(_SLOW_RELEASE_LUA)
        self.publish_command = publish_command
        # Read positions and sidebars (app/people/reading.py Reading, wired in app/ops/services.py):
        # a deleted room leaves the sidebars of the people who had it.
        self.sidebars = None

    def remove(self, room, uid, leaving=False):
        """End ``uid``'s membership and their open streams in ``room``; True if a member. A
        removal (not ``leaving``) also refuses them every invitation made before it: only a
        new invitation (or the owner adding them) lets them back."""
        k = RecordKeys(room)
        return bool(self._remove(keys=[k.members, k.channel, keys.RoomKeys(room).activity, k.info, k.removed],
                                 args=[uid, "!#%s\n%s" % ("left" if leaving else "removed", uid), unwatch(room),
                                       "" if leaving else now_ms()]))

    def ban(self, room, key, name, by, seconds=None, uid=None):
        """Ban ``key`` (a uid, "addr:<address>", or a guest's name's key with the guest's
        ``uid``) from ``room`` for ``seconds`` (None: for good); their membership and open
        streams end. Returns the ban record. Raises ValueError past RIPPLE_ROOM_BANS_MAX bans in
        force."""
        k = RecordKeys(room)
        if self.redis.hlen(k.bans) >= self.max_bans:
            self.active_bans(room)  # drops the expired ones
            if self.redis.hlen(k.bans) >= self.max_bans and not self.redis.hexists(k.bans, key):
                raise ValueError(N_("This room has reached its limit of %d bans.") % self.max_bans)
        now = now_ms()
        record = {"until": now + int(seconds * 1000) if seconds else 0, "name": name, "by": by, "at": now}
        self._ban(keys=[k.bans, k.members, k.channel, keys.RoomKeys(room).activity, k.info, k.removed],
                  args=[key, json.dumps(record, ensure_ascii=False), "!#banned\n%s\n%d" % (key, record["until"]),
                        unwatch(room), now, uid or key])
        return {"user": key, **record}

    def unban(self, room, key):
        """Lift a ban; True if there was one."""
        return bool(self.redis.hdel(RecordKeys(room).bans, key))

    def active_bans(self, room):
        """The bans in force in ``room``: [{"user", "until", "name", "by", "at"}]; expired ones go."""
        k = RecordKeys(room)
        now, active, expired = now_ms(), [], []
        for key, raw in self.redis.hgetall(k.bans).items():
            record = json.loads(raw)
            if record.get("until") and record["until"] <= now:
                expired.append(key)
            else:
                active.append({"user": key, **record})
        if expired:
            self.redis.hdel(k.bans, *expired)
        return sorted(active, key=lambda b: -b["at"])

    def recheck(self, room):
        """Ask every open stream of ``room`` to check its access again (visibility changed)."""
        self.redis.execute_command(self.publish_command, RecordKeys(room).channel, "!#access\n")
        self.redis.execute_command(self.publish_command, keys.RoomKeys(room).activity, unwatch(room))

    def delete(self, room):
        """Delete the room's record, members, bans, invites, audit and history; every open
        stream ends with ``event: room-deleted``, and its reconnect is refused for GONE_SECONDS
        (the tombstone RecordKeys.gone), and its name says it was deleted (app/rooms/deletions.py).
        It leaves its people's sidebars. The room's short-lived keys (idempotency, slow
        mode, typing) are found and deleted too, and the lobby and the registry forget it."""
        k, h = RecordKeys(room), keys.RoomKeys(room)
        holders = self.sidebars.holders(room) if self.sidebars is not None else ()  # before they go
        self._delete(keys=[h.log, k.gone, k.info, k.members, k.bans, k.invites, k.audit, h.meta, h.online,
                           h.changed, k.channel], args=[GONE_SECONDS])
        leftovers = [key for key in self.redis.scan_iter(match=_glob_escape(k.tag) + ":*", count=1000)
                     if key != k.gone]
        for start in range(0, len(leftovers), 500):
            # One key at a time would be needed on a Cluster only across slots; these share one.
            self.redis.delete(*leftovers[start:start + 500])
        with self.redis.pipeline(transaction=False) as pipe:  # other slots: outside the script
            pipe.zrem(REGISTRY, room)
            pipe.zrem(keys.ROOMS_INDEX, room)
            pipe.execute()
        deletions.mark(self.redis, room, GONE_SECONDS)  # its page says so meanwhile
        if self.sidebars is not None:
            self.sidebars.forget_room(room, holders)

    def slow_wait(self, room, uid, seconds, idempotency_key):
        """Under slow mode, may ``uid`` post in ``room`` now? Returns (ms to wait, token): wait
        0 and a token (str) when the wait starts now, to give back with ``slow_release`` if the
        post is then not stored; 0 and None for a retry of a stored post (``idempotency_key``:
        the Redis key such a retry finds, or None), which starts nothing; > 0 and None: refused."""
        wait_key = _slow_key(room, uid)
        token = secrets.token_hex(8)
        wait = int(self._slow(keys=[wait_key, idempotency_key or wait_key + ":none"],
                              args=[int(seconds * 1000), token]))
        return (0, token) if wait == 0 else (max(0, wait), None)

    def slow_release(self, room, uid, token):
        """Give back the slow-mode wait ``slow_wait`` started with ``token``: the post it let
        through was refused or failed before it was stored, so it must not hold the next back.
        A wait started by a later post (another token) is left alone."""
        self._slow_release(keys=[_slow_key(room, uid)], args=[token])

    def record(self, room, actor, actor_name, action, target="", detail=""):
        """Record one action in the room's audit and the service's."""
        entry = {"at": now_ms(), "room": room, "actor": actor or "", "actor_name": actor_name or "",
                 "action": action, "target": target or "", "detail": detail or ""}
        with self.redis.pipeline(transaction=False) as pipe:
            if action != "delete-room":  # the room's own record goes with the room
                pipe.xadd(RecordKeys(room).audit, entry, maxlen=ROOM_AUDIT_LENGTH, approximate=True)
            pipe.xadd(AUDIT, entry, maxlen=AUDIT_LENGTH, approximate=True)
            pipe.execute()

    def audit(self, room=None, count=100):
        """The newest ``count`` actions, newest first: one room's, or every room's."""
        key = RecordKeys(room).audit if room else AUDIT
        return [_entry(fields) for _, fields in self.redis.xrevrange(key, count=count)]


def _slow_key(room, uid):
    """The key holding ``uid``'s slow-mode wait in ``room`` (the uid hashed: no name in keys)."""
    return RecordKeys(room).slow(hashlib.sha256(uid.encode()).hexdigest()[:16])


def _entry(fields):
    entry = dict(fields)
    entry["at"] = int(entry.get("at") or 0)
    return entry


def _glob_escape(text):
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def unwatch(room):
    """The control payload telling the streams that follow ``room``'s activity to look again."""
    return "!#unwatch\n" + room


class StreamGate:
    """What one open stream answers to in its room: the keys naming its person (uid and
    "addr:<address>"), and ``look``, what asks the room's rules afresh: ``look.check()``, a
    fresh look at its access (returns "banned", "removed" or None), ``look.check_reads(pipe)``,
    the same look as a read another round trip carries (queue(pipe) -> finish(replies) -> the
    same answer: app/rooms/reads.py), and ``look.reads(room)`` (bool), whether its person may
    still read another room whose activity it follows. Pure: the stream calls ``closing`` with
    each control payload it hears. One per open stream, so it keeps one object of the caller's
    (app/web/gate.py RoomLook, ~0.2 KB) rather than a closure per question (~1 KB)."""

    __slots__ = ("room", "who", "look", "checks_on_open")

    def __init__(self, room, who, look, checks_on_open=True):
        self.room, self.look, self.checks_on_open = room, look, checks_on_open
        self.who = frozenset(w.encode() for w in who if w)

    def opening_reads(self, pipe):
        """Queue on ``pipe`` the look a stream takes once subscribed (``closing(b"access",
        b"")``'s); returns finish(replies) -> its last frame, or None."""
        finish = self.look.check_reads(pipe)

        def closing(replies):
            reason = finish(replies)
            return frame("removed", self.room, reason) if reason else None
        return closing

    def closing(self, verb, argument):
        """The last frame of this stream if the control ``verb``/``argument`` (bytes) ends it,
        else None. ``access`` costs a Redis round trip (check); the others none."""
        if verb == b"deleted":
            return frame("room-deleted", self.room, "deleted")
        if verb in (b"removed", b"left", b"banned"):
            argument, _, until = argument.partition(b"\n")  # a ban says until when
            if argument not in self.who:
                return None
            if argument.startswith(b"addr:"):  # spares the room's owner and moderators there
                reason = self.look.check()  # (which ban it finds is not said: no time then)
                return frame("removed", self.room, reason) if reason else None
            return frame("removed", self.room, verb.decode(), int(until) if until.isdigit() else 0)
        if verb == b"access":
            reason = self.look.check()
            return frame("removed", self.room, reason) if reason else None
        if verb == b"unwatch" and argument.decode() != self.room:
            # Another room's activity: a person who lost it must not hear it any more.
            return None if self.look.reads(argument.decode()) else RECONNECT_FRAME
        return None


def frame(event, room, reason, until=0):
    """The SSE frame that ends a stream: ``event: removed`` {"room", "reason", "message"}
    (reason "removed", "left" or "banned"; a ban for a time adds "until", when it lapses in ms
    since the epoch, and "seconds_left" by the server's clock: a browser's may be off), or
    ``event: room-deleted`` {"room", "reason", "message"}."""
    said = {"room": room, "reason": reason, "message": SENTENCES[reason] % room}
    if until and reason == "banned":
        said["until"], said["seconds_left"] = until, max(0, -(-(until - now_ms()) // 1000))
    data = json.dumps(said, ensure_ascii=False)
    return ("event: %s\ndata: %s\n\n" % (event, data)).encode()  # one line: json escapes breaks
