"""A worker's signed-in streams refresh their presence and name together: one round trip for many.

Every signed-in stream, once a heartbeat, pushes its presence forward and holds its name
(app/people/presence.py ``refresh``, app/people/names.py ``hold``). Sent alone, that is a
pipeline round trip per stream: with 10,000 streams held and a 15 s heartbeat, ~670 a second,
each a pooled connection taken, a send, a wait and a recv; with them the held streams cost a
fifth of the workers' time (docs/performance.md). Here the refreshes that come due within
``window`` seconds of each other (the streams' heartbeats are spread out) share one pipeline.

A stream still asks for its own refresh and gets its own answer, with the same rules and
errors as before: only the transport is shared. On a Redis Cluster (its pipelines split by
slot) streams refresh alone (app/delivery/stream.py).
"""
import gevent
import gevent.event
import redis

from ..people import presence as presence_rules

WINDOW_SECONDS = 0.02  # how long the first refresh of a batch waits for company
MOST = 256             # a batch this big goes at once (a pipeline of ~5 commands each)


class Heartbeats:
    """Batches signed-in streams' heartbeat refreshes (presence + name hold) per worker."""

    def __init__(self, presence, names, window=WINDOW_SECONDS, most=MOST):
        self.presence, self.names = presence, names
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
        """Send ``batch``'s refreshes in one pipeline and hand each stream its replies; a
        failure (a Redis error, or the sender killed) is each waiting stream's failure."""
        per = presence_rules.REFRESH_REPLIES + 1
        try:
            with self.presence.redis.pipeline(transaction=False) as pipe:
                for sub, _ in batch:
                    self.presence.refresh_in(pipe, sub.room, sub.name, sub.sid, sub.conn)
                    self.names.hold_in(pipe, sub.name, sub.sid, sub.account)
                found = pipe.execute(raise_on_error=False)
        except BaseException as exc:
            for _, done in batch:
                if not done.ready():
                    done.set_exception(exc)
            if not isinstance(exc, redis.RedisError):
                raise
            return
        for i, (_, done) in enumerate(batch):
            done.set(found[i * per:(i + 1) * per])
