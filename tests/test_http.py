"""Posting, history and errors through the Flask app against a real Redis server."""
import json
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

from app import create_app
from app.ops import cli
from app.ops.embedded_redis import EmbeddedRedis
from app.rooms import messages

from .support import LIMITS_OFF, TOKEN

JSON = {"Accept": "application/json"}
BEARER = {"Authorization": "Bearer " + TOKEN}


def post_json(client, room, payload, **headers):
    """Post as a server-to-server publisher, which may name any user."""
    return client.post("/rooms/%s/messages" % room, json=payload, headers={**BEARER, **headers})


def sign_in(client, name=None):
    """Take a display name (a fresh one unless given) in this client's session; return its CSRF token."""
    name = name or "ann-" + uuid.uuid4().hex[:8]
    token = client.get("/session").get_json()["csrf_token"]
    response = client.post("/session", json={"name": name}, headers={"X-CSRF-Token": token})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["csrf_token"]


def test_json_post_returns_201_with_the_stored_message(client, room):
    response = post_json(client, room, {"text": "hello 你好 🎉", "user": "ann"})
    assert response.status_code == 201
    body = response.get_json()
    assert body["text"] == "hello 你好 🎉" and body["user"] == "ann" and body["room"] == room
    assert body["id"].split("-")[0] == str(body["ts"])


def test_history_returns_messages_oldest_first(client, room):
    ids = [post_json(client, room, {"text": "m%d" % i, "user": "ann"}).get_json()["id"] for i in range(5)]
    page = client.get("/rooms/%s/messages?limit=3" % room).get_json()
    assert [m["id"] for m in page["messages"]] == ids[2:] and page["more"] is True
    older = client.get("/rooms/%s/messages?before=%s&limit=3" % (room, ids[2])).get_json()
    assert [m["id"] for m in older["messages"]] == ids[:2] and older["more"] is False


def test_history_is_capped_at_the_configured_length(app, room):
    app.config["HISTORY_LENGTH"] = 5
    from app.rooms.store import Store
    app.extensions["ripple"].store = Store(app.extensions["ripple"].redis, 5, 60)
    client = app.test_client()
    for i in range(8):
        post_json(client, room, {"text": "m%d" % i, "user": "ann"})
    texts = [m["text"] for m in client.get("/rooms/%s/messages" % room).get_json()["messages"]]
    assert texts == ["m3", "m4", "m5", "m6", "m7"]


