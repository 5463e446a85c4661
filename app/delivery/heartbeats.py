"""A worker's signed-in streams refresh their presence and name together: one round trip for many.

Every signed-in stream, once a heartbeat, pushes its presence forward and holds its name
(app/people/presence.py ``refresh``, app/people/names.py ``hold``). Sent alone, that is a
pipeline round trip per stream: with 10,000 streams held and a 15 s heartbeat, ~670 a second,
each a pooled connection taken, a send, a wait and a recv; with them the held streams cost a
fifth of the workers' time (docs/performance.md). Here the refreshes that come due within
``window`` seconds of each other (the streams' heartbeats are spread out) share one pipeline.

A stream still asks for its own refresh and gets its own answer, with the same rules and
errors as before: only the transport is shared. One script does a whole batch (presence's and
names' own Lua functions, app/people/presence.py REFRESH_FN_LUA and names.py CLAIM_FN_LUA):
redis-py packing and parsing five commands per stream was most of the batch's cost. A failure
in one stream's part is that stream's error alone. On a Redis Cluster (keys in many slots)
streams refresh apart (app/delivery/stream.py).
"""
import gevent
import gevent.event
import redis

from ..people import names as name_rules
from ..people import presence as presence_rules

WINDOW_SECONDS = 0.02  # how long the first refresh of a batch waits for company
MOST = 256             # a batch this big goes at once

# KEYS: per stream, refresh_presence's three then claim_name's two. ARGV: per stream,
# refresh_presence's four then claim_name's four. Returns per stream refresh_presence's four
# replies and claim_name's (1 held, 0 someone else's), or that stream's error.
BATCH_LUA = presence_rules.REFRESH_FN_LUA + name_rules.CLAIM_FN_LUA + """
local function failure(e)
  if type(e) == 'table' and e.err then return e end
  return redis.error_reply(tostring(e))
end
local out = {}
for i = 0, #KEYS / 5 - 1 do
  local k, a = i * 5, i * 8
  local ok, found = pcall(refresh_presence, KEYS[k + 1], KEYS[k + 2], KEYS[k + 3],
                          ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4])
  if ok then
    local held_ok, held = pcall(claim_name, KEYS[k + 4], KEYS[k + 5],
                                ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8])
    if not held_ok then found = failure(held) else found[5] = held end
  else
    found = failure(found)
  end
  out[i + 1] = found
end
return out
"""


class Heartbeats:
    """Batches signed-in streams' heartbeat refreshes (presence + name hold) per worker."""

    def __init__(self, presence, names, window=WINDOW_SECONDS, most=MOST):
        self.presence, self.names = presence, names
        self._batch = presence.redis.register_script(BATCH_LUA)
        self.window, self.most = float(window), int(most)
        self._pending = []  # (subscription, AsyncResult) waiting for the next batch
        self._timer = None

    def refresh(self, sub):
        """Refresh ``sub``'s presence and name (a Subscription of a signed-in stream) in the
        next batch; block this greenlet until its replies are in. Returns None while the
        stream may go on, presence.SESSION_ENDED or presence.REPLACED (Presence.refresh's
        answers). Raises NameTaken (its name is someone else's now) and redis.RedisError."""
        done = gevent.event.AsyncResult()
        self._pending.append((sub, done))
        if len(self._pending) >= self.most:
            if self._timer is not None:  # not started yet: a started one took the batch
                self._timer.kill(block=False)
                self._timer = None
            batch, self._pending = self._pending, []
            gevent.spawn(self._send, batch)  # never in a stream's greenlet: a kill there would strand the rest
        elif self._timer is None:
            self._timer = gevent.spawn_later(self.window, self._on_timer)
        found = done.get()  # the replies, or the batch's failure raised
        ended = self.presence.refreshed(found[:presence_rules.REFRESH_REPLIES], sub.room, sub.name,
                                        sub.sid, sub.conn)
        if ended is None:
            self.names.held(found[presence_rules.REFRESH_REPLIES], sub.name, sub.sid, sub.account)
        return ended

    def _on_timer(self):
        self._timer = None
        batch, self._pending = self._pending, []
        self._send(batch)

    def _send(self, batch):
        """Refresh ``batch``'s streams in one script and hand each stream its replies; a
        failure of the whole (a Redis error, or the sender killed) is each waiting stream's."""
        try:
            keys, args = [], []
            for sub, _ in batch:
                keys += self.presence.refresh_keys(sub.room, sub.sid) + self.names.claim_keys(sub.name)
                args += self.presence.refresh_args(sub.name, sub.conn) + self.names.hold_args(sub.sid, sub.account)
            found = self._batch(keys=keys, args=args)
        except BaseException as exc:
            for _, done in batch:
                if not done.ready():
                    done.set_exception(exc)
            if not isinstance(exc, redis.RedisError):
                raise
            return
        for (_, done), replies in zip(batch, found):
            if isinstance(replies, Exception):
                done.set_exception(replies)
            else:
                done.set(replies)
