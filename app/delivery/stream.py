"""One room's live event stream: subscribe, replay what the client missed, relay the rest."""
import functools
import json
import logging
import random
import time

import gevent
import gevent.event
import redis

from ..ops import topology
from ..people import presence
from ..people.names import NameTaken
from ..rooms import keys, reads
from . import datastack, heartbeats, sse, wire
from .listener import Closed as ListenerClosed
from .listener import NotMaster
from .position import Position

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

logger = logging.getLogger(__name__)


WATCHED = 50  # other rooms whose activity one stream follows for its person's sidebar

# A silent stream compares its position with the logs' heads at most this far apart.
IDLE_CHECK_MAX_SECONDS = 60


class MasterSwitched(gevent.GreenletExit):
    """Thrown into open streams when Sentinel announces a new master: resume there, now.

    A GreenletExit, like ClientGone: landing in gunicorn's own write it ends the request
    quietly, and no ``except RedisError`` on the way swallows it."""


class Crowded(Exception):
    """A stream past its worker's cap (``Streams.limit``): it was opened in a burst whose opens
    all passed the cap's check (``Streams.full``) before any of them was counted here."""


class Draining(gevent.GreenletExit):
    """Thrown into open streams when the worker shuts down, so they end now, not at timeout.

    A GreenletExit, like ClientGone: thrown at a stream that ends by itself meanwhile, it can
    land in gunicorn's read of the connection's next request, which then ends quietly (as an
    Exception it was logged as an ERROR, "Error handling request (no URI read)")."""


class ClientGone(gevent.GreenletExit):
    """Thrown into a stream whose client closed its connection, so it ends now, not at the
    next heartbeat write (its Redis connection and two descriptors are freed at once).

    A GreenletExit: if it lands while gunicorn is writing to the client (not in the stream's
    own code), gunicorn's gevent worker ends the request quietly."""


class Excluded(Exception):
    """The room shut this stream out (a removal, a ban, a deletion), or its person lost the power
    it was opened on: send ``frame``, end."""

    def __init__(self, frame):
        super().__init__()
        self.frame = frame


class Replaced(Exception):
    """A newer stream of the same session took this one's place (the session's cap): end."""


class SignedOut(Exception):
    """The stream's session ended (sign-out, or a new sign-in, anywhere): tell the client, end."""


SIGNED_OUT_MESSAGE = N_("You are signed out: you left, or signed in again, in another tab or window.")
TOKEN_EXPIRED_MESSAGE = (N_("Your sign-in token has expired: get a fresh one and reconnect with your "
                            "cursor; nothing is lost."))
# The last frame of a stream whose session ended: browsers show the signed-out state.
SIGNED_OUT_FRAME = sse.event("signed-out", json.dumps({"message": SIGNED_OUT_MESSAGE}))
# ...and of one whose token expired: the client fetches a fresh token and resumes by its cursor.
TOKEN_EXPIRED_FRAME = sse.event("signed-out", json.dumps({"message": TOKEN_EXPIRED_MESSAGE,
                                                           "reason": "token_expired"}))


# Told to a stream that a newer one of its session replaced: reconnecting at once would only
# replace another of the session's streams, so a plain EventSource waits this long first.
REPLACED_RETRY_MS = 30000
REPLACED = (N_("This stream was replaced by a newer one of the same session (too many open tabs or "
               "devices). Reload the page to continue here."))


