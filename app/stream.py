"""One room's live event stream: subscribe, replay what the client missed, relay the rest."""
import json
import logging

import gevent
import redis

from . import keys, sse

logger = logging.getLogger(__name__)


class Draining(Exception):
    """Thrown into open streams when the worker shuts down, so they end now, not at timeout."""


class Streams:
    """The open streams of this worker: a cap on their number and a way to end them all."""

    def __init__(self, limit):
        self.limit = int(limit)
        self.open = set()
        self.draining = False

    def full(self):
        return len(self.open) >= self.limit

    def drain(self):
        """Ask every open stream to tell its client to reconnect, then end."""
        self.draining = True
        for greenlet in list(self.open):
            greenlet.kill(Draining, block=False)


def come_back(retry_ms):
    """The last chunk of a stream on a leaving worker: reconnect soon, elsewhere."""
    return sse.retry(retry_ms // 4 or 1)


def relay(store, listeners, streams, room, cursor, backlog, heartbeat, retry_ms):
    """Yield SSE bytes for ``room``; receives everything it needs, never touches the request."""
    yield sse.retry(retry_ms)  # first chunk: headers leave now, before any Redis round trip
    me = gevent.getcurrent()
    streams.open.add(me)
    listener = None
    try:
        listener = listeners.open([keys.RoomKeys(room).channel])
        # Subscribed before reading history: whatever is stored from now on also arrives
        # live, and live ids at or below ``last`` were already sent from history.
        history, last, dropped = store.replay(room, cursor, backlog)
        if dropped:
            yield sse.event("dropped", json.dumps(
                {"room": room, "message": "Some older messages are no longer kept."}))
        frames = [sse.message_frame(mid.encode(), body.encode()) for mid, body in history]
        frames.append(sse.event("ready", json.dumps({"room": room}),
                                event_id=keys.format_stream_id(last)))
        yield b"".join(frames)
        while True:
            batch = listener.read(heartbeat)
            if batch is None:
                yield sse.comment("keep-alive")  # a gone client fails this write
                continue
            frames = []
            for data in batch:  # the hot path: find the id, compare, frame the bytes as they are
                nl = data.find(b"\n")
                mid = data[:nl]
                ms, _, seq = mid.partition(b"-")
                pair = (int(ms), int(seq))
                if pair > last:
                    last = pair
                    frames.append(sse.message_frame(mid, data[nl + 1:]))
            if frames:
                yield b"".join(frames)  # everything that arrived together leaves in one write
    except Draining:
        yield come_back(retry_ms)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        logger.warning("redis unavailable, ending stream room=%s error=%s", room, exc)
        yield sse.event("unavailable", json.dumps({"room": room, "message": "Reconnecting…"}))
    finally:
        streams.open.discard(me)
        if listener is not None:
            listener.close()
