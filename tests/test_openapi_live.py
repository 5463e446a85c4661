"""docs/openapi.yaml describes what a real Gunicorn answers, not only the app in-process.

tests/test_fuzz.py fuzzes the app through Werkzeug's test client and leaves the event stream out;
here a developer's first calls go to real servers (the session's 2-worker Gunicorn, and one with
tight limits for the refusals): each answer's status must be documented for its route, its
content type among that answer's, its body must match the documented schema, an error must
carry its stable ``code``, and every header the documentation declares for that answer
(``Retry-After``) must be there.
"""
import uuid
from pathlib import Path

import httpx
import pytest
import schemathesis
import yaml

from app import create_app

from .servers import Gunicorn
from .support import LIMITS_OFF, SERVER_ENV, TOKEN
from .test_accounts import account_holder
from .test_moderation import room_with_member
from .test_rooms import answer

SPEC_PATH = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"
SPEC = schemathesis.openapi.from_path(SPEC_PATH)
RAW = yaml.safe_load(SPEC_PATH.read_text())


def resolve(node):
    """The node a ``$ref`` points at (followed until it is no reference)."""
    while isinstance(node, dict) and "$ref" in node:
        target = RAW
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def conforms(method, template, response):
    """Assert ``response`` is what openapi.yaml documents for ``method template``."""
    operation = RAW["paths"][template][method.lower()]
    documented = operation["responses"]
    status = str(response.status_code)
    assert status in documented, "%s %s answered %s, not documented (%s)" % (
        method, template, status, sorted(documented))
    answer = resolve(documented[status])
    for name in answer.get("headers", {}):
        assert name in response.headers, "%s %s %s lacks the documented %s header" % (
            method, template, status, name)
    media = response.headers.get("Content-Type", "").split(";")[0]
    if answer.get("content") and media:  # a page where only JSON is documented is no conformance
        assert media in answer["content"], "%s %s %s answered %s, not documented (%s)" % (
            method, template, status, media, sorted(answer["content"]))
    SPEC[template][method].validate_response(response)  # the body against its schema
    if response.status_code >= 400 and response.headers.get("Content-Type", "").startswith("application/json"):
        body = response.json()
        assert body.get("error") and body.get("code"), body  # api.md: always a sentence and a code
    return response


@pytest.fixture(scope="module")
def tight(redis_url, tmp_path_factory):
    """A Gunicorn whose scoped tokens, reads and new streams are limited to two a minute."""
    env = dict(SERVER_ENV, RIPPLE_POST_RATE_TOKEN="2 per minute", RIPPLE_READ_RATE_IP="2 per minute",
               RIPPLE_STREAM_RATE_IP="1 per minute",
               RIPPLE_RATELIMIT_KEY_PREFIX="openapi-" + uuid.uuid4().hex[:8])
    server = Gunicorn(tmp_path_factory.mktemp("tight"), redis_url=redis_url, workers=1, env=env)
    server.start()
    yield server
    server.halt()


@pytest.fixture(scope="module")
def tokens(redis_url):
    """Scoped publish tokens, made the way ``flask tokens create`` makes them."""
    app = create_app({"TESTING": True, "REDIS_URL": redis_url, "SECRET_KEY": "test-secret", **LIMITS_OFF})

    def create(rooms, *names):
        return app.extensions["ripple"].tokens.create("openapi-" + uuid.uuid4().hex[:6], rooms, list(names))[0]
    return create


def test_a_scoped_tokens_posts_and_refusals_are_as_documented(server, room, tokens):
    token = tokens(room, "deploy")
    auth = {"Authorization": "Bearer " + token, "Idempotency-Key": "k-" + room}
    with httpx.Client(base_url=server.url, timeout=10) as http:
        first = conforms("POST", "/rooms/{room}/messages",
                         http.post("/rooms/%s/messages" % room, json={"text": "v2 is live"}, headers=auth))
        assert first.status_code == 201
        again = conforms("POST", "/rooms/{room}/messages",
                         http.post("/rooms/%s/messages" % room, json={"text": "v2 is live"}, headers=auth))
        assert (again.status_code, again.json()) == (200, first.json())
        elsewhere = conforms("POST", "/rooms/{room}/messages",
                             http.post("/rooms/%s-x/messages" % room, json={"text": "x"}, headers=auth))
        assert (elsewhere.status_code, elsewhere.json()["code"]) == (403, "token_scope")
        garbled = conforms("POST", "/rooms/{room}/messages", http.post(
            "/rooms/%s/messages" % room, json={"text": "x"}, headers={"Authorization": "Bearer rpl_0_x"}))
        assert (garbled.status_code, garbled.json()["code"]) == (401, "token_invalid")
        empty = conforms("POST", "/rooms/{room}/messages", http.post(
            "/rooms/%s/messages" % room, json={"text": "  "}, headers={"Authorization": "Bearer " + token}))
        assert empty.status_code == 422


