"""The deployment files work: docs/deploy/nginx.conf proxies streams unbuffered through a real
nginx; the systemd unit and the Dockerfile hold what an operator relies on."""
import configparser
import http.cookiejar
import json
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from .servers import ROOT, Gunicorn, free_port, wait_until
from .sse import SSEStream
from .support import SERVER_ENV, TOKEN, post
from .web import Browser

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class Nginx:
    """A running nginx: ``url`` is its TLS server, ``plain_url`` the port-80 one."""

    def __init__(self, url, plain_url, tls):
        self.url, self.plain_url, self.tls = url, plain_url, tls

    def open(self, path, **kwargs):
        return urllib.request.urlopen(self.url + path, timeout=5, context=self.tls, **kwargs)


def self_signed(directory):
    """A certificate for 127.0.0.1 (and a client context trusting only it)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key, ssl.create_default_context(cafile=str(cert))


@pytest.fixture(scope="module")
def server(redis_url, tmp_path_factory):
    """Ripple as the example config expects it: RIPPLE_TRUSTED_PROXIES=1, so it takes the scheme
    and host from nginx (and Flask-WTF checks a Referer over HTTPS)."""
    gunicorn = Gunicorn(tmp_path_factory.mktemp("behind-nginx"), redis_url=redis_url, workers=2,
                        env=dict(SERVER_ENV, RIPPLE_TRUSTED_PROXIES="1"))
    gunicorn.start()
    yield gunicorn
    gunicorn.halt()


@pytest.fixture
def nginx(server, tmp_path):
    """docs/deploy/nginx.conf, pointed at the test server, its TLS and port-80 servers listening
    on free loopback ports (never 443) with a self-signed certificate."""
    if not shutil.which(NGINX):
        pytest.skip("Debian's nginx is not installed: scripts/ensure-system-packages installs it")
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    tls_port, plain_port = free_port(), free_port()
    cert, key, context = self_signed(tmp_path)
    conf = (ROOT / "docs/deploy/nginx.conf").read_text()
    # Only what a test run needs differs: ports, certificate, its own temp paths, logs and pid file.
    replaced = {"server 127.0.0.1:8000;": "server 127.0.0.1:%d;" % server.port,
                "listen 80;": "listen 127.0.0.1:%d;" % plain_port,
                "listen 443 ssl http2;": "listen 127.0.0.1:%d ssl http2;" % tls_port,
                "/etc/ssl/ripple/fullchain.pem": str(cert), "/etc/ssl/ripple/privkey.pem": str(key),
                "/var/log/nginx/access.log": str(tmp_path / "access.log"),
                "worker_shutdown_timeout 30s;": "worker_shutdown_timeout 1s;"}
    for old, new in replaced.items():
        assert old in conf, old
        conf = conf.replace(old, new)
    temps = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    for name in temps:
        (tmp_path / name).mkdir()
    paths = "".join("%s_temp_path %s/%s; " % (n, tmp_path, n) for n in temps)
    # Bodies stay in memory: nginx's workers (unprivileged when it starts as root) cannot enter
    # the test's private tmp_path, where its body temp files would go.
    conf = conf.replace("http {", "http {\n    client_body_buffer_size 256k; " + paths, 1)
    globals_ = "daemon off; pid %s/nginx.pid; error_log %s/error.log;" % (tmp_path, tmp_path)
    (tmp_path / "nginx.conf").write_text(conf)
    check = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", globals_],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", globals_],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    running = Nginx("https://127.0.0.1:%d" % tls_port, "http://127.0.0.1:%d" % plain_port, context)
    running.access_log, running.process = tmp_path / "access.log", process
    try:
        wait_until(lambda: _up(running), 10, 0.05, "nginx to listen")
        yield running
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def _up(nginx):
    try:
        with nginx.open("/healthz") as r:
            return r.status == 200
    except OSError:
        return False


def test_streams_pass_through_nginx_unbuffered(nginx, server, room):
    with SSEStream("%s/rooms/%s/events" % (nginx.url, room), context=nginx.tls) as stream:
        stream.until("ready")  # the first chunk arrived before any message: not buffered
        started = time.monotonic()
        post(server.url, room, "through the proxy")
        assert stream.messages(1, timeout=3)[0].json()["text"] == "through the proxy"
        # A buffering proxy holds a small chunk until its buffer fills (far longer); 2 s
        # leaves room for a machine busy with the other test process.
        assert time.monotonic() - started < 2.0
        with pytest.raises(TimeoutError):  # heartbeats, not buffered either
            stream.next(1.2)
        assert stream.comments >= 1


def test_a_browser_signs_in_and_posts_through_nginx_on_a_port_other_than_443(nginx, room):
    # Flask-WTF compares an HTTPS Referer with the host Ripple sees: with nginx's $host (no port)
    # every browser sign-in and post on such a port was a 400 csrf.
    browser = Browser(nginx.url, tls=nginx.tls)
    page = {"Referer": nginx.url + "/rooms/" + room}  # what a browser sends, port included
    status, _, body = browser.request("GET", "/session")
    browser.token = json.loads(body)["csrf_token"]
    status, _, body = browser.request("POST", "/session", body={"name": "ops-" + room[-6:]}, headers=page)
    assert status == 200, body
    browser.token = json.loads(body)["csrf_token"]
    status, _, body = browser.request("POST", "/rooms/%s/messages" % room, body={"text": "hi"}, headers=page)
    assert status == 201, body


def test_a_reload_of_nginx_ends_the_old_workers_streams(nginx, room):
    # Streams never end by themselves: without worker_shutdown_timeout each reload left its old
    # workers serving them for ever. The browser reconnects to a new worker with its cursor.
    with SSEStream("%s/rooms/%s/events" % (nginx.url, room), context=nginx.tls) as stream:
        stream.until("ready")
        nginx.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while stream.next(max(0.1, deadline - time.monotonic())) is not None:  # pings until it ends
            pass


def test_nginx_passes_the_request_id_through(nginx):
    with nginx.open("/healthz") as r:
        assert len(r.headers["X-Request-ID"]) == 32  # nginx's $request_id, echoed by Ripple
        rid = r.headers["X-Request-ID"]
    # ...and its access line ends with it, the id Ripple's log lines carry
    wait_until(lambda: "rid=%s" % rid in nginx.access_log.read_text(), 10, 0.05, "nginx's access line")


def test_gunicorns_access_log_as_deployment_md_says_names_the_client_and_the_request_id(redis_url, tmp_path):
    fmt = re.search(r"--access-logformat '([^']+)'", (ROOT / "docs/deployment.md").read_text()).group(1)
    log = tmp_path / "access.log"
    server = Gunicorn(tmp_path, redis_url=redis_url, workers=1, env=dict(SERVER_ENV, RIPPLE_TRUSTED_PROXIES="1"),
                      args=["--access-logfile", str(log), "--access-logformat", fmt])
    server.start()
    try:
        # As nginx passes it on: what the client wrote itself, then the address nginx saw. The
        # format logged the whole header first, so the line named the address the client chose.
        request = urllib.request.Request(server.url + "/readyz", headers={
            "X-Forwarded-For": "198.51.100.66, 203.0.113.7", "X-Request-ID": "0123456789abcdef0123456789abcdef"})
        urllib.request.urlopen(request, timeout=10).close()
        wait_until(lambda: "GET /readyz" in log.read_text(), 10, 0.05, "the access line")
    finally:
        server.stop()
    line = next(line for line in log.read_text().splitlines() if "GET /readyz" in line)
    assert line.startswith("203.0.113.7 ") and "rid=0123456789abcdef0123456789abcdef" in line, line
    assert re.search(r"^203\.0\.113\.7 \[\d\d/\w{3}/\d{4}:[^][]*\] \"GET /readyz", line), line  # one pair of brackets
    assert line.endswith(' xff="198.51.100.66, 203.0.113.7"'), line


def test_gunicorns_access_log_never_shows_a_token(redis_url, tmp_path):
    # A host application's JWT rides in a stream's query (?token=): "%(r)s" logged it whole.
    log = tmp_path / "access.log"
    server = Gunicorn(tmp_path, redis_url=redis_url, workers=1, env=SERVER_ENV, args=[
        "--access-logfile", str(log), "--access-logformat", '"%(r)s" q=%(q)s auth=%({authorization}i)s'])
    server.start()
    try:
        request = urllib.request.Request(server.url + "/readyz?limit=2&token=SECRET.JWT.sig&x=1",
                                         headers={"Authorization": "Bearer SECRET-BEARER"})
        urllib.request.urlopen(request, timeout=10).close()
        wait_until(lambda: "GET /readyz" in log.read_text(), 10, 0.05, "the access line")
    finally:
        server.stop()
    line = next(line for line in log.read_text().splitlines() if "GET /readyz" in line)
    assert line == '"GET /readyz?limit=2&token=***&x=1 HTTP/1.1" q=limit=2&token=***&x=1 auth=Bearer ***', line


def test_nginxs_access_log_never_shows_a_token(nginx, room):
    with nginx.open("/rooms/%s/messages?token=SECRET.JWT.sig&limit=1" % room) as r:
        rid = r.headers["X-Request-ID"]
    wait_until(lambda: "rid=%s" % rid in nginx.access_log.read_text(), 10, 0.05, "nginx's access line")
    line = next(line for line in nginx.access_log.read_text().splitlines() if "rid=%s" % rid in line)
    assert "?token=***&limit=1 HTTP/" in line and "SECRET" not in line, line


def test_a_cookie_request_over_https_without_this_sites_referer_is_told_why(nginx):
    # Flask-WTF refuses it after a valid CSRF token (WTF_CSRF_SSL_STRICT); the answer said the
    # page was out of date and to press the button again, which a program, or a browser whose
    # Referer is stripped, would do for ever.
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=nginx.tls),
                                         urllib.request.HTTPCookieProcessor(jar))
    with pytest.raises(urllib.error.HTTPError) as unknown:
        opener.open(nginx.url + "/session", timeout=5)
    token = json.loads(unknown.value.read())["csrf_token"]

    def sign_in(**headers):
        request = urllib.request.Request(nginx.url + "/session", data=json.dumps({"name": "referer-test"}).encode(),
                                         headers={"Content-Type": "application/json", "X-CSRF-Token": token, **headers})
        try:
            with opener.open(request, timeout=5) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read())

    for referer in ({}, {"Referer": "https://elsewhere.example/page"}):
        status, body = sign_in(**referer)
        assert (status, body["code"]) == (400, "csrf"), body
        assert "Referer header was missing or named another site" in body["error"], body
    status, body = sign_in(Referer=nginx.url + "/")
    assert (status, body["name"]) == (200, "referer-test"), body


def test_a_body_over_ripples_limit_gets_ripples_own_413_through_nginx(nginx, room):
    # nginx's limit sat at Ripple's: its HTML page answered first, where api.md promises JSON.
    body = json.dumps({"text": "x" * 70000, "user": "ops"}).encode()  # over 64 KiB
    request = urllib.request.Request("%s/rooms/%s/messages" % (nginx.url, room), data=body, headers={
        "Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10, context=nginx.tls)
    assert refused.value.code == 413 and json.loads(refused.value.read())["code"] == "too_large"


def test_nginx_serves_tls_with_http2_and_hsts(nginx):
    with nginx.open("/healthz") as r:
        hsts = r.headers["Strict-Transport-Security"]
    assert "max-age=" in hsts and int(hsts.split("max-age=")[1].split(";")[0]) >= 31536000
    tls = nginx.tls
    tls.set_alpn_protocols(["h2", "http/1.1"])
    host, port = nginx.url.rsplit("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with tls.wrap_socket(raw, server_hostname=host) as conn:
            assert conn.selected_alpn_protocol() == "h2"  # every tab of a browser on one connection
            assert conn.version() in ("TLSv1.2", "TLSv1.3")


def test_nginx_redirects_plain_http_to_https(nginx):
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.build_opener(_NoRedirect).open(nginx.plain_url + "/rooms/a?x=1", timeout=5)
    refused.value.close()
    assert refused.value.code == 301
    assert refused.value.headers["Location"].startswith("https://") and \
        refused.value.headers["Location"].endswith("/rooms/a?x=1")


def test_nginx_does_not_serve_metrics(nginx, server):
    with pytest.raises(urllib.error.HTTPError) as refused:
        nginx.open("/metrics")
    refused.value.close()
    assert refused.value.code == 404
    with urllib.request.urlopen(server.url + "/metrics", timeout=5) as r:  # on the host itself: yes
        assert r.status == 200


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_systemd_unit_reloads_with_hup_and_allows_the_streams_open_files():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(ROOT / "docs/deploy/ripple.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("gunicorn -c gunicorn.conf.py")
    assert "HUP" in service["ExecReload"] and service["KillMode"] == "mixed"
    assert int(service["LimitNOFILE"]) >= 20000 and service["Type"] == "notify"
    if shutil.which("systemd-analyze"):
        result = subprocess.run(["systemd-analyze", "verify", str(ROOT / "docs/deploy/ripple.service")],
                                capture_output=True, text=True)
        assert "Unknown" not in result.stderr and "Invalid" not in result.stderr, result.stderr


def test_dockerfile_installs_the_pinned_requirements_and_runs_the_gunicorn_config():
    text = (ROOT / "Dockerfile").read_text().splitlines()
    lines = [line.strip() for line in text if line.strip() and not line.startswith("#")]
    instructions = [line.split()[0] for line in lines]
    assert instructions[0] == "FROM" and "USER" in instructions and "HEALTHCHECK" in instructions
    assert any("requirements.txt" in line for line in lines if line.startswith("RUN"))
    assert lines[-1] == 'CMD ["gunicorn", "-c", "gunicorn.conf.py"]'
    copied = " ".join(line for line in lines if line.startswith("COPY"))
    for needed in ("app", "static", "templates", "gunicorn.conf.py"):
        assert needed in copied


IMAGE_CHECK = """
from app import create_app
app = create_app({"TESTING": True, "REDIS_URL": %r, "SECRET_KEY": "test-secret"})
page = app.test_client().get("/register", headers={"Accept-Language": "zh-CN"})
assert page.status_code == 200, page.status_code
assert '<html lang="zh-Hans"' in page.get_data(as_text=True), "the image speaks no Chinese"
"""


def test_the_docker_images_files_serve_the_app_in_every_language(tmp_path, redis_url):
    """What the Dockerfile COPYs, and nothing else, runs the app with its catalogues (a missing
    translations/ served English to everyone, and hid the language switch)."""
    image = tmp_path / "srv"
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            source, target = line.split()[1:3]
            destination = image / target if target != "." else image / source
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, destination, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / source, destination)
    result = subprocess.run([sys.executable, "-c", IMAGE_CHECK % redis_url], cwd=image, capture_output=True,
                            text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(image)})
    assert result.returncode == 0, result.stderr[-2000:]
