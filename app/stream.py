"""One room's live event stream: subscribe, replay what the client missed, relay the rest."""
import json
import logging
import time

import gevent
import redis

from . import keys, sse, wire
from .identity import NameTaken

logger = logging.getLogger(__name__)


class Draining(Exception):
    """Thrown into open streams when the worker shuts down, so they end now, not at timeout."""


class ClientGone(gevent.GreenletExit):
    """Thrown into a stream whose client closed its connection, so it ends now, not at the
    next heartbeat write (its Redis connection and two descriptors are freed at once).

    A GreenletExit: if it lands while gunicorn is writing to the client (not in the stream's
    own code), gunicorn's gevent worker ends the request quietly."""


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


class Subscription:
    """What one stream serves: a room, where the client is, and who (if anyone) is listening."""

    __slots__ = ("room", "cursor", "backlog", "name", "sid", "conn", "client", "chunked", "environ")

    def __init__(self, room, cursor=None, backlog=0, name=None, sid=None, conn=None, client=None,
                 chunked=True, environ=None):
        self.room, self.cursor, self.backlog = room, cursor, backlog
        self.name, self.sid, self.conn = name, sid, conn  # conn: its presence registration
        # The client's socket (gunicorn's), watched for its closing and written to directly
        # once the headers are out, in the framing gunicorn chose: chunked (True, HTTP/1.1),
        # plain (False, HTTP/1.0); None leaves every write to gunicorn.
        self.client, self.chunked = client, chunked
        self.environ = environ  # the WSGI environ: trimmed once Flask is done with it