def test_history_pages_and_a_bad_cursor_are_as_documented(server, room):
    with httpx.Client(base_url=server.url, timeout=10) as http:
        ids = [http.post("/rooms/%s/messages" % room, json={"text": str(i), "user": "ann"},
                         headers={"Authorization": "Bearer " + TOKEN}).json()["id"] for i in range(3)]
        page = conforms("GET", "/rooms/{room}/messages",
                        http.get("/rooms/%s/messages" % room, params={"after": ids[0], "limit": 1})).json()
        assert [m["id"] for m in page["messages"]] == ids[1:2] and page["more_after"]
        bad = conforms("GET", "/rooms/{room}/messages", http.get("/rooms/%s/messages" % room, params={"after": "x"}))
        assert bad.status_code == 400
        both = conforms("GET", "/rooms/{room}/messages",
                        http.get("/rooms/%s/messages" % room, params={"after": ids[0], "before": ids[2]}))
        assert both.status_code == 400


@pytest.mark.parametrize("script", ["技术交流", "café", "москва"])
def test_a_room_named_in_any_script_is_answered_as_documented(server, script):
    # RoomName was the ASCII subset: the server's own Message and History failed the schema.
    room = "%s-%s" % (script, uuid.uuid4().hex[:6])
    with httpx.Client(base_url=server.url, timeout=10) as http:
        sent = conforms("POST", "/rooms/{room}/messages", http.post(
            "/rooms/%s/messages" % room, json={"text": "你好", "user": "ann"},
            headers={"Authorization": "Bearer " + TOKEN}))
        assert sent.status_code == 201 and sent.json()["room"] == room
        page = conforms("GET", "/rooms/{room}/messages", http.get("/rooms/%s/messages" % room))
        assert page.json()["room"] == room


def test_a_stream_is_as_documented(server, room):
    with httpx.Client(base_url=server.url, timeout=10) as http:
        with http.stream("GET", "/rooms/%s/events" % room, headers={"Accept": "text/event-stream"}) as stream:
            assert stream.status_code == 200
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            assert stream.headers["Cache-Control"] == "no-cache" and stream.headers["X-Accel-Buffering"] == "no"


def test_the_probes_are_as_documented(server):
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert conforms("GET", "/healthz", http.get("/healthz")).status_code == 200
        assert conforms("GET", "/readyz", http.get("/readyz")).status_code == 200


def test_a_scoped_token_past_its_rate_gets_429_with_retry_after(tight, room, tokens):
    auth = {"Authorization": "Bearer " + tokens(room, "deploy")}
    with httpx.Client(base_url=tight.url, timeout=10) as http:
        statuses = [conforms("POST", "/rooms/{room}/messages", http.post(
            "/rooms/%s/messages" % room, json={"text": str(i)}, headers=auth)) for i in range(3)]
        assert [r.status_code for r in statuses] == [201, 201, 429]
        assert statuses[-1].json()["code"] == "token_rate" and int(statuses[-1].headers["Retry-After"]) > 0


def test_reads_past_the_address_limit_get_429_with_retry_after(tight, room):
    with httpx.Client(base_url=tight.url, timeout=10) as http:
        answers = [conforms("GET", "/rooms/{room}/messages", http.get("/rooms/%s/messages" % room))
                   for _ in range(3)]
        assert [r.status_code for r in answers] == [200, 200, 429]
        assert int(answers[-1].headers["Retry-After"]) > 0


