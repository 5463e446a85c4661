"""What a program sending requests is told: a publish token in the wrong Authorization scheme is
named as such; a JSON post's "idempotency_key" field is the Idempotency-Key header's twin."""
import pytest

from .support import TOKEN
from .test_publish_tokens import create, post


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
