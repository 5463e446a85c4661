"""Where Redis is: a plain server URL, Sentinel watching a master/replica set, or a Cluster.

``REDIS_URL=redis+sentinel://[:password@]host1:26379,host2:26379/<service>[/<db>]`` names the
sentinels and the master's service name (the scheme Flask-Limiter's storage also reads). Clients
then ask a sentinel for the current master before each new connection, so after a failover
commands and new streams go to the promoted replica by themselves.

``REDIS_URL=redis+cluster://[:password@]host1:7000,host2:7001`` names some cluster nodes. Every
key of a room (and of a person) shares one hash slot, so each store-and-publish script runs on
one node, and messages travel on sharded channels (SPUBLISH/SSUBSCRIBE, Redis >= 7): a message
reaches only the shard that owns its room.
"""
import logging
import queue
import socket
import time
import weakref
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
from redis._parsers import _HiredisParser
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

logger = logging.getLogger(__name__)

SCHEME = "redis+sentinel://"
CLUSTER_SCHEME = "redis+cluster://"


def redacted(url):
    """``url`` (str) as it may be shown or logged: a ``user:password@`` in it becomes ``***@``
    and a ``password`` query parameter (redis-py reads one) ``***``. A URL that does not parse
    is returned as is (it says nothing more than the operator typed)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" in parts.netloc:
        parts = parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1])
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "password" for key, _ in query):
        parts = parts._replace(query=urlencode(
            [(key, "***" if key == "password" else value) for key, value in query], safe="*"))
    return urlunsplit(parts)


def is_sentinel(url):
    return url.startswith(SCHEME)


def is_cluster(url):
    return url.startswith(CLUSTER_SCHEME)


def publish_command(url):
    """The publish command for the deployment: sharded on a cluster, plain elsewhere."""
    return "SPUBLISH" if is_cluster(url) else "PUBLISH"


def parse_cluster(url):
    """Return (node addresses, password) from a redis+cluster:// URL."""
    parts = urlsplit(url)
    addresses = []
    for item in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = item.rpartition(":")
        addresses.append((host or "127.0.0.1", int(port or 6379)))
    return addresses, unquote(parts.password) if parts.password else None


def parse_sentinel(url):
    """Return (sentinel addresses, service name, db, password) from a redis+sentinel:// URL."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    addresses = []
    for item in hosts.split(","):
        host, _, port = item.rpartition(":")
        addresses.append((host or "127.0.0.1", int(port or 26379)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("redis+sentinel:// URL needs a service name: redis+sentinel://host:port/mymaster")
    db = int(path[1]) if len(path) > 1 else 0
    return addresses, path[0], db, unquote(parts.password) if parts.password else None


def command_client(url, max_connections, timeout):
    """A client for commands (decode_responses=True) that follows the master."""
    options = dict(decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout)
    if is_cluster(url):
        addresses, password = parse_cluster(url)
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in addresses], password=password,
                            max_connections=max_connections, **options)
    if is_sentinel(url):
        addresses, service, db, password = parse_sentinel(url)
        sentinel = Sentinel(addresses, socket_timeout=timeout, socket_connect_timeout=timeout)
        return sentinel.master_for(service, db=db, password=password,
                                   max_connections=max_connections, **options)
    return redis.Redis(connection_pool=blocking_pool(url, max_connections, timeout, decode_responses=True))


def close_client(client):
    """Close every connection a client from ``command_client`` holds, its sentinels' too."""
    client.close()
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        pool.disconnect()
        for sentinel in getattr(getattr(pool, "sentinel_manager", None), "sentinels", ()):
            sentinel.close()
            sentinel.connection_pool.disconnect()


def blocking_pool(url, max_connections, timeout, **options):
    """A pool for a plain Redis URL whose users wait briefly for a free connection instead of
    failing under a burst, checked cheaply on checkout (QuickCheckParser).

    Each connection reads into a buffer of READ_BUFFER_BYTES (redis-py's default is 64 KiB,
    zero-filled, so resident: 3.2 MB for a pool grown to 50). Its idle connections beyond the
    most recent few are closed after a wave of streams (shed_idle_connections)."""
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout, socket_timeout=timeout,
        socket_connect_timeout=timeout, parser_class=QuickCheckParser,
        **{"socket_read_size": READ_BUFFER_BYTES, **options})
    _POOLS.add(pool)
    return pool


def plain_pool(client):
    """The pool of ``client`` when it is a plain redis.Redis (one server: redis://, rediss://,
    unix://) whose connections run_script may use directly, else None (Sentinel's and
    Cluster's clients, whose pools choose the node)."""
    pool = getattr(client, "connection_pool", None)
    return pool if type(client) is redis.Redis and type(pool) in _PLAIN_POOLS else None


