"""An idempotency key belongs to its sender's stable id (a scoped token's "token:<id>", a
person's uid), not to the display name: two bots posting as one name never swallow each other's
posts. The global publish token, which posts as any name, keeps its keys by name. Keys an older
release stored (by name) are still found by a retry within the TTL, and this release's keys are
found by an older host (a rolling deploy)."""
import uuid

from app.rooms import keys, messages

from .support import TOKEN
from .test_publish_tokens import create, post, send
from .test_token_rooms import form_post, uid_of
from .web import Browser


def test_two_tokens_posting_as_one_name_keep_their_keys_apart_on_every_path(server, redis_url, room):
    first = create(redis_url, room + "*", "deploy", extra=["--direct"])[1]
    second = create(redis_url, room + "*", "deploy", extra=["--direct"])[1]
    head = {"Idempotency-Key": "build-1234"}
    mine = post(server.url, room, first, {"text": "once"}, headers=head)
    theirs = post(server.url, room, second, {"text": "once"}, headers=head)  # the fast path
    assert (mine[0], theirs[0]) == (201, 201) and mine[1]["id"] != theirs[1]["id"]
    assert (mine[1]["uid"], theirs[1]["uid"]) == (uid_of(first), uid_of(second))
    assert post(server.url, room, second, {"text": "from bot 2"}, headers={"Idempotency-Key": "k2"})[0] == 201
    assert post(server.url, room, first, {"text": "from bot 1"}, headers={"Idempotency-Key": "k2"})[0] == 201
    # A reply goes through Flask's path; the operator's global token is scoped by the name.
    reply = {"text": "re", "reply_to": mine[1]["id"]}
    assert post(server.url, room, first, reply, headers={"Idempotency-Key": "r"})[0] == 201
    assert post(server.url, room, second, reply, headers={"Idempotency-Key": "r"})[0] == 201
    status, body, _ = post(server.url, room, TOKEN, {"text": "once", "user": "deploy"}, headers=head)
    assert status == 201 and body["uid"] == "token:global"
    # Each one's retry still finds its own.
    again = post(server.url, room, second, {"text": "once"}, headers=head)
    assert again[0] == 200 and again[1]["id"] == theirs[1]["id"]
    # The form's field, and a direct message.
    for token in (first, second):
        status, body, _ = post(server.url, room, token, None, form={"text": "f", "idempotency_key": "f-1"},
                               headers={"Accept": "application/json"})
        assert status == 201
    bob = Browser(server.url)
    assert bob.sign_in("bob-" + uuid.uuid4().hex[:6]) == 200
    sent = [send(server.url, "/users/%s/messages" % bob.name, token, {"text": "hi"},
                 headers={"Idempotency-Key": "dm-1"}) for token in (first, second)]
    assert [s[0] for s in sent] == [201, 201] and sent[0][1]["id"] != sent[1][1]["id"]


def legacy_key(room, user, key):
    return keys.RoomKeys(room).idempotency(messages.legacy_idempotency_digest(user, key))


def test_a_retry_finds_the_original_an_older_release_stored(
        server, redis_url, redis_client, room):
    bot = create(redis_url, room + "*", "deploy")[1]
    # The older release stored "once" under the key scoped by the name alone.
    stored = post(server.url, room, bot, {"text": "once"})[1]
    old = legacy_key(room, "deploy", "k-old")
    redis_client.set(old, stored["id"], ex=600)
    redis_client.set(old + ":request", messages.request_digest("once", ""), ex=600)
    status, body, _ = post(server.url, room, bot, {"text": "once"}, headers={"Idempotency-Key": "k-old"})
    assert status == 200 and body["id"] == stored["id"]
    status, body, _ = post(server.url, room, bot, {"text": "other"}, headers={"Idempotency-Key": "k-old"})
    assert status == 422 and body["code"] == "idempotency_key_reused"
    # What this release stores stays under its sender's key alone: another sender of that name
    # posting with the same key stores its own.
    new = post(server.url, room, bot, {"text": "fresh"}, headers={"Idempotency-Key": "k-new"})[1]
    assert redis_client.get(legacy_key(room, "deploy", "k-new")) is None
    other = create(redis_url, room + "*", "deploy")[1]
    status, body, _ = post(server.url, room, other, {"text": "fresh"}, headers={"Idempotency-Key": "k-new"})
    assert status == 201 and body["id"] != new["id"]
    assert form_post(server, room, other, "fresh")[0] == 201


def test_a_bot_never_finds_the_global_tokens_message_under_its_key(server, redis_url, room):
    # The global token posts as any name: its keys are scoped by that name, apart from a bot's
    # of the same name, whichever posts first.
    headers = {"Idempotency-Key": "build-77"}
    operator = send(server.url, "/rooms/%s/messages" % room, TOKEN, {"text": "deployed", "user": "ci"},
                    headers=headers)
    bot = create(redis_url, room + "*", "ci")[1]
    status, body, _ = post(server.url, room, bot, {"text": "deployed"}, headers=headers)
    assert operator[0] == 201 and status == 201 and body["id"] != operator[1]["id"]
    assert body["uid"] == uid_of(bot)
