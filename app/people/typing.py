"""Typing signals: "小明 is typing…", throttled per person and room, never stored, never numbered.

A signal is one Lua script on the room's slot: if this person has not been announced in the
last interval (a key with that expiry), announce them on the room's channel as the unnumbered
payload ``!typing\\n{"room", "name"}``. Streams relay it as ``event: typing`` with no ``id:``,
so it never moves a cursor and is never replayed; pages expire it themselves (6 s).
"""
import hashlib
import json

from ..rooms import keys
from . import names

# KEYS: the person's throttle key, the room's channel.  ARGV: interval (ms), payload.
_SIGNAL_LUA = """
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  redis.call('PUBLISH', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


class Typing:
    """Announces people typing; at most one broadcast per person per room per ``interval``."""

    def __init__(self, client, interval_seconds, publish_command="PUBLISH"):
        self.interval_ms = int(float(interval_seconds) * 1000)
        self._signal = client.register_script(_SIGNAL_LUA.replace("'PUBLISH'", "'%s'" % publish_command))

    def signal(self, room, name):
        """Announce ``name`` (str) typing in ``room`` (canonical); return True if broadcast now,
        False if they were announced less than an interval ago. Raises redis.RedisError."""
        k = keys.RoomKeys(room)
        who = hashlib.sha256(names.fold(name).encode()).hexdigest()[:16]  # look-alikes are one person
        payload = "!typing\n" + json.dumps({"room": room, "name": name}, ensure_ascii=False,
                                           separators=(",", ":"))
        return bool(self._signal(keys=[k.typing(who), k.channel], args=[self.interval_ms, payload]))
