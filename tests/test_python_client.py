"""The Python client in clients/python (issue 19), against a real Gunicorn and a real Redis.

A subscription must hand its consumer every message exactly once, in order, while the server
reloads and while Redis restarts; publish retries with one idempotency key; errors are typed.
"""
import asyncio
import logging
import queue
import signal
import threading
import uuid

import pytest
from httpx_sse import ServerSentEvent
from ripple_client import (
    AsyncClient,
    Backoff,
    BadRequest,
    Busy,
    Client,
    ConnectionFailed,
    EditConflict,
    Event,
    Message,
    Ready,
    Removed,
    RippleError,
    RoomDeleted,
    ServiceUnavailable,
    Unauthorized,
    Unavailable,
    Unconfirmed,
    Unprocessable,
    errors,
)
from ripple_client._core import StreamState

from app.ops.embedded_redis import EmbeddedRedis
from app.people import tokens

from .servers import Gunicorn, free_port, wait_until
from .support import SERVER_ENV, TEST_HEARTBEAT, TOKEN
from .test_accounts import account_holder
from .test_rooms import create, new_room
from .test_stream_faults import BusyRedis

# The async client's tests run asyncio loops: no Playwright may hold this process's thread then
# (tests/chromium.py; a browser file before this one in the same process left it running).
pytestmark = pytest.mark.usefixtures("without_playwright")

# Short waits for a test: a dead stream is noticed after three test heartbeats of silence.
FAST = Backoff(initial=0.1, maximum=1.0, attempts=60)


def connect(server, **kwargs):
    return Client(server.url, token=TOKEN, stream_timeout=TEST_HEARTBEAT * 3, backoff=FAST, **kwargs)


class Follower:
    """A subscription read by a thread of its own: the test reads its events with deadlines."""

    def __init__(self, subscription):
        self.subscription, self.events, self.error = subscription, queue.Queue(), None
        self.seen = []  # every event, in order
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for event in self.subscription:
                self.seen.append(event)
                self.events.put(event)
        except Exception as exc:  # noqa: BLE001 - handed to the test, which fails with it
            self.error = exc
        finally:
            self.events.put(None)

    def next(self, kind, timeout=10):
        """The next event of ``kind`` (earlier ones of other kinds are skipped)."""
        while True:
            event = self.events.get(timeout=timeout)
            if event is None:
                raise AssertionError("the subscription ended: %r" % self.error)
            if isinstance(event, kind):
                return event

    def ids(self):
        return [e.id for e in list(self.seen) if isinstance(e, Message)]

    def until_ids(self, wanted, timeout=30):
        wait_until(lambda: len(self.ids()) >= len(wanted), timeout, 0.05,
                   "%d messages (have %d)" % (len(wanted), len(self.ids())))
        return self.ids()

    def close(self):
        self.subscription.close()
        self.thread.join(10)
        assert not self.thread.is_alive(), "close() did not end the subscription"


@pytest.fixture
def ripple(server):
    with connect(server) as client:
        yield client


def follow(client, room, **kwargs):
    follower = Follower(client.subscribe(room, **kwargs))
    follower.next(Ready)
    return follower


def test_publish_returns_the_stored_message_and_history_pages_it(ripple, room):
    sent = [ripple.publish(room, "m%d" % n, user="bot") for n in range(5)]
    assert [(m["room"], m["user"], m["text"]) for m in sent] == [(room, "bot", "m%d" % n) for n in range(5)]
    page = ripple.history(room, limit=3)
    assert [m.id for m in page.messages] == [m["id"] for m in sent[2:]]
    assert (page.more_before, page.more_after, page.more) == (True, False, True)
    around = ripple.history(room, around=sent[2]["id"], limit=3)
    assert [m.text for m in around.messages] == ["m1", "m2", "m3"]
    after = ripple.history(room, after=sent[3]["id"])
    assert [m.text for m in after.messages] == ["m4"] and not after.more_after


def test_publishing_again_with_the_same_key_returns_the_original(ripple, room):
    first = ripple.publish(room, "once", user="bot", idempotency_key="deploy-42")
    again = ripple.publish(room, "once", user="bot", idempotency_key="deploy-42")
    assert again == first
    assert [m.id for m in ripple.history(room).messages] == [first["id"]]