def test_same_idempotency_key_returns_the_original_message(client, room):
    first = post_json(client, room, {"text": "once", "user": "ann"}, **{"Idempotency-Key": "k1"})
    again = post_json(client, room, {"text": "once", "user": "ann"}, **{"Idempotency-Key": "k1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json() == first.get_json()
    assert len(client.get("/rooms/%s/messages" % room).get_json()["messages"]) == 1


@pytest.mark.parametrize("second", [
    {"text": "twice", "user": "ann"},                       # another text
    {"text": "once", "user": "ann", "reply_to": None},       # the same text as a reply
])
def test_a_key_reused_for_a_different_message_is_422_and_stores_nothing(client, room, second):
    first = post_json(client, room, {"text": "once", "user": "ann"}, **{"Idempotency-Key": "k2"})
    if "reply_to" in second:
        second = {**second, "reply_to": first.get_json()["id"]}
    again = post_json(client, room, second, **{"Idempotency-Key": "k2"})
    assert again.status_code == 422 and again.get_json()["code"] == "idempotency_key_reused"
    assert again.get_json()["error"] == ("This idempotency key was already used for a different message. "
                                         "Send a new message with a new key.")
    assert [m["text"] for m in client.get("/rooms/%s/messages" % room).get_json()["messages"]] == ["once"]


@pytest.fixture
def short_history(redis_url):
    """An app whose rooms keep 3 messages."""
    return create_app({"TESTING": True, "REDIS_URL": redis_url, "PUBLISH_TOKEN": TOKEN,
                       "SECRET_KEY": "test-secret", "HISTORY_LENGTH": 3, **LIMITS_OFF}).test_client()


def test_a_retry_of_a_post_trimmed_from_history_answers_a_whole_message(short_history, room):
    # A Message as the docs promise (id, ts, room, user, text...), built from the retry (its
    # text matched) and the original's id, marked trimmed; not {"id", "ts"} alone. The fast path.
    first = post_json(short_history, room, {"text": "once", "user": "ann"}, **{"Idempotency-Key": "t1"})
    for i in range(4):
        post_json(short_history, room, {"text": "m%d" % i, "user": "ann"})
    again = post_json(short_history, room, {"text": "once", "user": "ann"}, **{"Idempotency-Key": "t1"})
    assert again.status_code == 200
    assert again.get_json() == {**first.get_json(), "trimmed": True}


def test_a_retried_reply_trimmed_with_its_original_answers_a_whole_message(short_history, room):
    # Flask's path: the reply's original is gone too, so its quote holds the id alone.
    original = post_json(short_history, room, {"text": "question", "user": "ann"}).get_json()["id"]
    reply = {"text": "answer", "user": "bob", "reply_to": original}
    first = post_json(short_history, room, reply, **{"Idempotency-Key": "t2"}).get_json()
    for i in range(4):
        post_json(short_history, room, {"text": "m%d" % i, "user": "ann"})
    again = post_json(short_history, room, reply, **{"Idempotency-Key": "t2"})
    assert again.status_code == 200
    assert again.get_json() == {**first, "reply_to": {"id": original, "user": "", "text": ""},
                                "trimmed": True}


def test_a_retry_whose_text_differs_only_in_trailing_space_is_the_same_message(client, room):
    first = post_json(client, room, {"text": "same\n", "user": "ann"}, **{"Idempotency-Key": "k3"})
    again = post_json(client, room, {"text": "same  ", "user": "ann"}, **{"Idempotency-Key": "k3"})
    assert (first.status_code, again.status_code) == (201, 200) and again.get_json() == first.get_json()


def test_a_key_remembered_before_digests_were_kept_still_returns_its_message(app, client, room):
    first = post_json(client, room, {"text": "old", "user": "ann"}, **{"Idempotency-Key": "k4"})
    from app.rooms import keys
    redis = app.extensions["ripple"].redis
    for digest in (messages.idempotency_digest(messages.idempotency_scope("ann"), "k4"),
                   messages.legacy_idempotency_digest("ann", "k4")):
        redis.delete(keys.RoomKeys(room).idempotency(digest) + ":request")  # the id alone, as before
    again = post_json(client, room, {"text": "other", "user": "ann"}, **{"Idempotency-Key": "k4"})
    assert again.status_code == 200 and again.get_json() == first.get_json()


def test_the_idempotency_key_keeps_the_id_alone(app, client, room):
    # Its digest sits in a key of its own: the value is read as releases before digests read it.
    first = post_json(client, room, {"text": "kept", "user": "ann"}, **{"Idempotency-Key": "k5"})
    from app.rooms import keys
    key = keys.RoomKeys(room).idempotency(messages.idempotency_digest(messages.idempotency_scope("ann"), "k5"))
    assert app.extensions["ripple"].redis.get(key) == first.get_json()["id"]


def test_the_publish_function_refuses_a_key_reused_for_another_text(redis_url, room):
    cli.publish(room, "one", "bot", redis_url=redis_url, idempotency_key="cli-1")
    with pytest.raises(messages.KeyReused):
        cli.publish(room, "two", "bot", redis_url=redis_url, idempotency_key="cli-1")


def test_idempotency_keys_are_scoped_to_the_sender(client, room):
    post_json(client, room, {"text": "a", "user": "ann"}, **{"Idempotency-Key": "same"})
    other = post_json(client, room, {"text": "b", "user": "bob"}, **{"Idempotency-Key": "same"})
    assert other.status_code == 201 and other.get_json()["text"] == "b"


def test_a_post_with_the_global_token_and_no_user_is_told_to_name_its_author(client, room):
    response = post_json(client, room, {"text": "who am I?"})
    assert response.status_code == 400 and response.get_json()["code"] == "bad_name"
    assert response.get_json()["error"] == ('A post with the global publish token names its author: '
                                            'give "user", the name to show.')


@pytest.mark.parametrize("payload,status", [
    ({"text": "", "user": "ann"}, 422),
    ({"text": "   \n ", "user": "ann"}, 422),
    ({"text": "x" * 2001, "user": "ann"}, 422),
    ({"text": "hi", "user": ""}, 422),
    ({"text": 5, "user": "ann"}, 400),
    ([1, 2], 400),
])
def test_bad_json_messages_get_a_clear_error(client, room, payload, status):
    response = post_json(client, room, payload)
    assert response.status_code == status
    assert isinstance(response.get_json()["error"], str)


def test_text_at_the_limit_is_accepted(client, room):
    assert post_json(client, room, {"text": "字" * 2000, "user": "ann"}).status_code == 201


def test_malformed_json_is_400(client, room):
    response = client.post("/rooms/%s/messages" % room, data=b'{"text": ', content_type="application/json",
                           headers=BEARER)
    assert response.status_code == 400 and "error" in response.get_json()


def test_invalid_utf8_json_is_400(client, room):
    response = client.post("/rooms/%s/messages" % room, data=b'{"text": "\xff\xfe", "user": "a"}',
                           content_type="application/json", headers=BEARER)
    assert response.status_code == 400


def test_wrong_content_type_is_415(client, room):
    response = client.post("/rooms/%s/messages" % room, data="hi", content_type="text/plain", headers=BEARER)
    assert response.status_code == 415 and "error" in response.get_json()


def test_body_over_the_byte_cap_is_413(client, room):
    response = client.post("/rooms/%s/messages" % room, data=json.dumps({"text": "x" * 70000, "user": "a"}),
                           content_type="application/json", headers=BEARER)
    assert response.status_code == 413 and "error" in response.get_json()


@pytest.mark.parametrize("room_name", ["b%20ad", "-x", "a" * 65, "a..b", "%00"])
def test_invalid_room_is_400_on_the_api(client, room_name):
    response = post_json(client, room_name, {"text": "x", "user": "a"})
    assert response.status_code in (400, 404) and "error" in response.get_json()
    assert client.get("/rooms/%s/messages" % room_name).status_code in (400, 404)


def test_invalid_room_page_is_404_html(client):
    response = client.get("/rooms/Not%20Valid")
    assert response.status_code == 404 and response.mimetype == "text/html"


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=10**9", "limit=abc", "before=junk",
                                   "limit=" + "9" * 5000])
