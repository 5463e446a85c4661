"""Scoped publish tokens: made by the CLI, shown once, kept as a hash; they post only in their
rooms, only as their names, at their own rate, until they expire or are revoked (on every
worker at once). The global RIPPLE_PUBLISH_TOKEN keeps posting anywhere as anyone."""
import http.client
import json
import urllib.parse
import uuid

import pytest

from app import create_app
from app.people import tokens
from app.people.tokens import PublishTokens
from app.web import fastpost

from .servers import wait_until
from .support import LIMITS_OFF, TOKEN, flask_cli
from .test_accounts import account_holder
from .test_rooms import answer as room_answer
from .test_rooms import create as create_room
from .web import Browser


def tokens_cli(redis_url, *args):
    """Run ``flask --app app tokens ARGS`` against the test Redis, as an operator would."""
    return flask_cli(redis_url, "tokens", *args)


def create(redis_url, rooms, *post_as, extra=()):
    """Create a token with a fresh name; return (name, token)."""
    name = "bot-" + uuid.uuid4().hex[:8]
    args = ["create", name, "--rooms", rooms, *[a for n in post_as for a in ("--post-as", n)], *extra]
    result = tokens_cli(redis_url, *args)
    assert result.returncode == 0, result.stderr
    return name, result.stdout.strip()


def send(base_url, path, token, json_body=None, form=None, headers=None, conn=None):
    """POST with ``Authorization: Bearer token``; return (status, JSON body, headers)."""
    headers = {"Authorization": "Bearer " + token, **(headers or {})}
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    else:
        data = json.dumps(json_body).encode()
        headers.setdefault("Content-Type", "application/json")
    own = conn is None
    if own:
        conn = connect(base_url)
    try:
        conn.request("POST", urllib.parse.quote(path), body=data, headers=headers)
        response = conn.getresponse()
        body = response.read()
        return response.status, json.loads(body or b"{}"), response.headers
    finally:
        if own:
            conn.close()


def connect(base_url):
    parts = urllib.parse.urlsplit(base_url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)


def post(base_url, room, token, body, **kw):
    return send(base_url, "/rooms/%s/messages" % room, token, body, **kw)


@pytest.fixture
def bot(redis_url, room):
    """A token that may post in the test's room (and rooms starting with it) as two names."""
    name, token = create(redis_url, room + "*", "feed-bot", "feed-bot-2", extra=["--expires", "30"])
    return name, token


def test_a_token_made_by_the_cli_posts_through_gunicorn_as_its_names(server, room, bot):
    status, message, _ = post(server.url, room, bot[1], {"text": "build 42 passed", "user": "feed-bot-2"})
    assert status == 201 and message["user"] == "feed-bot-2" and message["bot"] is True
    status, message, _ = post(server.url, room + "-eu", bot[1], {"text": "and in eu"})
    assert status == 201 and message["user"] == "feed-bot"  # no name given: the token's first


def test_outside_its_rooms_a_token_is_refused_403_on_the_fast_path_and_through_flask(server, room, bot):
    other = "x" + room
    status, body, _ = post(server.url, other, bot[1], {"text": "spam", "user": "feed-bot"})  # fast path
    assert (status, body["code"]) == (403, "token_scope") and other in body["error"]
    status, body, _ = send(server.url, "/rooms/%s/messages" % other, bot[1],  # a form: Flask
                           form={"text": "spam", "user": "feed-bot"})
    assert (status, body["code"]) == (403, "token_scope")
    status, body, _ = send(server.url, "/rooms/%s/messages" % other, bot[1],
                           form={"text": "spam"}, headers={"Accept": "application/json"})
    assert (status, body["code"]) == (403, "token_scope")
    # The pattern applies to the canonical room name: another spelling of its room is its room.
    status, body, _ = post(server.url, room.upper(), bot[1], {"text": "loud", "user": "feed-bot"})
    assert status == 201 and body["room"] == room
    assert json.loads(Browser(server.url).request("GET", "/rooms/%s/messages" % other)[2])["messages"] == []