def test_each_publish_gets_a_fresh_key_unless_given(ripple, room):
    one, two = ripple.publish(room, "same", user="bot"), ripple.publish(room, "same", user="bot")
    assert one["id"] != two["id"]


@pytest.mark.parametrize("name", ["技术交流", "café-2", "москва"])
def test_room_names_in_any_script_are_percent_encoded(ripple, name):
    sent = ripple.publish(name, "hello", user="bot")
    assert sent["room"] == name
    assert sent["id"] in [m.id for m in ripple.history(name).messages]


def test_a_subscription_receives_live_messages_as_typed_events(ripple, room):
    follower = follow(ripple, room)
    try:
        sent = ripple.publish(room, "live", user="bot")
        message = follower.next(Message)
        assert (message.id, message.text, message.user, message.bot) == (sent["id"], "live", "bot", True)
        assert message.cursor and follower.subscription.cursor == message.cursor
    finally:
        follower.close()


def test_a_subscription_resumes_after_the_cursor_it_is_given(ripple, room):
    follower = follow(ripple, room)
    first = ripple.publish(room, "one", user="bot")
    cursor = follower.next(Message).cursor
    follower.close()
    rest = [ripple.publish(room, "after %d" % n, user="bot")["id"] for n in range(3)]
    again = Follower(ripple.subscribe(room, last_event_id=cursor))
    try:
        assert again.until_ids(rest) == rest and first["id"] not in again.ids()
    finally:
        again.close()


def test_a_deleted_room_ends_its_subscription_and_refuses_its_cursor(server, ripple):
    owner, room = account_holder(server, "own"), new_room("gone")
    assert create(owner, room)[0] == 201
    ripple.publish(room, "before", user="bot")
    follower = follow(ripple, room)
    assert owner.request("DELETE", "/rooms/%s" % room)[0] == 204
    deleted = follower.next(RoomDeleted)
    assert deleted.room == room and deleted.message == "#%s was deleted by its owner or an administrator." % room
    follower.thread.join(10)  # it ends by itself, no reconnect, no error
    assert not follower.thread.is_alive() and follower.error is None
    assert follower.events.get(timeout=1) is None
    cursor = follower.subscription.cursor
    with pytest.raises(errors.Gone) as refused:
        list(ripple.subscribe(room, last_event_id=cursor))
    assert refused.value.status == 410 and refused.value.code == "room_deleted"


def test_close_ends_a_subscription_blocked_on_a_quiet_stream(server, room):
    client = Client(server.url, stream_timeout=60)  # silence alone would not end it for a minute
    follower = follow(client, room)
    follower.close()  # asserts the reading thread ended
    client.close()


def test_closing_the_client_ends_its_subscriptions(server, room):
    client = connect(server)
    follower = follow(client, room)
    client.close()
    follower.thread.join(10)
    assert not follower.thread.is_alive() and follower.error is None


# --- Across a reload and a Redis restart --------------------------------------------------------

@pytest.fixture
def reloading_server(redis_url, tmp_path):
    gunicorn = Gunicorn(tmp_path, redis_url=redis_url, workers=2, env=SERVER_ENV).start()
    yield gunicorn
    gunicorn.halt()


@pytest.fixture
def own_redis(tmp_path):
    """A Redis the test stops and starts again on the same port, AOF on (nothing acked is lost),
    or pauses."""
    server = EmbeddedRedis(tmp_path / "redis", port=free_port(), appendonly=True,
                           extra_args=["--enable-debug-command", "yes"])  # DEBUG SLEEP: a busy Redis
    server.start()
    yield server
    server.stop()


@pytest.fixture
def outage_server(own_redis, tmp_path):
    gunicorn = Gunicorn(tmp_path, redis_url=own_redis.url, workers=2,
                        env={**SERVER_ENV, "RIPPLE_REDIS_SOCKET_TIMEOUT": "1"}).start()
    yield gunicorn
    gunicorn.halt()


