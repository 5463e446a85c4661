"""Ripple's Gunicorn worker: gevent's, with a reload that hands the streams over.

gunicorn.conf.py loads this file by path (the master must not import the app package: Flask and
redis-py would be imported before the workers fork and gevent patches them), so it imports only
gunicorn, gevent and the standard library.

What a leaving worker (SIGTERM: a reload, a scale-down, a shutdown) does, in order:

1. Notices at once: a libev signal watcher, not Python's handler, which runs only when the
   hub next runs Python code (up to a second later on a quiet worker).
2. Goes on serving, listener open, until the workers that replace it (its master's children
   younger than itself, forked before the signal on a reload) have started theirs: clients that
   reconnect, and posts, always find a worker accepting instead of a backlog nobody reads. On
   a shutdown there are none and this step takes no time; it is bounded by gunicorn's timeout.
3. Tells its open streams to reconnect (``Streams.drain``, staggered, and paced by the shared
   accept queue: ``DrainPace``) once the replacements listen; if they are slow to boot, a few
   (EARLY_HINTS) HINT_AFTER seconds after the signal. A stream's connection closes when its
   response ends.
4. Closes its listener, lets those waiting reconnects go, keeps serving its connections
   (answers say ``Connection: close``), and exits when the last one is done or
   graceful_timeout after the hand-over.

5. Ends its process without Python's interpreter teardown once it left cleanly (exit status
   0; ``end_quickly``): freeing every module and object one by one took ~0.6 s of CPU per
   worker, on the cores the replacements and the reconnecting clients need.

A connection it accepted just before closing the listener is still served: gunicorn's handler
asks the listener for its address, which on a closed socket raised ``OSError: [Errno 9] Bad file
descriptor`` and reset the connection (logged as an ERROR); here the address is read once.
"""
import ctypes
import ctypes.util
import gc
import glob
import logging
import os
import signal
import socket
import struct
import sys
import tempfile
import time
from collections import deque
from functools import partial
from importlib import metadata

import gevent
from gevent.event import Event
from gevent.pool import Pool
from gevent.server import StreamServer
from gunicorn.errors import AppImportError
from gunicorn.workers.ggevent import GeventWorker

HINT_AFTER = 1.0      # seconds: a few streams are told to come back by then, replacements listening or not
EARLY_HINTS = 64      # how many (per worker); the rest are told once the replacements listen
PACE_IN_FLIGHT = 256  # a leaving worker's told-but-not-accepted streams (see DrainPace)
PACE_WINDOW = 0.5     # seconds a told client takes to come back: DRAIN_RETRY_MS x (1 + jitter) and
                      # its connect (TLS behind a proxy); Firefox waits 500 ms whatever it is told


def ready_marker(master, pid):
    """The file a worker creates once it accepts connections (in the temp dir; per master)."""
    return os.path.join(tempfile.gettempdir(), "ripple-%d-ready-%d" % (master, pid))


def reload_marker(master):
    """The file ``master`` touches on every reload (gunicorn.conf.py on_reload), before it starts
    the new workers: a worker made before its last change is being replaced; one made after it
    (or with none) leaves with its master, on a shutdown."""
    return os.path.join(tempfile.gettempdir(), "ripple-%d-reloaded" % master)


def mark_reload(master):
    with open(reload_marker(master), "a"):
        os.utime(reload_marker(master))


def _reloaded_after(master, when):
    try:
        return os.stat(reload_marker(master)).st_mtime >= when
    except OSError:
        return False


def forget_markers(master, pid="*"):
    """Remove the ready markers of ``master``'s worker ``pid`` (default: all of them, and its
    reload marker)."""
    paths = glob.glob(ready_marker(master, 0)[:-1] + str(pid))
    if pid == "*":
        paths.append(reload_marker(master))
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            pass


class _Listener:
    """A listener's address, read once: gunicorn asks for it per connection."""

    def __init__(self, sock):
        self.name = sock.getsockname()

    def getsockname(self):
        return self.name