def test_a_refused_stream_gets_429_json_or_a_busy_event_as_documented(tight, room):
    with httpx.Client(base_url=tight.url, timeout=10) as http:
        with http.stream("GET", "/rooms/%s/events" % room, headers={"Accept": "text/event-stream"}) as first:
            assert first.status_code == 200
            refused = conforms("GET", "/rooms/{room}/events",
                               http.get("/rooms/%s/events" % room, headers={"Accept": "application/json"}))
            assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
            busy = http.get("/rooms/%s/events" % room, headers={"Accept": "text/event-stream"})
            assert busy.status_code == 200 and "event: busy" in busy.text
            assert int(busy.headers["Retry-After"]) > 0


def test_a_banned_persons_stream_is_refused_as_documented(server):
    owner = account_holder(server, "own")
    room, member = room_with_member(server, owner, "public")
    assert answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": member.name, "seconds": 600})[0] == 201
    with httpx.Client(base_url=server.url, timeout=10, headers={"Cookie": member.cookie()}) as http:
        refused = conforms("GET", "/rooms/{room}/events", http.get(
            "/rooms/%s/events" % room, headers={"Accept": "text/event-stream", "Last-Event-ID": "0-0"}))
        assert (refused.status_code, refused.json()["code"]) == (403, "banned")


def test_the_webhook_admin_routes_are_as_documented(server, room):
    admin = {"Authorization": "Bearer " + TOKEN}
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert conforms("GET", "/admin/webhooks", http.get("/admin/webhooks")).status_code == 401
        bad = conforms("POST", "/admin/webhooks", http.post("/admin/webhooks", json={"url": "ftp://x"}, headers=admin))
        assert bad.status_code == 400
        # Its own room only, and a closed port: it delivers nothing of the rest of the suite's.
        made = conforms("POST", "/admin/webhooks", http.post("/admin/webhooks", headers=admin, json={
            "url": "http://127.0.0.1:9/hook", "rooms": room, "events": ["message"]}))
        assert made.status_code == 201 and made.json()["secret"].startswith("whsec_")
        hook = made.json()["id"]
        try:
            assert conforms("GET", "/admin/webhooks", http.get("/admin/webhooks", headers=admin)).status_code == 200
            assert conforms("GET", "/admin/webhooks/{webhook_id}/deliveries", http.get(
                "/admin/webhooks/%s/deliveries" % hook, headers=admin)).status_code == 200
            assert conforms("GET", "/admin/webhooks/{webhook_id}", http.get(
                "/admin/webhooks/%s" % ("0" * 16), headers=admin)).status_code == 404
        finally:
            removed = conforms("DELETE", "/admin/webhooks/{webhook_id}",
                               http.delete("/admin/webhooks/%s" % hook, headers=admin))
        assert removed.status_code == 200


def test_who_am_i_signed_out_and_signed_in_is_as_documented(server, person):
    with httpx.Client(base_url=server.url, timeout=10) as http:
        signed_out = conforms("GET", "/session", http.get("/session", headers={"Accept": "application/json"}))
        assert signed_out.status_code == 401 and signed_out.json()["csrf_token"]
    ann = person("ann")
    with httpx.Client(base_url=server.url, timeout=10, headers={"Cookie": ann.cookie()}) as http:
        assert conforms("GET", "/session", http.get("/session")).json()["name"] == ann.name


@pytest.mark.parametrize("content_type, body, status", [
    ("application/json", b'{"text": ', 400),           # malformed
    ("application/json", b'["not", "an object"]', 400),
    ("text/plain", b"hi", 415),
    ("application/json", b'{"text": "%s"}' % (b"x" * 70000), 413),  # over 64 KiB
])
def test_a_publishers_bad_bodies_are_refused_as_documented(server, room, content_type, body, status):
    with httpx.Client(base_url=server.url, timeout=10) as http:
        refused = conforms("POST", "/rooms/{room}/messages", http.post(
            "/rooms/%s/messages" % room, content=body,
            headers={"Authorization": "Bearer " + TOKEN, "Content-Type": content_type}))
        assert refused.status_code == status


