"""Real servers for the tests: redis-server and Gunicorn subprocesses on free loopback ports."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=10.0, interval=0.02, message="condition"):
    """Poll ``predicate`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, message))
        time.sleep(interval)


def is_redis(process):
    """Tell whether a psutil process is a Redis-protocol server (redis-server or valkey-server)."""
    try:
        name = process.name()
    except psutil.NoSuchProcess:
        return False
    return "redis" in name or "valkey" in name


class Gunicorn:
    """``gunicorn -c gunicorn.conf.py`` as a subprocess, like werkzeug's DevServerClient."""

    # How a test starts gunicorn; the venv's own script (as `make run` does) where it matters.
    MODULE = (sys.executable, "-m", "gunicorn")
    SCRIPT = (str(Path(sys.executable).with_name("gunicorn")),)

    def __init__(self, log_dir, redis_url=None, workers=2, env=None, args=(), command=MODULE):
        self.command = list(command)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_path = Path(log_dir) / ("gunicorn-%d.log" % self.port)
        self.env = dict(os.environ, BIND="127.0.0.1:%d" % self.port, WEB_CONCURRENCY=str(workers),
                        PYTHONUNBUFFERED="1", **(env or {}))
        # Workers keep the app's bytecode, as a deployment does: with PYTHONDONTWRITEBYTECODE
        # (set on the CI machine) every worker of every test server compiled the app again.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        # Each server its own metrics directory: gunicorn empties it at start.
        self.env["PROMETHEUS_MULTIPROC_DIR"] = str(Path(log_dir) / ("metrics-%d" % self.port))
        if redis_url:
            self.env["REDIS_URL"] = redis_url
        else:
            self.env.pop("REDIS_URL", None)
        self.workers = workers
        self.args = list(args)  # more gunicorn options, e.g. ["--access-logfile", path]
        self.process = None

    def start(self, timeout=30):
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [*self.command, "-c", "gunicorn.conf.py", *self.args], cwd=ROOT, env=self.env,
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_until(self._ready, timeout, 0.05, "gunicorn at %s" % self.url)
        except BaseException:  # noqa: BLE001 - cleaned up, then raised again
            self.stop()  # never leave a half-started server (and its embedded Redis) behind
            raise AssertionError("gunicorn did not become ready:\n" + self.log_tail()) from None
        return self

    def _ready(self):
        if self.process.poll() is not None:
            raise AssertionError("gunicorn exited:\n" + self.log_tail())
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                ok = r.status == 200
        except OSError:
            return False
        return ok and len(self.worker_pids()) == self.workers

    def worker_pids(self):
        try:
            return sorted(c.pid for c in psutil.Process(self.process.pid).children()
                          if not is_redis(c))  # the embedded Redis is a child too
        except psutil.NoSuchProcess:
            return []

    def worker_of(self, local_port):
        """Return the pid of the worker holding the connection from our ``local_port``."""
        for pid in self.worker_pids():
            try:
                for conn in psutil.Process(pid).net_connections("tcp"):
                    if conn.raddr and conn.raddr.port == local_port and conn.laddr.port == self.port:
                        return pid
            except psutil.NoSuchProcess:
                continue
        return None

    def signal(self, sig):
        self.process.send_signal(sig)

    def log_tail(self, lines=60):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout=15, sig=None):
        """Stop as an operator would (SIGTERM: the workers drain their streams and connections,
        up to the graceful timeout), then close the log."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig or signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process:
            self._log.close()

    def halt(self):
        """Stop at once, for a fixture's clean-up where no shutdown is under test: SIGINT is
        gunicorn's quick shutdown (its workers quit without draining; its exit hook still stops
        an embedded Redis). A graceful stop waits ~1 s for the workers' loop, and up to the
        keep-alive time for a browser's idle connection."""
        self.stop(sig=signal.SIGINT)
