"""A stream's two sockets at the lowest level: wait for Redis or a heartbeat, write to the client.

Per delivery the stream should do little more than one recv and one send. gevent's socket
methods add a failed attempt (an exception), a Timeout object and a timer per wait, and a
``getsockopt`` per ``sendall``; gunicorn's ``Response.write`` adds its bookkeeping and another
``sendall``. A stream parks on its own libev watchers instead and sends on the plain socket,
falling back to gevent (with the send timeout) only when the client's buffer is full.
"""
import socket

import gevent

READ = 1  # libev's EV_READ


class Ticker:
    """Parks the current greenlet until one of ``fds`` is readable or ``period`` seconds pass.

    The io watchers run only while the greenlet is parked here, so no other wait of the
    greenlet (a Redis command, a slow client's send) can be woken by them. The period's timer
    runs for the stream's whole life; a tick that comes while the greenlet waits elsewhere is
    kept and returned by the next ``wait``.
    """

    __slots__ = ("_hub", "_greenlet", "_ios", "_timer", "_due")

    def __init__(self, fds, period):
        self._hub = gevent.get_hub()
        self._greenlet = gevent.getcurrent()
        loop = self._hub.loop
        self._ios = [loop.io(fd, READ) for fd in fds]
        self._timer = loop.timer(period, period)
        self._due = False
        self._timer.start(self._tick)

    def _tick(self):
        if self._ios[0].active:
            self._greenlet.switch(False)  # parked in wait(): wake it
        else:
            self._due = True

    def wait(self):
        """Return True when Redis has bytes, False when a period has passed since the last tick."""
        if self._due:
            self._due = False
            return False
        switch = self._greenlet.switch
        try:
            for io in self._ios:
                io.start(switch, True)
            return self._hub.switch()
        finally:
            for io in self._ios:
                io.stop()

    def tick_now(self):
        """Make the current (or the next) ``wait`` return False at once: an early tick."""
        self._tick()

    def close(self):
        self._timer.stop()
        self._timer.close()
        for io in self._ios:
            io.close()


def keep_alive(sock, heartbeat, send_timeout):
    """Make the kernel find a client that vanished without a FIN or RST (a phone that lost its
    network) within about two heartbeats, instead of ~15 minutes of retransmissions.

    A stream writes at least every half heartbeat, so a vanished client leaves those bytes
    unacknowledged: TCP_USER_TIMEOUT (1.5 heartbeats, or the send timeout if that is shorter;
    seconds in, milliseconds set) then fails the socket (ETIMEDOUT). It also bounds a window
    the client keeps closed (a reader that stopped reading), as the send timeout does.
    Keep-alive probes (idle one heartbeat, three probes a third of one apart) cover a
    connection with nothing in flight. Linux only; elsewhere (and on unix sockets) the send
    timeout alone finds dead clients.
    """
    raw = getattr(sock, "_sock", sock)
    idle = max(1, int(heartbeat))
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", max(1, int(heartbeat / 3))),
                        ("TCP_KEEPCNT", 3),
                        ("TCP_USER_TIMEOUT", max(1, int(min(heartbeat * 1.5, send_timeout) * 1000)))):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    try:
        if raw.family not in (socket.AF_INET, socket.AF_INET6):
            return
        for level, option, value in options:
            raw.setsockopt(level, option, value)
    except OSError:
        pass  # not a TCP socket after all: the send timeout still applies


class ClientWatch:
    """Watch a stream's client socket for the client leaving, and call ``gone`` when it has.

    An EventSource sends nothing after its request, so the socket turning readable means the
    client left, with one exception HTTP allows: a client that shut down only its sending side
    (half-close) and keeps reading. A peek tells them apart: an error (reset) is gone; bytes
    are not an EventSource (gone, as before); end of file alone may be either a close or a
    half-close. Then the watch stops reading and asks the stream for a probe (``probe_due``;
    ``wake`` is called so the stream writes it now): a closed client answers the probe with a
    reset that the checks after it find, a half-closed one reads it as a comment and stays.
    From then on the stream's own writes (send timeout, TCP user timeout) find a dead client.
    """

    CHECKS = (0.05, 0.25, 1.0)  # seconds after the probe at which to look for a reset

    __slots__ = ("_raw", "_io", "_timer", "_gone", "_checks", "probe_due", "wake")

    def __init__(self, sock, gone):
        self._raw = getattr(sock, "_sock", sock)  # peeked without gevent's waiting
        loop = gevent.get_hub().loop
        self._io = loop.io(sock.fileno(), READ)
        self._timer = None
        self._gone = gone
        self._checks = ()
        self.probe_due = False
        self.wake = None
        self._io.start(self._readable)

    def _peek(self):
        """Return "open", "eof" or "gone" without consuming anything."""
        try:
            data = self._raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return "open"
        except OSError:
            return "gone"
        return "gone" if data else "eof"

    def _readable(self):
        state = self._peek()
        if state == "open":
            return
        self._io.stop()
        if state == "gone":
            self._end()
            return
        self.probe_due = True
        if self.wake is not None:
            self.wake()

    def probed(self):
        """The stream wrote its probe: look for the reset a closed client sends back."""
        self.probe_due = False
        self._checks = list(self.CHECKS)
        self._schedule(0.0)

    def _schedule(self, elapsed):
        if not self._checks:
            return
        delay = self._checks.pop(0)
        if self._timer is not None:
            self._timer.close()
        self._timer = gevent.get_hub().loop.timer(max(0.0, delay - elapsed))
        self._timer.start(self._check, delay)

    def _check(self, elapsed):
        # Not a peek: once a FIN has come, recv reports end of file even after a reset.
        try:
            failed = self._raw.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError:
            failed = True
        if failed:
            self._end()
        else:
            self._schedule(elapsed)

    def _end(self):
        self.stop()
        self._gone()

    def stop(self):
        self._io.stop()
        self._checks = ()
        if self._timer is not None:
            self._timer.stop()
            self._timer.close()
            self._timer = None


class ClientLost(OSError):
    """The client's socket failed or timed out mid-write; the stream is over."""


class ClientWriter:
    """Writes body bytes to the client socket, framed as gunicorn framed the response so far.

    Only for after gunicorn has sent the headers (the stream's first chunk goes through it).
    A write that fails shuts the socket down: a chunk cut off midway must never be followed
    by gunicorn's terminating chunk (or anything else), which a client would read as the end
    of a whole, broken event.
    """

    __slots__ = ("_sock", "_send", "_chunked", "broken")

    def __init__(self, sock, chunked):
        self._sock = sock
        self._chunked = chunked
        self.broken = False
        # TLS, or not gevent's socket: every write through the socket object itself.
        raw = None if hasattr(sock, "pending") else getattr(sock, "_sock", None)
        self._send = raw.send if raw is not None else None

    def write(self, data):
        if self._chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        try:
            sent = 0
            if self._send is not None:
                try:
                    sent = self._send(data)
                except BlockingIOError:
                    pass
            if sent < len(data):
                # The client's buffer is full (or the socket is TLS): gevent waits for room,
                # and gives up after the socket's timeout (the stream's send timeout).
                self._sock.sendall(data[sent:] if sent else data)
        except BaseException as exc:  # also a kill (drain, client gone) landing mid-write
            self.broken = True
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise ClientLost(str(exc)) from exc
            raise
