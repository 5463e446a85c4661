"""A worker's streams do their heartbeat's Redis work together: one round trip for many.

Every signed-in stream, once a heartbeat, pushes its presence forward and holds its name
(app/people/presence.py ``refresh``, app/people/names.py ``hold``). Sent alone, that is a
pipeline round trip per stream: with 10,000 streams held and a 15 s heartbeat, ~670 a second,
each a pooled connection taken, a send, a wait and a recv; with them the held streams cost a
fifth of the workers' time (docs/performance.md). Here the refreshes that come due within
``window`` seconds of each other (the streams' heartbeats are spread out) share one pipeline.

The same holds for a silent stream's check of its logs' heads (``HeadReads``): a signed-in
stream's direct-message log is its own, so after a wave of opens (a reload storm, the opening
benchmark) thousands of them ask at the same second, each a round trip (~9 % of the workers'
CPU in ``bench/opens.py --signed-in``: docs/performance.md "Session 20").

A stream still asks its own question and gets its own answer, with the same rules and errors
as before: only the transport is shared (``Batch``). On a Redis Cluster (its pipelines split
by slot) streams ask alone (app/delivery/stream.py).
"""
import gevent
import gevent.event
import redis

from ..people import presence as presence_rules

WINDOW_SECONDS = 0.02  # how long the first refresh of a batch waits for company
MOST = 256             # a batch this big goes at once (a pipeline of ~5 commands each)


class Batch:
    """Questions many greenlets ask within ``window`` seconds of each other, sent together.

    ``send(items)`` answers a list of items with the list of their answers, in order, in one
    round trip; ``ask(item)`` blocks the calling greenlet until its answer is in. A batch of
    ``most`` goes at once. A failure of ``send`` (a Redis error, or the sender killed) is every
    waiting asker's."""

    def __init__(self, send, window=WINDOW_SECONDS, most=MOST):
        self.send, self.window, self.most = send, float(window), int(most)
        self._pending = []  # (item, AsyncResult) waiting for the next batch
        self._timer = None

    def ask(self, item):
        """``item``'s answer from the next batch. Raises what ``send`` raised."""
        done = gevent.event.AsyncResult()
        self._pending.append((item, done))
        if len(self._pending) >= self.most:
            if self._timer is not None:  # not started yet: a started one took the batch
                self._timer.kill(block=False)
                self._timer = None
            batch, self._pending = self._pending, []
            gevent.spawn(self._send, batch)  # never in an asker's greenlet: a kill there would strand the rest
        elif self._timer is None:
            self._timer = gevent.spawn_later(self.window, self._on_timer)
        return done.get()  # the answer, or the batch's failure raised

    def _on_timer(self):
        self._timer = None
        batch, self._pending = self._pending, []
        self._send(batch)

    def _send(self, batch):
        try:
            answers = self.send([item for item, _ in batch])
        except BaseException as exc:
            for _, done in batch:
                if not done.ready():
                    done.set_exception(exc)
            if not isinstance(exc, redis.RedisError):
                raise
            return
        for (_, done), answer in zip(batch, answers):
            done.set(answer)


class HeadReads:
    """Batches silent streams' reads of their logs' newest ids per worker (Store.heads)."""

    def __init__(self, store, window=WINDOW_SECONDS, most=MOST):
        self.store = store
        self._batch = Batch(self._send, window, most)

    def heads(self, logs):
        """The newest id (str) of each of ``logs`` (RoomKeys or PersonKeys), read in the next
        batch, as Store.heads answers them. Raises redis.RedisError."""
        return self._batch.ask(logs)

    def _send(self, asked):
        unique = list({k.log: k for logs in asked for k in logs}.values())
        newest = dict(zip((k.log for k in unique), self.store.heads(unique)))
        return [[newest[k.log] for k in logs] for logs in asked]


class Heartbeats:
    """Batches signed-in streams' heartbeat refreshes (presence + name hold) per worker."""

    def __init__(self, presence, names, window=WINDOW_SECONDS, most=MOST):
        self.presence, self.names = presence, names
        self._batch = Batch(self._send, window, most)

    def refresh(self, sub):
        """Refresh ``sub``'s presence and name (a Subscription of a signed-in stream) in the
        next batch; block this greenlet until its replies are in. Returns None while the
        stream may go on, presence.SESSION_ENDED or presence.REPLACED (Presence.refresh's
        answers). Raises NameTaken (its name is someone else's now) and redis.RedisError."""
        found = self._batch.ask(sub)
        ended = self.presence.refreshed(found[:presence_rules.REFRESH_REPLIES], sub.room, sub.name,
                                        sub.sid, sub.conn)
        if ended is None:
            self.names.held(found[presence_rules.REFRESH_REPLIES], sub.name, sub.sid, sub.account)
        return ended

    def _send(self, subs):
        """Every refresh of ``subs`` in one pipeline: each stream's replies."""
        per = presence_rules.REFRESH_REPLIES + 1
        with self.presence.redis.pipeline(transaction=False) as pipe:
            for sub in subs:
                self.presence.refresh_in(pipe, sub.room, sub.name, sub.sid, sub.conn)
                self.names.hold_in(pipe, sub.name, sub.sid, sub.account)
            found = pipe.execute(raise_on_error=False)
        return [found[i * per:(i + 1) * per] for i in range(len(subs))]