def _stat(pid):
    """(command name, the fields after it) of /proc/<pid>/stat, or None."""
    try:
        with open("/proc/%s/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    name, _, rest = data.partition(b" (")[2].rpartition(b")")
    return name, rest.split()


def younger_siblings(pid, master):
    """Pids of ``master``'s other children started after ``pid`` that are workers like it (its
    command name): on a reload, the new workers. An embedded Redis the master restarted after
    an OOM kill is a younger child too: taken for a replacement, a shutdown waited the whole
    graceful timeout for it to listen."""
    mine = _stat(pid)
    found = []
    if mine is None or len(mine[1]) < 20:
        return found
    name, start = mine[0], int(mine[1][19])
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == pid:
            continue
        other = _stat(entry)
        try:
            if other and other[0] == name and int(other[1][1]) == master and int(other[1][19]) > start:
                found.append(int(entry))
        except (ValueError, IndexError):
            continue
    return found


class RippleWorker(GeventWorker):
    """gunicorn's gevent worker (StreamServer flavour) with the reload described above."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The app's open streams (app.delivery.stream.Streams: drain(budget), hand_over()),
        # registered by gunicorn.conf.py.
        self.stream_sets = []
        self.leaving = None      # a gevent Event, set by SIGTERM (made after the fork)
        self.left_at = None
        self.told = False        # the drainers have been started
        self.hinted = False      # the early few have been told (hint_early)
        # Give freed heap back to the OS once this many connections have closed since the
        # busiest moment (0: never): gunicorn.conf.py sets it from RIPPLE_MEMORY_TRIM_CONNECTIONS.
        self.trim_after = 500
        self.servers, self.trim = [], None
        self.pace = None         # a DrainPace once replacements exist (a reload, not a shutdown)
        self.left_cleanly = False  # run() ended, or exit status 0: end_quickly() may end it
        self.made_at = time.time()  # in the master, before the fork: compared with a reload's mark

    def init_process(self):
        _date_once_a_second()
        try:
            super().init_process()
        except SystemExit as exc:  # SIGQUIT/SIGINT's quick exit, a vanished master: status 0
            self.left_cleanly = exc.code in (0, None)
            raise
        self.left_cleanly = True

    def load_wsgi(self):
        """Make the app; a setting it refuses (a rate, which only the workers can read) or a
        Redis Cluster that answers from no node is said in its one sentence, without a traceback:
        gunicorn prints an AppImportError's text alone and stops the master ("App failed to
        load"), where any other exception was "Exception in worker process" and ~40 lines."""
        from click import ClickException  # after the fork: the master imports no more than it must

        try:
            super().load_wsgi()
        except ClickException as exc:  # app/ops/cli_errors.py: BadSetting, ClusterUnreachable
            raise AppImportError("Error: " + exc.format_message()) from None

    def patch(self):
        """gevent's monkey-patching, with the installed packages' entry points read once.

        gevent looks for plugins before and after each module it patches: 25 scans of every
        installed distribution's metadata (``importlib.metadata.entry_points``), ~0.2 s of a
        worker's boot on an idle machine here and several times that on busy cores, in front
        of every reload's and crash's reconnecting clients. Nothing is installed while a worker
        patches, so each group's answer is kept for the duration (same plugins, same order).
        """
        scan, found = metadata.entry_points, {}

        def entry_points(**selection):
            key = tuple(sorted(selection.items()))
            if key not in found:
                found[key] = scan(**selection)
            return found[key]

        metadata.entry_points = entry_points
        try:
            super().patch()
        finally:
            metadata.entry_points = scan

    def end_quickly(self):
        """End this process now if it left cleanly (gunicorn.conf.py's worker_exit hook, after
        gunicorn's own clean-up): flush the logs and ``os._exit(0)``. A worker that failed to
        boot or crashed exits the usual way, with the status gunicorn gave it (the master halts
        on a boot failure's)."""
        if not self.left_cleanly:
            return
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(0)

    def init_signals(self):
        super().init_signals()
        self.leaving = Event()
        gevent.signal_handler(signal.SIGTERM, self.leave)

    def handle_exit(self, sig, frame):  # Python's handler, should it ever run first
        gevent.spawn(self.leave)

    def leave(self):
        if self.left_at is None:
            self.left_at = time.monotonic()
        self.leaving.set()

    def run(self):
        servers = []
        for sock in self.sockets:
            sock.setblocking(1)
            server = StreamServer(sock, handle=partial(self.handle, _Listener(sock)),
                                  spawn=Pool(self.worker_connections))
            if self.cfg.workers > 1:
                server.max_accept = 1  # share the accept queue with the other workers
            server.start()
            servers.append(server)
        marker = ready_marker(self.ppid, self.pid)
        with open(marker, "w"):
            pass
        self.log.info("worker %s listening", self.pid)
        try:
            self.servers, self.trim = servers, HeapTrim(self.trim_after, self.log)
            while self.alive and not self.leaving.is_set():
                self.notify()
                self.trim.check(self.busy())
                self.leaving.wait(1.0)
            if self.alive:  # SIGTERM, not a vanished master (notify() exits then)
                self.hand_over()
            self.alive = False  # from here every answer says Connection: close
            for server in servers:
                server.close()
            self.tell_streams()
            for streams in self.stream_sets:
                streams.hand_over()  # reconnects parked here go, to the workers that stay
            self.finish(servers, time.monotonic() + self.cfg.graceful_timeout)
        finally:
            forget_markers(self.ppid, self.pid)
            if self.pace is not None:
                self.pace.close()

    def hand_over(self):
        """Serve on, listener open, until the younger workers of the same master listen
        (bounded by gunicorn's worker timeout, after which the master would kill a worker that
        has not booted anyway). If they are slow to boot, EARLY_HINTS streams hear to come back
        after HINT_AFTER seconds (``hint_early``); the rest stream on until the hand-over."""
        started = time.monotonic()
        waiting = younger_siblings(self.pid, self.ppid)
        # A reload: told clients may come back at once. On a shutdown the other workers (started
        # a moment after this one, so "younger") leave too.
        replaced = bool(waiting) and _reloaded_after(self.ppid, self.made_at)
        for streams in self.stream_sets:
            streams.taken_over = replaced
        if waiting and self.sockets:
            self.pace = DrainPace(self.sockets[0], PACE_IN_FLIGHT, PACE_WINDOW)
        while waiting and time.monotonic() - started < self.cfg.timeout:
            waiting = [p for p in waiting if _running(p) and not os.path.exists(ready_marker(self.ppid, p))]
            if time.monotonic() - started >= HINT_AFTER:
                self.hint_early()
            self.notify()
            gevent.sleep(0.05)
        if waiting:
            self.log.warning("leaving before %d new worker(s) listen (waited %.1f s)", len(waiting),
                             time.monotonic() - started)
        else:
            self.log.info("worker %s leaving, %.1f s after the signal", self.pid, time.monotonic() - started)

    def hint_early(self):
        """The replacements are slow to boot: tell a few streams to come back now (a reload still
        ends a small worker's streams within about HINT_AFTER), the rest once they listen.

        Telling every stream here (as before) spent the drain's paced budget on the boot (3–17 s
        on a busy machine): its clients reconnected to this worker, which parked them without
        events until the hand-over and then sent them on again, and the drain's deadline came
        soon after the hand-over and sent the rest at once. The few told here reconnect to
        whichever worker accepts (this one serves them, and tells them again with the rest).
        """
        if self.hinted or not self.stream_sets:
            return
        self.hinted = True
        from app.delivery.stream import Draining  # the app is imported by now (this is a worker)
        for streams in self.stream_sets:
            early = list(streams.open)[:EARLY_HINTS]
            for greenlet in early:
                greenlet.kill(Draining, block=False)
            if early:
                self.log.info("drain: told %d stream(s) to reconnect early (the new workers boot slowly)",
                              len(early))

    def tell_streams(self):
        """Start telling the open streams to come back (once), with time to spare."""
        if self.told:
            return
        self.told = True
        for streams in self.stream_sets:
            gevent.spawn(streams.drain, max(1.0, self.cfg.graceful_timeout - 1.0), self.pace)

    def finish(self, servers, deadline):
        """Serve the open connections until they end, at most until ``deadline``."""
        while time.monotonic() < deadline:
            if all(s.pool.free_count() == s.pool.size for s in servers):
                return
            self.notify()
            gevent.sleep(0.1)
        busy = sum(s.pool.size - s.pool.free_count() for s in servers)
        self.log.warning("worker graceful timeout (pid:%s): ending %d connection(s)", self.pid, busy)
        for server in servers:
            server.stop(timeout=1)

    def busy(self):
        """Connections this worker is serving now."""
        return sum(s.pool.size - s.pool.free_count() for s in self.servers)

    def handle(self, listener, client, addr):
        if self.trim is not None:
            self.trim.high = max(self.trim.high, self.busy())  # the wave's top, not a sample of it
        super().handle(listener, client, addr)

    def handle_request(self, listener_name, req, sock, addr):
        """Serve one request; once leaving, say so and keep no connection for a next one.

        A request that starts after the signal is answered with ``Connection: close`` (gunicorn
        says it only once ``alive`` is False, after the hand-over): a keep-alive publisher then
        sends its next post on a new connection, to whichever worker accepts, instead of into a
        connection the leaving worker will close. A GET that ends while leaving (a stream told
        to come back, or a reconnect it parked) closes its connection at once: its headers
        promised keep-alive, and held open it kept the client waiting gunicorn's keepalive
        seconds for the close (and the worker from exiting). A GET is safe to close after:
        clients retry an idempotent request on a connection the server closed; a POST's
        connection is left to its next request's ``Connection: close``.
        """
        if self.leaving is not None and self.leaving.is_set():
            req.must_close = True
        super().handle_request(listener_name, req, sock, addr)
        if self.leaving is not None and self.leaving.is_set() and req.method in ("GET", "HEAD"):
            raise StopIteration()  # gunicorn's "close this connection" (AsyncWorker.handle)

    def handle_error(self, req, client, addr, exc):
        if isinstance(exc, gevent.GreenletExit):  # a connection ended at graceful timeout: no fault
            self.log.debug("connection ended at graceful timeout")
            return
        super().handle_error(req, client, addr, exc)


class DrainPace:
    """How many more streams a leaving worker may tell to come back now (``Streams.drain``).

    Every client told comes back within about PACE_WINDOW seconds and waits in the listener's
    accept queue (shared by every worker) until a new worker accepts it; so do posts on new
    connections. Told faster than the new workers open streams, the queue grows to thousands
    and a post waits seconds behind them (12 s measured at 5,000 streams), then SYNs are
    dropped and retried after 1, 3, 7 s. So: at most ``in_flight`` clients told in the last
    ``window`` seconds or waiting in the queue, read from the kernel (TCP_INFO of the listening
    socket: tcpi_unacked is its accept queue's length). The drain still ends in time: it holds
    only while ahead of the pace that tells every stream within its budget.
    """

    def __init__(self, listener, in_flight, window):
        self.in_flight, self.window = int(in_flight), float(window)
        self.told = deque()  # (when, how many) told, over the last window
        try:  # a copy: the worker closes its listener while the drain goes on
            self.sock = socket.socket(fileno=os.dup(listener.fileno()))
        except (OSError, AttributeError, ValueError):
            self.sock = None

    def waiting(self):
        """Connections in the listener's accept queue (0 when unknown: not Linux, not TCP)."""
        try:
            info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
            return struct.unpack_from("=I", info, 24)[0]
        except (OSError, AttributeError, struct.error):
            return 0

    def __call__(self, due):
        """Of ``due`` streams, how many to tell now (``record`` counts what the drain told)."""
        now = time.monotonic()
        while self.told and self.told[0][0] < now - self.window:
            self.told.popleft()
        room = max(0, self.in_flight - self.waiting() - sum(n for _, n in self.told))
        return min(int(due), room)

    def record(self, told):
        """``told`` streams were told just now: more than asked when the drain was behind."""
        if told:
            self.told.append((time.monotonic(), int(told)))

    def close(self):
        if self.sock is not None:
            self.sock.close()


class HeapTrim:
    """Return freed heap to the OS after a wave of connections closes (glibc's malloc_trim).

    glibc keeps what a wave of streams freed (their greenlets' saved stacks, buffers, request
    objects) for reuse: without a trim a worker that once held 9,000 streams stays that size.
    One trim walks the heap (a few ms per hundred MB), so it runs only after ``after``
    connections have closed since the busiest moment, at most once a second; the worker notes
    that moment on every new connection. Before it, the Redis command pools close the idle
    connections the wave made them open (topology.shed_idle_connections).
    """

    def __init__(self, after, log):
        self.after, self.log = int(after), log
        self.high = 0
        self.libc = None
        if self.after > 0:
            try:
                self.libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                self.libc.malloc_trim  # noqa: B018 - glibc only; musl has none
            except (OSError, AttributeError):
                self.libc = None

    def check(self, busy):
        self.high = max(self.high, busy)
        if self.libc is None or self.high - busy < self.after:
            return
        before = _rss_mb()
        closed = 0
        try:
            from app.ops import topology  # the worker's app; the master imports no more than it must

            closed = topology.shed_idle_connections()
        except Exception:  # noqa: BLE001 - redis-py's pool internals changed: keep the worker and trim
            self.log.exception("closing idle Redis command connections failed")
        gc.collect()  # what only the cycle collector frees (a closed stream's frames, sockets)
        self.libc.malloc_trim(0)
        self.log.info("returned freed heap to the OS after %d connections closed (RSS %.0f -> %.0f MB; "
                      "%d idle Redis connections closed)", self.high - busy, before, _rss_mb(), closed)
        self.high = busy


def _date_once_a_second():
    """gunicorn formats every answer's Date header anew (util.http_date: email.utils.formatdate,
    ~2 % of a token post's CPU under py-spy); a worker formats it once a second, its resolution.
    A call with a timestamp is gunicorn's own."""
    from gunicorn import util

    formatted = util.http_date
    if getattr(formatted, "per_second", False):
        return
    last = [None, ""]

    def http_date(timestamp=None):
        if timestamp is not None:
            return formatted(timestamp)
        now = int(time.time())
        if last[0] != now:
            last[0], last[1] = now, formatted(now)
        return last[1]

    http_date.per_second = True
    util.http_date = http_date


def _rss_mb():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def _running(pid):
    """False once ``pid`` has exited (a zombie its master has not reaped yet included)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] != b"Z"
    except OSError:
        return False
