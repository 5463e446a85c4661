"""One stream's own Redis pub/sub connection, read with hiredis.

redis-py's PubSub spends most of a delivery in per-message machinery (a dict per message, health
check bookkeeping, a poll before every read). A stream only needs the payload bytes, so it reads
its own socket: one recv, every complete reply parsed by hiredis, all of them handed back as one
batch that the stream writes in one chunk. Still one connection and one listener per stream.
"""
import socket
import ssl
import time

import hiredis
import redis
from redis.connection import SSLConnection, parse_url

from ..ops import topology

# Scratch space for every stream's recv in this worker (see Listener.drain); 64 KB takes a
# burst in one read.
_SCRATCH = bytearray(64 * 1024)


class NotMaster(redis.ConnectionError):
    """The node is not (or no longer) the master for the channel: its copy of a sharded
    channel can miss messages (a replica the new master has not counted yet), so listen
    elsewhere. Raised when subscribing, and when the node pushes SUNSUBSCRIBE (the slot moved,
    or the node was demoted)."""


class Closed(redis.ConnectionError):
    """A subscribed connection was closed or broke while streaming. Redis itself may be fine:
    it closes a subscriber that falls too far behind (``client-output-buffer-limit pubsub``)."""


class ListenerFactory:
    """Opens listeners on the Redis named by a URL (redis://, rediss://, unix://), or on the
    current master of a Sentinel-watched set (redis+sentinel://)."""

    def __init__(self, url, connect_timeout):
        self.connect_timeout = float(connect_timeout)
        self.master = self.shards = self.options = None
        if topology.is_sentinel(url):
            self.master = topology.MasterAddress(url, self.connect_timeout)
        elif topology.is_cluster(url):
            self.shards = topology.ClusterShards(url, self.connect_timeout)
        else:
            self.options = parse_url(url)

    def open(self, channels):
        if self.options is not None:
            return Listener(self.options, self.connect_timeout, channels)
        locator = self.master or self.shards
        for attempt in (1, 2):
            try:
                if self.master is not None:
                    listener = Listener(self.master.options(), self.connect_timeout, channels,
                                        master_only=True)
                else:
                    listener = self._open_sharded(channels)
                listener.on_moved = locator.forget
                return listener
            except NotMaster:
                locator.forget()  # a failover the cached address has not seen: ask again now
                if attempt == 2:
                    raise
            except redis.ConnectionError:
                locator.forget()  # perhaps a failover: ask again next time
                raise

    def _open_sharded(self, channels):
        # One connection per node the channels live on: one when the room and the person share
        # a node, two when they do not (a channel per slot, SSUBSCRIBE'd on its owner).
        by_node = {}
        for channel in channels:
            options = self.shards.options_for(channel)
            by_node.setdefault((options["host"], options["port"]), (options, []))[1].append(channel)
        listeners = []
        try:
            for options, node_channels in by_node.values():
                listeners.append(Listener(options, self.connect_timeout, node_channels, sharded=True,
                                          master_only=True))
        except BaseException:
            for listener in listeners:
                listener.close()
            raise
        return listeners[0] if len(listeners) == 1 else MultiListener(listeners)


