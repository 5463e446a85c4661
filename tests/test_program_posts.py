"""What a program sending requests is told: a publish token in the wrong Authorization scheme is
named as such; a JSON post's "idempotency_key" field is the Idempotency-Key header's twin."""
import html
import json

import pytest

from .support import TOKEN
from .test_publish_tokens import connect, create, post


@pytest.mark.parametrize("scheme", ["Token", "Basic", "token"])
def test_a_token_sent_in_another_scheme_is_told_to_use_bearer(server, room, scheme):
    status, body, _ = post(server.url, room, "", {"text": "hi", "user": "x"},
                           headers={"Authorization": "%s %s" % (scheme, TOKEN)})
    assert (status, body["code"]) == (400, "csrf")
    assert "Authorization header is not “Bearer <token>”" in body["error"]
    assert "\"Authorization: Bearer <token>\"" in body["error"] and TOKEN not in body["error"]


def test_a_json_posts_idempotency_key_field_is_the_headers_twin_on_every_path(server, redis_url, room):
    bot = create(redis_url, room + "*", "feed-bot")[1]
    for token, extra in ((bot, {}), (TOKEN, {"user": "ops"})):  # the fast path: scoped and global
        first = post(server.url, room, token, {"text": "once", "idempotency_key": "b-1", **extra})
        again = post(server.url, room, token, {"text": "once", "idempotency_key": "b-1", **extra})
        assert (first[0], again[0]) == (201, 200) and first[1]["id"] == again[1]["id"]
        header = post(server.url, room, token, {"text": "once", **extra}, headers={"Idempotency-Key": "b-1"})
        assert header[0] == 200 and header[1]["id"] == first[1]["id"]
        both = post(server.url, room, token, {"text": "once", "idempotency_key": "b-1", **extra},
                    headers={"Idempotency-Key": "b-1"})
        assert both[0] == 200
    reply = {"text": "re", "reply_to": first[1]["id"], "idempotency_key": "b-2"}  # Flask's path
    assert [post(server.url, room, bot, reply)[0] for _ in range(2)] == [201, 200]
    status, body, _ = post(server.url, room, bot, {"text": "x", "idempotency_key": "b-3"},
                           headers={"Idempotency-Key": "b-4"})
    assert (status, body["code"]) == (400, "idempotency_key_conflict")
    assert body["error"] == ("The Idempotency-Key header and the body's \"idempotency_key\" differ: send one of "
                             "them, or the same key in both.")
    status, body, _ = post(server.url, room, bot, {"text": "x", "idempotency_key": 7})
    assert (status, body["code"]) == (400, "bad_idempotency_key")


def _form_post(server, room, headers):
    """A form post "text=hi" with ``headers`` and no CSRF token: (status, the JSON's sentence or
    the page's text)."""
    conn = connect(server.url)
    try:
        conn.request("POST", "/rooms/%s/messages" % room, body="text=hi",
                     headers={"Content-Type": "application/x-www-form-urlencoded", **headers})
        response = conn.getresponse()
        body = response.read().decode()
        return response.status, json.loads(body)["error"] if body.startswith("{") else html.unescape(body)
    finally:
        conn.close()


def test_a_programs_form_post_in_another_scheme_is_told_to_use_bearer_but_a_page_is_not(server, room):
    for headers in ({"Accept": "application/json"}, {}):  # a program, and curl -d (no Accept)
        status, body = _form_post(server, room, {"Authorization": "Token rpl_0123456789abcdef_x", **headers})
        assert status == 400 and "Authorization header is not “Bearer <token>”" in body
        assert "out of date" not in body
    status, body = _form_post(server, room, {"Accept": "application/json"})
    assert status == 400 and body.startswith(
        "Nothing was done: this request carries neither a publish token nor a CSRF token.")
    # A browser's page behind HTTP basic auth sends Authorization: Basic on every request: its
    # form is told its page was out of date, as ever.
    for headers in ({"Sec-Fetch-Mode": "navigate", "Accept": "text/html"}, {"Accept": "text/html,*/*;q=0.8"}):
        status, body = _form_post(server, room, {"Authorization": "Basic dXNlcjpwYXNz", **headers})
        assert status == 400 and "out of date" in body and "Bearer" not in body