def test_a_direct_message_form_asked_sent_just_now_is_as_documented(server, person, room):
    # Its 409 was the shared NameLost (JSON only): a browser's form asked "sent just now?" gets
    # the room page with the conversation open.
    ann, bob = person("ann"), person("bob")
    path = "/users/%s/messages" % bob.name
    headers = {"Cookie": ann.cookie(), "Accept": "text/html", "X-CSRF-Token": ann.token}
    with httpx.Client(base_url=server.url, timeout=10, headers=headers) as http:
        for key, status in (("first", 303), ("second", 409)):
            form = {"text": "once, bob", "idempotency_key": key, "next": "/rooms/" + room}
            answered = conforms("POST", "/users/{name}/messages",
                                http.post(path, params={"room": room}, data=form))
            assert answered.status_code == status
        assert answered.headers["Content-Type"].startswith("text/html")
        assert "You sent this message a moment ago" in answered.text


def test_a_form_sent_to_a_json_only_route_is_a_documented_415(server, person, room):
    # A program's first edit (or read position) sent as curl -d sends it was answered 415, which
    # api.md lists but openapi.yaml did not, for PATCH of a message and PUT .../read.
    ann = person("ann")
    headers = {"Cookie": ann.cookie(), "X-CSRF-Token": ann.token}
    with httpx.Client(base_url=server.url, timeout=10, headers=headers) as http:
        sent = http.post("/rooms/%s/messages" % room, json={"text": "typo"})
        assert sent.status_code == 201, sent.text
        message = sent.json()["id"]
        edit = conforms("PATCH", "/rooms/{room}/messages/{message_id}",
                        http.patch("/rooms/%s/messages/%s" % (room, message), data={"text": "fixed"}))
        assert (edit.status_code, edit.json()["code"]) == (415, "unsupported_type")
        read = conforms("PUT", "/rooms/{room}/read", http.put("/rooms/%s/read" % room, data={"id": message}))
        assert (read.status_code, read.json()["code"]) == (415, "unsupported_type")


def test_every_operation_that_takes_a_body_documents_the_413_of_a_body_too_large():
    # RIPPLE_MAX_CONTENT_LENGTH holds on every route that reads a body (Flask's
    # MAX_CONTENT_LENGTH): 17 of them answered a real 413 their documentation did not list.
    missing = ["%s %s" % (method.upper(), path) for path, item in RAW["paths"].items()
               for method, operation in item.items()
               if isinstance(operation, dict) and "requestBody" in operation
               and "413" not in operation["responses"]]
    assert missing == []


def test_a_body_too_large_for_an_edit_is_a_documented_413(server, room):
    with httpx.Client(base_url=server.url, timeout=10, headers={"Authorization": "Bearer " + TOKEN}) as http:
        sent = http.post("/rooms/%s/messages" % room, json={"text": "typo", "user": "ann"})
        edit = conforms("PATCH", "/rooms/{room}/messages/{message_id}", http.patch(
            "/rooms/%s/messages/%s" % (room, sent.json()["id"]), content=b'{"text": "%s"}' % (b"x" * 70000),
            headers={"Content-Type": "application/json"}))
        assert (edit.status_code, edit.json()["code"]) == (413, "too_large")


@pytest.mark.parametrize("method, template, path", [
    ("POST", "/rooms/{room}/messages", "/rooms/%s/messages"),
    ("POST", "/rooms/{room}/withdrawals", "/rooms/%s/withdrawals"),
    ("POST", "/users/{name}/messages", "/users/nobody-%s/messages"),
    ("POST", "/users/{name}/withdrawals", "/users/nobody-%s/withdrawals"),
])
def test_posting_signed_out_is_401_signed_out_as_on_every_route_that_needs_a_session(server, room, method,
                                                                                   template, path):
    # Posts said the 401's default code, "unauthorized", where edits, reactions, typing, read
    # positions and new rooms say "signed_out": a program signing in again on signed_out missed them.
    with httpx.Client(base_url=server.url, timeout=10) as http:
        csrf = http.get("/session", headers={"Accept": "application/json"}).json()["csrf_token"]
        refused = conforms(method, template, http.request(
            method, path % room, json={"text": "hello?", "idempotency_key": "k-" + room},
            headers={"X-CSRF-Token": csrf}))
        assert (refused.status_code, refused.json()["code"]) == (401, "signed_out")
