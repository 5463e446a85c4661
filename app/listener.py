"""One stream's own Redis pub/sub connection, read with hiredis.

redis-py's PubSub spends most of a delivery in per-message machinery (a dict per message, health
check bookkeeping, a poll before every read). A stream only needs the payload bytes, so it reads
its own socket: one recv, every complete reply parsed by hiredis, all of them handed back as one
batch that the stream writes in one chunk. Still one connection and one listener per stream.
"""
import socket
import ssl

import hiredis
import redis
from redis.connection import SSLConnection, parse_url

from . import topology


class ListenerFactory:
    """Opens listeners on the Redis named by a URL (redis://, rediss://, unix://), or on the
    current master of a Sentinel-watched set (redis+sentinel://)."""

    def __init__(self, url, connect_timeout):
        self.connect_timeout = float(connect_timeout)
        if topology.is_sentinel(url):
            self.master = topology.MasterAddress(url, self.connect_timeout)
            self.options = None
        else:
            self.master = None
            self.options = parse_url(url)

    def open(self, channels):
        if self.master is None:
            return Listener(self.options, self.connect_timeout, channels)
        try:
            return Listener(self.master.options(), self.connect_timeout, channels)
        except redis.ConnectionError:
            self.master.forget()  # perhaps a failover: ask again next time
            raise


def encode(*args):
    """Encode one command in RESP."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class Listener:
    """A subscribed connection; ``read`` returns the payloads that have arrived."""

    def __init__(self, options, connect_timeout, channels):
        self.sock = None
        self.reader = hiredis.Reader()
        self.buffer = bytearray(65536)
        self.ping_pending = False
        try:
            self.sock = self._connect(options, connect_timeout)
            hello = []
            if options.get("password"):
                auth = ("AUTH", options["username"], options["password"]) if options.get("username") \
                    else ("AUTH", options["password"])
                hello.append(encode(*auth))
            hello.append(encode("SUBSCRIBE", *channels))
            self.sock.sendall(b"".join(hello))
            confirmed = 0
            while confirmed < len(channels):  # no publish slips past before we read history
                for reply in self._replies(connect_timeout):
                    if isinstance(reply, hiredis.ReplyError):
                        raise redis.ConnectionError("redis refused the subscription: %s" % reply)
                    if isinstance(reply, list) and reply[0] == b"subscribe":
                        confirmed += 1
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _connect(options, timeout):
        try:
            if options.get("path"):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                sock.connect(options["path"])
            else:
                sock = socket.create_connection((options.get("host", "localhost"), options.get("port", 6379)),
                                                timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if options.get("connection_class") is SSLConnection:
                    sock = ssl.create_default_context().wrap_socket(sock, server_hostname=options.get("host"))
        except OSError as exc:
            raise redis.ConnectionError("cannot connect to redis: %s" % exc) from exc
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return sock

    def read(self, timeout):
        """Return a list of message payloads, or None after ``timeout`` seconds of silence.

        Silence twice in a row without an answer to our PING means Redis is gone.
        """
        messages = []
        for reply in self._replies(timeout, idle_ok=True):
            if reply is None:  # silent for ``timeout``
                if self.ping_pending:
                    raise redis.TimeoutError("redis did not answer PING on a pub/sub connection")
                self.ping_pending = True
                self.sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                return None
            if isinstance(reply, list):
                if reply[0] == b"message":
                    messages.append(reply[2])
                elif reply[0] == b"pong":
                    self.ping_pending = False
        return messages

    def _replies(self, timeout, idle_ok=False):
        """Yield every complete reply from one recv (waiting up to ``timeout`` for it)."""
        reply = self.reader.gets()
        if reply is False:
            self.sock.settimeout(timeout)
            try:
                size = self.sock.recv_into(self.buffer)
            except socket.timeout:
                if not idle_ok:
                    raise redis.TimeoutError("redis did not answer in %.1f s" % timeout) from None
                yield None
                return
            except OSError as exc:
                raise redis.ConnectionError("redis connection lost: %s" % exc) from exc
            if not size:
                raise redis.ConnectionError("redis closed the connection")
            self.reader.feed(self.buffer, 0, size)
            reply = self.reader.gets()
        while reply is not False:
            yield reply
            reply = self.reader.gets()

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
