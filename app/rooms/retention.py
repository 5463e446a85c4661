"""History kept by age as well as by count: RIPPLE_HISTORY_MAX_AGE_DAYS (off by default).

One script on the room's slot drops the messages older than the cut (``XTRIM MINID``), records
the newest id it dropped as the log's ``trimmed`` mark (the same mark trimming by count keeps,
so a client resuming from before the cut gets the usual ``dropped`` event) and forgets the
changed versions of the dropped messages. A room is trimmed when someone posts in it (at most
once a minute per room and worker: off the per-post path) and by ``flask --app app rooms trim``
(every room; for cron), so a quiet room's old history goes too.
"""
import time

from . import keys
from .store import TRIM_LUA

# KEYS: log, meta, changed.  ARGV: the cut (a stream id: older entries go).  Returns how many.
_AGE_TRIM_LUA = TRIM_LUA + """
local old = redis.call('XREVRANGE', KEYS[1], '(' .. ARGV[1], '-', 'COUNT', 1)
if not old[1] then return 0 end
local gone = redis.call('XTRIM', KEYS[1], 'MINID', ARGV[1])
local last = old[1][1]
redis.call('HSET', KEYS[2], 'trimmed', last)
redis.call('ZREMRANGEBYLEX', KEYS[3], '-', '(' .. pad(last) .. '}')
return gone
"""

DAY_MS = 86400 * 1000
EVERY_SECONDS = 60.0  # a room is trimmed by age at most this often per worker


class Retention:
    """Trims rooms by age; ``max_age_days`` 0 (or less) is off."""

    def __init__(self, client, max_age_days=0):
        self.redis = client
        self.max_age_ms = int(float(max_age_days or 0) * DAY_MS)
        self._trim = client.register_script(_AGE_TRIM_LUA)
        self._done = {}  # room -> when this process last trimmed it (monotonic)

    @property
    def on(self):
        return self.max_age_ms > 0

    def trim(self, room, now_ms=None):
        """Drop ``room``'s messages older than the maximum age now; return how many went."""
        if not self.on:
            return 0
        cut = int(now_ms if now_ms is not None else time.time() * 1000) - self.max_age_ms
        k = keys.RoomKeys(room)
        return int(self._trim(keys=[k.log, k.meta, k.changed], args=["%d-0" % max(cut, 0)]))

    def after_post(self, room):
        """Trim ``room`` if this process has not in the last minute (called after a post)."""
        if not self.on:
            return
        now = time.monotonic()
        if now - self._done.get(room, -EVERY_SECONDS) < EVERY_SECONDS:
            return
        if len(self._done) > 10000:
            self._done.clear()
        self._done[room] = now
        self.trim(room)