def test_as_a_name_not_its_own_a_token_is_refused_403_on_the_fast_path_and_through_flask(server, room, bot):
    status, body, _ = post(server.url, room, bot[1], {"text": "I am the admin", "user": "admin"})
    assert (status, body["code"]) == (403, "token_scope") and "feed-bot" in body["error"]
    status, body, _ = send(server.url, "/rooms/%s/messages" % room, bot[1],
                           form={"text": "I am ann", "user": "ann"})
    assert (status, body["code"]) == (403, "token_scope")
    assert json.loads(Browser(server.url).request("GET", "/rooms/%s/messages" % room)[2])["messages"] == []


def test_a_refusal_in_chinese_quotes_the_tokens_own_pattern_untranslated(server, redis_url, room):
    _, token = create(redis_url, "public", "feed-" + room[-6:])  # a room pattern that is also a word we translate
    for form in (None, {"text": "x"}):  # the fast path and Flask
        status, body, _ = send(server.url, "/rooms/%s/messages" % room, token, {"text": "x"}, form=form,
                               headers={"Accept-Language": "zh-CN", "Accept": "application/json"})
        assert status == 403 and "匹配“public”的房间" in body["error"], body


def test_a_scoped_token_sends_direct_messages_only_if_made_with_direct_and_only_as_its_names(
        server, redis_url, room, bot):
    bob = Browser(server.url)
    assert bob.sign_in("bob-" + uuid.uuid4().hex[:6]) == 200
    path = "/users/%s/messages" % bob.name
    status, body, _ = send(server.url, path, bot[1], {"text": "psst", "user": "feed-bot"})
    assert (status, body["code"]) == (403, "token_scope") and "direct" in body["error"]
    _, direct = create(redis_url, room, "helper", extra=["--direct"])
    status, body, _ = send(server.url, path, direct, {"text": "hi", "user": "ann"})
    assert (status, body["code"]) == (403, "token_scope")
    status, body, _ = send(server.url, path, direct, form={"text": "hi"}, headers={"Accept": "application/json"})
    assert status == 201 and body["from"] == "helper" and body["bot"] is True


def test_a_revoked_token_is_refused_by_every_worker_at_once(server, redis_url, redis_client, room, bot):
    conns, workers = [], {}
    try:
        while len(workers) < 2:  # keep-alive connections until each worker holds one
            assert len(conns) < 40, "connections never reached both workers"
            conn = connect(server.url)
            conns.append(conn)
            assert post(server.url, room, bot[1], {"text": "before %d" % len(conns)}, conn=conn)[0] == 201
            worker = server.worker_of(conn.sock.getsockname()[1])
            if worker is not None:
                workers.setdefault(worker, conn)
        # Revoked in this process (what `tokens revoke` calls; its start-up would outlast
        # gunicorn's 2 s keep-alive on these connections), then the very next post on each.
        assert PublishTokens(redis_client).revoke(bot[0])["id"] == bot[1].split("_")[1]
        for worker, conn in workers.items():
            status, body, _ = post(server.url, room, bot[1], {"text": "after"}, conn=conn)
            assert (status, body["code"]) == (401, "token_invalid"), worker
            status, body, _ = send(server.url, "/rooms/%s/messages" % room, bot[1], form={"text": "after"},
                                   conn=conn)
            assert (status, body["code"]) == (401, "token_invalid"), worker
    finally:
        for conn in conns:
            conn.close()
    assert tokens_cli(redis_url, "revoke", bot[0]).returncode == 2  # nothing left to revoke


def test_the_cli_revokes_by_name_or_id(server, redis_url, room):
    for by in ("name", "id"):
        name, token = create(redis_url, room, "feed-bot")
        result = tokens_cli(redis_url, "revoke", name if by == "name" else token.split("_")[1])
        assert result.returncode == 0 and name in result.stdout, result.stderr
        assert post(server.url, room, token, {"text": "after"})[:2] == (
            401, {"error": tokens.INVALID, "code": "token_invalid"})
        assert name not in tokens_cli(redis_url, "list").stdout