class Streams:
    """The open streams of this worker: a cap on their number and a way to end them all."""

    def __init__(self, limit, drain_rate=0):
        self.limit = int(limit)
        self.drain_rate = float(drain_rate)  # streams told per second on drain; 0: all at once
        self.open = set()
        self.draining = False
        self.handed_over = gevent.event.Event()  # set once the workers that stay listen
        # Workers take over from this one (a reload, not a shutdown): app/ops/worker.py sets it
        # once it finds them booting; its told streams' clients may come back at once.
        self.taken_over = False

    def full(self):
        return len(self.open) >= self.limit

    def hand_over(self):
        """The workers that replace this one listen: reconnects waiting here may go."""
        self.handed_over.set()

    def drain(self, budget=None, pace=None):
        """Ask every open stream to tell its client to reconnect, then end.

        Staggered at ``drain_rate`` streams per second, faster if that would take more than half
        of ``budget`` (the seconds left before the worker's graceful timeout): the workers taking
        them over open them as they come, not thousands at once past their accept queue, and a
        stream keeps delivering until its turn. One that registers meanwhile ends on its first step.

        ``pace`` (optional; the worker's, app/ops/worker.py): ``pace(n)`` is called every tick
        with the streams due and returns how many of them to tell now (fewer while the workers
        taking over are behind). With it the drain may use 0.8 of ``budget`` rather than half,
        and holds only while it is not behind telling them evenly over that.

        The schedule is read off the clock, not counted in ticks: a worker busy delivering (a
        reload under load) wakes from each tick late, and a count of ticks fell behind by that
        much (10,000 streams: two thirds were still untold at the graceful timeout and ended
        without a hint, their clients coming back only after the full ``retry``).
        """
        self.draining = True
        record = getattr(pace, "record", None)  # the pace counts what was told, not what it allowed
        waiting = list(self.open)  # in turn; streams that register from now on end by themselves
        total, told = len(waiting), 0
        started = time.monotonic()
        rate = self.drain_rate
        share = budget * (0.8 if pace else 0.5) if budget else None
        if rate and share:
            rate = max(rate, total / share)
        tick = 0.05
        while told < total:
            elapsed = time.monotonic() - started
            if not rate or (budget and elapsed >= budget):
                due = total - told  # all at once, or the budget is spent: tell the rest now
            else:
                due = min(total, int(rate * (elapsed + tick)) + 1) - told
                if pace is not None and share and elapsed < share:
                    owed = int(total * elapsed / share) - told  # behind the even schedule: no hold
                    due = max(owed, min(due, int(pace(due))))
            due = max(0, due)
            for greenlet in waiting[told:told + due]:
                if greenlet in self.open:
                    greenlet.kill(Draining, block=False)
            told += due
            if record is not None:
                record(due)
            if told < total:
                gevent.sleep(tick)
        late = self.open.difference(waiting)  # registered past the check (none should)
        for greenlet in late:
            greenlet.kill(Draining, block=False)
        total += len(late)
        if total:
            logger.info("drain: told %d stream(s) to reconnect in %.1f s", total, time.monotonic() - started)
        else:
            logger.info("drain: no open stream left to tell")


class Subscription:
    """What one stream serves: a room, where the client is, and who (if anyone) is listening."""

    __slots__ = ("room", "cursor", "backlog", "name", "sid", "account", "expires", "conn", "client",
                 "chunked", "environ", "gate", "watch", "greet", "powers")

    def __init__(self, room, cursor=None, backlog=0, name=None, sid=None, conn=None, client=None,
                 chunked=True, environ=None):
        self.room, self.cursor, self.backlog = room, cursor, backlog
        self.name, self.sid, self.conn = name, sid, conn  # conn: its presence registration
        self.account = None  # the session's account id (None for a guest): its name is its own
        self.expires = None  # when the session ends by itself (a token's exp, epoch seconds)
        # The client's socket (gunicorn's), watched for its closing and written to directly
        # once the headers are out, in the framing gunicorn chose: chunked (True, HTTP/1.1),
        # plain (False, HTTP/1.0); None leaves every write to gunicorn.
        self.client, self.chunked = client, chunked
        self.environ = environ  # the WSGI environ: trimmed once Flask is done with it
        # What may end it from the room's side (app/rooms/moderation.py StreamGate), or None.
        self.gate = None
        # A signed-in person's sidebar (app/people/reading.py): the activity channels of their
        # other rooms, and the read of their counts (queue(pipe) -> finish(replies) -> the
        # ``unread`` event's JSON: app/rooms/reads.py), sent after the replay.
        self.watch, self.greet = (), None
        # Asked every heartbeat: False once the person lost a power this stream relies on (an
        # administrator's: app/web/opening.py AdminPower); the stream then ends with a reconnect,
        # whose checks decide afresh. None: it relies on none.
        self.powers = None