@pytest.mark.slow
def test_a_subscription_follows_a_room_through_a_reload_with_nothing_lost_or_repeated(
        reloading_server, room, fault_report):
    with connect(reloading_server) as client:
        followers = [follow(client, room) for _ in range(2)]
        sent = [client.publish(room, "before %d" % n, user="bot")["id"] for n in range(10)]
        old = set(reloading_server.worker_pids())
        reloading_server.signal(signal.SIGHUP)

        def reloaded():  # publishing all the while the old workers leave and new ones boot
            sent.append(client.publish(room, "during %d" % len(sent), user="bot")["id"])
            return not old & set(reloading_server.worker_pids())
        wait_until(reloaded, 30, 0.05, "the old workers to leave")
        sent += [client.publish(room, "after %d" % n, user="bot")["id"] for n in range(10)]
        got = [f.until_ids(sent) for f in followers]
        fault_report.add("Python client: graceful reload (HUP), posts during it", len(followers), len(sent), got)
        for follower, ids in zip(followers, got):
            assert ids == sent and follower.subscription.skipped == 0
            assert sum(isinstance(e, Ready) for e in follower.seen) >= 2  # it did reconnect
            follower.close()


@pytest.mark.slow
def test_a_subscription_follows_a_room_through_a_redis_restart_with_nothing_lost_or_repeated(
        outage_server, own_redis, room, fault_report, caplog):
    caplog.set_level(logging.INFO, logger="ripple_client")
    with connect(outage_server) as client:
        follower = follow(client, room)
        sent = [client.publish(room, "before %d" % n, user="bot")["id"] for n in range(5)]
        follower.until_ids(sent)
        own_redis.stop()
        follower.next(Unavailable)
        # Published while Redis is down: each retries (503, same key) until it is stored.
        during = []
        publisher = threading.Thread(target=lambda: during.extend(
            client.publish(room, "during %d" % n, user="bot")["id"] for n in range(5)))
        publisher.start()
        wait_until(lambda: retries(caplog), 15, 0.05, "a publish refused while Redis is down")
        own_redis.start()
        publisher.join(60)
        assert not publisher.is_alive() and len(during) == 5
        sent += during
        sent += [client.publish(room, "after %d" % n, user="bot")["id"] for n in range(5)]
        got = follower.until_ids(sent, timeout=60)
        fault_report.add("Python client: Redis stopped and restarted (AOF)", 1, len(sent), [got])
        assert got == sent and follower.subscription.skipped == 0
        follower.close()


def retries(caplog):
    """The client's "retrying" log lines so far (one per attempt that failed)."""
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("retrying")]


@pytest.mark.slow
def test_a_publish_unconfirmed_by_a_busy_redis_is_retried_with_its_key_and_stored_once(
        outage_server, own_redis, room, caplog):
    caplog.set_level(logging.INFO, logger="ripple_client")
    with connect(outage_server) as client:
        client.publish(room + "-warm", "warm-up", user="bot")  # this worker has a Redis connection
        busy = BusyRedis(own_redis, 2.5)
        sent = client.publish(room, "sent once", user="bot")
        busy.over()
        assert any("504" in line and "confirm" in line for line in retries(caplog)), retries(caplog)
        assert [m.id for m in client.history(room).messages] == [sent["id"]]


# --- asyncio ------------------------------------------------------------------------------------

def test_the_async_client_publishes_reads_history_and_follows_a_room(server, room):
    async def flow():
        async with AsyncClient(server.url, token=TOKEN, stream_timeout=TEST_HEARTBEAT * 3, backoff=FAST) as client:
            first = await client.publish(room, "one", user="bot")
            assert [m.id for m in (await client.history(room)).messages] == [first["id"]]
            async with client.subscribe(room) as sub:
                events = aiter(sub)
                assert isinstance(await asyncio.wait_for(anext(events), 10), Ready)
                sent = await client.publish(room, "two", user="bot")
                message = await asyncio.wait_for(anext(events), 10)
                assert isinstance(message, Message) and message.id == sent["id"]
            with pytest.raises(Unprocessable):
                await client.publish(room, "   ", user="bot")
    asyncio.run(flow())