def test_an_expired_token_is_refused_401(server, redis_url, room):
    name, token = create(redis_url, room, "feed-bot", extra=["--expires", "0.00001"])  # < 1 s
    wait_until(lambda: post(server.url, room, token, {"text": "late"})[0] == 401, interval=0.2, message="expiry")
    status, body, _ = post(server.url, room, token, {"text": "late"})
    assert (status, body["code"]) == (401, "token_expired")
    listed = tokens_cli(redis_url, "list").stdout
    assert "(expired)" in next(line for line in listed.splitlines() if line.startswith(name))


def test_tokens_that_are_not_valid_are_refused_401_not_taken_for_browsers(server, room):
    logged = server.log_path.stat().st_size
    for token in ("rpl_0123456789abcdef_" + "x" * 43, "rpl_short", "rpl_" + "é" * 20):
        status, body, _ = post(server.url, room, token, {"text": "hi", "user": "x"})
        assert (status, body["code"]) == (401, "token_invalid")
    # Another kind of Bearer value (a mistyped global token) with no session and no CSRF token:
    # the token is what is wrong, not a missing CSRF token.
    status, body, _ = post(server.url, room, "not-a-token", {"text": "hi", "user": "x"})
    assert (status, body["code"]) == (401, "token_invalid")
    with open(server.log_path, "rb") as log:  # a refusal, not a failure: nothing logged as one
        log.seek(logged)
        assert b"Traceback" not in log.read()


def test_redis_keeps_only_a_hash_of_a_token(server, redis_url, redis_client, room, bot):
    assert post(server.url, room, bot[1], {"text": "used once"})[0] == 201
    secret = bot[1].split("_", 2)[2]  # rpl_<id>_<secret>: the secret may hold "_" itself
    found = []
    for key in redis_client.scan_iter(count=1000):
        kind = redis_client.type(key)
        value = {"string": redis_client.get, "hash": redis_client.hgetall, "set": redis_client.smembers,
                 "zset": lambda k: redis_client.zrange(k, 0, -1), "list": lambda k: redis_client.lrange(k, 0, -1),
                 "stream": lambda k: redis_client.xrange(k)}.get(kind, lambda k: "")(key)
        if secret in key or secret in repr(value):
            found.append(key)
    assert found == []
    token_id = bot[1].split("_")[1]
    record = redis_client.hgetall("ripple:{t:%s}:token" % token_id)
    assert record["name"] == bot[0] and len(record["hash"]) == 64 and record["last_used"]


def test_the_list_shows_what_a_token_may_do_and_never_its_secret(redis_url, redis_client, room, bot):
    listed = tokens_cli(redis_url, "list")
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if line.startswith(bot[0]))
    token_id = bot[1].split("_")[1]
    assert token_id in line and room + "*" in line and "feed-bot,feed-bot-2" in line
    assert listed.stdout.splitlines()[0].split()[:3] == ["name", "id", "rooms"]
    secret_hash = redis_client.hget("ripple:{t:%s}:token" % token_id, "hash")
    assert bot[1].split("_", 2)[2] not in listed.stdout + listed.stderr and secret_hash not in listed.stdout


def test_the_cli_refuses_bad_patterns_names_and_a_name_in_use(redis_url, bot):
    for args in (["--rooms", "a b", "--post-as", "x"], ["--rooms", "ok", "--post-as", "\u200bx"],
                 ["--rooms", "ok", "--post-as", "x", "--expires", "0"]):
        result = tokens_cli(redis_url, "create", "t-" + uuid.uuid4().hex[:6], *args)
        assert result.returncode == 2 and result.stdout == "" and "error" in result.stderr.lower()
    result = tokens_cli(redis_url, "create", bot[0], "--rooms", "x", "--post-as", "y")
    assert result.returncode == 2 and "exists" in result.stderr