def reconnect_soon(retry_ms):
    """The last chunk of a stream whose channel moved (a failover): reconnect soon."""
    return sse.retry(retry_ms // 4 or 1)


# The last chunk of a stream on a leaving worker (a reload, a shutdown): reconnect now, elsewhere.
# The workers taking over listen by then, and the drain spaces the clients out itself
# (``Streams.drain``, app/ops/worker.py DrainPace); every millisecond waited here is added to
# every client's way back, and to the pace's feedback (it counts a told client as on its way
# until it can have arrived). Firefox waits at least 500 ms whatever it is told.
DRAIN_RETRY_MS = 100
RECONNECT_ELSEWHERE = sse.retry(DRAIN_RETRY_MS)


def leaving_hint(streams, retry_ms):
    """The last chunk of a stream on a leaving worker: at once when workers take over (a
    reload); on a shutdown, which none does, ``reconnect_soon`` (no browser retrying a closed
    port ten times a second)."""
    return RECONNECT_ELSEWHERE if streams.taken_over else reconnect_soon(retry_ms)


class Hub:
    """What every stream of an app shares: Redis access, registries, metrics and timings."""

    def __init__(self, ripple, cfg):
        """``ripple``: the app's Services (app/ops/services.py); ``cfg``: its config mapping."""
        self.store, self.listeners = ripple.store, ripple.listeners
        self.presence, self.names, self.metrics = ripple.presence, ripple.names, ripple.metrics
        self.addresses = ripple.addresses
        self.sessions = ripple.sessions
        self.outage = ripple.outage
        self.streams = Streams(cfg["MAX_STREAMS_PER_WORKER"], cfg["DRAIN_STREAMS_PER_SECOND"])
        self.heartbeat = float(cfg["HEARTBEAT_SECONDS"])
        self.retry_ms = int(cfg["RETRY_MS"])
        self.direct_backlog = int(cfg["DIRECT_BACKLOG"])
        # A Cluster's pipelines split commands by slot: there each stream refreshes apart.
        self.cluster = topology.is_cluster(cfg["REDIS_URL"])
        self.heartbeats = None if self.cluster else heartbeats.Heartbeats(ripple.presence, ripple.names)
        self.head_reads = None if self.cluster else heartbeats.HeadReads(ripple.store)
        # Streams write to the client socket themselves; gunicorn.conf.py turns this off when
        # gunicorn speaks anything but plain HTTP/1.x to clients.
        self.direct_writes = True
        self._heads = {}  # log key -> (when read, newest id): see heads()
        url = cfg["REDIS_URL"]
        self.switch_watch = topology.SwitchWatch(url, cfg["REDIS_SOCKET_TIMEOUT"], self.master_switched) \
            if topology.is_sentinel(url) else None

    def heads(self, logs):
        """The logs' newest ids (str) for idle checks, shared by this worker's streams for up
        to a second: a silent room's streams ask Redis once between them, not once each."""
        now = time.monotonic()
        cache = self._heads
        if len(cache) > 10000:
            cache.clear()
        missing = [k for k in logs if now - cache.get(k.log, (-2.0, ""))[0] > 1.0]
        if missing:  # with other silent streams' (a worker's in one round trip) where it can
            found = self.store.heads(missing) if self.head_reads is None else self.head_reads.heads(missing)
            for k, head in zip(missing, found):
                cache[k.log] = (now, head)
        return [cache[k.log][1] for k in logs]

    def watch_failovers(self):
        """Start following Sentinel's announcements (in a worker, once its loop runs)."""
        if self.switch_watch is not None:
            gevent.spawn(self.switch_watch.run)

    def master_switched(self, announcement):
        """Leave the deposed master now: pooled command connections, the listeners' cached
        address, and every open stream (each comes back at once and resumes by its cursor)."""
        logger.warning("redis master switched, reconnecting: %s", announcement)
        self.store.redis.connection_pool.disconnect()
        self.listeners.master.forget()
        for greenlet in list(self.streams.open):
            greenlet.kill(MasterSwitched(announcement), block=False)


def relay(hub, sub):
    """Yield SSE bytes for one subscription; has everything it needs, never touches the request.

    One pub/sub connection carries the room's channel and, for a signed-in person, their direct
    messages; the cursor covers both, so a reconnect resumes each exactly where it stopped.
    This function owns the stream's life (registration, cleanup, how each failure ends it);
    ``_replay`` and ``_live`` are its two steps.
    """
    streams, metrics = hub.streams, hub.metrics
    yield sse.retry(hub.retry_ms)  # first chunk: headers leave now, before any Redis round trip
    _forget_request(sub)
    me = gevent.getcurrent()
    streams.open.add(me)
    metrics.open_streams.inc()
    live = _Live(hub, sub)
    watcher = live.watch = _watch_client(sub.client, me)
    let_go = hub.names.let_go  # the name lapses a few heartbeats after the last stream
    try:
        if streams.draining:  # the worker began leaving while this stream opened
            raise Draining()
        if len(streams.open) > streams.limit:
            raise Crowded()
        live.listener = hub.listeners.open(live.channels())
        # Subscribed before reading history: whatever is stored from now on also arrives live,
        # and the position skips what the replay already sent.
        yield _replay(hub, sub, live)
        if sub.client is not None and sub.chunked is not None:
            # gunicorn's loop holds the chunk it wrote last until the next one, and from here
            # on the stream writes itself: without this (empty, never sent) chunk, the replay
            # (up to a whole backlog) would stay in memory for the stream's life.
            yield b""
        hub.outage.ok()
        logger.debug("stream open room=%s resumed=%s person=%s", sub.room, sub.cursor is not None,
                     live.person is not None)
        yield from live.run()
    except Draining:
        if live.out is None or not live.out.broken:
            yield leaving_hint(streams, hub.retry_ms)
    except Crowded:
        # Before anything was sent but "retry:": back in one to two retries (a crowd spread
        # out), to meet the cap's check then, or another worker.
        logger.debug("stream over the worker's cap room=%s", sub.room)
        yield sse.retry(int(hub.retry_ms * (1 + random.random())))
    except ClientGone:
        return
    except wire.ClientLost as exc:  # the client went away mid-write, or stopped reading
        logger.debug("stream client lost room=%s error=%r", sub.room, exc)
        return
    except (NotMaster, MasterSwitched) as exc:  # a failover moved the room's channel: resume there
        logger.info("stream channel moved room=%s error=%s", sub.room, exc)
        if live.out is None or not live.out.broken:
            yield reconnect_soon(hub.retry_ms)
    except ListenerClosed as exc:  # a slow reader Redis dropped, or Redis going away
        hub.outage.listener_closed(exc, hub.store.ping)
        yield sse.event("unavailable", json.dumps({"room": sub.room, "message": "Reconnecting…"}))
    except redis.RedisError as exc:  # unreachable, or an error reply (OOM, READONLY) mid-stream
        hub.outage.failed("stream", exc)
        yield sse.event("unavailable", json.dumps({"room": sub.room, "message": "Reconnecting…"}))
    except NameTaken as exc:
        logger.info("name lost while streaming room=%s error=%r", sub.room, exc)
    except SignedOut:
        logger.debug("stream of a session that ended room=%s", sub.room)
        let_go = hub.names.release  # at once: a refresh racing the sign-out must not keep it
        if live.out is None or not live.out.broken:
            expired = sub.expires is not None and time.time() >= sub.expires - 1
            yield TOKEN_EXPIRED_FRAME if expired else SIGNED_OUT_FRAME
    except Excluded as exc:
        logger.debug("stream shut out by its room room=%s", sub.room)
        if live.out is None or not live.out.broken:
            yield exc.frame
    except Replaced:
        logger.debug("stream replaced by a newer one of its session room=%s", sub.room)
        if live.out is None or not live.out.broken:
            yield sse.retry(REPLACED_RETRY_MS) + sse.event(
                "replaced", json.dumps({"room": sub.room, "message": REPLACED}))
    finally:
        if watcher is not None:
            watcher.stop()
        live.close()
        logger.debug("stream closed room=%s", sub.room)
        streams.open.discard(me)
        metrics.open_streams.dec()
        _quietly(hub.addresses.release, me)
        if live.person is not None:
            _quietly(hub.presence.leave, sub.room, sub.name, sub.sid, sub.conn)
            _quietly(let_go, sub.name, sub.sid)


def _replay(hub, sub, live):
    """Return the bytes a new stream owes its client before going live (one chunk).

    Each event's id is the cursor after it. During the replay the direct part stays what the
    client had until the direct replay is sent; at the end the position moves to both logs'
    heads, read in the same snapshots. First it looks again, now that the stream listens,
    whether the session still stands and the room still lets its person in (raises SignedOut,
    Excluded): on a single Redis those reads and both logs' share one round trip.
    """
    store, person = hub.store, live.person
    room_after, direct_after = sub.cursor or (None, None)
    direct_backlog = hub.direct_backlog if direct_after is None else 0
    alive = closing = direct_read = counts = None
    gate = sub.gate if sub.gate is not None and sub.gate.checks_on_open else None
    greet = sub.greet if person is not None else None
    if not hub.cluster:  # one round trip (and one snapshot) for every read of the open
        batch = reads.ReadBatch(store.redis)
        if person is not None:
            alive = batch.add(lambda pipe: hub.sessions.alive_reads(pipe, sub.sid))
        if gate is not None:
            closing = batch.add(gate.opening_reads)
        room_read = batch.add(lambda pipe: store.replay_reads(pipe, live.room_keys, room_after, sub.backlog))
        if person is not None:
            direct_read = batch.add(lambda pipe: store.replay_reads(pipe, person, direct_after, direct_backlog))
        if greet is not None:
            counts = batch.add(greet)
        batch.run()
    else:  # the keys live in several slots: one call each, in the same order
        if person is not None:
            alive = functools.partial(hub.sessions.alive, sub.sid)
            direct_read = functools.partial(store.replay, person, direct_after, direct_backlog)
        if gate is not None:
            closing = functools.partial(gate.closing, b"access", b"")
        room_read = functools.partial(store.replay, live.room_keys, room_after, sub.backlog)
        if greet is not None:
            counts = functools.partial(reads.read_alone, store.redis, greet)
    if alive is not None and not alive():
        raise SignedOut()  # ended while this stream opened: its word came before we listened
    if closing is not None:  # the same for a ban or a removal
        frame = closing()
        if frame is not None:
            raise Excluded(frame)
    history, room_head, dropped = room_read()
    frames = []
    if dropped:
        frames.append(_dropped(sub.room))
    position = live.position = Position(_id_bytes(room_after or (0, 0)),
                                        _id_bytes(direct_after) if person and direct_after else None)
    frames += position.fill_room(history)
    direct_head = None
    if person is not None:
        directs, direct_head, _ = direct_read()
        frames += position.fill_direct(directs)
        # The join and this stream's bounded snapshot of who is online: one round trip.
        snapshot = hub.presence.join(sub.room, sub.name, sub.sid, sub.conn, snapshot=True)
        frames.append(sse.event("presence", snapshot))
        if counts is not None:  # read after subscribing: no activity falls between it and live
            frames.append(sse.event("unread", counts()))
    position.catch_up(_id_bytes(room_head), _id_bytes(direct_head) if person is not None else None)
    live.quiet(time.monotonic())  # the snapshot just showed nothing newer
    frames.append(sse.event("ready", json.dumps({"room": sub.room}), event_id=position.cursor().decode()))
    return b"".join(frames)  # through gunicorn: it sends the headers and picks the framing


class _Live:
    """A stream after its replay: relay live payloads, repair gaps, keep alive, refresh presence."""

    __slots__ = ("hub", "sub", "room_keys", "person", "listener", "ticker", "out", "position", "watch",
                 "unreported", "idle_checks", "next_check")

    def __init__(self, hub, sub):
        self.hub, self.sub = hub, sub
        self.room_keys = keys.room_keys(sub.room)  # shared by the room's streams
        self.person = keys.PersonKeys(sub.sid) if sub.sid else None
        self.listener = self.ticker = self.out = self.position = self.watch = None
        self.unreported = 0   # deliveries not yet added to the metrics
        # Idle checks against the logs' heads: after 1, 2, 4... heartbeats of silence at one
        # position (capped at IDLE_CHECK_MAX_SECONDS), again from 1 once the position moves.
        self.idle_checks = 0
        self.next_check = 0.0

    def channels(self):
        return [self.room_keys.channel] + ([self.person.channel] if self.person else []) + list(self.sub.watch)

    def quiet(self, now, checked=False):
        """Schedule the next idle check: the position just moved (or was just checked)."""
        self.idle_checks = self.idle_checks + 1 if checked else 0
        wait = min(self.hub.heartbeat * (2 ** self.idle_checks), IDLE_CHECK_MAX_SECONDS)
        self.next_check = now + max(wait, self.hub.heartbeat)

    def run(self):
        """Relay until the stream ends (by an exception); yields only when writing through
        gunicorn (no direct client writer)."""
        hub, sub, position, metrics = self.hub, self.sub, self.position, self.hub.metrics
        if sub.client is not None and sub.chunked is not None:
            self.out = wire.ClientWriter(sub.client, sub.chunked)
        write = self.out.write if self.out is not None else None
        heartbeat = hub.heartbeat
        self.ticker = wire.Ticker(self.listener.filenos(), heartbeat / 2)
        watch = self.watch
        if watch is not None:  # a half-closed client is probed at once, not at the next tick
            watch.wake = self.ticker.tick_now
            if watch.probe_due:
                self.ticker.tick_now()
        drain, wait, take = self.listener.drain, self.ticker.wait, position.take
        tick_at = time.monotonic() + heartbeat  # next presence refresh and idle check
        release = datastack.release  # the open went deep; the loop stays shallow (~4-8 KB)
        release()
        quiet_since = position.cursor()  # the position at the last full-heartbeat tick
        wrote = True  # written to the client since the last tick
        writes = 0
        while True:
            batch = drain()  # first round: what arrived during the replay
            if batch:
                frames = take(batch)
                if position.room_gap or position.direct_gap:
                    frames += self._repair()
                if position.controls:
                    self._obey(position.controls)
                if frames:
                    chunk = frames[0] if len(frames) == 1 else b"".join(frames)  # one write for all
                    if write is None:
                        yield chunk
                    else:
                        write(chunk)
                    wrote = True
                    # Metrics off the per-delivery path: multiprocess counters take a lock and
                    # touch an mmap, so a stream counts locally and reports in batches.
                    self.unreported += len(frames)
                    writes += 1
                    if writes & 63 == 1 and position.newest_ms:  # every 64th write is timed
                        metrics.delivery_seconds.observe(
                            max(0.0, time.time() - int(position.newest_ms) / 1000))
                    if self.unreported >= 64:
                        metrics.delivered.inc(self.unreported)
                        self.unreported = 0
            if wait():
                continue
            # A tick, every half heartbeat: keep-alives, Redis liveness, presence, metrics.
            if not wrote or (watch is not None and watch.probe_due):
                # Silent for a half heartbeat at least, a whole one at most; or the client
                # half-closed its side, and this keep-alive tells a close (a reset) from that.
                if write is None:
                    yield sse.PING
                else:
                    write(sse.PING)  # a gone client fails this write
                if watch is not None and watch.probe_due:
                    watch.probed()
            self.listener.tick()  # pings Redis after a silent tick: finds a dead connection
            wrote = False
            if self.unreported:
                metrics.delivered.inc(self.unreported)  # a quiet moment: report the rest
                self.unreported = 0
            clock = time.monotonic()
            if clock >= tick_at:
                tick_at = clock + heartbeat
                now = position.cursor()
                if now != quiet_since:
                    self.quiet(clock)
                elif clock >= self.next_check:
                    # Silent since the last check: a lost *last* message has no successor to
                    # reveal it, so compare the logs' heads now and then (backing off).
                    frames = self._check_heads()
                    self.quiet(clock, checked=True)
                    if frames:
                        chunk = b"".join(frames)
                        if write is None:
                            yield chunk
                        else:
                            write(chunk)
                        wrote = True
                quiet_since = position.cursor()
                if self.person is not None:
                    # An online person keeps their name. On a single Redis the refresh and the
                    # hold go with other streams' in one round trip; on a Cluster, apart.
                    if hub.heartbeats is not None:
                        ended = hub.heartbeats.refresh(sub)  # NameTaken when the name is lost
                    else:
                        ended = hub.presence.refresh(sub.room, sub.name, sub.sid, sub.conn)
                        if ended is None:
                            hub.names.hold(sub.name, sub.sid, sub.account)
                    if ended == presence.SESSION_ENDED:  # its word missed this worker
                        raise SignedOut()
                    if ended == presence.REPLACED:
                        raise Replaced()
                if sub.powers is not None and not sub.powers():
                    raise Excluded(reconnect_soon(hub.retry_ms))
                release()  # what those Redis round trips touched

    def _watch(self, room):
        """Follow one more room's activity for the sidebar, up to WATCHED rooms."""
        channel = keys.RoomKeys(room).activity
        watched = self.sub.watch
        if room == self.sub.room or channel in watched or len(watched) >= WATCHED:
            return
        if self.listener.follow([channel]):
            self.sub.watch = [*watched, channel]

    def _obey(self, controls):
        """Act on control payloads from the session's channel (then forget them)."""
        conn = self.sub.conn.encode() if self.sub.conn else None
        try:
            for verb, argument in controls:
                if verb == b"replaced" and argument == conn:
                    raise Replaced()
                if verb == b"signed-out":
                    raise SignedOut()
                if verb == b"watch":  # a room joined the person's sidebar (app/people/reading.py)
                    self._watch(argument.decode("utf-8", "replace"))
                    continue
                if self.sub.gate is not None:  # the room's word: removed, banned, deleted...
                    frame = self.sub.gate.closing(verb, argument)
                    if frame is not None:
                        raise Excluded(frame)
        finally:
            controls.clear()

    def _check_heads(self):
        position = self.position
        logs = [self.room_keys] + ([self.person] if self.person is not None else [])
        heads = self.hub.heads(logs)
        position.room_gap = position.room_behind(heads[0].encode())
        if self.person is not None:
            position.direct_gap = position.direct_behind(heads[1].encode())
        return self._repair() if position.room_gap or position.direct_gap else []

    def _repair(self):
        """Read what pub/sub did not bring from the logs, in order; count it."""
        position, store, metrics = self.position, self.hub.store, self.hub.metrics
        frames = []
        if position.room_gap:
            after = keys.parse_stream_id(position.room_id)
            entries, _, dropped = store.replay(self.room_keys, after)
            if dropped:
                frames.append(_dropped(self.sub.room))
            found = position.fill_room(entries)
            metrics.gaps.labels("room").inc()
            metrics.repaired.labels("room").inc(len(found))
            frames += found
        if position.direct_gap:
            entries, _, _ = store.replay(self.person, keys.parse_stream_id(position.direct_id))
            found = position.fill_direct(entries)
            metrics.gaps.labels("direct").inc()
            metrics.repaired.labels("direct").inc(len(found))
            frames += found
        logger.info("stream gap repaired room=%s messages=%d", self.sub.room, len(frames))
        return frames

    def close(self):
        if self.ticker is not None:
            self.ticker.close()
        if self.unreported:
            self.hub.metrics.delivered.inc(self.unreported)
        if self.listener is not None:
            self.listener.close()


def _dropped(room):
    return sse.event("dropped", json.dumps({"room": room, "message": N_("Some older messages are no longer kept.")}))


# What gunicorn's access log reads of the environ when the stream ends.
_LOGGED = frozenset(("REMOTE_ADDR", "REQUEST_METHOD", "RAW_URI", "SERVER_PROTOCOL", "PATH_INFO",
                     "QUERY_STRING", "HTTP_REFERER", "HTTP_USER_AGENT"))


def _forget_request(sub):
    """Let go of the request for the stream's life: gunicorn keeps the environ (with the body
    reader and the headers) until the stream ends, ~1 KB an open stream. Flask is done with it
    once the first chunk is out; what the access log needs stays."""
    environ, sub.environ = sub.environ, None
    if environ is not None:
        kept = {key: environ[key] for key in _LOGGED if key in environ}
        environ.clear()  # deleting keys one by one kept the dict's table (~1 KB) for the stream's life
        environ.update(kept)


def _watch_client(sock, greenlet):
    """End ``greenlet``'s stream when its client leaves (see wire.ClientWatch)."""
    if sock is None:
        return None

    def gone():
        if not greenlet.dead:
            greenlet.kill(ClientGone, block=False)

    return wire.ClientWatch(sock, gone)


def _id_bytes(pair):
    return keys.format_stream_id(pair).encode()


def _quietly(fn, *args):
    try:
        fn(*args)
    except redis.RedisError as exc:  # the membership then expires on its own
        logger.info("presence cleanup failed error=%s", exc)

