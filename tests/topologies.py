"""Redis topologies for scale-out tests: a master with a replica watched by three sentinels."""
import os
import subprocess
import time

import redis

from app.ops.embedded_redis import EmbeddedRedis, find_binary

from .servers import free_port, wait_until


class Sentinel:
    """One redis-server in sentinel mode (it rewrites its config file, so each has its own)."""

    def __init__(self, directory, master_port, service="mymaster"):
        self.directory = directory
        self.port = free_port()
        os.makedirs(directory, exist_ok=True)
        self.conf = os.path.join(directory, "sentinel.conf")
        with open(self.conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s/sentinel.log\n"
                    "sentinel monitor %s 127.0.0.1 %d 2\n"
                    "sentinel down-after-milliseconds %s 1000\n"
                    "sentinel failover-timeout %s 5000\n"
                    "sentinel parallel-syncs %s 1\n"
                    % (self.port, directory, directory, service, master_port, service, service, service))
        self.process = subprocess.Popen([find_binary(), self.conf, "--sentinel"], stdin=subprocess.DEVNULL,
                                        start_new_session=True)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


class SentinelSet:
    """A master, two replicas and three sentinels on loopback ports.

    Two replicas: with posts waiting for one replica's confirmation, the set must still have a
    replica after the master is lost and one replica is promoted."""

    service = "mymaster"

    def __init__(self, directory):
        self.master = EmbeddedRedis(os.path.join(directory, "master"), port=free_port())
        self.replicas, self.sentinels = [], []
        try:  # nothing left running if any part fails to start
            self.master.start()
            for i in range(2):
                self.replicas.append(EmbeddedRedis(
                    os.path.join(directory, "replica%d" % i), port=free_port(),
                    extra_args=["--replicaof", "127.0.0.1", str(self.master.port)]).start())
            for i in range(3):
                self.sentinels.append(Sentinel(os.path.join(directory, "s%d" % i), self.master.port))
            self.url = "redis+sentinel://%s/%s" % (
                ",".join("127.0.0.1:%d" % s.port for s in self.sentinels), self.service)
            wait_until(self._watched, 20, 0.1, "sentinels to see the master and its replicas")
        except BaseException:
            self.stop()
            raise

    def _watched(self):
        try:
            for s in self.sentinels:
                with redis.Redis(port=s.port, decode_responses=True) as client:
                    replicas = client.sentinel_slaves(self.service)
                    sentinels = client.sentinel_sentinels(self.service)
                    if len(replicas) < 2 or any("s_down" in r["flags"] for r in replicas) or len(sentinels) < 2:
                        return False
            for replica in self.replicas:
                with redis.Redis(port=replica.port, decode_responses=True) as client:
                    if client.info("replication")["master_link_status"] != "up":
                        return False
            return True
        except redis.RedisError:
            return False

    def master_port(self):
        with redis.Redis(port=self.sentinels[0].port, decode_responses=True) as client:
            return int(client.sentinel_get_master_addr_by_name(self.service)[1])

    def kill_master(self):
        """SIGKILL the master; return the seconds until the sentinels promoted a replica.

        Then the old master comes back (as an operator would bring it back) and the sentinels
        turn it into the new master's replica: for a moment it believes it is still a master.
        """
        self.master.process.kill()
        self.master.process.wait()
        started = time.monotonic()
        ports = {r.port for r in self.replicas}
        wait_until(lambda: self.master_port() in ports, 30, 0.1, "failover")
        seconds = time.monotonic() - started
        self.master.start()
        wait_until(self._old_master_rejoined, 30, 0.2, "the old master to rejoin as a replica")
        return seconds

    def _old_master_rejoined(self):
        try:
            with redis.Redis(port=self.master.port, password=self.master.password,
                             decode_responses=True) as client:
                return client.info("replication")["role"] == "slave"
        except redis.RedisError:
            return False

    def stop(self):
        for s in self.sentinels:
            s.stop()
        for replica in self.replicas:
            replica.stop()
        self.master.stop()


# 7.x: sharded pub/sub needs it (and Redis Cluster, whatever the embedded default is).
DEBIAN_REDIS = "/usr/bin/redis-server"


def cluster_port():
    """A free port whose cluster bus port (port + 10000) is free too."""
    import random
    import socket
    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


class ClusterSet:
    """Three masters with a replica each, made with ``redis-cli --cluster create``."""

    def __init__(self, directory):
        self.nodes = []
        try:  # a node that fails to start must not leave the others running
            for i in range(6):
                self.nodes.append(EmbeddedRedis(
                    os.path.join(directory, "n%d" % i), port=cluster_port(), binary=DEBIAN_REDIS,
                    extra_args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                "--cluster-node-timeout", "1500"]).start())
            subprocess.run(["redis-cli", "--cluster", "create"] + ["127.0.0.1:%d" % n.port for n in self.nodes]
                           + ["--cluster-replicas", "1", "--cluster-yes"], check=True, capture_output=True,
                           timeout=60)
            self.url = "redis+cluster://" + ",".join("127.0.0.1:%d" % n.port for n in self.nodes[:3])
            wait_until(self._ok, 30, 0.2, "cluster_state:ok on every node")
        except BaseException:
            self.stop()
            raise

    def _ok(self):
        try:
            for node in self.alive():
                with redis.Redis(port=node.port, decode_responses=True) as client:
                    if client.cluster("info")["cluster_state"] != "ok":
                        return False
                    if client.info("replication")["role"] == "slave" and \
                            client.info("replication")["master_link_status"] != "up":
                        return False
            return True
        except redis.RedisError:
            return False

    def owner_of(self, key):
        """The EmbeddedRedis that is master for ``key``'s slot now."""
        with redis.Redis(port=self.alive()[0].port, decode_responses=True) as client:
            slot = client.cluster("keyslot", key)
            for start, end, master, *_ in client.cluster("slots"):
                if start <= slot <= end:
                    return next(n for n in self.nodes if n.port == master[1])

    def alive(self):
        return [n for n in self.nodes if n.process.poll() is None]

    def kill(self, node):
        """SIGKILL a master; return the seconds until its replica serves the slots.

        Then the node comes back (as an operator would bring it back) and rejoins as the new
        master's replica: with posts waiting for a replica, the slots take writes again.
        """
        node.process.kill()
        node.process.wait()
        started = time.monotonic()
        wait_until(lambda: self.owner_of_port_changed(node), 40, 0.2, "cluster to fail over")
        seconds = time.monotonic() - started
        node.start()
        wait_until(self._ok, 40, 0.2, "the old master to rejoin as a replica")
        return seconds

    def owner_of_port_changed(self, node):
        try:
            with redis.Redis(port=self.alive()[0].port, decode_responses=True) as client:
                masters = {m[1] for _, _, m, *_ in client.cluster("slots")}
                return node.port not in masters and client.cluster("info")["cluster_state"] == "ok"
        except redis.RedisError:
            return False

    def stop(self):
        for node in self.nodes:
            node.stop()
