"""Signing in with a token from the host application (issue 14, "Identity from the host
application", the session exchange): real Gunicorn (2 gevent workers) and real Redis."""
import json
import time
import uuid

import jwt
import pytest

from .servers import Gunicorn
from .support import LIMITS_OFF, SERVER_ENV, TEST_HEARTBEAT
from .test_accounts import account_holder, token
from .test_sessions_security import until_end
from .web import Browser

SECRET = "host-application-secret-of-some-length"
AUDIENCE = "ripple-test"


@pytest.fixture(scope="module")
def jwt_server(redis_url, tmp_path_factory):
    env = dict(SERVER_ENV, RIPPLE_JWT_SECRET=SECRET, RIPPLE_JWT_AUDIENCE=AUDIENCE, RIPPLE_JWT_LEEWAY_SECONDS="0")
    gunicorn = Gunicorn(tmp_path_factory.mktemp("jwt"), redis_url=redis_url, workers=2, env=env)
    gunicorn.start()
    yield gunicorn
    gunicorn.halt()


def make_token(sub=None, name=None, ttl=300, key=SECRET, **claims):
    payload = {"sub": sub or "user-" + uuid.uuid4().hex[:8], "name": name or "tok-" + uuid.uuid4().hex[:6],
               "exp": int(time.time() + ttl), "aud": AUDIENCE, **claims}
    return jwt.encode(payload, key, algorithm="HS256"), payload


def exchange(server, signed):
    browser = Browser(server.url)
    token(browser)
    status, _, body = browser.request("POST", "/session", body={"token": signed})
    data = json.loads(body)
    if status == 200:
        browser.token, browser.name = data["csrf_token"], data["name"]
    return browser, status, data


def test_a_token_is_exchanged_for_a_session_of_kind_token(jwt_server):
    signed, claims = make_token()
    browser, status, body = exchange(jwt_server, signed)
    assert status == 200
    assert (body["name"], body["id"], body["kind"], body["admin"]) == (claims["name"], claims["sub"], "token", False)
    assert token(browser)[1]["kind"] == "token"


@pytest.mark.parametrize("bad", ["expired", "signature", "audience", "no-exp", "no-sub", "garbage"])
def test_a_bad_token_is_refused_with_401(jwt_server, bad):
    signed = {
        "expired": lambda: make_token(ttl=-30)[0],
        "signature": lambda: make_token(key="another-secret-entirely-here-and-longer")[0],
        "audience": lambda: make_token(aud="someone-else")[0],
        "no-exp": lambda: jwt.encode({"sub": "x", "name": "y", "aud": AUDIENCE}, SECRET, algorithm="HS256"),
        "no-sub": lambda: jwt.encode({"name": "y", "aud": AUDIENCE, "exp": int(time.time()) + 60}, SECRET,
                                     algorithm="HS256"),
        "garbage": lambda: "not.a.token",
    }[bad]()
    browser, status, body = exchange(jwt_server, signed)
    assert status == 401 and body["error"]
    assert token(browser)[0] == 401


def test_the_session_and_its_streams_end_when_the_token_expires(jwt_server, room):
    signed, _ = make_token(ttl=3)
    browser, status, _ = exchange(jwt_server, signed)
    assert status == 200
    with browser.stream(room) as stream:
        stream.until("ready")
        stream.until("signed-out", timeout=3 + 10 * TEST_HEARTBEAT)
        assert until_end(stream) == []
    assert token(browser)[0] == 401


def test_messages_carry_the_tokens_sub(jwt_server, room):
    signed, claims = make_token()
    browser, _, _ = exchange(jwt_server, signed)
    assert browser.post(room, "from the host app")[1]["uid"] == "jwt:" + claims["sub"]


def test_a_token_cannot_take_an_accounts_name(jwt_server):
    owner = account_holder(jwt_server)
    signed, _ = make_token(name=owner.name)
    assert exchange(jwt_server, signed)[1] == 409


def test_without_a_key_token_sign_in_is_refused(server):
    signed, _ = make_token()
    _, status, body = exchange(server, signed)
    assert status == 400 and "not set up" in body["error"]


# -- a token on every request ---------------------------------------------------------------------

def bearer(signed):
    return {"Authorization": "Bearer " + signed}


def test_a_bearer_token_posts_as_its_user_without_a_cookie_or_csrf(jwt_server, room):
    signed, claims = make_token()
    status, _, body = Browser(jwt_server.url).request("POST", "/rooms/%s/messages" % room,
                                                      body={"text": "hello", "user": "someone-else"},
                                                      headers=bearer(signed))
    message = json.loads(body)
    assert status == 201 and message["user"] == claims["name"] and message["uid"] == "jwt:" + claims["sub"]
    assert "bot" not in message