def test_an_async_subscription_resumes_after_its_cursor(server, room):
    async def flow():
        async with AsyncClient(server.url, token=TOKEN, backoff=FAST) as client:
            first = await client.publish(room, "one", user="bot")
            rest = [(await client.publish(room, "n%d" % n, user="bot"))["id"] for n in range(3)]
            async with client.subscribe(room, last_event_id=first["id"]) as sub:
                got = []
                async for event in sub:
                    if isinstance(event, Message):
                        got.append(event.id)
                    if isinstance(event, Ready):
                        break
            assert got == rest
    asyncio.run(flow())


def test_an_async_subscription_ends_after_its_room_is_deleted(server):
    owner, room = account_holder(server, "own"), new_room("gone")
    assert create(owner, room)[0] == 201

    async def flow():
        async with AsyncClient(server.url, token=TOKEN, backoff=FAST) as client:
            await client.publish(room, "before", user="bot")
            async with client.subscribe(room) as sub:
                seen = []
                async for event in sub:  # ends by itself after room-deleted
                    seen.append(event)
                    if isinstance(event, Ready):
                        await asyncio.to_thread(owner.request, "DELETE", "/rooms/%s" % room)
            assert isinstance(seen[-1], RoomDeleted) and seen[-1].room == room
            with pytest.raises(errors.Gone):
                async for _ in client.subscribe(room, last_event_id=sub.cursor):
                    pass
    asyncio.run(asyncio.wait_for(flow(), 30))


def test_an_async_subscription_closed_by_another_task_ends_its_loop(server, room):
    async def flow():
        async with AsyncClient(server.url, stream_timeout=60) as client:
            sub, ready = client.subscribe(room), asyncio.Event()

            async def read():
                async for event in sub:
                    if isinstance(event, Ready):
                        ready.set()
            reader = asyncio.create_task(read())
            await asyncio.wait_for(ready.wait(), 10)
            await sub.aclose()
            await asyncio.wait_for(reader, 10)  # ends, and without an error
    asyncio.run(flow())


# --- Errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("token", [None, "not-the-token"])
def test_a_publish_without_the_token_is_refused_with_the_servers_sentence(server, ripple, room, token):
    # Today the server answers a post without the token (and without a browser session) as a
    # browser's: 400, no CSRF token; 401 would do as well.
    with Client(server.url, token=token) as anonymous:
        with pytest.raises((BadRequest, Unauthorized)) as caught:
            anonymous.publish(room, "hi")
    assert caught.value.message and caught.value.idempotency_key
    assert ripple.history(room).messages == []


@pytest.fixture
def scoped(redis_client, room):
    """A scoped publish token for this test's room, posting as "feed" only."""
    token, _ = tokens.PublishTokens(redis_client).create("client-" + uuid.uuid4().hex[:8], room, ["feed"])
    return token


def test_a_scoped_token_publishes_in_its_room_as_its_name(server, room, scoped):
    with Client(server.url, token=scoped) as bot:
        assert bot.publish(room, "from the feed", user="feed")["user"] == "feed"


def test_a_bot_corrects_and_deletes_its_own_message(server, room, scoped):
    with Client(server.url, token=scoped) as bot:
        sent = bot.publish(room, "deploy faild")
        assert bot.edit(room, sent["id"], "deploy failed")["text"] == "deploy failed"
        assert bot.delete(room, sent["id"]) is None
        assert bot.delete(room, sent["id"]) is None  # again: nothing to do, no error
        assert [(m.id, m.data.get("deleted")) for m in bot.history(room).messages] == [(sent["id"], True)]


def test_a_bot_may_not_edit_someone_elses_message(server, ripple, room, scoped):
    theirs = ripple.publish(room, "not the bot's", user="ann")
    with Client(server.url, token=scoped) as bot:
        with pytest.raises(errors.Forbidden) as caught:
            bot.edit(room, theirs["id"], "taken over")
    assert caught.value.code == "not_yours_edit"


def test_an_edit_from_an_older_version_raises_edit_conflict_with_the_text_now(server, room, scoped):
    with Client(server.url, token=scoped) as bot, Client(server.url, token=scoped) as elsewhere:
        sent = bot.publish(room, "v1")
        newer = elsewhere.edit(room, sent["id"], "v2 from elsewhere")
        with pytest.raises(EditConflict) as caught:
            bot.edit(room, sent["id"], "v2 from here", base_edited_ts=0)  # started before that edit
        assert (caught.value.status, caught.value.code) == (409, "edit_conflict")
        assert (caught.value.text, caught.value.edited_ts) == ("v2 from elsewhere", newer["edited_ts"])
        assert isinstance(caught.value, errors.Conflict)  # still a Conflict, for older callers
        assert bot.history(room).messages[0].text == "v2 from elsewhere"  # nothing changed