def encode(*args):
    """Encode one command in RESP."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class Listener:
    """A subscribed connection; ``drain`` returns the payloads that have arrived."""

    # Slots: one per held stream, and a dict would cost it ~0.2 KB more.
    __slots__ = ("sock", "reader", "ping_sent", "heard", "tls", "sharded", "ping_deadline", "on_moved",
                 "_recv_into")

    def __init__(self, options, connect_timeout, channels, sharded=False, master_only=False):
        self.on_moved = None  # called when the server moves the channel away (set by the factory)
        self._recv_into = self._tls_recv_into
        self.sock = None
        self.reader = hiredis.Reader()
        self.ping_sent = None  # monotonic time of an unanswered PING
        self.heard = True      # bytes arrived since the last tick
        self.tls = False
        self.sharded = sharded
        self.ping_deadline = 2 * connect_timeout
        try:
            self.sock = self._connect(options, connect_timeout)
            hello = []
            if options.get("password"):
                auth = ("AUTH", options["username"], options["password"]) if options.get("username") \
                    else ("AUTH", options["password"])
                hello.append(encode(*auth))
            if master_only:  # asked first: subscribing to a replica can miss messages
                hello.append(encode("ROLE"))
            if sharded:  # one SSUBSCRIBE per channel: their slots differ
                hello += [encode("SSUBSCRIBE", channel) for channel in channels]
            else:
                hello.append(encode("SUBSCRIBE", *channels))
            try:
                self.sock.sendall(b"".join(hello))
            except OSError as exc:
                raise redis.ConnectionError("cannot subscribe: %s" % exc) from exc
            confirmed = 0
            while confirmed < len(channels):  # no publish slips past before we read history
                for reply in self._replies(connect_timeout):
                    if isinstance(reply, hiredis.ReplyError):
                        raise redis.ConnectionError("redis refused the subscription: %s" % reply)
                    if isinstance(reply, list) and reply and reply[0] in (b"slave", b"replica", b"sentinel"):
                        raise NotMaster("%s:%s is a %s, not the master" % (
                            options.get("host"), options.get("port"), reply[0].decode()))
                    if isinstance(reply, list) and reply[0] in (b"subscribe", b"ssubscribe"):
                        confirmed += 1
            self.sock.settimeout(0.0)  # from now on reads never wait (see drain)
            self.tls = hasattr(self.sock, "pending")
            if not self.tls:
                # Keep only the plain socket under gevent's wrapper: the wrapper and its two
                # watchers cost every open stream ~0.5 KB, and nothing waits on them again.
                self.sock = getattr(self.sock, "_sock", self.sock)
                self._recv_into = self.sock.recv_into
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

    def fileno(self):
        return self.sock.fileno()

    def filenos(self):
        return [self.sock.fileno()]

    def drain(self):
        """Return the payloads that have arrived, without waiting (``[]`` when none have).

        Called when the socket polled readable: one recv into the worker's scratch buffer, then
        every complete reply. No greenlet switch can come between the recv and the feed, so one
        buffer serves every stream of the worker.
        """
        try:
            size = self._recv_into(_SCRATCH)
            if size:
                self.reader.feed(_SCRATCH, 0, size)
                self.heard, self.ping_sent = True, None  # anything at all shows Redis alive
                while self.tls and self.sock.pending():  # decrypted, so never polled readable
                    self.reader.feed(_SCRATCH, 0, self.sock.recv_into(_SCRATCH))
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            size = None
        except OSError as exc:
            raise Closed("redis connection lost: %s" % exc) from exc
        if size == 0:
            raise Closed("redis closed the connection")
        messages = []
        gets = self.reader.gets
        reply = gets()
        while reply is not False:
            if reply.__class__ is list and (reply[0] == b"message" or reply[0] == b"smessage"):
                messages.append(reply[2])
            elif reply.__class__ is list and reply[0] == b"sunsubscribe":
                # Redis 7 pushes this when the slot moved or the node became a replica.
                if self.on_moved is not None:
                    self.on_moved()
                raise NotMaster("the node stopped serving a sharded channel")
            reply = gets()
        return messages

    def tick(self):
        """Called every half heartbeat. After one without a byte from Redis, PING it; fail when
        the PING is still unanswered after ``ping_deadline`` (a closed connection says so at
        once; this finds a silent one)."""
        if self.heard:
            self.heard = False
            return
        now = time.monotonic()
        if self.ping_sent is None:
            self.ping_sent = now
            try:
                self.sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            except OSError as exc:
                raise Closed("redis connection lost: %s" % exc) from exc
        elif now - self.ping_sent > self.ping_deadline:
            raise redis.TimeoutError("redis did not answer PING on a pub/sub connection")

    def _tls_recv_into(self, buffer):
        # TLS only: for a plain socket __init__ puts the socket's own recv_into in _recv_into.
        return self.sock.recv_into(buffer)

    def _replies(self, timeout):
        """Yield every complete reply from one recv (waiting up to ``timeout`` for it)."""
        reply = self.reader.gets()
        if reply is False:
            self.sock.settimeout(timeout)
            try:
                size = self.sock.recv_into(_SCRATCH)
            except socket.timeout:
                raise redis.TimeoutError("redis did not answer in %.1f s" % timeout) from None
            except OSError as exc:
                raise redis.ConnectionError("redis connection lost: %s" % exc) from exc
            if not size:
                raise redis.ConnectionError("redis closed the connection")
            self.reader.feed(_SCRATCH, 0, size)
            reply = self.reader.gets()
        while reply is not False:
            yield reply
            reply = self.reader.gets()

    def follow(self, channels):
        """Subscribe to more channels while streaming; True if asked. Only a plain connection:
        a sharded one's channels may live on other nodes. ``drain`` skips the confirmation like
        any reply that is not a message; a payload published before it is simply not heard
        (what follows is best effort: a sidebar's activity, not a log's messages)."""
        if self.sharded or not channels or self.sock is None:
            return False
        try:
            self.sock.sendall(encode("SUBSCRIBE", *channels))  # a few bytes on an idle socket
        except OSError:
            return False
        return True

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None


class MultiListener:
    """Listeners on several cluster nodes read as one."""

    def __init__(self, listeners):
        self.listeners = listeners

    @property
    def on_moved(self):
        return self.listeners[0].on_moved

    @on_moved.setter
    def on_moved(self, callback):
        for listener in self.listeners:
            listener.on_moved = callback

    def filenos(self):
        return [listener.fileno() for listener in self.listeners]

    def drain(self):
        messages = []
        for listener in self.listeners:
            messages += listener.drain()
        return messages

    def tick(self):
        for listener in self.listeners:
            listener.tick()

    def follow(self, channels):
        return False  # channels on several nodes: the next connect subscribes them

    def close(self):
        for listener in self.listeners:
            listener.close()
