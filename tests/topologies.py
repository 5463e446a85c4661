"""Redis topologies for scale-out tests: a master with a replica watched by three sentinels."""
import os
import subprocess
import time

import redis

from app.embedded_redis import EmbeddedRedis, find_binary

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
        self.master = EmbeddedRedis(os.path.join(directory, "master"), port=free_port()).start()
        self.replicas = [EmbeddedRedis(os.path.join(directory, "replica%d" % i), port=free_port(),
                                       extra_args=["--replicaof", "127.0.0.1", str(self.master.port)]).start()
                         for i in range(2)]
        self.sentinels = [Sentinel(os.path.join(directory, "s%d" % i), self.master.port) for i in range(3)]
        self.url = "redis+sentinel://%s/%s" % (
            ",".join("127.0.0.1:%d" % s.port for s in self.sentinels), self.service)
        wait_until(self._watched, 20, 0.1, "sentinels to see the master and its replica")

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
        """SIGKILL the master; return the seconds until the sentinels promoted a replica."""
        self.master.process.kill()
        self.master.process.wait()
        started = time.monotonic()
        ports = {r.port for r in self.replicas}
        wait_until(lambda: self.master_port() in ports, 30, 0.1, "failover")
        return time.monotonic() - started

    def stop(self):
        for s in self.sentinels:
            s.stop()
        for replica in self.replicas:
            replica.stop()
        self.master.stop()