@pytest.fixture
def limited_app(redis_url):
    """An app in this process whose scoped tokens may post 3 times a minute, and create one room
    an hour (the per-address cap stays high: other tests share the address)."""
    return create_app({"TESTING": True, "REDIS_URL": redis_url, "PUBLISH_TOKEN": TOKEN,
                       "SECRET_KEY": "test-secret", **LIMITS_OFF, "POST_RATE_TOKEN": "3 per minute",
                       "ROOM_CREATE_RATE_SESSION": "1 per hour"})


def test_a_scoped_token_has_its_own_rate_limit_on_both_paths_and_the_global_one_none(limited_app, room):
    token, _ = limited_app.extensions["ripple"].tokens.create("rate-" + uuid.uuid4().hex[:6], room, ["feed"])
    client = limited_app.test_client()
    auth = {"Authorization": "Bearer " + token}
    for i in range(3):
        assert client.post("/rooms/%s/messages" % room, json={"text": "%d" % i}, headers=auth).status_code == 201
    for refused in (client.post("/rooms/%s/messages" % room, json={"text": "fast path"}, headers=auth),
                    client.post("/rooms/%s/messages" % room, data={"text": "form"}, headers=auth)):
        assert refused.status_code == 429 and refused.get_json()["code"] == "token_rate"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    for _ in range(5):
        assert client.post("/rooms/%s/messages" % room, json={"text": "ops", "user": "ops"},
                           headers={"Authorization": "Bearer " + TOKEN}).status_code == 201


def test_rooms_a_scoped_token_creates_count_against_the_new_room_caps(limited_app, room):
    token, _ = limited_app.extensions["ripple"].tokens.create("rooms-" + uuid.uuid4().hex[:6], room + "*", ["feed"])
    client = limited_app.test_client()
    auth = {"Authorization": "Bearer " + token}
    assert client.post("/rooms/%s-a/messages" % room, json={"text": "new"}, headers=auth).status_code == 201
    assert client.post("/rooms/%s-a/messages" % room, json={"text": "again"}, headers=auth).status_code == 201
    refused = client.post("/rooms/%s-b/messages" % room, json={"text": "another"}, headers=auth)
    assert refused.status_code == 429 and "rooms" in refused.get_json()["error"]


def test_room_patterns_are_globs_on_canonical_room_names():
    grant = tokens.Grant("0" * 16, "t", tokens.parse_patterns(" Support-*, ops ,[ab]?"), ("bot",))
    assert grant.rooms == ("support-*", "ops", "[ab]?")
    assert [grant.room_ok(r) for r in ("support-eu", "support-", "ops", "ops2", "a1", "c1", "xsupport-1")] == [
        True, True, True, False, True, False, False]
    for bad in ("", "a,,b", "a b", "a/b", "a.b"):
        with pytest.raises(ValueError):
            tokens.parse_patterns(bad)


def test_a_scoped_tokens_json_post_takes_the_fast_path_and_a_refused_one_goes_to_flask(
        limited_app, room, monkeypatch):
    handed = []
    original = fastpost.FastPublish.__call__

    def spy(self, environ, start_response):
        nxt = self.next
        self.next = lambda e, s: handed.append(e["PATH_INFO"]) or nxt(e, s)
        try:
            return original(self, environ, start_response)
        finally:
            self.next = nxt
    monkeypatch.setattr(fastpost.FastPublish, "__call__", spy)
    client = limited_app.test_client()
    token, _ = limited_app.extensions["ripple"].tokens.create("fast-" + uuid.uuid4().hex[:6], room + "*", ["feed"])
    auth = {"Authorization": "Bearer " + token}
    assert client.post("/rooms/%s/messages" % room, json={"text": "new room"}, headers=auth).status_code == 201
    assert handed == ["/rooms/%s/messages" % room]  # creating the room: Flask counts it
    assert client.post("/rooms/%s/messages" % room, json={"text": "fast"}, headers=auth).status_code == 201
    assert len(handed) == 1
    refused = client.post("/rooms/x%s/messages" % room, json={"text": "no"}, headers=auth)
    assert refused.status_code == 403 and len(handed) == 2


