"""Redis outages are logged once when they start and once when they end, not per failed call.

With thousands of open streams, every one of them fails at the same moment; an operator needs
one line saying Redis is gone (and another when it is back), with a count of what was hidden.
"""
import logging
import time

import gevent.event
import redis

logger = logging.getLogger(__name__)


def failed_round(outage, where, exc, log):
    """Report a background loop's failed round to ``outage`` (the worker's OutageLog, when the
    services gave the loop one), else log it on ``log``."""
    if outage is not None:
        outage.background(where, exc)
    else:
        log.warning("%s failed: redis unavailable error=%s", where, exc)


def ok_round(outage):
    """A background loop's round reached Redis: an outage it was part of has ended."""
    if outage is not None:
        outage.ok()


_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError,
                redis.exceptions.BusyLoadingError, redis.exceptions.ClusterDownError, redis.exceptions.TryAgainError)


class SwallowedRedisErrors(logging.Filter):
    """A library's logger filter: a Redis failure the library logs and swallows (Flask-Limiter's
    ERROR with two chained tracebacks, on every request of an outage) goes to the outage log of
    ``outage_of()`` (None: none at hand) under ``where`` instead, once per outage. Anything
    else it logs passes as it was."""

    def __init__(self, where, outage_of):
        super().__init__()
        self.where, self.outage_of = where, outage_of

    def filter(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        # A Redis out of reach, or one that cannot serve yet (a failover's read-only replica, a
        # cluster re-sharding, a server loading its data) is an outage; any other error reply
        # (OOM under noeviction, a script's fault) is logged as it was, traceback and all.
        outage = self.outage_of() if isinstance(exc, _UNAVAILABLE) else None
        if outage is None:
            return True
        outage.failed(self.where, exc)
        return False


class OutageLog:
    """This worker's view of Redis health, for logging and /metrics."""

    def __init__(self, metrics, repeat_seconds=30.0):
        self.metrics = metrics
        self.repeat_seconds = repeat_seconds
        self.since = None         # monotonic time of the first failure of this outage
        self.logged_at = 0.0
        self.hidden = 0
        self._probe = None        # the shared answer of the last "does Redis answer?" check
        self._probe_at = 0.0

    def failed(self, where, exc):
        """Record a failed Redis call; log it if it starts an outage (or one is long-running)."""
        self.metrics.redis_errors.labels(where).inc()
        now = time.monotonic()
        if self.since is None:
            self.since = now
        elif now - self.logged_at < self.repeat_seconds:
            self.hidden += 1
            return
        logger.warning("redis unavailable where=%s error=%s (%d similar failures not logged)",
                       where, exc, self.hidden)
        self.logged_at, self.hidden = now, 0

    def background(self, where, exc):
        """A worker's own loop (presence sweeps, the address registry, webhook deliveries)
        failed a round on Redis: counted and logged like a request's failure, once per outage,
        not once per round (they run every fraction of a heartbeat)."""
        self.failed(where, exc)

    def ok(self):
        """Record a successful Redis call; log the end of an outage."""
        if self.since is not None:
            logger.warning("redis reachable again after %.1f s (%d failures not logged)",
                           time.monotonic() - self.since, self.hidden)
            self.since, self.hidden = None, 0

    def listener_closed(self, exc, ping, where="stream"):
        """A stream's own pub/sub connection closed under it: tell Redis dropping this one
        subscriber (it fell behind past ``client-output-buffer-limit pubsub``: a slow reader)
        from Redis going away. ``ping`` asks Redis on a command connection; every stream whose
        listener closes within a second shares one answer (an outage closes them all at once).

        Returns True when Redis still answers: a slow consumer, logged at INFO and counted in
        ``ripple_slow_consumers``, not as a Redis error. Otherwise records a failure (``failed``).
        """
        if self.since is None and self._redis_answers(ping):
            self.metrics.slow_consumers.inc()
            logger.info("slow consumer disconnected by redis where=%s error=%s", where, exc)
            return True
        self.failed(where, exc)
        return False

    def _redis_answers(self, ping):
        now = time.monotonic()
        if self._probe is None or now - self._probe_at > 1.0:
            self._probe, self._probe_at = gevent.event.AsyncResult(), now
            probe = self._probe
            try:
                ping()
                probe.set(True)
            except redis.RedisError:
                probe.set(False)
            finally:
                if not probe.ready():  # killed mid-PING (a drain): never leave the others waiting
                    probe.set(False)
        return self._probe.get()