def test_bad_history_queries_are_400(client, room, query):
    response = client.get("/rooms/%s/messages?%s" % (room, query))
    assert response.status_code == 400 and "error" in response.get_json()


@pytest.mark.parametrize("query", ["backlog=-1", "backlog=201", "backlog=x"])
def test_bad_backlog_is_400(client, room, query):
    assert client.get("/rooms/%s/events?%s" % (room, query)).status_code == 400


def test_form_post_redirects_to_the_room_with_the_message_shown(client, room):
    token = sign_in(client)
    response = client.post("/rooms/%s/messages" % room, data={"text": "from a form", "csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"].endswith("/rooms/%s#latest" % room)
    page = client.get("/rooms/%s" % room)
    assert "from a form" in page.get_data(as_text=True)


def test_form_error_shows_the_page_with_the_typed_text_kept(client, room):
    token = sign_in(client)
    response = client.post("/rooms/%s/messages" % room, data={"text": "x" * 2001, "csrf_token": token})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "too long" in html and "x" * 2001 + "</textarea>" in html


def test_form_retry_with_the_same_key_does_not_duplicate(client, room):
    token = sign_in(client)
    for _ in range(2):
        client.post("/rooms/%s/messages" % room, data={"text": "dbl", "idempotency_key": "abc", "csrf_token": token})
    assert len(client.get("/rooms/%s/messages" % room).get_json()["messages"]) == 1


def test_a_plain_form_sent_again_with_a_changed_text_is_a_new_message(client, room):
    token = sign_in(client)
    for text in ("helo", "hello", "hello"):  # a failed send corrected, then sent twice
        answer = client.post("/rooms/%s/messages" % room,
                             data={"text": text, "idempotency_key": "page-1", "csrf_token": token})
        assert answer.status_code == 303
    texts = [m["text"] for m in client.get("/rooms/%s/messages" % room).get_json()["messages"]]
    assert texts == ["helo", "hello"]


def test_fetch_form_post_gets_json(client, room):
    token = sign_in(client)
    response = client.post("/rooms/%s/messages" % room, data={"text": "js"},
                           headers={**JSON, "X-CSRF-Token": token})
    assert response.status_code == 201 and response.get_json()["text"] == "js"


def test_room_page_escapes_html_in_messages(client, room):
    post_json(client, room, {"text": "<img src=x onerror=alert(1)>", "user": "<b>"})
    html = client.get("/rooms/%s" % room).get_data(as_text=True)
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_lobby_lists_active_rooms_and_rejects_bad_names(client, room):
    post_json(client, room, {"text": "hi", "user": "ann"})
    assert room in client.get("/").get_data(as_text=True)
    bad = client.get("/go?room=Bad%20Name")
    assert bad.status_code == 400 and "is not a room name" in bad.get_data(as_text=True)
    assert client.get("/go?room=ok-room").status_code == 303


def test_health_and_readiness(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").get_json() == {"status": "ok", "redis": True}


def test_python_publish_function_uses_the_atomic_path(client, redis_url, room):
    stored = json.loads(cli.publish(room, "from python", "bot", redis_url=redis_url))
    page = client.get("/rooms/%s/messages" % room).get_json()
    assert page["messages"] == [stored]


def test_python_publish_function_follows_the_services_message_limit(redis_url, room, monkeypatch):
    # An operator who raises RIPPLE_MAX_MESSAGE_CHARS raises it for every entry point.
    monkeypatch.setenv("RIPPLE_MAX_MESSAGE_CHARS", "3000")
    assert len(json.loads(cli.publish(room, "x" * 2500, "bot", redis_url=redis_url))["text"]) == 2500
    monkeypatch.setenv("RIPPLE_MAX_MESSAGE_CHARS", "10")
    with pytest.raises(messages.Invalid):
        cli.publish(room, "x" * 11, "bot", redis_url=redis_url)


def test_python_publish_function_finds_the_embedded_server_without_redis_url(room, monkeypatch):
    # As `flask --app app publish` does: the embedded server's socket and password.
    directory = tempfile.mkdtemp(prefix="rp-", dir="/tmp")  # short: a unix socket path is capped
    server = EmbeddedRedis.service(directory)  # as gunicorn.conf.py starts it
    server.start()
    try:
        monkeypatch.delenv("REDIS_URL", raising=False)
        monkeypatch.setenv("RIPPLE_EMBEDDED_REDIS_DIR", directory)
        stored = json.loads(cli.publish(room, "no url given", "bot", idempotency_key="k1"))
        again = json.loads(cli.publish(room, "no url given", "bot", redis_url=server.url, idempotency_key="k1"))
        assert again == stored  # the same message: it went to that server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_cli_publish_command(redis_url, room, client):
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "publish", room, "from the cli", "--user", "ops"],
        env={"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["text"] == "from the cli"
    assert client.get("/rooms/%s/messages" % room).get_json()["messages"][0]["user"] == "ops"


def test_cli_publish_rejects_a_bad_room(redis_url):
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "publish", "Bad/Room", "x"],
                            env={"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "room" in result.stderr.lower()


def test_lobby_shows_how_many_people_are_online(app, client, room):
    post_json(client, room, {"text": "hi", "user": "ann"})
    presence = app.extensions["ripple"].presence
    for name in ("ann", "bob"):
        for tab in ("tab1", "tab2"):  # two tabs each: still one person each
            presence.join(room, name, "sid-" + name, tab)
    html = client.get("/").get_data(as_text=True)
    assert "2 online" in html.split(room, 1)[1][:200]


def test_pages_name_an_icon_that_is_served(client):
    page = client.get("/").get_data(as_text=True)
    assert 'rel="icon"' in page
    icon = client.get("/static/favicon.svg")
    icon.close()  # a file response: closing it closes the file
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/me/rooms", "/me/mentions", "/rooms"])
def test_an_api_route_answers_json_errors_to_a_client_that_asks_for_nothing(client, path):
    # curl and most programs send no Accept: an API address answers them as an API, not a page.
    wrong = client.open(path, method="PATCH", headers={"Accept": "*/*"})
    assert wrong.status_code == 405 and wrong.get_json()["code"] == "method_not_allowed"


def test_a_method_a_route_lacks_is_405_with_allow_even_without_a_csrf_token(client, room):
    # The CSRF check ran first: a PUT or a POST where none is served was a 400 "csrf", where
    # openapi.yaml promises 405 with Allow (and a write to no route at all, 404).
    wrong = client.put("/rooms/%s/messages" % room, json={"text": "hi"})
    assert wrong.status_code == 405 and "POST" in wrong.headers["Allow"], wrong.get_data(as_text=True)
    assert wrong.get_json()["code"] == "method_not_allowed"
    assert client.post("/no/such/route", json={}).status_code == 404
    refused = client.post("/rooms/%s/messages" % room, json={"text": "hi"})  # a real route: still checked
    assert refused.status_code == 400 and refused.get_json()["code"] == "csrf"


def test_a_programs_json_sent_as_a_form_is_told_to_say_json(client, room):
    # curl -d '{...}' with a Bearer token but no Content-Type: a form, whose "text" is missing.
    answer = client.post("/rooms/%s/messages" % room, data='{"text": "x", "user": "ci"}',
                         headers={**BEARER, "Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 415 and answer.mimetype == "application/json"
    assert answer.get_json() == {"code": "unsupported_type", "error": (
        "The body looks like JSON but is sent as a form: send it with Content-Type: application/json.")}


def test_a_program_with_a_bearer_token_gets_json_errors_for_a_form_post(client, room):
    answer = client.post("/rooms/%s/messages" % room, data={"text": "", "user": "ci"}, headers=BEARER)
    assert answer.status_code == 422 and answer.get_json()["code"] == "text_empty"


def test_a_browser_behind_a_gateway_that_adds_a_bearer_still_gets_pages(client, room):
    # oauth2-proxy and the like put "Authorization: Bearer <id token>" on every request.
    token = sign_in(client)
    answer = client.post("/rooms/%s/messages" % room, data={"text": "via the gateway", "csrf_token": token},
                         headers={"Authorization": "Bearer some.id.token", "Sec-Fetch-Mode": "navigate",
                                  "Accept": "text/html"})
    assert answer.status_code == 303