def run_script(pool, script, keys, args):
    """Run registered ``script`` (redis-py's Script) with ``keys`` and ``args`` and return its
    reply, as ``script(keys=keys, args=args)`` would.

    On ``pool`` (plain_pool's; None: redis-py's whole path) the EVALSHA is sent on one of its
    connections directly, without redis-py's per-command layers (Script, execute_command, the
    retry wrapper, its observability hooks: ~10 µs of CPU per call, more under gevent; on a
    stream's open and a post, docs/performance.md). The same pool (its bound, its wait, its check
    of the connection handed out), connection and parser (their errors, a connection dropped on
    any failure mid-exchange), and no retry, as these clients' connections have none. Redis
    without the script (restarted, flushed) answers NOSCRIPT before running anything: redis-py's
    Script call then loads and runs it. Raises redis.RedisError."""
    if pool is not None:
        conn = pool.get_connection()
        try:
            conn.send_packed_command(conn.pack_command("EVALSHA", script.sha, len(keys), *keys, *args))
            return conn.read_response()
        except redis.exceptions.NoScriptError:
            pass
        finally:
            pool.release(conn)
    return script(keys=keys, args=args)


def run_transaction(pool, pipe):
    """Send MULTI pipeline ``pipe`` (redis-py's, ``transaction=True``, no WATCH) on one of
    plain_pool ``pool``'s connections directly and return its replies, as ``pipe.execute()``
    would (each through its command's response callback); the caller resets ``pipe``.

    What a stream's open reads once it is subscribed (app/rooms/reads.py) is one such pipeline,
    and redis-py's layers around it (the retry wrapper, its observability hooks, the pipeline's
    own checks) were ~5 % of a new worker's CPU in a reload storm (py-spy, docs/performance.md
    "Session 20"). The same pool, connection and parser as run_script's. Raises
    redis.RedisError: the first error reply among them (a command refused before EXEC drops
    the connection, whose other replies are left unread), or the connection's failure."""
    commands = pipe.command_stack
    if not commands:
        return []
    conn = pool.get_connection()
    try:
        conn.send_packed_command(conn.pack_commands([("MULTI",), *(args for args, _ in commands), ("EXEC",)]))
        for _ in range(len(commands) + 1):
            conn.read_response()  # MULTI's OK, then each command's QUEUED
        replies = conn.read_response()
    except redis.ResponseError:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)
    if not isinstance(replies, list) or len(replies) != len(commands):
        raise redis.ResponseError("Wrong number of response items from a transaction: %r" % (replies,))
    callbacks, out = pipe.response_callbacks, []
    for reply, (args, options) in zip(replies, commands):
        if isinstance(reply, Exception):
            raise reply
        options.pop("keys", None)  # redis-py's client-side cache hint, no option of a callback
        callback = callbacks.get(args[0])
        out.append(reply if callback is None else callback(reply, **options))
    return out


_PLAIN_POOLS = (redis.ConnectionPool, redis.BlockingConnectionPool)


# A command's reply is a few hundred bytes; a history page (~100 KB at most) takes a few reads.
READ_BUFFER_BYTES = 16384
IDLE_KEPT = 8  # idle connections a pool keeps after a wave: a quiet worker's posts and reads
_POOLS = weakref.WeakSet()  # every blocking_pool of this process


def shed_idle_connections(keep=IDLE_KEPT):
    """Close what every blocking_pool of this process holds idle beyond its ``keep`` most
    recently used connections; return how many were closed (int).

    A burst (a wave of streams opening, a reconnect storm) grows a pool to its bound
    (RIPPLE_REDIS_MAX_CONNECTIONS) and redis-py keeps every connection it made: 50 sockets
    per worker in Redis's client list, and objects made in the middle of the burst that pin
    pages of the heap the trim after it would return (app/ops/worker.py HeapTrim;
    docs/performance.md). The next burst opens connections again (~0.1 ms each)."""
    return sum(shed_idle(pool, keep) for pool in list(_POOLS))


def shed_idle(pool, keep=IDLE_KEPT):
    """shed_idle_connections for one redis.BlockingConnectionPool ``pool``. A connection in
    use is not in the pool's queue: it is never touched. Its queue is a LIFO of connections
    and None (a connection not made yet): the kept ones go back on top, most recent first, a
    None in place of each closed one. Nothing here waits: no other greenlet runs meanwhile."""
    items = []
    while True:
        try:
            items.append(pool.pool.get_nowait())
        except queue.Empty:
            break
    idle = [conn for conn in items if conn is not None]
    kept, closed = idle[:keep], idle[keep:]  # the queue hands out its most recent first
    for _ in range(len(items) - len(kept)):
        pool.pool.put_nowait(None)
    for conn in reversed(kept):
        pool.pool.put_nowait(conn)
    for conn in closed:
        conn.disconnect()
        if conn in pool._connections:  # redis-py's record of what it made (for disconnect())
            pool._connections.remove(conn)
    return len(closed)


