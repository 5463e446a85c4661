"""Connections that fail the way real networks fail: clients that vanish without a word, a
session's streams past its cap, half-closed requests, a stream refused by a limit, a reader Redis
disconnects, a post whose outcome is unknown. Real Gunicorn (2 gevent workers), real Redis."""
import http.client
import json
import select
import signal
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest
import redis as redis_py

from app.ops.embedded_redis import EmbeddedRedis
from app.rooms.keys import PersonKeys, RoomKeys

from .servers import Gunicorn, free_port, wait_until
from .sse import SSEStream
from .support import SERVER_ENV, TEST_HEARTBEAT, TOKEN, post
from .web import Browser


class Relay:
    """A TCP relay between clients and a server that can go silent, as a network path does
    when a phone loses coverage or a NAT forgets the mapping: it stops forwarding in both
    directions and stops reading, and closes nothing. Its server-side sockets have a tiny
    receive buffer, so the server's writes soon meet a closed window that nobody reopens."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.silent = threading.Event()
        self.closed = threading.Event()
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.socket()
            upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
            upstream.connect(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source, target):
        while not (self.silent.is_set() or self.closed.is_set()):
            readable, _, _ = select.select([source], [], [], 0.05)
            if not readable or self.silent.is_set():
                continue
            try:
                data = source.recv(65536)
                if not data:
                    target.shutdown(socket.SHUT_WR)
                    return
                target.sendall(data)
            except OSError:
                return

    def go_silent(self):
        self.silent.set()

    def close(self):
        self.closed.set()
        self.listener.close()
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def relay(server):
    relay = Relay(server.port)
    yield relay
    relay.close()


def person(server, prefix="ann"):
    browser = Browser(server.url)
    assert browser.sign_in("%s-%s" % (prefix, uuid.uuid4().hex[:6])) == 200
    return browser


def session_id(app, browser):
    """The session id inside a browser's signed session cookie."""
    serializer = app.session_interface.get_signing_serializer(app)
    cookie = next(c.value for c in browser.jar if c.name == app.config["SESSION_COOKIE_NAME"])
    return serializer.loads(cookie)["sid"]


def online(browser, room):
    status, _, body = browser.request("GET", "/rooms/%s/presence" % room)
    assert status == 200
    return json.loads(body)["online"]


class LogMark:
    """What a server logged after this point."""

    def __init__(self, server):
        self.server = server
        self.offset = server.log_path.stat().st_size

    def text(self):
        with open(self.server.log_path, "rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")


# --- 3. a vanished client -------------------------------------------------------------------

def test_a_client_that_vanishes_silently_is_gone_from_presence_within_a_few_heartbeats(
        server, relay, app, redis_client, room):
    ann = person(server)
    sid = session_id(app, ann)
    mark = LogMark(server)
    stream = SSEStream("%s/rooms/%s/events" % (relay.url, room), {"Cookie": ann.cookie()})
    try:
        stream.until("ready")
        assert online(ann, room) == [ann.name]
        relay.go_silent()
        # What the server sends next (posts, keep-alives) goes unacknowledged past the relay's
        # small window; the kernel gives up on the connection after 1.5 heartbeats.
        for i in range(10):  # ~20 KB: more than the relay's window takes
            assert post(server.url, room, "%d %s" % (i, "x" * 1900))[0] == 201
        bound = 3 * TEST_HEARTBEAT + float(SERVER_ENV["RIPPLE_PRESENCE_GRACE_SECONDS"]) + 2.0
        wait_until(lambda: online(ann, room) == [], bound, 0.05, "the vanished client to go offline")
        channel = RoomKeys(room).channel
        wait_until(lambda: redis_client.pubsub_numsub(channel)[0][1] == 0, 2, message="its listener freed")
        assert redis_client.zcard(PersonKeys(sid).streams) == 0  # its session's slot is free
        log = mark.text()
        assert "Traceback" not in log and " ERROR " not in log, log
    finally:
        stream.close()