def change(base_url, method, path, token, body=None):
    """PATCH or DELETE ``path`` with ``Authorization: Bearer token``; return (status, JSON body)."""
    conn = connect(base_url)
    try:
        conn.request(method, urllib.parse.quote(path), body=None if body is None else json.dumps(body).encode(),
                     headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def test_a_token_corrects_and_deletes_what_it_posted(server, room, bot):
    status, sent, _ = post(server.url, room, bot[1], {"text": "build 42 faild"})
    assert status == 201 and sent["uid"].startswith("token:") and sent["bot"] is True
    path = "/rooms/%s/messages/%s" % (room, sent["id"])
    status, edited = change(server.url, "PATCH", path, bot[1], {"text": "build 42 failed"})
    assert status == 200 and edited["text"] == "build 42 failed" and edited["edited_ts"] > 0
    assert change(server.url, "DELETE", path, bot[1])[0] == 204


def test_a_token_changes_nothing_another_token_or_a_person_posted(server, redis_url, room, bot):
    _, other = create(redis_url, room + "*", "other-bot")
    theirs = post(server.url, room, other, {"text": "not yours"})[1]
    person = Browser(server.url)
    assert person.sign_in("ann-" + uuid.uuid4().hex[:6]) == 200
    hers = person.post(room, "mine")[1]
    for message in (theirs, hers):
        path = "/rooms/%s/messages/%s" % (room, message["id"])
        assert change(server.url, "PATCH", path, bot[1], {"text": "taken over"}) == (
            403, {"code": "not_yours_edit", "error": "You can only edit your own messages."})
        assert change(server.url, "DELETE", path, bot[1])[1]["code"] == "not_yours_delete"


def test_outside_its_rooms_a_token_changes_nothing(server, redis_url, room, bot):
    _, wide = create(redis_url, "*", "wide-bot")
    elsewhere = "x" + room
    sent = post(server.url, elsewhere, wide, {"text": "made elsewhere"})[1]
    status, body = change(server.url, "DELETE", "/rooms/%s/messages/%s" % (elsewhere, sent["id"]), bot[1])
    assert status == 403 and body["code"] == "token_scope"


def test_a_token_reacts_as_its_bot_and_takes_it_back(server, room, bot):
    person = Browser(server.url)
    assert person.sign_in("ann-" + uuid.uuid4().hex[:6]) == 200
    sent = person.post(room, "deploy please")[1]
    path = "/rooms/%s/messages/%s/reactions/👀" % (room, sent["id"])
    for _ in range(2):  # idempotent
        status, body = change(server.url, "PUT", path, bot[1])
        assert status == 200 and body["reactions"]["👀"]["users"] == ["feed-bot"]
    _, global_ = change(server.url, "PUT", path, TOKEN)  # the operator's token reacts as "ripple"
    assert global_["reactions"]["👀"]["users"] == ["feed-bot", "ripple"]
    stored = json.loads(person.request("GET", "/rooms/%s/messages" % room)[2])["messages"][-1]
    assert stored["reactions"]["👀"]["uids"] == ["token:" + bot[1][4:20], "token:global"]
    status, body = change(server.url, "DELETE", path, bot[1])
    assert status == 200 and body["reactions"]["👀"]["users"] == ["ripple"]


def test_a_token_beside_a_session_changes_nothing_the_person_may_not(server, room, bot):
    # A person acts as themselves whatever Bearer comes with them (a proxy may add one): a
    # banned person's edit stays refused.
    owner = account_holder(server, "own")
    assert create_room(owner, room)[0] == 201
    visitor = Browser(server.url)
    assert visitor.sign_in("vis-" + uuid.uuid4().hex[:6]) == 200
    theirs = visitor.post(room, "before the ban")[1]
    assert room_answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": visitor.name})[0] == 201
    status, body = room_answer(visitor, "PATCH", "/rooms/%s/messages/%s" % (room, theirs["id"]),
                               body={"text": "edited"}, headers={"Authorization": "Bearer " + bot[1]})
    assert status == 403 and body["code"] == "banned"