@pytest.mark.parametrize("name, said", [
    ("system", "reserved for the service itself"),
    ("sуstem", "reserved for the service itself"),    # a Cyrillic у: a look-alike of one
    ("ＡＤＭＩＮ", "reserved for the service itself"),   # full width
    ("a\u200bb", "invisible characters"),              # a name the name rule refuses
])
def test_a_bearer_token_with_a_reserved_or_refused_name_posts_nothing(jwt_server, room, name, said):
    # The exchange for a cookie refused these names (422) while the same token as a Bearer header
    # posted as them: the service's own names, or their look-alikes, in a room.
    signed, _ = make_token(name=name)
    assert exchange(jwt_server, signed)[1] == 422
    status, _, body = Browser(jwt_server.url).request("POST", "/rooms/%s/messages" % room,
                                                      body={"text": "I speak for the service"},
                                                      headers=bearer(signed))
    answer = json.loads(body)
    assert (status, answer["code"]) == (401, "token_invalid") and said in answer["error"]
    _, _, page = Browser(jwt_server.url).request("GET", "/rooms/%s/messages" % room)
    assert json.loads(page)["messages"] == []


@pytest.mark.parametrize("path", ["/rooms/lobby/messages", "/session", "/rooms/lobby/presence"])
def test_an_expired_or_bad_bearer_token_is_refused_everywhere(jwt_server, path):
    for signed in (make_token(ttl=-30)[0], make_token(key="another-secret-entirely-here-and-longer")[0]):
        status, _, body = Browser(jwt_server.url).request("GET", path, headers=bearer(signed))
        assert status == 401 and json.loads(body)["code"] in ("token_expired", "token_invalid")


def test_a_stream_opened_with_token_in_the_query_ends_when_it_expires(jwt_server, room):
    signed, claims = make_token(ttl=3)
    other = Browser(jwt_server.url)
    from .sse import SSEStream
    with SSEStream("%s/rooms/%s/events?token=%s" % (jwt_server.url, room, signed)) as stream:
        stream.until("ready")
        assert other.request("POST", "/users/%s/messages" % claims["name"], body={"text": "dm"},
                             headers=bearer(make_token()[0]))[0] == 201
        stream.until("direct")
        event, _ = stream.until("signed-out", timeout=3 + 10 * TEST_HEARTBEAT)
        assert event.json()["reason"] == "token_expired" and "fresh" in event.json()["message"]
        assert until_end(stream) == []


def test_two_devices_of_one_token_user_share_their_name(jwt_server, room):
    signed, claims = make_token()
    for _ in range(2):
        status, _, _ = Browser(jwt_server.url).request("POST", "/rooms/%s/messages" % room, body={"text": "hi"},
                                                       headers=bearer(signed))
        assert status == 201


def test_a_rooms_claim_limits_where_a_token_reads_and_posts(jwt_server):
    tag = uuid.uuid4().hex[:6]
    signed, _ = make_token(rooms=["support-%s-*" % tag])
    client = Browser(jwt_server.url)
    inside, outside = "support-%s-eu" % tag, "ops-%s" % tag
    assert client.request("POST", "/rooms/%s/messages" % inside, body={"text": "ok"}, headers=bearer(signed))[0] == 201
    for method, path in (("POST", "/rooms/%s/messages"), ("GET", "/rooms/%s/messages"), ("GET", "/rooms/%s/events")):
        status, _, body = client.request(method, path % outside, body={"text": "no"} if method == "POST" else None,
                                         headers=bearer(signed))
        assert status == 403 and json.loads(body)["code"] == "token_scope", path
    browser, status, _ = exchange(jwt_server, signed)  # the same limits after the cookie exchange
    assert status == 200
    assert browser.post(outside, "no")[0] == 403 and browser.post(inside, "yes")[0] == 201


@pytest.mark.parametrize("claim", [["bad room!"], None, "", [1], {"room": "ops"}, 5, ["ops", None]])
def test_a_malformed_rooms_claim_null_included_makes_the_token_invalid_everywhere(jwt_server, room, claim):
    # Present but null is not absent: a host application's "no rooms" must not grant every room.
    signed, _ = make_token(rooms=claim)
    _, status, body = exchange(jwt_server, signed)
    assert (status, body["code"]) == (401, "token_invalid")
    assert body["error"] == ("The token's 'rooms' claim must be a list of room names or patterns such as "
                             "support-* (or one string of them separated by commas).")
    status, _, body = Browser(jwt_server.url).request("POST", "/rooms/%s/messages" % room, body={"text": "x"},
                                                      headers=bearer(signed))
    assert (status, json.loads(body)["code"]) == (401, "token_invalid")


