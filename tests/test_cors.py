"""Cross-origin access (RIPPLE_CORS_ORIGINS): a page served from another origin, in real Chromium,
opens a stream with credentials and posts with a token; an origin not listed gets nothing; and
without the setting nothing cross-origin is allowed. Real Gunicorn (2 gevent workers), real Redis."""
import http.server
import threading
import time
import urllib.request

import jwt
import pytest

from .servers import Gunicorn, free_port
from .support import SERVER_ENV, TOKEN, post


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<!doctype html><title>host application</title><p>host application</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def sites():
    """Two other sites on loopback: (allowed origin, other origin)."""
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Page) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield ["http://127.0.0.1:%d" % s.server_address[1] for s in servers]
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def cors_server(redis_url, tmp_path_factory, sites):
    env = dict(SERVER_ENV, RIPPLE_CORS_ORIGINS=sites[0])
    gunicorn = Gunicorn(tmp_path_factory.mktemp("cors"), redis_url=redis_url, workers=2, env=env)
    gunicorn.start()
    yield gunicorn
    gunicorn.halt()


def preflight(server, origin):
    request = urllib.request.Request(server.url + "/rooms/lobby/messages", method="OPTIONS", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers


def test_a_listed_origins_preflight_is_answered(cors_server, sites):
    status, headers = preflight(cors_server, sites[0])
    assert status == 200 and headers["Access-Control-Allow-Origin"] == sites[0]
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert "authorization" in headers["Access-Control-Allow-Headers"].lower()


def test_another_origin_gets_no_cross_origin_headers(cors_server, sites):
    assert preflight(cors_server, sites[1])[1].get("Access-Control-Allow-Origin") is None


@pytest.mark.parametrize("path", ["/static/style.css", "/rooms/lobby/messages", "/healthz"])
def test_every_answer_says_it_varies_by_origin(cors_server, sites, path):
    # One listed origin: its answer carries Access-Control-Allow-Origin, another origin's does
    # not, so a shared cache (a CDN in front of /static) must key them apart.
    for origin in sites:
        request = urllib.request.Request(cors_server.url + path, headers={"Origin": origin})
        with urllib.request.urlopen(request, timeout=10) as response:
            vary = [v.strip().lower() for line in response.headers.get_all("Vary") or [] for v in line.split(",")]
            assert vary.count("origin") == 1, (path, origin, response.headers.get_all("Vary"))


def test_nothing_is_allowed_cross_origin_by_default(server, sites):
    assert preflight(server, sites[0])[1].get("Access-Control-Allow-Origin") is None


STREAM_AND_POST = """async ([base, room, token]) => {
  const got = new Promise((resolve, reject) => {
    const source = new EventSource(`${base}/rooms/${room}/events`, { withCredentials: true });
    source.addEventListener('message', (e) => { source.close(); resolve(JSON.parse(e.data).text); });
    source.addEventListener('ready', async () => {
      try {
        const answer = await fetch(`${base}/rooms/${room}/messages`, {
          method: 'POST', credentials: 'include',
          headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
          body: JSON.stringify({ text: 'from another origin', user: 'host-app' }) });
        if (answer.status !== 201) reject(new Error('post answered ' + answer.status));
        await answer.json();  // readable: the answer carries the CORS headers
      } catch (err) { reject(err); }
    });
    source.onerror = () => reject(new Error('stream failed'));
  });
  return await got;
}"""


def test_a_page_on_a_listed_origin_streams_and_posts_with_a_token(chromium, cors_server, sites, room):
    page = chromium.new_page()
    try:
        page.goto(sites[0] + "/")
        assert page.evaluate(STREAM_AND_POST, [cors_server.url, room, TOKEN]) == "from another origin"
    finally:
        page.close()


def test_a_page_on_another_origin_cannot_read_anything(chromium, cors_server, sites, room):
    assert post(cors_server.url, room, "already here")[0] == 201
    page = chromium.new_page()
    try:
        page.goto(sites[1] + "/")
        outcome = page.evaluate("""async (url) => {
          try { await (await fetch(url, { credentials: 'include' })).json(); return 'read'; }
          catch (err) { return 'refused'; } }""", "%s/rooms/%s/messages" % (cors_server.url, room))
        assert outcome == "refused"
    finally:
        page.close()


# -- a host application's JWT from another origin ------------------------------------------------------

JWT_SECRET = "host-application-secret-of-some-length"


@pytest.fixture(scope="module")
def jwt_cors_server(redis_url, tmp_path_factory, sites):
    env = dict(SERVER_ENV, RIPPLE_CORS_ORIGINS=sites[0], RIPPLE_JWT_SECRET=JWT_SECRET, RIPPLE_JWT_LEEWAY_SECONDS="0")
    gunicorn = Gunicorn(tmp_path_factory.mktemp("jwt-cors"), redis_url=redis_url, workers=2, env=env)
    gunicorn.start()
    yield gunicorn
    gunicorn.halt()


EXPIRE_AND_RESUME = """async ([base, room, first, fresh]) => {
  const post = (token, text) => fetch(`${base}/rooms/${room}/messages`, { method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ text }) }).then((r) => r.status);
  const seen = [];
  let cursor = '';
  await new Promise((resolve, reject) => {
    const source = new EventSource(`${base}/rooms/${room}/events?token=${first}`);
    source.addEventListener('ready', async () => { if (await post(first, 'before expiry') !== 201) reject('post'); });
    source.addEventListener('message', (e) => { seen.push(JSON.parse(e.data).text); cursor = e.lastEventId; });
    source.addEventListener('signed-out', () => { source.close(); resolve(); });
  });
  if (await post(fresh, 'while away') !== 201) throw new Error('post with the fresh token');
  await new Promise((resolve) => {
    const source = new EventSource(
      `${base}/rooms/${room}/events?token=${fresh}&last_event_id=${encodeURIComponent(cursor)}`);
    source.addEventListener('message', (e) => { seen.push(JSON.parse(e.data).text); source.close(); resolve(); });
  });
  return seen;
}"""


def test_a_jwt_from_another_origin_streams_posts_and_resumes_after_expiry(chromium, jwt_cors_server, sites, room):
    claims = {"sub": "host-user-1", "name": "host-user-1", "exp": int(time.time()) + 3}
    first = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    fresh = jwt.encode(dict(claims, exp=int(time.time()) + 300), JWT_SECRET, algorithm="HS256")
    page = chromium.new_page()
    try:
        page.goto(sites[0] + "/")
        seen = page.evaluate(EXPIRE_AND_RESUME, [jwt_cors_server.url, room, first, fresh])
        assert seen == ["before expiry", "while away"]  # nothing lost, nothing twice
    finally:
        page.close()