def test_an_edit_from_the_current_version_is_stored(server, room, scoped):
    with Client(server.url, token=scoped) as bot:
        sent = bot.publish(room, "v1")
        first = bot.edit(room, sent["id"], "v2", base_edited_ts=0)
        assert bot.edit(room, sent["id"], "v3", base_edited_ts=first["edited_ts"])["text"] == "v3"


def test_the_async_client_raises_edit_conflict_too(server, room, scoped):
    async def flow():
        async with AsyncClient(server.url, token=scoped, backoff=FAST) as bot:
            sent = await bot.publish(room, "v1")
            newer = await bot.edit(room, sent["id"], "v2")
            with pytest.raises(EditConflict) as caught:
                await bot.edit(room, sent["id"], "v3", base_edited_ts=0)
            return caught.value, newer
    error, newer = asyncio.run(flow())
    assert (error.text, error.edited_ts) == ("v2", newer["edited_ts"])


def test_the_async_client_edits_and_deletes_too(server, room, scoped):
    async def flow():
        async with AsyncClient(server.url, token=scoped, backoff=FAST) as bot:
            sent = await bot.publish(room, "v1")
            assert (await bot.edit(room, sent["id"], "v2"))["text"] == "v2"
            assert await bot.delete(room, sent["id"]) is None
    asyncio.run(flow())


@pytest.mark.parametrize("where,user", [("other", "feed"), ("own", "someone-else")])
def test_a_scoped_token_outside_its_scope_is_forbidden(server, room, scoped, where, user):
    with Client(server.url, token=scoped) as bot:
        with pytest.raises(errors.Forbidden) as caught:
            bot.publish(room if where == "own" else room + "-other", "hi", user=user)
    assert caught.value.status == 403 and caught.value.message


def test_a_revoked_scoped_token_is_unauthorized(server, redis_client, room, scoped):
    tokens.PublishTokens(redis_client).revoke(scoped.split("_")[1])
    with Client(server.url, token=scoped) as bot:
        with pytest.raises(Unauthorized) as caught:
            bot.publish(room, "hi", user="feed")
    assert caught.value.code == "token_invalid"


@pytest.mark.parametrize("text,user", [("", "bot"), (" \n ", "bot"), ("x" * 2001, "bot"), ("hi", "")])
def test_refused_content_is_unprocessable(ripple, room, text, user):
    with pytest.raises(Unprocessable) as caught:
        ripple.publish(room, text, user=user)
    assert caught.value.status == 422 and caught.value.message


def test_two_history_bounds_are_a_bad_request_with_the_servers_sentence(ripple, room):
    with pytest.raises(BadRequest) as caught:
        ripple.history(room, before="1-0", after="1-0")
    assert caught.value.message == "Give at most one of before, after and around."


def test_a_bad_room_name_is_a_bad_request_everywhere(ripple):
    with pytest.raises(BadRequest):
        ripple.publish("no spaces", "hi", user="bot")
    with pytest.raises(BadRequest):
        ripple.history("a\u200bb")  # an invisible character
    with pytest.raises(BadRequest):
        next(iter(ripple.subscribe("-x")))


def test_a_server_that_cannot_be_reached_fails_with_the_key_to_retry_with():
    with Client("http://127.0.0.1:%d" % free_port(), token=TOKEN,
                backoff=Backoff(initial=0.01, maximum=0.02, attempts=3)) as client:
        with pytest.raises(ConnectionFailed) as caught:
            client.publish("lobby", "hi", user="bot", idempotency_key="k-1")
    assert caught.value.idempotency_key == "k-1" and caught.value.status is None


