"""Streams open on a path around Flask (app/web/faststream.py), anonymous or signed in by the
session cookie: the same head and stream as Flask's, and every refusal and error is Flask's own
answer."""
import socket
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import pytest
import redis
from werkzeug.test import EnvironBuilder

from app import create_app
from app.people import addresses, identity
from app.rooms import keys, records
from app.web import faststream, opening

from .support import LIMITS_OFF, TEST_HEARTBEAT, TOKEN, aged, spy_handed_on

# Of Flask's head for a stream, these differ from answer to answer.
VARYING = {"X-Request-ID"}


@pytest.fixture
def handed(monkeypatch):
    """The environs of streams the fast path hands on to Flask."""
    return spy_handed_on(monkeypatch, faststream.FastStream,
                         lambda environ: environ if environ["PATH_INFO"].endswith("/events") else None)


def make_app(redis_url, **config):
    return create_app({"TESTING": True, "REDIS_URL": redis_url, "PUBLISH_TOKEN": TOKEN,
                       "HEARTBEAT_SECONDS": TEST_HEARTBEAT, "SECRET_KEY": "test-secret",
                       **LIMITS_OFF, **config})


def open_stream(app, path, headers=None, address="198.51.100.7", until=None):
    """GET ``path`` from ``address`` through the app's whole WSGI stack: (status, headers dict,
    the body's first chunk, or its chunks up to the one holding ``until`` (bytes), at most 20)."""
    environ = EnvironBuilder(path=path, headers=headers or {}).get_environ()
    environ["REMOTE_ADDR"] = address
    answer = {}

    def start_response(status, head, exc_info=None):
        answer["status"], answer["head"] = status, head
    body = app.wsgi_app(environ, start_response)
    chunks = iter(body)
    try:
        read = next(chunks, b"")
        for _ in range(20):
            if until is None or until in read:
                break
            read += next(chunks, b"")
    finally:
        getattr(body, "close", lambda: None)()
    return answer["status"], dict(answer["head"]), read


def signed_in(app, name):
    """The Cookie header of a fresh session signed in as ``name`` (GET and POST /session)."""
    client = app.test_client()
    token = client.get("/session").get_json()["csrf_token"]
    assert client.post("/session", json={"name": name}, headers={"X-CSRF-Token": token}).status_code == 200
    return "session=" + client.get_cookie("session").value


def test_an_anonymous_stream_opens_without_flask(redis_url, room, handed):
    status, head, first = open_stream(make_app(redis_url), "/rooms/%s/events" % room)
    assert status == "200 OK" and head["Content-Type"] == "text/event-stream; charset=utf-8"
    assert first.startswith(b"retry: ") and handed == []


@pytest.mark.parametrize("person", [False, True], ids=["anonymous", "signed-in"])
def test_a_stream_opens_without_flask_after_redis_lost_its_scripts(redis_url, room, handed, redis_client,
                                                                    person):
    # The checks' script goes by hash on a pooled connection (topology.run_script); Redis that
    # restarted (or flushed its scripts) answers NOSCRIPT before running it, and it is loaded.
    app = make_app(redis_url)
    headers = {"Cookie": signed_in(app, "scripted-" + room[-6:])} if person else {}
    redis_client.script_flush()
    status, _, first = open_stream(app, "/rooms/%s/events" % room, headers=headers)
    assert status == "200 OK" and first.startswith(b"retry: ") and handed == []


def test_under_gunicorn_its_head_comes_with_the_first_chunk(server, room):
    # The head and the stream's retry: chunk leave together (app/web/onesend.py; that it is one
    # send is tests/test_onesend.py's): the first read of the client's socket has both.
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(b"GET /rooms/%s/events HTTP/1.1\r\nHost: test\r\n\r\n" % room.encode())
        head, _, rest = sock.recv(65536).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"text/event-stream" in head, head
    assert b"retry: " in rest, rest


def test_its_head_is_the_head_flask_sends(redis_url, room, handed):
    app = make_app(redis_url)
    _, fast, _ = open_stream(app, "/rooms/%s/events" % room)
    # Another parameter takes Flask's path; the head must not tell the two apart.
    _, through_flask, _ = open_stream(app, "/rooms/%s/events?other=1" % room)
    assert len(handed) == 1
    assert list(fast) == list(through_flask)
    assert {k: v for k, v in fast.items() if k not in VARYING} == \
        {k: v for k, v in through_flask.items() if k not in VARYING}


