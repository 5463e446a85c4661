"""docs/deployment.md's "Behind an authenticating proxy" recipe, as written there, in a real
nginx (auth_request) in front of a real Gunicorn with RIPPLE_TRUSTED_PROXIES=1: the proxy's
authentication service names the user, a client's own X-Forwarded-User never does."""
import base64
import http.server
import json
import re
import shutil
import signal
import subprocess
import threading
import uuid

import pytest

from .servers import ROOT, free_port, wait_until
from .test_jwt_sessions import proxied_server  # noqa: F401 - fixture
from .web import Browser

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
USERS = {"alice-" + uuid.uuid4().hex[:6]: "alice's password"}


class _Auth(http.server.BaseHTTPRequestHandler):
    """The operator's authentication service: 200 with X-User for a known Basic pair, else 401."""

    def do_GET(self):
        user, _, password = base64.b64decode(self.headers.get("Authorization", "")[6:] or b"").decode().partition(":")
        known = USERS.get(user) == password
        self.send_response(200 if known else 401)
        if known:
            self.send_header("X-User", user)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def recipe():
    """The nginx block of the recipe in docs/deployment.md."""
    text = (ROOT / "docs" / "deployment.md").read_text()
    section = text.split("## Behind an authenticating proxy", 1)[1]
    return re.search(r"```nginx\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def proxy(proxied_server, tmp_path_factory):  # noqa: F811 - the fixture above
    if not shutil.which(NGINX):
        pytest.skip("Debian's nginx is not installed: scripts/ensure-system-packages installs it")
    auth = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Auth)
    threading.Thread(target=auth.serve_forever, daemon=True).start()
    tmp = tmp_path_factory.mktemp("auth-proxy")
    port = free_port()
    block = recipe()
    assert "http://127.0.0.1:9000/check" in block
    block = block.replace("http://127.0.0.1:9000/check", "http://127.0.0.1:%d/check" % auth.server_port)
    temps = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    for name in temps:
        (tmp / name).mkdir()
    conf = ("events {}\nhttp {\n access_log off; %s\n upstream ripple { server 127.0.0.1:%d; }\n"
            " server { listen 127.0.0.1:%d;\n%s }\n}\n"
            % ("".join("%s_temp_path %s/%s; " % (n, tmp, n) for n in temps), proxied_server.port, port, block))
    (tmp / "nginx.conf").write_text(conf)
    globals_ = "daemon off; pid %s/nginx.pid; error_log %s/error.log;" % (tmp, tmp)
    check = subprocess.run([NGINX, "-t", "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-g", globals_],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-g", globals_],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port
    try:
        wait_until(lambda: _answers(url), 10, 0.05, "nginx to listen")
        yield url
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        auth.shutdown()
        auth.server_close()


def _answers(url):
    try:
        return Browser(url).request("GET", "/healthz")[0] in (200, 401)
    except OSError:
        return False


def basic(user):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, USERS[user])).encode()).decode()}


ALICE = next(iter(USERS))


def test_without_the_proxys_sign_in_nothing_reaches_ripple(proxy):
    status, _, _ = Browser(proxy).request("GET", "/session", headers={"X-Forwarded-User": ALICE})
    assert status == 401


def test_the_proxy_names_the_user_and_a_clients_own_header_is_replaced(proxy, room):
    browser = Browser(proxy)
    headers = {**basic(ALICE), "X-Forwarded-User": "root", "Accept": "application/json"}
    status, _, body = browser.request("GET", "/session", headers=headers)
    me = json.loads(body)
    assert status == 200 and (me["name"], me["id"], me["kind"]) == (ALICE, ALICE, "token")
    browser.token = me["csrf_token"]
    status, _, body = browser.request("POST", "/rooms/%s/messages" % room, body={"text": "through nginx"},
                                      headers=headers)
    assert status == 201 and (json.loads(body)["user"], json.loads(body)["uid"]) == (ALICE, "proxy:" + ALICE)
