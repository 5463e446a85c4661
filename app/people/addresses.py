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

from ..ops import outage

logger = logging.getLogger(__name__)


# One stream's admission, shared by admit() and the stream opening's single script
# (app/web/opening.py). ARGV from ``first``: connection id, now (ms), ttl (ms), cap.
# Returns 1 when admitted, 0 at the cap (and leaves no member behind).
ADMIT_LUA = """
local function admit_address(streams, argv, first)
  local conn, now, ttl, cap = argv[first], tonumber(argv[first + 1]), argv[first + 2], tonumber(argv[first + 3])
  redis.call('ZREMRANGEBYSCORE', streams, '-inf', '(' .. now)
  redis.call('ZADD', streams, now + tonumber(ttl), conn)
  redis.call('PEXPIRE', streams, ttl)
  if redis.call('ZCARD', streams) > cap then
    redis.call('ZREM', streams, conn)
    return 0
  end
  return 1
end
"""


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
        self.outage = None  # the worker's OutageLog (app/ops/services.py): failed refreshes go there
        self._admit = client.register_script(ADMIT_LUA + "return admit_address(KEYS[1], ARGV, 1)")

    @property
    def ttl_ms(self):
        return int(self.heartbeat * 3000)

    def admit(self, address, conn=None):
        """Register the current greenlet's new stream from ``address`` (as ``conn``, default a
        new id: give_back takes the same); False at the cap."""
        conn = conn or self.new_conn()
        admitted = self._admit(keys=[key(address)], args=self.admit_args(conn))
        if admitted:
            self.keep(address, conn)
        return bool(admitted)

    def new_conn(self):
        """A new stream's id in its address's set."""
        return secrets.token_hex(8)

    def admit_args(self, conn):
        """ARGV of ADMIT_LUA's ``admit_address`` for stream ``conn`` (after its key)."""
        return [conn, _now_ms(), self.ttl_ms, self.limit]

    def keep(self, address, conn):
        """Hold admitted stream ``conn`` from ``address`` for the current greenlet (refreshed
        with this worker's others until released)."""
        self.mine[gevent.getcurrent()] = (address, conn)
        self._ensure_runner()

    def give_back(self, address, conn):
        """Remove admitted member ``conn`` of ``address`` whose stream was refused after all (a
        private room, a ban, a failure), at once: the next open from there must find its place
        free. Never raises: with Redis failing, the member goes with the worker's next flush."""
        if self.mine.get(gevent.getcurrent()) == (address, conn):
            del self.mine[gevent.getcurrent()]
        try:
            self.redis.zrem(key(address), conn)
        except redis.RedisError:  # never hides the refusal: tried again with the next releases
            self.gone.append((address, conn))
            self._wake.set()
            self._ensure_runner()

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
        forward and drop the streams that ended without a release. One pipeline for the whole
        worker. Only a refresh (once a heartbeat) walks every open stream: releases come every
        50 ms while streams close in numbers (a drain, a reconnect storm), and a walk over
        thousands of streams each time was ~6 % of a worker's CPU in one (docs/performance.md)."""
        expiry = _now_ms() + self.ttl_ms
        gone, self.gone = self.gone, []
        live = {}
        if refresh:
            for greenlet, (address, conn) in list(self.mine.items()):
                if greenlet.dead:  # ended without release (its client left before the first byte)
                    del self.mine[greenlet]
                    gone.append((address, conn))
                else:
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
                outage.ok_round(self.outage)
            except redis.RedisError as exc:  # the members then lapse on their own
                outage.failed_round(self.outage, "addresses.refresh", exc, logger)
