"""The deployment files work: docs/deploy/nginx.conf proxies streams unbuffered through a real
nginx; the systemd unit and the Dockerfile hold what an operator relies on."""
import configparser
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

from .conftest import post
from .servers import ROOT, free_port, wait_until
from .sse import SSEStream

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@pytest.fixture
def nginx(server, tmp_path):
    """docs/deploy/nginx.conf, pointed at the test server, listening on a free loopback port."""
    if not shutil.which(NGINX):
        pytest.skip("Debian's nginx is not installed: scripts/ensure-system-packages installs it")
    port = free_port()
    conf = (ROOT / "docs/deploy/nginx.conf").read_text()
    conf = conf.replace("server 127.0.0.1:8000;", "server 127.0.0.1:%d;" % server.port)
    conf = conf.replace("listen 80;", "listen 127.0.0.1:%d;" % port)
    # Only what a test run needs differs: its own temp paths, logs and pid file.
    temps = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    for name in temps:
        (tmp_path / name).mkdir()
    paths = "".join("%s_temp_path %s/%s; " % (n, tmp_path, n) for n in temps)
    conf = conf.replace("http {", "http {\n    access_log off; " + paths, 1)
    globals_ = "daemon off; pid %s/nginx.pid; error_log %s/error.log;" % (tmp_path, tmp_path)
    (tmp_path / "nginx.conf").write_text(conf)
    check = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", globals_],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", globals_],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port
    try:
        wait_until(lambda: _up(url), 10, 0.05, "nginx to listen")
        yield url
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def _up(url):
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def test_streams_pass_through_nginx_unbuffered(nginx, server, room):
    with SSEStream("%s/rooms/%s/events" % (nginx, room)) as stream:
        stream.until("ready")  # the first chunk arrived before any message: not buffered
        started = time.monotonic()
        post(server.url, room, "through the proxy")
        assert stream.messages(1, timeout=3)[0].json()["text"] == "through the proxy"
        assert time.monotonic() - started < 1.0
        with pytest.raises(TimeoutError):  # heartbeats, not buffered either
            stream.next(1.2)
        assert stream.comments >= 1


def test_nginx_passes_the_request_id_through(nginx):
    with urllib.request.urlopen(nginx + "/healthz", timeout=5) as r:
        assert len(r.headers["X-Request-ID"]) == 32  # nginx's $request_id, echoed by Ripple


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
    lines = [l.strip() for l in (ROOT / "Dockerfile").read_text().splitlines() if l.strip() and not l.startswith("#")]
    instructions = [l.split()[0] for l in lines]
    assert instructions[0] == "FROM" and "USER" in instructions and "HEALTHCHECK" in instructions
    assert any("requirements.txt" in l for l in lines if l.startswith("RUN"))
    assert lines[-1] == 'CMD ["gunicorn", "-c", "gunicorn.conf.py"]'
    copied = " ".join(l for l in lines if l.startswith("COPY"))
    for needed in ("app", "static", "templates", "gunicorn.conf.py"):
        assert needed in copied