def test_a_new_stream_past_the_session_cap_replaces_the_oldest_on_another_host(
        server, other_host, room):
    ann = person(server)
    cap = 10  # RIPPLE_MAX_STREAMS_PER_SESSION's default
    streams = [ann.stream(room) for _ in range(cap)]
    newest = None
    try:
        for stream in streams:
            stream.until("ready")
        elsewhere = Browser(other_host.url).same_session_as(ann)
        newest = elsewhere.stream(room)
        assert newest.status == 200
        newest.until("ready")
        event, _ = streams[0].until("replaced")
        assert "replaced by a newer one" in event.json()["message"]
        assert streams[0].retry >= 10000  # a plain EventSource does not come straight back
        assert streams[0].next(5) is None  # and the oldest stream ends
        sent = post(server.url, room, "still here")[1]["id"]
        for stream in streams[1:] + [newest]:  # the other ten stay open and live
            assert [e.json()["id"] for e in stream.messages(1)] == [sent]
    finally:
        for stream in streams + [newest]:
            if stream is not None:
                stream.close()


# --- 7. a half-closed request ---------------------------------------------------------------

def _raw_stream(server, room):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(b"GET /rooms/%s/events HTTP/1.1\r\nHost: x\r\n\r\n" % room.encode())
    return sock


def _read_until(sock, marker, data=b""):
    """Read until ``marker`` has arrived (searched in what is new, not all again)."""
    parts, tail = [data], data[-len(marker):]
    if marker in data:
        return data
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise AssertionError("the server ended the stream before %r" % marker)
        parts.append(chunk)
        if marker in tail + chunk:
            return b"".join(parts)
        tail = (tail + chunk)[-len(marker):]


def test_a_half_closed_request_keeps_receiving_live_messages(server, redis_client, room):
    sock = _raw_stream(server, room)
    with sock:
        data = _read_until(sock, b"event: ready")
        sock.shutdown(socket.SHUT_WR)  # the request is complete; the client keeps reading
        # The server notices the half-close (and probes it with a comment); it stays open.
        data = _read_until(sock, b": keep-alive", data.partition(b"event: ready")[2])
        for text in ("after the half-close", "and another"):
            post(server.url, room, text)
            data = _read_until(sock, text.encode(), data)
        assert redis_client.pubsub_numsub(RoomKeys(room).channel)[0][1] == 1


# --- 4. limits for people behind one address, and refusals an EventSource survives ----------

@pytest.fixture
def limited_server(redis_url, tmp_path, request):
    """A server with the README's stream limits, or tighter ones given by the test."""
    env = {**SERVER_ENV, "RIPPLE_STREAM_RATE_SESSION": "30 per minute", "RIPPLE_STREAM_RATE_IP": "300 per minute"}
    env.update(getattr(request, "param", {}))
    gunicorn = Gunicorn(tmp_path, redis_url=redis_url, workers=2, env=env).start()
    yield gunicorn
    gunicorn.halt()


def _resume(server, room, cursor, deadline):
    """Reconnect as an EventSource would, honouring every retry hint; return the ready event."""
    while time.monotonic() < deadline:
        with SSEStream("%s/rooms/%s/events" % (server.url, room), {"Last-Event-ID": cursor}) as again:
            assert again.status == 200 and again.headers["Content-Type"].startswith("text/event-stream")
            event = again.next(max(0.01, deadline - time.monotonic()))
            while event is not None and event.name not in ("ready", "busy"):
                event = again.next(max(0.01, deadline - time.monotonic()))
            if event is not None and event.name == "ready":
                return event
            time.sleep((again.retry or 100) / 1000)  # what the server asked for
    raise AssertionError("could not resume before the deadline")


@pytest.mark.parametrize("limited_server", [{"RIPPLE_STREAM_RATE_IP": "50 per minute"}], indirect=True)
def test_forty_anonymous_viewers_behind_one_address_are_all_back_soon_after_a_reload(limited_server, room):
    viewers = []
    try:
        for _ in range(40):  # one address, no sessions: only the per-address limit applies
            stream = SSEStream("%s/rooms/%s/events" % (limited_server.url, room))
            stream.until("ready")
            viewers.append(stream)
        limited_server.signal(signal.SIGHUP)
        cursors = []
        for stream in viewers:
            while stream.next(5) is not None:
                pass
            cursors.append(stream.last_id)
        # 80 opens in all from one address, past its 50 new streams a minute: the 40 reconnects
        # resume their cursors from their own budget.
        deadline = time.monotonic() + 15
        for cursor in cursors:
            _resume(limited_server, room, cursor, deadline)
    finally:
        for stream in viewers:
            stream.close()