@pytest.mark.parametrize("path, headers", [
    ("/rooms/{room}/events?backlog=-1", {}),                       # Flask's 400
    ("/rooms/{room}/events?backlog=99999", {}),
    ("/rooms/{room}/events?token=abc", {}),                        # a host application's JWT
    ("/rooms/{room}/events", {"Authorization": "Bearer " + TOKEN}),  # a publish token
    ("/rooms/{room}/events", {"Cookie": "session=abc"}),          # a session: presence, sidebar
    ("/rooms/{room}/events", {"Last-Event-ID": "not-a-cursor"}),  # Flask logs it
    ("/rooms/Bad%20Room!/events", {}),
])
def test_requests_it_does_not_serve_go_to_flask_unchanged(redis_url, room, handed, path, headers):
    app = make_app(redis_url)
    status, _, _ = open_stream(app, path.format(room=room), headers)
    assert len(handed) == 1 and opening.CHECKED not in handed[0]
    assert not status.startswith("5")


def test_a_refused_open_is_answered_by_flask_and_counted_once(redis_url, room, handed, redis_client):
    app = make_app(redis_url, RATELIMIT_ENABLED=True, STREAM_RATE_IP="2 per minute",
                   STREAM_RESUME_RATE_IP="100 per minute")
    path, address = "/rooms/%s/events" % room, "2001:db8::" + room[-4:]  # counted apart
    assert [open_stream(app, path, address=address)[0] for _ in range(2)] == ["200 OK"] * 2
    assert handed == []
    status, head, first = open_stream(app, path, {"Accept": "text/event-stream"}, address)
    # An EventSource's refusal: a 200 stream saying "busy", with when to come back.
    assert status == "200 OK" and b"event: busy" in first and int(head["Retry-After"]) >= 1
    assert len(handed) == 1 and opening.CHECKED not in handed[0]  # Flask used the checks' reply
    counters = [k for k in redis_client.keys("*{stream:ip:%s}*" % address)]
    assert sum(int(redis_client.get(k)) for k in counters) == 2  # the refused open counted nothing


def test_a_private_room_is_flasks_404_and_gives_the_address_its_place_back(redis_url, room, handed,
                                                                            redis_client):
    app = make_app(redis_url, MAX_STREAMS_PER_ADDRESS=1)
    redis_client.hset(records.RecordKeys(room).info, "visibility", "private")
    address = "2001:db8::" + room[-4:]
    status, _, _ = open_stream(app, "/rooms/%s/events" % room, address=address)
    assert status.startswith("404") and len(handed) == 1
    # The one place of the address is free again: another room's stream opens.
    assert open_stream(app, "/rooms/%s-b/events" % room, address=address)[0] == "200 OK"


def test_a_signed_in_stream_opens_without_flask_as_its_person(redis_url, room, handed):
    app = make_app(redis_url)
    name = "ann-" + room[-6:]
    status, _, body = open_stream(app, "/rooms/%s/events" % room, {"Cookie": signed_in(app, name)},
                                  until=b"event: ready")
    assert status == "200 OK" and handed == []
    # The person's stream: their presence snapshot and sidebar counts come before "ready".
    assert b"event: presence" in body and name.encode() in body and b"event: unread" in body


def test_a_signed_in_streams_head_and_refreshed_cookie_are_flasks(redis_url, room, handed):
    app = make_app(redis_url)
    fresh = signed_in(app, "bo-" + room[-6:])
    cookie = "session=" + aged(app, fresh.split("=", 1)[1], 2 * 3600)  # due a fresh expiry
    _, fast, _ = open_stream(app, "/rooms/%s/events" % room, {"Cookie": cookie})
    _, through_flask, _ = open_stream(app, "/rooms/%s/events?other=1" % room, {"Cookie": cookie})
    assert len(handed) == 1 and list(fast) == list(through_flask)
    session_of = app.session_interface.get_signing_serializer(app).loads
    fast_cookie, flask_cookie = (dump_cookie_parts(h["Set-Cookie"]) for h in (fast, through_flask))
    assert session_of(fast_cookie.pop("session")) == session_of(flask_cookie.pop("session"))
    expires = [parsedate_to_datetime(c.pop("Expires")) for c in (fast_cookie, flask_cookie)]
    assert abs((expires[0] - expires[1]).total_seconds()) <= 5 and fast_cookie == flask_cookie


def test_a_signed_in_stream_sends_no_cookie_while_its_session_is_freshly_signed(redis_url, room, handed):
    app = make_app(redis_url)
    cookie = signed_in(app, "bea-" + room[-6:])
    _, fast, _ = open_stream(app, "/rooms/%s/events" % room, {"Cookie": cookie})
    _, through_flask, _ = open_stream(app, "/rooms/%s/events?other=1" % room, {"Cookie": cookie})
    assert len(handed) == 1 and "Set-Cookie" not in fast and "Set-Cookie" not in through_flask


