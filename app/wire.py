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


class Alarm:
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

    def close(self):
        self._timer.stop()
        self._timer.close()
        for io in self._ios:
            io.close()


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