@pytest.mark.parametrize("limited_server", [{"RIPPLE_STREAM_RATE_IP": "3 per minute"}], indirect=True)
def test_a_refused_stream_is_a_short_event_stream_with_a_retry_hint(limited_server, room):
    url = "%s/rooms/%s/events" % (limited_server.url, room)
    for _ in range(3):
        with SSEStream(url) as stream:
            stream.until("ready")
    with SSEStream(url) as refused:  # what an EventSource would get: it keeps retrying on this
        assert refused.status == 200 and refused.headers["Content-Type"].startswith("text/event-stream")
        assert int(refused.headers["Retry-After"]) > 0
        event = refused.next(5)
        assert event.name == "busy" and "tries again" in event.json()["error"]
        assert refused.retry >= 1000 * event.json()["retry_after"]
        # The sentence names the wait the client will use: the retry sent (jitter and all).
        assert event.json()["error"].endswith("tries again in %d s." % -(-refused.retry // 1000))
        assert refused.next(5) is None  # and it ends
    status, headers, body = Browser(limited_server.url).request(  # a client that wants JSON
        "GET", "/rooms/%s/events" % room, headers={"Accept": "application/json"})
    assert status == 429 and int(headers["Retry-After"]) > 0
    assert json.loads(body)["error"].endswith("tries again in %s s." % headers["Retry-After"])


# --- 6. a slow reader that Redis disconnects ------------------------------------------------

@pytest.fixture
def own_redis(tmp_path):
    """A Redis of this test's own, for settings (or stalls) no other test must meet."""
    server = EmbeddedRedis(tmp_path / "redis", port=free_port(), appendonly=False,
                           extra_args=["--enable-debug-command", "yes"])
    server.start()
    yield server
    server.stop()


def _dechunk(data):
    """The body of a chunked HTTP response, as far as it has arrived."""
    parts, at = [], 0
    while at < len(data):
        end = data.index(b"\r\n", at)
        size = int(data[at:end], 16)
        if size == 0:
            break
        parts.append(data[end + 2:end + 2 + size])
        at = end + 2 + size + 2
    return b"".join(parts)


@pytest.mark.slow  # tens of MB: Redis drops the reader only once every kernel buffer on the way is full
def test_a_slow_reader_redis_disconnects_is_not_a_redis_outage_and_resumes(own_redis, tmp_path, room,
                                                                           fault_report):
    with redis_py.Redis.from_url(own_redis.url) as admin:
        # 64 KB, at once: each 190 KB message leaves while the socket takes it whole; once every
        # kernel buffer on the way is full (~40 posts), the next one is over the limit. (Valkey
        # with 256 KB took ~330 posts, 20-50 s.)
        admin.config_set("client-output-buffer-limit", "pubsub 65536 0 0")
        server = Gunicorn(tmp_path, redis_url=own_redis.url, workers=2,
                          # the stalled reader must outlast the posts that overflow Redis's
                          # buffer for it: no send timeout or kernel timeout ends it first
                          env={**SERVER_ENV, "RIPPLE_SEND_TIMEOUT_SECONDS": "60", "RIPPLE_HEARTBEAT_SECONDS": "30",
                               "RIPPLE_MAX_MESSAGE_CHARS": "200000", "RIPPLE_MAX_CONTENT_LENGTH": "400000"}).start()
        try:
            reader = socket.create_connection(("127.0.0.1", server.port))
            with reader:
                reader.sendall(b"GET /rooms/%s/events HTTP/1.1\r\nHost: x\r\n\r\n" % room.encode())
                reader.settimeout(10)
                data = _read_until(reader, b"event: ready")
                channel = RoomKeys(room).channel
                # The reader stops reading: the stream's writes block, its listener stops being
                # read, and Redis buffers for it until the limit, then drops that connection.
                sent = []
                for i in range(600):
                    if admin.pubsub_numsub(channel)[0][1] == 0:
                        break
                    status, body = post(server.url, room, "%d %s" % (i, "x" * 190000))
                    assert status == 201
                    sent.append(body["id"])
                assert admin.pubsub_numsub(channel)[0][1] == 0, "redis never dropped the slow reader"
                data = _read_until(reader, b"event: unavailable", data)  # reading again
                data = _read_until(reader, b"\r\n0\r\n\r\n", data)  # then the stream ends
            frames = _dechunk(data.partition(b"\r\n\r\n")[2]).decode()
            ids = [line[4:] for line in frames.split("\n") if line.startswith("id: ")]
            # It resumes with its cursor and gets the rest: nothing lost, nothing twice.
            with SSEStream("%s/rooms/%s/events" % (server.url, room), {"Last-Event-ID": ids[-1]}) as again:
                _, before = again.until("ready")
            got = [i.partition(".")[0] for i in ids[1:]] + [e.json()["id"] for e in before if e.name == "message"]
            fault_report.add("slow reader disconnected by Redis (pubsub output buffer limit), resumed",
                             1, len(sent), [got])
            assert got == sent
            log = server.log_tail(400)
            assert "slow consumer disconnected" in log and "redis unavailable" not in log, log
            metrics = urllib.request.urlopen(server.url + "/metrics", timeout=10).read().decode()
            assert "ripple_slow_consumers_total 1.0" in metrics
            assert 'ripple_redis_errors_total{where="stream"}' not in metrics
        finally:
            server.stop()


# --- 5. a post whose outcome is unknown -----------------------------------------------------

@pytest.fixture
def slow_redis_server(own_redis, tmp_path):
    """A server on a Redis of its own that the test may pause; Redis calls time out after 1 s."""
    gunicorn = Gunicorn(tmp_path, redis_url=own_redis.url, workers=2,
                        env={**SERVER_ENV, "RIPPLE_REDIS_SOCKET_TIMEOUT": "1"}).start()
    yield gunicorn
    gunicorn.halt()


def history(server, room):
    with urllib.request.urlopen("%s/rooms/%s/messages" % (server.url, room), timeout=10) as r:
        return json.loads(r.read())["messages"]


def _post_on(connection, room, text, key):
    connection.request("POST", "/rooms/%s/messages" % room, body=json.dumps({"text": text, "user": "ann"}),
                       headers={"Content-Type": "application/json", "Authorization": "Bearer " + TOKEN,
                                "Idempotency-Key": key})
    response = connection.getresponse()
    return response.status, json.loads(response.read())


class BusyRedis:
    """Redis busy with one long command (DEBUG SLEEP) from the moment this returns: what
    clients send meanwhile waits in its socket buffers and runs afterwards. Sending the command
    first is not enough on a loaded machine (Redis may read a later client's command in the same
    wake-up and run it first), so this returns once a PING on another connection goes
    unanswered for PROBE_SECONDS: Redis is inside the sleep, about PROBE_SECONDS into it."""

    PROBE_SECONDS = 0.1

    def __init__(self, redis_server, seconds):
        self.sock = socket.create_connection(("127.0.0.1", redis_server.port), timeout=seconds + 10)
        arg = str(seconds).encode()
        self.sock.sendall(b"*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$%d\r\n%s\r\n" % (len(arg), arg))
        with socket.create_connection(("127.0.0.1", redis_server.port), timeout=seconds + 10) as probe:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                probe.sendall(b"PING\r\n")
                if not select.select([probe], [], [], self.PROBE_SECONDS)[0]:
                    return  # unanswered: the sleep has begun
                assert probe.recv(100).startswith(b"+PONG")
        raise AssertionError("Redis did not begin DEBUG SLEEP within 10 s")

    def over(self):
        """Wait for the command's answer (Redis is free again)."""
        with self.sock:
            assert self.sock.recv(100).startswith(b"+OK")


def test_a_post_timed_out_on_a_slow_redis_is_unconfirmed_and_its_retry_returns_the_original(
        slow_redis_server, own_redis, room):
    publisher = http.client.HTTPConnection("127.0.0.1", slow_redis_server.port, timeout=15)
    # One keep-alive connection: the worker that stores the warm-up post has a connection to
    # Redis already, so the slow post's script is sent before its wait times out.
    assert _post_on(publisher, room + "-warm", "warm-up", "k-warm")[0] == 201
    busy = BusyRedis(own_redis, 2.5)
    status, body = _post_on(publisher, room, "sent once", "k-slow")
    publisher.close()
    assert status == 504 and body["code"] == "unconfirmed"
    assert body["error"] == "We could not confirm your message was sent; sending again is safe."
    # The retry (same key) waits out the pause and answers with the message stored meanwhile.
    status, retried = wait_until(lambda: (lambda r: r if r[0] in (200, 201) else None)(
        post(slow_redis_server.url, room, "sent once", key="k-slow")), 15, 0.2, "the retry to succeed")
    assert status == 200
    assert [m["id"] for m in history(slow_redis_server, room)] == [retried["id"]]
    busy.over()


@pytest.mark.parametrize("body", ["json", "form"], ids=["JSON (the fast path)", "a form (Flask's path)"])
def test_a_scoped_token_post_on_a_stalled_redis_is_503_after_one_timeout(
        slow_redis_server, own_redis, room, body):
    from .test_publish_tokens import create
    _, token = create(own_redis.url, room, "feed-bot")
    fields = {"text": "while stalled", "user": "feed-bot"}
    data, kind = ((json.dumps(fields).encode(), "application/json") if body == "json"
                  else (urllib.parse.urlencode(fields).encode(), "application/x-www-form-urlencoded"))
    busy = BusyRedis(own_redis, 4)  # longer than the 1 s timeouts the post used to wait out one after another
    started = time.monotonic()
    request = urllib.request.Request(
        "%s/rooms/%s/messages" % (slow_redis_server.url, room), method="POST", data=data,
        headers={"Content-Type": kind, "Accept": "application/json", "Authorization": "Bearer " + token})
    try:
        urllib.request.urlopen(request, timeout=15)
        raise AssertionError("stored on a stalled Redis")
    except urllib.error.HTTPError as refused:
        with refused:
            status, body, waited = refused.code, json.loads(refused.read()), time.monotonic() - started
    busy.over()
    # The token could not be checked, so nothing was stored: 503, not "unconfirmed".
    assert (status, body["code"]) == (503, "unavailable")
    assert waited < 1.7, waited  # one RIPPLE_REDIS_SOCKET_TIMEOUT (1 s), not the token check again and again
    assert history(slow_redis_server, room) == []


def test_a_history_read_on_a_stalled_redis_is_503_after_one_timeout_not_two(slow_redis_server, own_redis, room):
    busy = BusyRedis(own_redis, 4)
    started = time.monotonic()
    try:
        urllib.request.urlopen("%s/rooms/%s/messages" % (slow_redis_server.url, room), timeout=15)
        raise AssertionError("read a stalled Redis")
    except urllib.error.HTTPError as refused:
        with refused:
            status, body, waited = refused.code, json.loads(refused.read()), time.monotonic() - started
            retry_after = refused.headers["Retry-After"]
    busy.over()
    assert (status, body["code"]) == (503, "unavailable") and retry_after
    # The read limit's count (the same Redis) failed first: answered then, not after the read's own wait.
    assert waited < 1.7, waited


def test_the_python_client_retries_an_unconfirmed_publish_with_the_same_key(own_redis, room, monkeypatch):
    from app.ops.cli import publish
    monkeypatch.setenv("RIPPLE_REDIS_SOCKET_TIMEOUT", "0.5")
    busy = BusyRedis(own_redis, 1.5)
    stored = json.loads(publish(room, "from a script", "feed", redis_url=own_redis.url, attempts=6))
    busy.over()
    with redis_py.Redis.from_url(own_redis.url, decode_responses=True) as client:
        assert [entry[0] for entry in client.xrange(RoomKeys(room).log)] == [stored["id"]]


def test_only_a_failure_before_sending_proves_a_post_was_not_stored(own_redis):
    from app.rooms.store import NotReplicated, unconfirmed
    with redis_py.Redis(port=free_port(), socket_connect_timeout=1) as nobody:  # nothing listens
        with pytest.raises(redis_py.ConnectionError) as refused:
            nobody.ping()
    assert not unconfirmed(refused.value)
    with redis_py.Redis.from_url(own_redis.url, socket_timeout=0.2) as client:
        busy = BusyRedis(own_redis, 1)
        with pytest.raises(redis_py.TimeoutError) as late:
            client.ping()
        busy.over()
    assert unconfirmed(late.value)
    assert unconfirmed(NotReplicated("0 of 1 replicas confirmed within 300 ms"))
    assert not unconfirmed(redis_py.ResponseError("BUSY Redis is busy running a script"))
