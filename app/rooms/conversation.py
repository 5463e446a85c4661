"""A message's later life: edits, deletions and reactions, each a numbered event on the room's log.

Where things are (one room's keys, one Cluster slot):

- the log (a Stream) holds the messages and, between them, the change events: entries
  ``{"e": "<event name>", "m": <json body>}`` with ids of their own, so a stream's cursor covers
  them and a client that was away learns each of them once, in order, on resume;
- ``changed`` (a sorted set read by lex, keys.RoomKeys.changed) holds the current version of every
  message that was edited, deleted or reacted to, as ``"<padded id>|<message json>"``. Its entry
  leaves the log then (XDEL), so an earlier text is stored nowhere (a deletion removes the
  message's edit events too: they carry its texts); history pages, room pages,
  a fresh stream's backlog and an idempotent retry read the current version (app/store.py
  merges the two in id order), never a replay of the edits.

A change is read, decided here in Python (the rules), and written by one script (_CHANGE_LUA)
that first checks the message is still what was read (compare and set): when someone else
changed it in between (two reactions on two workers), it is read and decided again.

Event payloads (one line of JSON each, ``id`` and ``ts`` the event's own):
  edit      {"id", "ts", "room", "message_id", "user", "text", "edited_ts", "mentions"}
            (``mentions``: the names the new text mentions, app/rooms/mentions.py; [] for none)
  delete    {"id", "ts", "room", "message_id", "by", "reason"?}
  reaction  {"id", "ts", "room", "message_id", "emoji", "user", "on", "reactions"}
Message fields these add: ``edited_ts`` (ms), ``deleted`` (true; ``text`` is then "" and
``reactions`` and ``reply_to`` are gone) with ``deleted_ts``, ``reactions``
``{"<emoji>": {"count": n, "users": [names, in the order they reacted], "uids": [their uids,
in the same order]}}``: who reacted is a uid (a name can pass to someone else), the names are
for showing; a reaction stored before uids has None in their place (nobody's).

Moderation (issue 15) deletes someone else's message with ``Conversation.delete(room,
message_id, by, reason=...)`` (``services().conversation``; app/web/changes.py
``delete_message`` is the same from a request): the permission rule is ``moderates``.
"""
import json
import logging
import time
from collections import namedtuple
from datetime import timedelta

import emoji as emoji_data
import redis
from babel.dates import format_timedelta

from ..people import names
from . import keys, messages
from .records import MODERATING, TOKEN_PREFIX
from .store import ACTIVITY_EXCERPT, TRIM_LUA, NotReplicated, beyond, entry_fields, hold

logger = logging.getLogger(__name__)

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

# Who acts: a display name, the stable id messages carry as "uid" (None: not a signed-in
# person), and whether the account is a site administrator.
Person = namedtuple("Person", "name uid admin", defaults=(False,))

DEFAULT_REACTIONS = ("👍", "❤️", "😂", "🎉", "😮", "😢")
MAX_REACTIONS = 20        # distinct emoji on one message
MAX_EMOJI_CHARS = 16      # code points in one emoji (families and flags are several)
_ATTEMPTS = 20            # reads and writes of one change when others keep changing the message

