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
        return self.draining or len(self.open) >= self.limit

    def drain(self):
        """Ask every open stream to tell its client to reconnect, then end."""
        self.draining = True
        for greenlet in list(self.open):
            greenlet.kill(Draining, block=False)


def relay(store, listeners, streams, room, cursor, backlog, heartbeat, retry_ms):
    """Yield SSE bytes for ``room``; receives everything it needs, never touches the request."""
    yield sse.retry(retry_ms)  # first chunk: headers leave now, before any Redis round trip
    me = gevent.getcurrent()
    streams.open.add(me)
    try:
        with listeners.pubsub() as pubsub:  # closed on any exit, GreenletExit included
            pubsub.subscribe(keys.RoomKeys(room).channel)
            _confirm(pubsub, heartbeat)
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
                message = pubsub.get_message(timeout=heartbeat)
                if message is None:
                    yield sse.comment("keep-alive")  # a gone client fails this write
                    continue
                frames = []
                while message is not None:  # coalesce everything already waiting: one write
                    if message["type"] == "message":
                        data = message["data"]
                        nl = data.find(b"\n")
                        mid = data[:nl]
                        ms, _, seq = mid.partition(b"-")
                        pair = (int(ms), int(seq))
                        if pair > last:
                            last = pair
                            frames.append(sse.message_frame(mid, data[nl + 1:]))
                    message = pubsub.get_message(timeout=0)
                if frames:
                    yield b"".join(frames)
    except Draining:
        yield sse.retry(retry_ms // 4 or 1)  # reconnect soon, to a worker that is not leaving
    except (redis.ConnectionError, redis.TimeoutError) as exc:  # pool exhaustion included
        logger.warning("redis unavailable, ending stream room=%s error=%s", room, exc)
        yield sse.event("unavailable", json.dumps({"room": room, "message": "Reconnecting…"}))
    finally:
        streams.open.discard(me)


def _confirm(pubsub, timeout):
    """Wait for the subscribe confirmation so no publish can slip past unseen."""
    message = pubsub.get_message(timeout=max(timeout, 5))
    if message is None or message["type"] != "subscribe":
        raise redis.ConnectionError("no subscribe confirmation")