@pytest.mark.parametrize("status,body,kind,code", [
    (400, b'{"error": "Bad."}', BadRequest, None),
    (401, b'{"error": "Who?"}', Unauthorized, None),
    (403, b'{"error": "No."}', errors.Forbidden, None),
    (404, b'{"error": "None."}', errors.NotFound, None),
    (409, b'{"error": "Taken."}', errors.Conflict, None),
    (429, b'{"error": "Slow down."}', errors.RateLimited, None),
    (503, b'{"error": "Down.", "code": "unavailable"}', ServiceUnavailable, "unavailable"),
    (504, b'{"error": "Maybe.", "code": "unconfirmed"}', Unconfirmed, "unconfirmed"),
    (502, b"<html>bad gateway</html>", errors.ServerError, None),
    (418, b"", RippleError, None),
])
def test_each_status_has_its_error_type(status, body, kind, code):
    error = errors.from_response(status, {"retry-after": "5"}, body, "key")
    assert type(error) is kind and error.status == status and error.code == code
    assert error.retry_after == 5.0 and error.idempotency_key == "key" and error.message


def test_an_edit_conflict_carries_the_messages_text_and_edited_ts_now():
    error = errors.from_response(409, {}, b'{"error": "Changed.", "code": "edit_conflict", "text": "now",'
                                          b' "edited_ts": 1700000000000}')
    assert type(error) is EditConflict and (error.text, error.edited_ts) == ("now", 1700000000000)


# --- How a subscription reads events and times its reconnects (no server needed) ---------------

def sse(event=None, data="", id=None, retry=None):
    return ServerSentEvent(event, data, id, retry)


MESSAGE = '{"id":"%s","ts":1,"room":"r","user":"u","text":"t"}'


def test_keep_alives_and_bare_retries_are_heard_but_not_handed_on():
    state = StreamState(None, FAST)
    assert state.feed(sse("ping", "")) is None
    assert state.feed(sse(None, "", retry=2000)) is None and state.retry == 2.0


def test_events_this_client_does_not_know_are_handed_on_as_they_came():
    event = StreamState(None, FAST).feed(sse("reaction", '{"id": "5-0"}', id="9-0"))
    assert isinstance(event, Event) and (event.name, event.json(), event.cursor) == ("reaction", {"id": "5-0"}, "9-0")


def test_a_message_delivered_before_is_never_handed_on_again():
    state = StreamState(None, FAST)
    assert isinstance(state.feed(sse("message", MESSAGE % "7-1", id="7-1")), Message)
    assert state.feed(sse("message", MESSAGE % "7-1", id="7-1")) is None
    assert state.feed(sse("message", MESSAGE % "7-0", id="7-0")) is None
    assert isinstance(state.feed(sse("message", MESSAGE % "8-0", id="8-0")), Message)
    assert state.skipped == 2 and state.cursor == "8-0"


def test_a_removal_is_typed_and_ends_the_subscription():
    state = StreamState(None, FAST)
    event = state.feed(sse("removed", '{"room": "r", "reason": "banned", "message": "You were banned from #r.",'
                                      ' "until": 1700000000000, "seconds_left": 60}'))
    assert isinstance(event, Removed) and (event.room, event.reason, event.until) == ("r", "banned", 1700000000000)
    assert event.message == "You were banned from #r." and state.ended


def test_a_busy_server_is_left_alone_for_as_long_as_it_asks():
    state = StreamState(None, FAST)
    state.feed(sse(None, "", retry=100))
    event = state.feed(sse("busy", '{"error": "Full.", "status": 503, "retry_after": 3}'))
    assert isinstance(event, Busy) and event.retry_after == 3
    assert 3 <= state.wait() <= 3.1


def test_failed_connections_back_off_up_to_the_maximum_and_ready_resets_them():
    state = StreamState("1-0", Backoff(initial=1, maximum=4, attempts=1))
    waits = []
    for _ in range(6):
        state.failed()
        waits.append(state.wait())
    assert 0.5 <= waits[0] <= 1 and all(2 <= w <= 4 for w in waits[3:])
    state.feed(sse("ready", '{"room": "r"}', id="2-0"))
    assert state.failures == 0 and state.cursor == "2-0"
    assert state.request_headers("tok") == {"Accept": "text/event-stream", "Authorization": "Bearer tok",
                                            "Last-Event-ID": "2-0"}
