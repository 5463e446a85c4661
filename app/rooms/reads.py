"""Several owners' reads of Redis in one round trip.

A stream that opens reads from several places once it is subscribed: whether its session still
stands, the room's gate, the room's history and the person's direct messages. Each read used to
be its own round trip, and each round trip costs a worker ~60-150 µs of CPU (the pool, two
greenlet switches, a send and a recv; docs/performance.md, "Session 15"): one MULTI carries them
all on a single Redis, which is also one snapshot of all of them. On a Cluster the keys live in
different slots, so callers there keep one call per owner.
"""
from ..ops import topology


class ReadBatch:
    """Reads queued by several owners on one MULTI pipeline of ``client`` (redis.Redis; not a
    Cluster), sent together by run(). Each owner's ``add`` gives back a callable that, after
    run(), returns what its finish made of exactly its own replies."""

    def __init__(self, client):
        self._pipe = client.pipeline(transaction=True)
        self._pool = topology.plain_pool(client)  # sent without redis-py's layers, where it can
        self._results = None

    def add(self, queue):
        """``queue(pipe)`` queues its commands and returns finish(replies) -> value (replies:
        a list, its commands' answers in order). Returns a callable giving that value after
        run() (finish runs then, once per call)."""
        start = len(self._pipe)
        finish = queue(self._pipe)
        end = len(self._pipe)
        return lambda: finish(self._results[start:end])

    def run(self):
        """Send every queued read in one round trip. Raises redis.RedisError (the first error
        reply among them, or the connection's failure)."""
        try:
            if self._pool is None:
                self._results = self._pipe.execute()
            else:
                self._results = topology.run_transaction(self._pool, self._pipe)
        finally:
            self._pipe.reset()


def read_alone(client, queue):
    """What ``queue`` (as ReadBatch.add takes it) reads, in a round trip of its own: where its
    keys cannot share one (a Cluster). Raises redis.RedisError."""
    with client.pipeline(transaction=False) as pipe:
        finish = queue(pipe)
        return finish(pipe.execute())