def test_an_empty_rooms_claim_allows_no_room_and_a_string_claim_is_patterns(jwt_server, room):
    client = Browser(jwt_server.url)
    signed, _ = make_token(rooms=[])
    status, _, body = client.request("POST", "/rooms/%s/messages" % room, body={"text": "x"}, headers=bearer(signed))
    assert (status, json.loads(body)["code"]) == (403, "token_scope") and "allows no rooms" in json.loads(body)["error"]
    assert client.request("GET", "/rooms/%s/messages" % room, headers=bearer(signed))[0] == 403
    signed, _ = make_token(rooms="%s, other-*" % room.upper())  # one string: comma-separated patterns
    assert client.request("POST", "/rooms/%s/messages" % room, body={"text": "x"}, headers=bearer(signed))[0] == 201
    assert client.request("POST", "/rooms/x%s/messages" % room, body={"text": "x"}, headers=bearer(signed))[0] == 403


# -- a user named by a trusted authenticating proxy --------------------------------------------------

@pytest.fixture(scope="module")
def proxied_server(redis_url, tmp_path_factory):
    env = dict(SERVER_ENV, RIPPLE_TRUSTED_PROXIES="1", RIPPLE_TRUSTED_USER_HEADER="X-Forwarded-User")
    gunicorn = Gunicorn(tmp_path_factory.mktemp("proxied"), redis_url=redis_url, workers=2, env=env)
    gunicorn.start()
    yield gunicorn
    gunicorn.halt()


def test_a_trusted_proxys_user_header_names_the_user(proxied_server, room):
    user = "proxied-" + uuid.uuid4().hex[:6]
    browser = Browser(proxied_server.url)
    headers = {"X-Forwarded-User": user}
    status, _, body = browser.request("GET", "/session", headers=headers)
    me = json.loads(body)
    assert status == 200 and (me["name"], me["id"], me["kind"]) == (user, user, "token")
    browser.token = me["csrf_token"]
    status, _, body = browser.request("POST", "/rooms/%s/messages" % room, body={"text": "via the proxy"},
                                      headers=headers)
    assert status == 201 and json.loads(body)["user"] == user


def test_the_user_header_still_needs_a_csrf_token(proxied_server, room):
    status, _, _ = Browser(proxied_server.url).request("POST", "/rooms/%s/messages" % room, body={"text": "x"},
                                                       headers={"X-Forwarded-User": "someone"})
    assert status == 400


def test_the_user_header_is_ignored_without_trusted_proxies(redis_url, tmp_path_factory):
    env = dict(SERVER_ENV, RIPPLE_TRUSTED_USER_HEADER="X-Forwarded-User")
    gunicorn = Gunicorn(tmp_path_factory.mktemp("untrusted"), redis_url=redis_url, workers=2, env=env)
    gunicorn.start()
    try:
        status, _, _ = Browser(gunicorn.url).request("GET", "/session", headers={"X-Forwarded-User": "admin-ish"})
        assert status == 401
    finally:
        gunicorn.stop()


def test_token_users_behind_one_address_each_have_their_own_post_budget(redis_url, room):
    from app import create_app
    app = create_app({"TESTING": True, "REDIS_URL": redis_url, "SECRET_KEY": "test-secret",
                      "JWT_SECRET": SECRET, "JWT_AUDIENCE": AUDIENCE, "POST_RATE_SESSION": "2 per minute",
                      "RATELIMIT_KEY_PREFIX": "jwt-budget-" + room, **LIMITS_OFF})
    client = app.test_client()
    statuses = {}
    for user in ["alice", "alice", "bob", "bob"]:  # one address (the test client's), two people
        signed, _ = make_token(sub="sub-" + user + room[-6:], name=user + room[-6:])
        response = client.post("/rooms/%s/messages" % room, json={"text": "hi"},
                               headers={"Authorization": "Bearer " + signed})
        statuses.setdefault(user, []).append(response.status_code)
    assert statuses == {"alice": [201, 201], "bob": [201, 201]}


# -- a user named on every request costs a read, not a write -----------------------------------------

WRITES = {"SET", "SETEX", "PSETEX", "GETEX", "GETSET", "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT", "DEL",
          "PERSIST", "HSET", "APPEND"}


def writes_to(redis_url, key, action):
    """Run ``action`` while Redis's MONITOR watches; return the write commands that named ``key``."""
    import threading

    import redis
    seen, end = [], "monitor-end-" + uuid.uuid4().hex
    with redis.Redis.from_url(redis_url, decode_responses=True) as client, client.monitor() as monitor:
        def watch():
            while True:
                command = monitor.next_command()["command"]
                if end in command:
                    return
                if key in command:
                    seen.append(command.split(" ", 1)[0].upper())
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        action()
        client.echo(end)
        watcher.join(timeout=30)
        assert not watcher.is_alive()
    return [command for command in seen if command in WRITES]