# KEYS: log, channel, meta, changed, deleted.  ARGV: message id, its padded id, what it must still
# be ("log": its entry in the log; else its exact member in ``changed``), its new member, event
# name, event body (json without its leading brace), history length, and for the deletion of
# an edited message '"message_id":"<id>"' ('' otherwise): its edit events, which carry texts it
# had, leave the log too (a deleted text comes back through no replay); the id's score
# (keys.id_score: a deletion is counted in ``deleted``, so unread counts leave it out).
# An empty event name stores the new version and nothing else: no event, no id, no publish (a
# reply's quote scrubbed after the message it quotes was deleted: clients had the delete event).
# Returns {1, event json}, or {0} when the message changed (or left) since it was read.
# KEYS 6-8 and ARGV[10]: the change's idempotency key (its sender's, in the log's slot), its
# request digest and its withdrawal (store.withdrawal_key), and their ttl (s; 0: no key). A
# change whose key was withdrawn (POST /rooms/<room>/withdrawals: its sender chose "Don't save"
# while an attempt was unanswered) does nothing, however late it arrives: {-3}. One that is
# done remembers the message's id under its key, so a withdrawal after it says it was done; a key
# that named a post, or a change of another message, does nothing: {-2} (messages.KeyReused).
# With webhooks, more KEYS and ARGV after these queue the event for them (app/webhooks/queue.py).
_CHANGE_LUA = TRIM_LUA + """
local keyed = tonumber(ARGV[10]) or 0
if keyed > 0 and redis.call('EXISTS', KEYS[8]) == 1 then return {-3} end
if ARGV[3] == 'log' then
  if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return {0} end
else
  local now = redis.call('ZRANGEBYLEX', KEYS[4], '[' .. ARGV[2] .. '|', '(' .. ARGV[2] .. '}', 'LIMIT', 0, 1)
  if now[1] ~= ARGV[3] then return {0} end
end
if keyed > 0 then
  local had = redis.call('GET', KEYS[6])  -- the key of a post, or of a change to another message
  if had and (had ~= ARGV[1] or redis.call('GET', KEYS[7]) ~= 'change') then return {-2} end
  redis.call('SET', KEYS[6], ARGV[1], 'EX', keyed)
  redis.call('SET', KEYS[7], 'change', 'EX', keyed)  -- a post reusing the key: KeyReused
end
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = newest[1] and newest[1][1] or '0-0'
if ARGV[8] ~= '' then
  for _, entry in ipairs(redis.call('XRANGE', KEYS[1], ARGV[1], '+')) do
    local fields = entry[2]
    if fields[1] == 'e' and fields[2] == 'edit' and string.find(fields[4], ARGV[8], 1, true) then
      redis.call('XDEL', KEYS[1], entry[1])
    end
  end
end
if ARGV[3] == 'log' then
  redis.call('XDEL', KEYS[1], ARGV[1])
else
  redis.call('ZREM', KEYS[4], ARGV[3])
end
redis.call('ZADD', KEYS[4], 0, ARGV[4])
if ARGV[5] == '' then return {1, ''} end
if ARGV[5] == 'delete' then
  redis.call('ZADD', KEYS[5], ARGV[9], ARGV[1])
  redis.call('ZREMRANGEBYRANK', KEYS[5], 0, -10001)
end
local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[5], 'm', ARGV[6])
local json = '{"id":"' .. id .. '","ts":' .. string.match(id, '^(%d+)') .. ',' .. ARGV[6]
trim(KEYS[1], KEYS[3], KEYS[4], tonumber(ARGV[7]))
-- publish --
redis.call('HDEL', KEYS[3], 'confirmed')
redis.call('PUBLISH', KEYS[2], '~' .. id .. ' ' .. prev .. ' ' .. ARGV[5] .. '\\n' .. json)
-- published --
-- webhooks --
return {1, json}
"""

N_ = str  # marks a sentence for the translation catalogue; app/web/changes.py translates it

# Each refusal's sentence (English, ``%(name)s`` for its params), by its stable code.
SENTENCES = {
    "unknown_message": N_("There is no such message in this room (it may be too old to be kept)."),
    "not_yours_edit": N_("You can only edit your own messages."),
    "not_yours_delete": N_("You can only delete your own messages."),
    "edit_window": N_("This message can no longer be edited: messages can be edited for %(window)s "
                      "after sending."),
    "deleted": N_("That message was deleted."),
    "bad_emoji": N_("A reaction must be one emoji, such as 👍."),
    "too_many_reactions": N_("This message has as many different reactions as it can take (%(max)s)."),
    "signed_out": N_("Sign in to do that."),
    "busy": N_("Too many changes to this message at once; try again."),
    "edit_conflict": N_("This message was changed elsewhere since you started editing it; your text is "
                        "kept here: look at the message as it is now, then edit again."),
    "withdrawn": N_("This change was withdrawn before it was saved, so it was not made."),
}