class QuickCheckParser(_HiredisParser):
    """redis-py's hiredis parser with a cheaper check of a pooled connection.

    The pool asks every connection it hands out whether unread bytes wait on it (a sign of a
    broken exchange). redis-py asks ``poll()``, which under gevent builds a poll object and
    watchers each time (~6 % of a POST's CPU); one non-blocking ``recv(MSG_PEEK)`` on the plain
    socket tells the same: bytes (True), end of file (closed), or nothing (False).
    """

    def can_read(self, timeout=0):
        raw = getattr(self._sock, "_sock", None)  # the plain socket under gevent's wrapper
        if timeout or raw is None or not self._reader or hasattr(self._sock, "pending"):
            return super().can_read(timeout)
        if self._reader.has_data():
            return True
        try:
            peeked = raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise redis.ConnectionError("redis connection lost: %s" % exc) from exc
        if not peeked:
            raise redis.ConnectionError("redis closed the connection")
        return True


class MasterAddress:
    """The current master's address for raw listener sockets, asked of a sentinel (cached 1 s)."""

    def __init__(self, url, timeout):
        addresses, self.service, self.db, self.password = parse_sentinel(url)
        self.sentinel = Sentinel(addresses, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._cached, self._at = None, 0.0

    def options(self):
        now = time.monotonic()
        if self._cached is None or now - self._at > 1.0:
            try:
                host, port = self.sentinel.discover_master(self.service)
            except redis.sentinel.MasterNotFoundError as exc:
                raise redis.ConnectionError(str(exc)) from exc
            self._cached, self._at = {"host": host, "port": port, "password": self.password}, now
        return self._cached

    def forget(self):
        self._cached = None


class ClusterShards:
    """Which cluster node serves a channel's slot, for raw listener sockets."""

    def __init__(self, url, timeout):
        addresses, self.password = parse_cluster(url)
        self.client = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in addresses],
                                   password=self.password, socket_timeout=timeout,
                                   socket_connect_timeout=timeout)

    def options_for(self, channel):
        node = self.client.get_node_from_key(channel)
        return {"host": node.host, "port": node.port, "password": self.password}

    def forget(self):
        """Re-read the slot map (after a failover moved a slot to a promoted replica)."""
        try:
            self.client.nodes_manager.initialize()
        except redis.RedisError:
            pass  # every node unreachable: the next open fails and says so


class SwitchWatch:
    """Follows the sentinels' ``+switch-master`` announcements for the service of a
    redis+sentinel:// URL, so a worker leaves a deposed master as soon as Sentinel says so,
    not when its pooled connections fail (after a double failover the deposed master may still
    take writes that the next resync throws away).

    ``run`` never returns (a greenlet's body); ``on_switch`` gets the announcement
    (``"<service> <old ip> <old port> <new ip> <new port>"``). Any sentinel will do: each
    announces every switch it sees.
    """

    def __init__(self, url, timeout, on_switch):
        self.addresses, self.service, _, _ = parse_sentinel(url)
        self.timeout = float(timeout)
        self.on_switch = on_switch
        self.master = None  # (host, port) last known: a switch missed between sentinels is
                            # found by asking on the next connect

    def run(self):
        import gevent  # the worker's loop; the module itself stays importable anywhere

        while True:
            for host, port in self.addresses:
                try:
                    self._follow(host, port)
                except (redis.RedisError, OSError) as exc:
                    logger.info("sentinel %s:%s not followed: %s", host, port, exc)
                gevent.sleep(1)

    def _follow(self, host, port):
        client = redis.Redis(host=host, port=port, socket_connect_timeout=self.timeout,
                             socket_timeout=self.timeout * 3, decode_responses=True)
        with client, client.pubsub() as pubsub:
            pubsub.subscribe("+switch-master")
            pubsub.get_message(timeout=self.timeout)  # the confirmation: subscribed from here on
            self._compare(client.sentinel_get_master_addr_by_name(self.service))
            heard, ping_sent = time.monotonic(), None
            while True:
                message = pubsub.get_message(timeout=self.timeout)
                now = time.monotonic()
                if message is not None:
                    heard, ping_sent = now, None
                    data = message.get("data")
                    if message["type"] == "message" and data.split(" ", 1)[0] == self.service:
                        self.master = tuple(data.split()[3:5])
                        self.on_switch(data)
                elif ping_sent is not None and now - ping_sent > 2 * self.timeout:
                    # A sentinel that vanished without a word (no FIN): leave it for the next.
                    raise redis.TimeoutError("sentinel %s:%s stopped answering" % (host, port))
                elif ping_sent is None and now - heard > self.timeout:
                    pubsub.ping()  # answered with a pong message while subscribed
                    ping_sent = now

    def _compare(self, address):
        """On every (re)connect: a switch announced while no sentinel was followed."""
        if not address:
            return
        address = (str(address[0]), str(address[1]))
        if self.master is not None and address != self.master:
            self.on_switch("%s %s %s %s %s" % (self.service, *self.master, *address))
        self.master = address