def come_back(retry_ms):
    """The last chunk of a stream on a leaving worker: reconnect soon, elsewhere."""
    return sse.retry(retry_ms // 4 or 1)


class Hub:
    """What every stream of an app shares: Redis access, registries, metrics and timings."""

    def __init__(self, app):
        ext, cfg = app.extensions, app.config
        self.store, self.listeners = ext["store"], ext["redis_listeners"]
        self.presence, self.names, self.metrics = ext["presence"], ext["names"], ext["metrics"]
        self.outage = ext["outage"]
        self.streams = Streams(cfg["MAX_STREAMS_PER_WORKER"])
        self.heartbeat = float(cfg["HEARTBEAT_SECONDS"])
        self.retry_ms = int(cfg["RETRY_MS"])
        self.direct_backlog = int(cfg["DIRECT_BACKLOG"])
        # Streams write to the client socket themselves; gunicorn.conf.py turns this off when
        # gunicorn speaks anything but plain HTTP/1.x to clients.
        self.direct_writes = True


def relay(hub, sub):
    """Yield SSE bytes for one subscription; has everything it needs, never touches the request.

    One pub/sub connection carries the room's channel and, for a signed-in person, their direct
    messages; the cursor covers both, so a reconnect resumes each exactly where it stopped.
    """
    store, streams, presence, metrics = hub.store, hub.streams, hub.presence, hub.metrics
    heartbeat, retry_ms = hub.heartbeat, hub.retry_ms
    yield sse.retry(retry_ms)  # first chunk: headers leave now, before any Redis round trip
    _forget_request(sub)
    me = gevent.getcurrent()
    streams.open.add(me)
    metrics.open_streams.inc()
    listener = alarm = out = None
    watcher = _watch_client(sub.client, me)
    unreported = writes = 0  # deliveries not yet added to the metrics; writes made
    room_keys = keys.RoomKeys(sub.room)
    person = keys.PersonKeys(sub.sid) if sub.sid else None
    try:
        channels = [room_keys.channel] + ([person.channel] if person else [])
        listener = hub.listeners.open(channels)
        # Subscribed before reading history: whatever is stored from now on also arrives
        # live, and live ids at or below ``last`` were already sent from history.
        room_after, direct_after = sub.cursor or (None, None)
        history, last, dropped = store.replay(room_keys, room_after, sub.backlog)
        frames = []
        if dropped:
            frames.append(sse.event("dropped", json.dumps(
                {"room": sub.room, "message": "Some older messages are no longer kept."})))
        direct_last = directs = None
        if person:
            directs, direct_last, _ = store.replay(
                person, direct_after, hub.direct_backlog if direct_after is None else 0)
        # Each event's id is the cursor after it: "<room id>" or "<room id>.<direct id>". During
        # the replay the direct part stays what the client had, until its own replay is sent.
        cursor = _Cursor(room_after, direct_after if person else None)
        frames += [sse.message_frame(cursor.room(mid.encode()), body.encode()) for mid, body in history]
        if person:
            frames += [sse.direct_frame(cursor.direct(mid.encode()), body.encode()) for mid, body in directs]
            presence.join(sub.room, sub.name, sub.sid, sub.conn)
            frames.append(sse.event("presence", json.dumps(
                {"room": sub.room, "action": "here", "online": presence.online(sub.room)})))
        cursor.room(_id_bytes(last))  # caught up: the heads of both
        if person:
            cursor.direct(_id_bytes(direct_last))
        frames.append(sse.event("ready", json.dumps({"room": sub.room}), event_id=cursor.now().decode()))
        yield b"".join(frames)  # through gunicorn: it sends the headers and picks the framing
        history = directs = frames = None  # an open stream keeps nothing of its replay
        hub.outage.ok()
        logger.debug("stream open room=%s resumed=%s person=%s", sub.room, sub.cursor is not None, bool(person))
        if sub.client is not None and sub.chunked is not None:
            out = wire.ClientWriter(sub.client, sub.chunked)
        write = out.write if out is not None else None
        alarm = wire.Alarm(listener.filenos(), heartbeat / 2)
        drain, wait = listener.drain, alarm.wait
        # The cursor as bytes: "<room id>" + ("" or ".<direct id>").
        room_mid = cursor.room_id
        direct_tail = b"" if cursor.direct_id is None else b"." + cursor.direct_id
        tick_at = time.monotonic() + heartbeat  # next presence refresh
        wrote = True  # written to the client since the last tick
        while True:
            batch = drain()  # first round: what arrived during the replay
            if batch:
                frames = []
                newest = b""
                for data in batch:  # the hot path: find the id, compare, frame the bytes as they are
                    nl = data.find(b"\n")
                    kind = data[0]
                    if kind == 33:  # "!name": an event without an id (presence)
                        frames.append(sse.UNNUMBERED_FRAME % (data[1:nl], data[nl + 1:]))
                        continue
                    if kind == 64:  # "@id": a direct message
                        mid = data[1:nl]
                        ms, _, seq = mid.partition(b"-")
                        pair = (int(ms), int(seq))
                        if direct_last is not None and pair > direct_last:
                            direct_last, newest, direct_tail = pair, ms, b"." + mid
                            frames.append(sse.DIRECT_FRAME % (room_mid, direct_tail, data[nl + 1:]))
                        continue
                    mid = data[:nl]
                    ms, _, seq = mid.partition(b"-")
                    pair = (int(ms), int(seq))
                    if pair > last:
                        last, newest, room_mid = pair, ms, mid
                        frames.append(sse.MESSAGE_FRAME % (mid, direct_tail, data[nl + 1:]))
                if frames:
                    chunk = frames[0] if len(frames) == 1 else b"".join(frames)  # one write for all
                    if write is None:
                        yield chunk
                    else:
                        write(chunk)
                    wrote = True
                    # Metrics off the per-delivery path: multiprocess counters take a lock and
                    # touch an mmap, so a stream counts locally and reports in batches.
                    unreported += len(frames)
                    writes += 1
                    if newest and writes & 63 == 1:  # every 64th write of a stream is timed
                        metrics.delivery_seconds.observe(max(0.0, time.time() - int(newest) / 1000))
                    if unreported >= 64:
                        metrics.delivered.inc(unreported)
                        unreported = 0
            if wait():
                continue
            # A tick, every half heartbeat: keep-alives, Redis liveness, presence, metrics.
            if not wrote:  # silent for a half heartbeat at least, a whole one at most
                if write is None:
                    yield sse.comment("keep-alive")
                else:
                    write(sse.comment("keep-alive"))  # a gone client fails this write
            listener.tick()  # pings Redis after a silent tick: finds a dead connection
            wrote = False
            if unreported:
                metrics.delivered.inc(unreported)  # a quiet moment: report the rest
                unreported = 0
            if person and time.monotonic() >= tick_at:
                tick_at = time.monotonic() + heartbeat
                presence.refresh(sub.room, sub.name, sub.sid, sub.conn)
                hub.names.claim(sub.name, sub.sid)  # an online person keeps their name
    except Draining:
        if out is None or not out.broken:
            yield come_back(retry_ms)
    except ClientGone:
        return
    except wire.ClientLost as exc:  # the client went away mid-write, or stopped reading
        logger.debug("stream client lost room=%s error=%r", sub.room, exc)
        return
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        hub.outage.failed("stream", exc)
        yield sse.event("unavailable", json.dumps({"room": sub.room, "message": "Reconnecting…"}))
    except NameTaken as exc:
        logger.info("name lost while streaming room=%s error=%r", sub.room, exc)
    finally:
        if watcher is not None:
            watcher.stop()
        if alarm is not None:
            alarm.close()
        logger.debug("stream closed room=%s", sub.room)
        if unreported:
            metrics.delivered.inc(unreported)
        streams.open.discard(me)
        metrics.open_streams.dec()
        if listener is not None:
            listener.close()
        if person:
            _quietly(presence.leave, sub.room, sub.name, sub.sid, sub.conn)


# What gunicorn's access log reads of the environ when the stream ends.
_LOGGED = frozenset(("REMOTE_ADDR", "REQUEST_METHOD", "RAW_URI", "SERVER_PROTOCOL", "PATH_INFO",
                     "QUERY_STRING", "HTTP_REFERER", "HTTP_USER_AGENT"))


def _forget_request(sub):
    """Let go of the request for the stream's life: gunicorn keeps the environ (with the body
    reader and the headers) until the stream ends, ~1 KB an open stream. Flask is done with it
    once the first chunk is out; what the access log needs stays."""
    environ, sub.environ = sub.environ, None
    if environ is not None:
        for key in [key for key in environ if key not in _LOGGED]:
            del environ[key]


def _watch_client(sock, greenlet):
    """End ``greenlet``'s stream when its client socket turns readable: an EventSource sends
    nothing after its request, so readable means closed (EOF) or reset."""
    if sock is None:
        return None
    watcher = gevent.get_hub().loop.io(sock.fileno(), wire.READ)

    def gone():
        watcher.stop()
        if not greenlet.dead:
            greenlet.kill(ClientGone, block=False)

    watcher.start(gone)
    return watcher


class _Cursor:
    """A stream's position as cursor bytes: room id, and direct id once it has one."""

    __slots__ = ("room_id", "direct_id")

    def __init__(self, room_after, direct_after):
        self.room_id = _id_bytes(room_after or (0, 0))
        self.direct_id = _id_bytes(direct_after) if direct_after else None

    def room(self, mid):
        """The cursor after room message ``mid`` (bytes)."""
        self.room_id = mid
        return self.now()

    def direct(self, mid):
        """The cursor after direct message ``mid`` (bytes)."""
        self.direct_id = mid
        return self.now()

    def now(self):
        return self.room_id if self.direct_id is None else self.room_id + b"." + self.direct_id


def _id_bytes(pair):
    return keys.format_stream_id(pair).encode()


def _quietly(fn, *args):
    try:
        fn(*args)
    except redis.RedisError as exc:  # the membership then expires on its own
        logger.info("presence cleanup failed error=%s", exc)