class Refused(Exception):
    """A change the rules refuse: ``status`` (HTTP), a stable ``code``, the sentence's
    ``params``, and ``fields`` a JSON answer carries beside them; ``str()`` is the English sentence."""

    def __init__(self, status, code, fields=None, **params):
        super().__init__(SENTENCES[code] % params if params else SENTENCES[code])
        self.status, self.code, self.params, self.fields = status, code, params, fields or {}


def check_emoji(text):
    """Return ``text`` if it is one emoji (any single emoji, skin tones, flags and ZWJ
    sequences included), else raise Refused (422 bad_emoji)."""
    if (not isinstance(text, str) or not text or len(text) > MAX_EMOJI_CHARS
            or not emoji_data.is_emoji(text)):
        raise Refused(422, "bad_emoji")
    return text


def reacted(reactions, emoji):
    """([names], [uids]) of those who reacted ``emoji`` (of a message's ``reactions``), in the
    order they did; None for a uid a reaction stored before uids did not keep."""
    entry = reactions.get(emoji) or {}
    users = list(entry.get("users", []))
    uids = list(entry.get("uids") or [])
    return users, (uids + [None] * len(users))[:len(users)]


def window(seconds, locale="en"):
    """The edit window of ``seconds`` in words ("15 minutes", "5 seconds", "90 minutes"); the
    web layer says it in the reader's language (``locale``)."""
    return format_timedelta(timedelta(seconds=seconds), threshold=2, locale=locale)


def _keyed(by, key):
    """(scope, key) of a change's idempotency ``key`` (str or None) sent by ``by`` (a Person):
    its sender's, as a post's (messages.idempotency_scope); None without a key."""
    return None if key is None else (messages.idempotency_scope(by.name, by.uid), key)


