"""Server-to-server posts take a path around Flask: same answers, and every refusal is Flask's."""
import json
import os
import re
import socket
import time
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import pytest
from flask import jsonify

from app import create_app
from app.web import fastpost, request_ids

from .support import TEST_HEARTBEAT, TOKEN, spy_handed_on

AUTH = {"Authorization": "Bearer " + TOKEN}


def token_post(client, room, body, headers=None, **kw):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post("/rooms/%s/messages" % room, data=data,
                       headers={"Content-Type": "application/json", **AUTH, **(headers or {})}, **kw)


@pytest.fixture
def via_flask(monkeypatch):
    """The paths of the requests the fast path hands on to Flask."""
    return spy_handed_on(monkeypatch, fastpost.FastPublish, lambda environ: environ["PATH_INFO"])


def test_a_token_post_is_stored_and_answered_201_without_flask(client, room, via_flask):
    r = token_post(client, room, {"text": "你好 👋", "user": "feed-bot"}, {"X-Request-ID": "trace-1"})
    assert r.status_code == 201 and r.mimetype == "application/json"
    assert r.headers["X-Request-ID"] == "trace-1"
    message = r.get_json()
    assert (message["room"], message["user"], message["text"]) == (room, "feed-bot", "你好 👋")
    history = client.get("/rooms/%s/messages" % room).get_json()["messages"]
    assert [m["id"] for m in history] == [message["id"]]
    assert via_flask == ["/rooms/%s/messages" % room]  # only the GET went to Flask


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_the_bearer_scheme_is_read_in_any_case(client, room, via_flask, scheme):
    # RFC 7235 2.1: the scheme's name is case-insensitive (curl users type it either way).
    r = client.post("/rooms/%s/messages" % room, json={"text": "hi", "user": "bot"},
                    headers={"Authorization": "%s %s" % (scheme, TOKEN)})
    assert r.status_code == 201 and r.get_json()["user"] == "bot"
    assert via_flask == []  # the fast path took it


def test_a_retried_token_post_returns_the_first_message_with_200(client, room):
    first = token_post(client, room, {"text": "once", "user": "bot"}, {"Idempotency-Key": "k-1"})
    again = token_post(client, room, {"text": "once", "user": "bot"}, {"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json() == first.get_json()


@pytest.mark.parametrize("body, status", [
    ({"text": "", "user": "bot"}, 422),            # empty text
    ({"text": "x" * 2001, "user": "bot"}, 422),    # over the limit
    ({"text": "hi", "user": ""}, 422),             # no sender name
    ([1, 2], 400),                                 # not an object
    (b"{not json", 400),
    (b"\xff\xfe\x00", 400),                        # not UTF-8 JSON
])
def test_refused_token_posts_get_flasks_own_answer(client, room, via_flask, body, status):
    r = token_post(client, room, body)
    assert r.status_code == status and r.get_json()["error"]
    assert via_flask == ["/rooms/%s/messages" % room]


def test_a_bad_idempotency_key_is_refused_by_flask(client, room, via_flask):
    r = token_post(client, room, {"text": "hi", "user": "bot"}, {"Idempotency-Key": "x" * 500})
    assert r.status_code == 400 and via_flask


def test_a_body_over_the_size_limit_is_413(client, room, via_flask):
    r = token_post(client, room, {"text": "x" * 70000, "user": "bot"})
    assert r.status_code == 413 and via_flask


def test_a_bad_room_name_is_flasks_400(client, via_flask):
    r = token_post(client, "Bad%20Room", {"text": "hi", "user": "bot"})
    assert r.status_code in (400, 404) and via_flask


def test_without_the_token_a_post_goes_through_flask_and_its_csrf_check(client, room, via_flask):
    r = client.post("/rooms/%s/messages" % room, json={"text": "hi", "user": "bot"},
                    headers={"Authorization": "Bearer wrong"})
    # no session, no CSRF token: Flask's path says the Bearer is no valid publish token
    assert r.status_code == 401 and r.get_json()["code"] == "token_invalid" and via_flask


def test_a_form_post_with_the_token_goes_through_flask(client, room, via_flask):
    r = client.post("/rooms/%s/messages" % room, data={"text": "hi", "user": "bot"},
                    headers={**AUTH, "Accept": "application/json"})
    assert r.status_code == 201 and via_flask


def test_redis_down_answers_503_with_retry_after_and_json(redis_url, room):
    down = create_app({"TESTING": True, "REDIS_URL": "redis://127.0.0.1:1/0", "PUBLISH_TOKEN": TOKEN,
                       "HEARTBEAT_SECONDS": TEST_HEARTBEAT, "SECRET_KEY": "test-secret",
                       "REDIS_SOCKET_TIMEOUT": 0.5})
    r = token_post(down.test_client(), room, {"text": "hi", "user": "bot"})
    assert r.status_code == 503 and r.headers["Retry-After"]
    assert r.get_json()["error"] == fastpost.UNAVAILABLE
    # Spelled as Flask's jsonify spells every other error: one shape for programs.
    with down.test_request_context():
        assert r.get_data() == jsonify(code="unavailable", error=fastpost.UNAVAILABLE).get_data().rstrip()


def test_a_post_after_redis_lost_its_scripts_is_stored_once(client, room, redis_client):
    # The store sends its script by hash; Redis that restarted (or flushed its scripts)
    # answers NOSCRIPT without running anything, and the script is loaded and run once.
    first = token_post(client, room, {"text": "before", "user": "bot"}).get_json()
    redis_client.script_flush()
    again = token_post(client, room, {"text": "after", "user": "bot"})
    assert again.status_code == 201
    history = client.get("/rooms/%s/messages" % room).get_json()["messages"]
    assert [m["text"] for m in history] == ["before", "after"] and history[0]["id"] == first["id"]


def test_token_posts_on_one_kept_alive_connection_each_get_their_whole_answer(server, room):
    # The fast path writes head and body in one send (app/web/onesend.py): a read gets both.
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        for n in range(2):
            body = json.dumps({"text": "piece %d" % n, "user": "bot"}).encode()
            sock.sendall(b"POST /rooms/%s/messages HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer %s\r\n"
                         b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (room.encode(), TOKEN.encode(), len(body), body))
            head, _, rest = sock.recv(65536).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 201 "), head
            assert len(rest) == int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
            assert json.loads(rest)["text"] == "piece %d" % n
            # gunicorn's Date, formatted once a second by the worker (app/ops/worker.py): now's
            date = re.search(rb"(?im)^date: *([^\r]+)", head).group(1).decode()
            assert abs(parsedate_to_datetime(date).timestamp() - time.time()) < 2


def test_a_forked_worker_makes_request_ids_of_its_own():
    # Workers are forked: each draws its own prefix (told by the fork, not by getpid per request).
    parent = request_ids.request_id({})
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one id, then gone without running anything of pytest's
        os.write(write, request_ids.request_id({}).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    assert child and child[:10] != parent[:10]
    assert request_ids.request_id({}) != parent  # the parent counts on
