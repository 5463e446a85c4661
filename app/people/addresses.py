"""Open streams per client address, counted across every worker and host in Redis.

The per-session cap (app/people/presence.py) is no bound on one address: fresh sessions cost nothing.
Each open stream, signed in or not, holds a member of its address's sorted set
``ripple:{a:<address>}:streams`` (connection id -> expiry, ms). This worker refreshes all of its
own members in one pipeline per heartbeat, so a crashed worker's streams lapse within three
heartbeats; a closing stream's member goes within moments, batched with the others closing then
(and one whose greenlet ended without saying so is dropped at the next round). The cap is generous by default (500):
offices and campuses share one address.
"""
import logging
import secrets
import time

import gevent
import gevent.event
import redis

logger = logging.getLogger(__name__)


def key(address):
    return "ripple:{a:%s}:streams" % address


def _now_ms():
    return int(time.time() * 1000)


class AddressStreams:
    """This worker's streams by address, and the admission rule for a new one."""

    def __init__(self, client, limit, heartbeat):
        self.redis = client
        self.limit = int(limit)
        self.heartbeat = float(heartbeat)
        self.mine = {}  # greenlet -> (address, connection id): this worker's open streams
        self.gone = []  # (address, connection id) released, not yet removed from Redis
        self._wake = gevent.event.Event()
        self._runner = None

    @property
    def ttl_ms(self):
        return int(self.heartbeat * 3000)

    def admit(self, address):
        """Register the current greenlet's new stream from ``address``; False at the cap."""
        conn = secrets.token_hex(8)
        now = _now_ms()
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key(address), "-inf", "(%d" % now)
            pipe.zadd(key(address), {conn: now + self.ttl_ms})
            pipe.zcard(key(address))
            pipe.pexpire(key(address), self.ttl_ms)
            _, _, count, _ = pipe.execute()
        if count > self.limit:
            self.redis.zrem(key(address), conn)
            return False
        self.mine[gevent.getcurrent()] = (address, conn)
        self._ensure_runner()
        return True

    def release(self, greenlet=None):
        """Forget ``greenlet``'s stream (default: the current one's); its member goes within
        moments, together with every other release of this worker in one round trip (a
        thousand streams closing at once must not open a Redis connection each)."""
        found = self.mine.pop(greenlet or gevent.getcurrent(), None)
        if found is not None:
            self.gone.append(found)
            self._wake.set()
            self._ensure_runner()

    def _ensure_runner(self):
        if self._runner is None or self._runner.dead:
            self._runner = gevent.spawn(self._run)

    def flush(self, refresh=False):
        """Remove released members; with ``refresh``, also push every open stream's expiry
        forward. One pipeline for the whole worker."""
        expiry = _now_ms() + self.ttl_ms
        gone, self.gone = self.gone, []
        live = {}
        for greenlet, (address, conn) in list(self.mine.items()):
            if greenlet.dead:  # ended without release (its client left before the first byte)
                del self.mine[greenlet]
                gone.append((address, conn))
            elif refresh:
                live.setdefault(address, {})[conn] = expiry
        if not live and not gone:
            return
        with self.redis.pipeline(transaction=False) as pipe:
            for address, members in live.items():
                pipe.zadd(key(address), members, xx=True)  # never brings back a released one
                pipe.pexpire(key(address), self.ttl_ms)
            for address, conn in gone:
                pipe.zrem(key(address), conn)
            pipe.execute()

    def _run(self):
        refresh_at = time.monotonic() + self.heartbeat
        while self.mine or self.gone:
            self._wake.wait(max(0.0, refresh_at - time.monotonic()))
            self._wake.clear()
            gevent.sleep(0.05)  # gather the releases of a burst into one round trip
            due = time.monotonic() >= refresh_at
            if due:
                refresh_at = time.monotonic() + self.heartbeat
            try:
                self.flush(refresh=due)
            except redis.RedisError as exc:  # the members then lapse on their own
                logger.warning("address stream registry update failed error=%s", exc)