def _dump(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Conversation:
    """Edits, deletions and reactions of one app's rooms (a Store's Redis client)."""

    def __init__(self, store, edit_window_seconds=900, publish_command="PUBLISH", rooms=None):
        self.store, self.redis = store, store.redis
        self.rooms = rooms  # room records (app/rooms/records.py): who moderates which room
        self.edit_window = int(edit_window_seconds)
        self.on_delete = None  # (room, id, mentioned names): app/rooms/mentions.py Mentions.forget
        outbox = store.outbox  # the webhooks' queue, or None
        script = _CHANGE_LUA.replace("-- webhooks --", outbox.PUBLISH_LUA if outbox is not None else "")
        if store.replica_acks:  # the event waits for WAIT (store.hold)
            script = hold(script)
        self._change = self.redis.register_script(script.replace("'PUBLISH'", "'%s'" % publish_command))
        self.publish_command = publish_command

    def message(self, room, message_id):
        """The message (a dict) as it is now, or None when the room holds no such message."""
        if keys.parse_stream_id(message_id or "") is None:
            return None
        found = self.store.current(keys.RoomKeys(room), message_id)
        return None if found is None else json.loads(found)

    def edit(self, room, message_id, by, text, max_chars, base=None, key=None):
        """Replace the text of ``by``'s own message (within the edit window); return the message.

        ``base`` (optional): the ``edited_ts`` the editor saw when they started (0: unedited). When
        the message was edited since (its ``edited_ts`` is another) to a text other than ``text``,
        the edit is refused (409 edit_conflict), checked in the same compare and set as the write:
        an edit waiting offline never overwrites a newer one. None: the last edit wins.

        Raises Refused: 404 unknown_message, 409 deleted, 403 not_yours_edit, 409 edit_window,
        409 edit_conflict (its ``fields``: the message's ``text`` and ``edited_ts`` now);
        messages.Invalid for a text the rules refuse. The same text again
        changes nothing, whatever ``base`` (a retry of an edit that did land). ``key``: the
        edit's idempotency key (str, or None), by which its sender may withdraw it (409
        withdrawn: Store.withdraw), as for ``delete`` and ``react``.
        """
        text = messages.check_text(text, max_chars)
        mentions = self.store.mentions
        resolved = {}  # the edit's mentions, and the message's before it: once the edit is decided

        def decide(message):
            resolved.clear()  # an earlier attempt's (someone changed the message meanwhile)
            if message.get("deleted"):
                raise Refused(409, "deleted")
            if not by.uid or message.get("uid") != by.uid:
                raise Refused(403, "not_yours_edit")
            if time.time() * 1000 - message["ts"] > self.edit_window * 1000:
                raise Refused(409, "edit_window", window=window(self.edit_window), seconds=self.edit_window)
            if message["text"] == text:
                return None
            if base is not None and message.get("edited_ts", 0) != base:
                # The text and version it has now: the editor's page can tell its own earlier
                # edit (its answer lost) from someone else's, and edit again from that version.
                raise Refused(409, "edit_conflict",
                              fields={"text": message["text"], "edited_ts": message.get("edited_ts", 0)})
            if mentions is not None:
                # The new text's mentions replace the old ones (a mistyped "@name" mended in
                # an edit reaches its person), resolved as a post's are.
                mentioned = mentions.resolve(room, text, message["user"])
                resolved.update(before=message.pop("mentions", []), now=mentioned)
                if mentioned:
                    message["mentions"] = [person["name"] for person in mentioned]
            message["text"] = text
            message["edited_ts"] = int(time.time() * 1000)
            return "edit", {"room": room, "message_id": message["id"], "user": message["user"],
                            "text": text, "edited_ts": message["edited_ts"],
                            "mentions": message.get("mentions", [])}

        message, unconfirmed = self._applied(room, message_id, decide, _keyed(by, key))
        if resolved:
            try:
                self._remention(room, message, resolved["before"], resolved["now"])
            except redis.RedisError:  # the edit is stored: a stale count must not fail it
                logger.warning("could not update mentions after an edit room=%s id=%s", room, message["id"],
                               exc_info=True)
        if unconfirmed is not None:
            raise unconfirmed
        return message

    def _remention(self, room, edited, before, now):
        """After an edit (``edited``: the message as the edit stored it): the people it newly
        mentions get the mention counted; those it no longer mentions lose it (best effort, as
        for a post: the edit is stored)."""
        mentions, message_id = self.store.mentions, edited["id"]
        kept = {names.fold(name) for name in before}
        added = [person for person in now if names.fold(person["name"]) not in kept]
        still = {names.fold(person["name"]) for person in now}
        dropped = [name for name in before if names.fold(name) not in still]
        if dropped:
            mentions.forget(room, message_id, dropped)
        current = edited
        if added:
            mentions.record(room, message_id, added)
            # A later edit or a deletion that came in between forgot its names before this
            # record: what the message mentions now decides (one read, only when adding).
            current = self.message(room, message_id)
            if current is None or current.get("deleted"):
                stale = [person["name"] for person in added]
            else:
                named = {names.fold(name) for name in current.get("mentions", [])}
                stale = [person["name"] for person in added if names.fold(person["name"]) not in named]
            if stale:
                mentions.forget(room, message_id, stale)
                added = [person for person in added if person["name"] not in stale]
        if added or dropped:
            self._tell_sidebars(room, current or edited, [person["name"] for person in added], dropped)

    def _tell_sidebars(self, room, message, added, removed):
        """Tell the sidebars that follow ``room`` (its activity channel) that ``message`` (a
        dict) now mentions ``added`` and no longer ``removed`` (names): an unnamed event
        ``mentions`` {"room", "id", "added", "removed", "user", "text"?: the first 140
        characters, when it adds someone: for their notification}. Best effort: the change is
        stored, and the counts are right at the next count anyway."""
        event = {"room": room, "id": message["id"], "added": added, "removed": removed,
                 "user": message.get("user")}
        if added:
            event["text"] = message.get("text", "")[:ACTIVITY_EXCERPT]
        self._publish_to_sidebars(room, message["id"], "mentions", event)

    def _tell_sidebars_of_deletion(self, room, message):
        """Tell the sidebars that follow ``room`` that ``message`` (a dict) is deleted: an
        unnamed event ``deleted`` {"room", "id"}; a page that counted it as unread counts again.
        Best effort, as _tell_sidebars."""
        self._publish_to_sidebars(room, message["id"], "deleted", {"room": room, "id": message["id"]})

    def _publish_to_sidebars(self, room, message_id, event, data):
        try:
            self.redis.execute_command(self.publish_command, keys.RoomKeys(room).activity,
                                       "!%s\n%s" % (event, _dump(data)))
        except redis.RedisError:
            logger.warning("could not tell sidebars of %s room=%s id=%s", event, room, message_id,
                           exc_info=True)

    def delete(self, room, message_id, by, reason=None, key=None):
        """Delete a message: its text is removed from storage, and every page shows
        "message deleted" in its place from now on (live, and on every replay and reload).

        ``by`` (a Person) is its author, or someone allowed to delete others' messages:
        a site administrator; a room's moderators too once rooms have roles (``moderates``).
        ``reason`` (optional, moderators') travels on the event. Deleting a deleted message
        changes nothing. Raises Refused: 404 unknown_message, 403 not_yours_delete.
        """
        deleted = []  # whether this call deleted it (not someone before)

        def decide(message):
            deleted[:] = [False]
            if message.get("deleted"):
                return None
            self._may_delete(room, message, by)
            now = int(time.time() * 1000)
            for field in ("text", "reactions", "reply_to", "edited_ts"):
                message.pop(field, None)
            message.update(text="", deleted=True, deleted_ts=now)
            event = {"room": room, "message_id": message["id"], "by": by.name}
            if reason:
                event["reason"] = str(reason)[:200]
            deleted[:] = [True]
            return "delete", event

        message, unconfirmed = self._applied(room, message_id, decide, _keyed(by, key))
        now_deleted = bool(deleted and deleted[0])
        if now_deleted:
            self._scrub_quotes(room, message_id, messages.quote(message))
        if self.on_delete is not None and message.get("mentions"):
            self.on_delete(room, message_id, message["mentions"])  # its mentions stop counting
            if now_deleted:
                self._tell_sidebars(room, message, [], message["mentions"])
        if now_deleted:  # sidebars that counted it unread count again
            self._tell_sidebars_of_deletion(room, message)
        if unconfirmed is not None:
            raise unconfirmed
        return message

    def check_delete(self, room, message_id, by):
        """The message (a dict, as it is now) that ``by`` may delete: what a page asks about
        before deleting it. Raises Refused as ``delete`` would: 404 unknown_message, 403
        not_yours_delete; a message already deleted is returned as it is (``deleted`` true)."""
        message = self.message(room, message_id)
        if message is None:
            raise Refused(404, "unknown_message")
        if not message.get("deleted"):
            self._may_delete(room, message, by)
        return message

    def _may_delete(self, room, message, by):
        """Raise Refused (403 not_yours_delete) unless ``by`` wrote ``message`` or moderates."""
        own = bool(by.uid) and message.get("uid") == by.uid
        if not own and not self.moderates(room, by):
            raise Refused(403, "not_yours_delete")

    def _scrub_quotes(self, room, message_id, quote):
        """Replace the quote every reply to a just deleted message stored (its first line) with
        the deleted one, so its text is kept nowhere. Replies are newer than what they answer:
        one read of the log and the changed set from there on (deletions are rare; the log is
        at most the history length). Each reply moves to ``changed`` without an event: pages
        already mark the quote deleted on the ``delete`` event, and every read serves it fresh."""
        k = keys.RoomKeys(room)
        needle = '"reply_to":{"id":"%s"' % message_id
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.xrange(k.log, min=message_id, max="+")
            pipe.zrangebylex(k.changed, "(" + keys.padded(message_id) + "}", "+")
            logged, changed = pipe.execute()
        replies = [mid for mid, fields in logged
                   if "e" not in entry_fields(fields) and needle in entry_fields(fields)["m"]]
        replies += [keys.unpadded(member.partition("|")[0]) for member in changed if needle in member]

        def scrub(reply):
            if (reply.get("reply_to") or {}).get("id") != message_id or reply["reply_to"] == quote:
                return None
            reply["reply_to"] = dict(quote)
            return "", None

        for reply_id in replies:
            try:
                self._apply(room, reply_id, scrub, held=True)  # a held reply quotes it too
            except Refused:  # gone meanwhile (trimmed, or deleted itself): nothing to scrub
                pass

    def moderates(self, room, by):
        """Tell whether ``by`` may delete other people's messages in ``room``: a site
        administrator, and the room's owner and moderators (issue 15). The one place that rule
        lives. A publish token (a bot) never moderates, whatever role a room's record holds for it
        (the owner cannot make it one: room_views' bot_role)."""
        if by.admin:
            return True
        if not by.uid or by.uid.startswith(TOKEN_PREFIX):
            return False
        return self.rooms is not None and self.rooms.role(room, by.uid) in MODERATING

    def react(self, room, message_id, by, emoji, on=True, key=None):
        """Add (``on``) or take back ``by``'s reaction ``emoji`` on a message; doing it twice
        changes nothing. Returns the message's reactions
        ``{"<emoji>": {"count", "users"}}``. Raises Refused: 422 bad_emoji, 404
        unknown_message, 409 deleted, 422 too_many_reactions, 401 signed_out."""
        emoji = check_emoji(emoji)
        if not by.name or not by.uid:
            raise Refused(401, "signed_out")

        def decide(message):
            if message.get("deleted"):
                raise Refused(409, "deleted")
            reactions = message.get("reactions") or {}
            users, uids = reacted(reactions, emoji)
            if (by.uid in uids) == bool(on):
                return None
            if on:
                if emoji not in reactions and len(reactions) >= MAX_REACTIONS:
                    raise Refused(422, "too_many_reactions", max=MAX_REACTIONS)
                users, uids = users + [by.name], uids + [by.uid]
            else:
                kept = [i for i, uid in enumerate(uids) if uid != by.uid]
                users, uids = [users[i] for i in kept], [uids[i] for i in kept]
            if users:
                reactions[emoji] = {"count": len(users), "users": users, "uids": uids}
            else:
                reactions.pop(emoji, None)
            if reactions:
                message["reactions"] = reactions
            else:
                message.pop("reactions", None)
            return "reaction", {"room": room, "message_id": message["id"], "emoji": emoji,
                                "user": by.name, "on": bool(on), "reactions": reactions}

        return (self._apply(room, message_id, decide, key=_keyed(by, key)).get("reactions") or {})

    def has_reacted(self, message, emoji, uid):
        """Tell whether ``uid`` is among those who reacted ``emoji`` on ``message`` (a dict)."""
        return bool(uid) and uid in reacted(message.get("reactions") or {}, emoji)[1]

    def _apply(self, room, message_id, decide, held=False, key=None):
        """Read the message, let ``decide`` change it (a dict, in place) and name the event, or
        return None for no change; write both at once unless someone changed it meanwhile
        (then read and decide again). Returns the message as it is now. ``held``: a message
        still held (store._CONFIRM_LUA) is found too; else it is unknown (404) until confirmed.
        ``key``: the change's (sender's scope, idempotency key), None: none; raises Refused (409
        withdrawn) when its sender withdrew it (store.Store.withdraw)."""
        k = keys.RoomKeys(room)
        keyed = self.store.change_keys(k, *key) if key is not None else [k.idempotency("-")] * 3
        ttl = self.store.idempotency_seconds if key is not None else 0
        if ttl and self.redis.exists(keyed[2]):
            # Withdrawn: refused whatever it would do now (nothing, or a refusal of its own).
            raise Refused(409, "withdrawn")
        if keys.parse_stream_id(message_id or "") is None:
            raise Refused(404, "unknown_message")
        mark = keys.padded(message_id)
        for _ in range(_ATTEMPTS):
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.xrange(k.log, min=message_id, max=message_id)
                pipe.zrangebylex(k.changed, "[" + mark + "|", "(" + mark + "}", start=0, num=1)
                bounded = not held and self.store.confirmed(pipe, k)
                logged, changed, *confirmed_mark = pipe.execute()
            if bounded and beyond(message_id, confirmed_mark[0]):
                raise Refused(404, "unknown_message")  # held (store._CONFIRM_LUA): not shown yet
            if changed:
                expected, raw = changed[0], changed[0].partition("|")[2]
            elif logged and "e" not in entry_fields(logged[0][1]):
                expected, raw = "log", messages.assemble(message_id, entry_fields(logged[0][1])["m"])
            else:
                raise Refused(404, "unknown_message")
            message = json.loads(raw)
            edited = "edited_ts" in message
            decided = decide(message)
            if decided is None:
                if self.store.replica_acks:  # a retry of a change that was stored unconfirmed
                    self.store.settle(k)
                return message
            name, event = decided
            member = mark + "|" + _dump(message)
            outbox = self.store.outbox if name else None  # a silent change (no event) tells no one
            hook_keys, hook_args = outbox.publish_keys(room, name) if outbox is not None else ((), ())
            scrub = '"message_id":"%s"' % message["id"] if name == "delete" and edited else ""
            done, shortfall = self._run(k, [k.log, k.channel, k.meta, k.changed, k.deleted, *keyed, *hook_keys],
                                        [message_id, mark, expected, member, name,
                                         _dump(event)[1:] if event else "", self.store.history_length,
                                         scrub, keys.id_score(message_id), ttl, *hook_args])
            if done[0] == -3:
                raise Refused(409, "withdrawn")
            if done[0] == -2:
                raise messages.KeyReused()
            if done[0] == 1:
                if outbox is not None and not outbox.atomic:
                    self.store.emit_after(room, name, done[1])  # a cluster: after, not with it
                if shortfall is not None:
                    shortfall.message = message
                    raise shortfall
                return message
        raise Refused(503, "busy")

    def _run(self, k, keys_, args):
        """Run the change script: (its answer, None), or with replica acks, once WAIT confirms
        the change, publish its event; a change stored that too few replicas have is kept,
        and held (a retry confirms it): (its answer, the store.NotReplicated to raise once the
        change's follow-ups have run)."""
        if not self.store.replica_acks:
            return self._change(keys=keys_, args=args), None
        done, replicas = self.store.run_replicated(self._change, k.log, keys_, args)
        if done[0] == 1 and done[1]:  # changed, and an event stored (a silent change has none)
            shortfall = self.store.shortfall(replicas)
            if shortfall is not None:
                return done, shortfall
            self.store.confirm(k, done[1][7:done[1].index('"', 7)])
        return done, None

    def _applied(self, room, message_id, decide, key=None):
        """_apply, answering (message, None), or (message, store.NotReplicated) for a change
        stored that replicas did not confirm: the caller runs its follow-ups (mentions,
        sidebars, scrubbed quotes) for the stored change, then raises it."""
        try:
            return self._apply(room, message_id, decide, key=key), None
        except NotReplicated as exc:
            if getattr(exc, "message", None) is None:
                raise
            return exc.message, exc
