"""The webhook event queue: one Redis Stream every event enters, read by one consumer group per
webhook.

Every key of the webhooks shares the hash tag ``{webhooks}``, so on a Redis Cluster they live in
one slot and the scripts below run on one node. Layout:

- ``ripple:{webhooks}:events`` Stream of events, fields ``k`` (kind: message, join...), ``r``
  (room), ``j`` (the event's JSON: a message as stored, or the kind's own object). Capped at
  RIPPLE_WEBHOOK_QUEUE_MAX entries; trimmed below what every enabled webhook has finished.
- ``ripple:{webhooks}:all`` set of webhook ids. Its existence is the switch: with no webhook
  registered nothing is queued at all.
- consumer group ``h:<id>`` per webhook on the events stream: its own position and its own
  pending entries (deliveries in flight), so one endpoint's backlog never holds up another's.

A room message enters the queue in the same Lua script that stores it (app/rooms/store.py), when the
room's keys and these are on one server: an acknowledged message is always queued. On a Redis
Cluster they are in different slots, which one script may not span: the message is queued by a
second command right after it is stored (``emit``), and a worker that dies between the two
loses that one event (docs/webhooks.md, "The guarantee").
"""
import json

TAG = "ripple:{webhooks}"
EVENTS = TAG + ":events"
ALL = TAG + ":all"

KINDS = ("message", "edit", "delete", "reaction", "mention", "join", "leave")

# KEYS: events, all.  ARGV: cap, kind, room, json.  Queue an event when a webhook exists.
_EMIT_LUA = """
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'k', ARGV[2], 'r', ARGV[3], 'j', ARGV[4])
"""

# The lines the scripts that store a room's events run after storing one (``json``: the message
# or the change event, app/rooms/store.py and conversation.py): when their last ARGV are
# "webhooks", the cap, the room and the event's kind (and their last two KEYS are EVENTS and
# ALL), the event is queued in the same script as it is stored.
# A message that mentions someone (its stored JSON names them: "mentions":[...], which no text
# can fake: a quote inside the text is escaped) is also a "mention" event.
PUBLISH_LUA = """
if ARGV[#ARGV - 3] == 'webhooks' and redis.call('EXISTS', KEYS[#KEYS]) == 1 then
  redis.call('XADD', KEYS[#KEYS - 1], 'MAXLEN', '~', ARGV[#ARGV - 2], '*',
             'k', ARGV[#ARGV], 'r', ARGV[#ARGV - 1], 'j', json)
  if ARGV[#ARGV] == 'message' and string.find(json, '"mentions":[', 1, true) then
    redis.call('XADD', KEYS[#KEYS - 1], 'MAXLEN', '~', ARGV[#ARGV - 2], '*',
               'k', 'mention', 'r', ARGV[#ARGV - 1], 'j', json)
  end
end
"""

# For scripts that decide their events inside (presence's join and leave announcements): they
# call webhook_event(kind, room, json) after publishing one; it queues it when their last ARGV
# are "webhooks" and the cap (and their last two KEYS are EVENTS and ALL), else does nothing.
# webhook_wanted() tells beforehand whether it would (an event's costly parts can wait for it).
EVENT_FN_LUA = """
local function webhook_wanted()
  return ARGV[#ARGV - 1] == 'webhooks' and redis.call('EXISTS', KEYS[#KEYS]) == 1
end
local function webhook_event(kind, room, json)
  if webhook_wanted() then
    redis.call('XADD', KEYS[#KEYS - 1], 'MAXLEN', '~', ARGV[#ARGV], '*', 'k', kind, 'r', room, 'j', json)
  end
end
"""
NO_EVENT_FN_LUA = "local function webhook_wanted() return false end\nlocal function webhook_event() end\n"


def group(hook_id):
    """The consumer group of one webhook on the events stream."""
    return "h:" + hook_id


class Outbox:
    """How the store and other features put events into the queue (``client``: any command
    client, decode_responses=True). ``atomic``: the store may queue room messages inside its
    own script (False on a Redis Cluster, where the room's slot is not the queue's)."""

    PUBLISH_LUA = PUBLISH_LUA  # what the store's script runs to queue a message it stored
    EVENT_FN_LUA = EVENT_FN_LUA

    def __init__(self, client, cap, atomic=True):
        self.redis = client
        self.cap = int(cap)
        self.atomic = bool(atomic)
        self._emit = client.register_script(_EMIT_LUA)

    def publish_keys(self, room, kind="message"):
        """(extra KEYS, extra ARGV) for a script that stores a room's event and runs
        PUBLISH_LUA, or ((), ()) when it must not queue it (then the caller ``emit``s after)."""
        if not self.atomic:
            return (), ()
        return (EVENTS, ALL), ("webhooks", self.cap, room, kind)

    def event_keys(self):
        """(extra KEYS, extra ARGV) for a script that calls webhook_event (EVENT_FN_LUA), or
        ((), ()) on a Redis Cluster (its keys are in the room's slot, not the queue's)."""
        return ((EVENTS, ALL), ("webhooks", self.cap)) if self.atomic else ((), ())

    def emit(self, kind, room, data):
        """Queue one event for the webhooks (a no-op while none is registered); return its id
        or None. ``data``: a dict, or JSON text already encoded. Raises redis.RedisError.

        The one entry point for every kind (KINDS): a feature calls it after its change is
        stored. Atomic on its own (the check and the add), not with the caller's write.
        """
        if kind not in KINDS:
            raise ValueError("unknown webhook event kind %r" % kind)
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        return self._emit(keys=[EVENTS, ALL], args=[self.cap, kind, room, text])