def session_key(sub):
    from app.people.jwts import session_id
    from app.rooms.keys import PersonKeys
    return PersonKeys(session_id(sub)).session


def test_bearer_requests_write_the_session_record_only_when_it_changes(jwt_server, redis_url):
    signed, claims = make_token()
    fresher, _ = make_token(sub=claims["sub"], name=claims["name"], ttl=600)
    bearer = Browser(jwt_server.url)

    def requests(tokens):
        def run():
            for each in tokens:
                status, _, _ = bearer.request("GET", "/session", headers={"Authorization": "Bearer " + each})
                assert status == 200
        return run
    assert writes_to(redis_url, session_key(claims["sub"]), requests([signed] * 5)) == ["SET"]  # the first
    assert writes_to(redis_url, session_key(claims["sub"]), requests([signed] * 3)) == []
    assert writes_to(redis_url, session_key(claims["sub"]), requests([fresher] * 3)) == ["SET"]  # a new exp


def test_a_trusted_proxys_user_costs_one_write_not_one_per_request(proxied_server, redis_url):
    from app.people.jwts import session_id
    from app.rooms.keys import PersonKeys
    user = "proxied-" + uuid.uuid4().hex[:6]
    browser = Browser(proxied_server.url)

    def requests():
        for _ in range(5):
            assert browser.request("GET", "/session", headers={"X-Forwarded-User": user})[0] == 200
    key = PersonKeys(session_id("proxy\0" + user)).session
    assert writes_to(redis_url, key, requests) == ["SET"]
    assert writes_to(redis_url, key, requests) == []


def test_a_bearer_header_alone_is_exchanged_for_a_session_cookie(jwt_server):
    signed, claims = make_token()
    browser = Browser(jwt_server.url)
    status, _, body = browser.request("POST", "/session", headers=bearer(signed))  # no body at all
    assert status == 200 and (json.loads(body)["id"], json.loads(body)["kind"]) == (claims["sub"], "token")
    status, me = token(browser)  # the cookie alone from now on
    assert status == 200 and (me["name"], me["id"]) == (claims["name"], claims["sub"])


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_a_public_key_and_an_issuer_check_the_hosts_tokens(redis_url, algorithm):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from app import create_app
    private = ec.generate_private_key(ec.SECP256R1()) if algorithm == "ES256" else \
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    app = create_app({"TESTING": True, "REDIS_URL": redis_url, "SECRET_KEY": "test-secret",
                      "JWT_PUBLIC_KEY": public.replace("\n", "\\n"), "JWT_ISSUER": "https://host.example",
                      **LIMITS_OFF})  # one line, as an environment variable holds it

    def answer(key, alg, **claims):
        payload = {"sub": "pk-" + uuid.uuid4().hex[:6], "name": "pk-" + uuid.uuid4().hex[:6],
                   "exp": int(time.time()) + 60, "iss": "https://host.example", **claims}
        return app.test_client().get("/session", headers=bearer(jwt.encode(payload, key, algorithm=alg))).status_code
    assert answer(private, algorithm) == 200
    assert answer(private, algorithm, iss="https://elsewhere.example") == 401
    assert answer(SECRET, "HS256") == 401  # a shared secret never passes for the public key


def sid_of(browser):
    """The session id in ``browser``'s signed cookie (the servers' SECRET_KEY is test-secret)."""
    from flask import Flask
    from flask.sessions import SecureCookieSessionInterface
    app = Flask("reader")
    app.secret_key = SERVER_ENV["SECRET_KEY"]
    cookie = next(c.value for c in browser.jar if c.name == "session")
    return SecureCookieSessionInterface().get_signing_serializer(app).loads(cookie)["sid"]


def test_a_signed_in_browsers_requests_read_their_session_without_writing_it(server, redis_url, redis_client):
    from app.rooms.keys import PersonKeys
    browser = Browser(server.url)
    assert browser.sign_in("reader-" + uuid.uuid4().hex[:6]) == 200
    key = PersonKeys(sid_of(browser)).session

    def requests():
        for _ in range(5):
            assert token(browser)[0] == 200
    assert writes_to(redis_url, key, requests) == []
    redis_client.expire(key, 3600)  # run down (a long lifetime's tenth): the next use slides it back
    assert writes_to(redis_url, key, requests) == ["PEXPIRE"]
    assert redis_client.ttl(key) > 3600