def test_an_ended_sessions_stream_is_flasks_and_anonymous(redis_url, room, handed, redis_client):
    app = make_app(redis_url)
    name = "cy-" + room[-6:]
    cookie = signed_in(app, name)
    sid = app.session_interface.get_signing_serializer(app).loads(cookie.split("=", 1)[1])["sid"]
    redis_client.delete(keys.PersonKeys(sid).session)  # signed out elsewhere
    status, head, body = open_stream(app, "/rooms/%s/events" % room, {"Cookie": cookie}, until=b"event: ready")
    assert status == "200 OK" and len(handed) == 1 and opening.CHECKED not in handed[0]
    assert name.encode() not in body


def dump_cookie_parts(header):
    """A Set-Cookie value as {name or attribute: value} ("HttpOnly": True and the like)."""
    parts = {}
    for item in header.split(";"):
        key, eq, value = item.strip().partition("=")
        parts[key] = value if eq else True
    return parts


@pytest.mark.parametrize("backlog", ["%C2%B2", "1" * 5000])  # "²": isdigit() yet no int(); too many digits
def test_a_backlog_that_is_digits_but_no_int_is_flasks_400_not_a_500(redis_url, room, backlog):
    app = make_app(redis_url)
    path = "/rooms/%s/events?backlog=%s" % (room, backlog)
    status, _, _ = open_stream(app, path)
    # The same request through Flask's route (another parameter skips the fast path): 400.
    flask_status, _, _ = open_stream(app, path + "&other=1")
    assert flask_status.startswith("400")
    assert status == flask_status


def test_with_cors_on_every_stream_is_flasks_with_its_cors_headers(redis_url, room, handed):
    app = make_app(redis_url, CORS_ORIGINS="https://a.example,https://b.example")
    _, head, _ = open_stream(app, "/rooms/%s/events" % room)
    # flask-cors answers a request without Origin too (always_send): the origins, credentials...
    assert len(handed) == 1 and "Access-Control-Allow-Origin" in head


def test_a_redis_failure_after_the_fast_paths_checks_counts_the_open_once(redis_url, room, handed,
                                                                         monkeypatch):
    """The fast path's building fails once on Redis after its checks counted the open: Flask's
    path takes over their reply and opens the stream, so the session's stream rate counts one
    open for it, not two."""
    app = make_app(redis_url, RATELIMIT_ENABLED=True, STREAM_RATE_SESSION="2 per minute")
    cookie = signed_in(app, "eve-" + room[-6:])
    real, failures = opening.subscription, []

    def fails_once(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise redis.ConnectionError("Redis went away while the stream was being built")
        return real(*args, **kwargs)
    monkeypatch.setattr(opening, "subscription", fails_once)
    path, headers = "/rooms/%s/events" % room, {"Cookie": cookie, "Accept": "text/event-stream"}
    first = open_stream(app, path, headers, until=b"event: ready")
    assert b"event: ready" in first[2] and failures and len(handed) == 1
    second = open_stream(app, path, headers, until=b"event: ready")  # the second of two a minute
    assert b"event: ready" in second[2]
    third = open_stream(app, path, headers)  # an EventSource's refusal: an event it retries after
    assert b"event: busy" in third[2] and b'"status": 429' in third[2]


def test_a_redis_failure_after_the_fast_paths_admission_gives_the_place_back(redis_url, room, handed,
                                                                           monkeypatch, redis_client):
    """The stream's building fails on the fast path (Redis), then Flask's path finds Redis failing
    too (the session's record): Flask answers 503, and the address's place must be free again
    (Flask's own path admits nothing before that failure)."""
    app = make_app(redis_url, MAX_STREAMS_PER_ADDRESS=1)
    cookie = signed_in(app, "dee-" + room[-6:])
    address = "2001:db8::1:" + room[-4:]

    def failing_subscription(*args, **kwargs):
        raise redis.ConnectionError("Redis went away while the stream was being built")
    monkeypatch.setattr(opening, "subscription", failing_subscription)
    calls = {"n": 0}
    real_record = identity.Sessions.record

    def record(self, sid, refresh=True):
        calls["n"] += 1
        if calls["n"] > 1:  # the fast path's read succeeded; Redis fails from then on
            raise redis.ConnectionError("Redis is down")
        return real_record(self, sid, refresh)
    monkeypatch.setattr(identity.Sessions, "record", record)
    status, head, body = open_stream(app, "/rooms/%s/events" % room, {"Cookie": cookie,
                                                                      "Accept": "text/event-stream"}, address)
    assert len(handed) == 1 and opening.CHECKED not in handed[0] and b"event: busy" in body and b'"status": 503' in body
    left = redis_client.zrange(addresses.key(address), 0, -1)
    assert left == [], "the address's place stays taken: %r" % left
