"""Outgoing webhooks against real receivers (http.server on loopback) and a 2-worker Gunicorn:
signed deliveries, retries after 5xx and 429 (honouring Retry-After) but not after 400, a worker
killed mid-delivery loses nothing, a hanging endpoint delays neither chat nor other webhooks,
and a bot's answer is posted in the room."""
import json
import os
import re
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import psutil
import pytest
import redis as redis_py
import requests

from app import create_app
from app.ops import topology
from app.ops.embedded_redis import EmbeddedRedis
from app.ops.services import services
from app.rooms import keys
from app.webhooks import sender, signing

from .conftest import LIMITS_OFF, SERVER_ENV, TOKEN, post
from .receivers import Receiver
from .servers import Gunicorn, free_port, wait_until
from .sse import SSEStream
from .support import flask_cli
from .web import Browser

ATTEMPT_SECONDS = 2   # each attempt's deadline on the test server; a lease is 2 x this + 5 s
ADMIN_TOKEN = "test-admin-token"
HOOK_ENV = {"RIPPLE_WEBHOOK_TIMEOUT_SECONDS": str(ATTEMPT_SECONDS), "RIPPLE_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
            "RIPPLE_ADMIN_TOKEN": ADMIN_TOKEN}


@pytest.fixture(scope="module")
def hook_redis(tmp_path_factory):
    """A Redis of this module's own: webhooks registered here reach no other test's server."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("hooks-redis"), port=free_port(), appendonly=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hook_server(hook_redis, tmp_path_factory):
    gunicorn = Gunicorn(tmp_path_factory.mktemp("hooks-gunicorn"), redis_url=hook_redis.url, workers=2,
                        env={**SERVER_ENV, **HOOK_ENV})
    gunicorn.start()
    yield gunicorn
    gunicorn.halt()


@pytest.fixture
def hook_client(hook_redis):
    with redis_py.Redis.from_url(hook_redis.url, decode_responses=True) as client:
        yield client


def admin(base_url, method, path, body=None, token=TOKEN):
    """Call the admin API with the operator's token; return (status, JSON)."""
    request = urllib.request.Request(base_url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"{}")


@pytest.fixture
def register(hook_server):
    """register(url, **fields) -> the webhook (with its secret); every one is removed after."""
    made = []

    def register(url, events="message", rooms="*", bot=None):
        status, hook = admin(hook_server.url, "POST", "/admin/webhooks",
                             {"url": url, "events": events, "rooms": rooms, "bot": bot})
        assert status == 201, hook
        made.append(hook["id"])
        return hook

    yield register
    for hook_id in made:
        admin(hook_server.url, "DELETE", "/admin/webhooks/" + hook_id)


def log(base_url, hook_id):
    return admin(base_url, "GET", "/admin/webhooks/%s/deliveries" % hook_id)[1]["deliveries"]


def worker_sending_from(gunicorn, port):
    """The pid of the worker whose outgoing connection has local ``port``."""
    for pid in gunicorn.worker_pids():
        try:
            if any(c.laddr and c.laddr.port == port for c in psutil.Process(pid).net_connections("tcp")):
                return pid
        except psutil.NoSuchProcess:
            continue
    return None


def test_a_delivery_is_signed_with_the_secret_over_timestamp_and_body(hook_server, register, room):
    with Receiver() as receiver:
        hook = register(receiver.url, rooms=room)
        status, message = post(hook_server.url, room, "hello hooks", user="ann")
        assert status == 201
        got = wait_until(receiver.requests, 30, message="a delivery")[0]
    headers = got.headers
    assert signing.verify(hook["secret"], got.body, headers["Ripple-Timestamp"], headers["Ripple-Signature"])
    assert not signing.verify("whsec_other", got.body, headers["Ripple-Timestamp"], headers["Ripple-Signature"])
    assert not signing.verify(hook["secret"], got.body + b" ", headers["Ripple-Timestamp"], headers["Ripple-Signature"])
    assert headers["Ripple-Event"] == "message"
    assert headers["Ripple-Delivery-Id"].startswith(hook["id"] + "-")  # and the event's id in the queue
    assert got.json == {"id": headers["Ripple-Delivery-Id"], "type": "message", "webhook": hook["id"],
                        "room": room, "created": got.json["created"], "data": message}
    assert abs(got.json["created"] - message["ts"]) < 5000


def test_only_matching_rooms_and_kinds_are_delivered(hook_server, register, room):
    with Receiver() as receiver:
        register(receiver.url, rooms=room + "-a*")
        register(receiver.url, events="join,leave", rooms=room + "-b")
        post(hook_server.url, room + "-b", "not for either")
        post(hook_server.url, room + "-a1", "for the first")
        wait_until(receiver.requests, 30, message="a delivery")
        post(hook_server.url, room + "-a2", "a marker")
        wait_until(lambda: len(receiver.requests()) >= 2, 30, message="the marker")
        assert [r.json["data"]["text"] for r in receiver.requests()] == ["for the first", "a marker"]


def test_a_500_is_retried_with_the_same_delivery_id_until_it_succeeds(hook_server, register, room):
    def answer(request):
        return (500, {}, b"down") if request.number < 2 else (200, {}, b"")

    with Receiver(answer) as receiver:
        hook = register(receiver.url, rooms=room)
        post(hook_server.url, room, "keep trying")
        wait_until(lambda: len(receiver.requests()) >= 3, 30, message="three attempts")
        first, second, third = receiver.requests()[:3]
        assert first.delivery == second.delivery == third.delivery
        assert first.body == second.body == third.body  # only the timestamp and signature change
        for got in (first, second, third):
            assert signing.verify(hook["secret"], got.body, got.headers["Ripple-Timestamp"],
                                  got.headers["Ripple-Signature"])
        attempts = wait_until(lambda: [a for a in log(hook_server.url, hook["id"]) if a["outcome"] == "delivered"]
                              and log(hook_server.url, hook["id"]), 10, message="the log")
    assert [(a["attempt"], a["status"], a["outcome"]) for a in reversed(attempts)] == [
        (1, 500, "retrying"), (2, 500, "retrying"), (3, 200, "delivered")]
    assert all(a["latency_ms"] >= 0 and a["delivery"] == first.delivery for a in attempts)
    time.sleep(1.5)  # nothing more comes once it was delivered (backoff here is 0.2 s, 0.4 s...)
    assert len(receiver.requests()) == 3


def test_a_400_is_not_retried(hook_server, register, room):
    with Receiver(lambda request: (400, {}, b"no")) as receiver:
        hook = register(receiver.url, rooms=room)
        post(hook_server.url, room, "refused")
        wait_until(receiver.requests, 30, message="the attempt")
        attempts = wait_until(lambda: log(hook_server.url, hook["id"]), 10, message="the log")
        time.sleep(2)  # several backoffs of the test server (0.2 s, 0.4 s, 0.8 s)
        assert len(receiver.requests()) == 1
    assert [(a["status"], a["outcome"]) for a in attempts] == [(400, "failed")]
    assert "not retried" in attempts[0]["error"]


def test_a_429_is_retried_no_sooner_than_its_retry_after(hook_server, register, room):
    def answer(request):
        return (429, {"Retry-After": "3"}, b"") if request.number == 0 else (200, {}, b"")

    with Receiver(answer) as receiver:
        register(receiver.url, rooms=room)
        post(hook_server.url, room, "slow down")
        wait_until(lambda: len(receiver.requests()) >= 2, 30, message="the second attempt")
        first, second = receiver.requests()[:2]
    assert first.delivery == second.delivery
    assert second.at - first.at >= 2.9  # the backoff alone would have been ~0.2 s


def attempts_counted(base_url):
    """``ripple_webhook_attempts_total`` by outcome, as /metrics serves it (summed over workers)."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return {outcome: float(value) for outcome, value in
            re.findall(r'^ripple_webhook_attempts_total\{outcome="(\w+)"\} (\S+)$', text, re.M)}


def test_attempts_are_counted_by_outcome_in_the_metrics(hook_server, register, room):
    before = attempts_counted(hook_server.url)
    assert set(before) == {"delivered", "retrying", "gave_up", "failed"}  # every series from the start
    with Receiver(lambda request: (500, {}, b"") if request.number == 0 else (200, {}, b"")) as receiver:
        register(receiver.url, rooms=room)
        post(hook_server.url, room, "count me")
        wait_until(lambda: attempts_counted(hook_server.url)["delivered"] > before["delivered"], 30,
                   message="the delivery counted")
    after = attempts_counted(hook_server.url)
    assert after["retrying"] - before["retrying"] == 1 and after["delivered"] - before["delivered"] == 1


def queue_events(base_url, hook_id):
    """``ripple_webhook_queue_events`` of one webhook by state, as /metrics serves it."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return {state: float(value) for state, value in re.findall(
        r'^ripple_webhook_queue_events\{state="(\w+)",webhook="%s"\} (\S+)$' % hook_id, text, re.M)}


def test_the_metrics_show_what_a_stuck_webhook_has_not_finished(hook_server, register, room):
    with Receiver() as receiver:
        receiver.answer = receiver.hang()
        hook = register(receiver.url, rooms=room)
        assert queue_events(hook_server.url, hook["id"]) == {"waiting": 0, "in_flight": 0, "retrying": 0}
        for n in range(3):
            post(hook_server.url, room, "queued %d" % n)
        wait_until(receiver.requests, 30, message="the first attempt, held")
        wait_until(lambda: sum(queue_events(hook_server.url, hook["id"]).values()) == 3, 30,
                   message="three events not finished")
        receiver.release.set()
        wait_until(lambda: queue_events(hook_server.url, hook["id"]) == {"waiting": 0, "in_flight": 0,
                                                                          "retrying": 0}, 30,
                   message="the queue drained")


def test_the_metrics_show_a_failing_webhooks_events_waiting_for_their_retry(hook_server, register, room):
    with Receiver(lambda request: (503, {"Retry-After": "120"}, b"down")) as receiver:
        hook = register(receiver.url, rooms=room)
        for n in range(3):
            post(hook_server.url, room, "parked %d" % n)
        wait_until(lambda: len(receiver.requests()) >= 3, 30, message="three first attempts")
        wait_until(lambda: queue_events(hook_server.url, hook["id"]).get("retrying") == 3, 30,
                   message="three events parked for their retry")


def test_a_worker_killed_mid_delivery_does_not_lose_the_event(hook_server, register, room):
    def answer(request):
        if request.number == 0:  # hold the first attempt until its sender has been killed
            receiver.release.wait(60)
        return 200, {}, b""

    with Receiver(answer) as receiver:
        hook = register(receiver.url, rooms=room)
        status, message = post(hook_server.url, room, "survive a kill")
        assert status == 201
        first = wait_until(receiver.requests, 30, message="the first attempt")[0]
        pid = wait_until(lambda: worker_sending_from(hook_server, first.port), 10, message="its worker")
        os.kill(pid, signal.SIGKILL)
        # Another worker (the survivor, or the one gunicorn starts instead) takes it over.
        again = wait_until(lambda: receiver.requests()[1:], 60, message="the event delivered again")[0]
        receiver.release.set()
    assert again.delivery == first.delivery and first.json["data"]["id"] == message["id"]
    assert first.delivery.startswith(hook["id"] + "-")
    assert again.body == first.body
    wait_until(lambda: len(hook_server.worker_pids()) == 2, 30, message="gunicorn's replacement worker")


def test_a_hanging_endpoint_delays_neither_chat_nor_another_webhook(hook_server, register, room):
    with Receiver() as hanging, Receiver() as healthy:
        hanging.answer = hanging.hang()
        register(hanging.url, rooms=room)
        register(healthy.url, rooms=room)
        post(hook_server.url, room, "warm-up")
        wait_until(lambda: hanging.open >= 1 and healthy.requests(), 30, message="both webhooks delivering")
        stream = SSEStream("%s/rooms/%s/events" % (hook_server.url, urllib.parse.quote(room)))
        try:
            stream.until("ready")  # subscribed: what is posted from now on reaches it
            lags = []
            for i in range(20):
                sent = time.monotonic()
                status, _ = post(hook_server.url, room, "chat %d" % i)
                assert status == 201
                event = stream.messages(1, timeout=10)[0]
                lags.append(time.monotonic() - sent)
                assert event.json()["text"] == "chat %d" % i
        finally:
            stream.close()
        assert hanging.open >= 1  # still held: chat went on beside it
        wait_until(lambda: len(healthy.requests()) >= 21, 30, message="the healthy webhook's deliveries")
    assert max(lags) < 2.0, lags
    assert sorted(r.json["data"]["text"] for r in healthy.requests()) == sorted(
        ["warm-up"] + ["chat %d" % i for i in range(20)])


def test_a_bot_answers_a_message_in_the_room(hook_server, register, room):
    def answer(request):
        text = request.json["data"]["text"]
        if text.startswith("!echo "):
            return 200, {"Content-Type": "application/json"}, json.dumps(
                {"text": "echo: " + text[6:], "reply_to": request.json["data"]["id"]}).encode()
        return 204, {}, b""

    with Receiver(answer) as receiver:
        hook = register(receiver.url, rooms=room, bot="echo-bot")
        _, asked = post(hook_server.url, room, "!echo 你好", user="ann")

        def answered():
            with urllib.request.urlopen("%s/rooms/%s/messages" % (hook_server.url, room), timeout=10) as r:
                found = json.loads(r.read())["messages"]
            return [m for m in found if m["user"] == "echo-bot"]

        reply = wait_until(answered, 30, message="the bot's answer")[0]
        assert reply["text"] == "echo: 你好" and reply["bot"] is True
        assert reply["reply_to"]["id"] == asked["id"] and reply["reply_to"]["user"] == "ann"
        # Its own answer comes back to it as an event? No: a bot never hears itself.
        post(hook_server.url, room, "marker")
        wait_until(lambda: any(r.json["data"]["text"] == "marker" for r in receiver.requests()), 30)
        assert [r.json["data"]["text"] for r in receiver.requests()] == ["!echo 你好", "marker"]
        assert log(hook_server.url, hook["id"])[-1]["reply"] == "posted"


def test_a_bots_answer_is_not_posted_in_a_room_that_bans_its_name(hook_server, hook_redis, register, room):
    def answer(request):
        return 200, {"Content-Type": "application/json"}, json.dumps({"text": "still here"}).encode()

    def bot_posts():
        with urllib.request.urlopen("%s/rooms/%s/messages" % (hook_server.url, room), timeout=10) as r:
            return [m for m in json.loads(r.read())["messages"] if m["user"] == "ban-bot"]

    with Receiver(answer) as receiver:
        hook = register(receiver.url, rooms=room, bot="ban-bot")
        # The same key that stops a guest or a scoped token posting under the name (folded).
        assert flask_cli(hook_redis.url, "rooms", "ban", room, "name:Ban-Bot").returncode == 0
        post(hook_server.url, room, "anyone there?", user="ann")
        entry = wait_until(lambda: log(hook_server.url, hook["id"]), 30, message="the delivery")[-1]
        assert entry["outcome"] == "delivered"
        assert entry["reply"] == "Not posted: #%s bans the bot's name (ban-bot)." % room
        assert bot_posts() == []
        assert flask_cli(hook_redis.url, "rooms", "unban", room, "name:ban-bot").returncode == 0
        post(hook_server.url, room, "and now?", user="ann")
        assert wait_until(bot_posts, 30, message="the bot's answer once the ban is lifted")[0]["text"] == "still here"
        # The log notes the reply after the post it made: under load, a moment after (a CI run).
        wait_until(lambda: log(hook_server.url, hook["id"])[0]["reply"] == "posted", 30,
                   message="the delivery's reply noted")


def test_the_admin_api_is_for_administrators_and_the_operator_token(hook_server, register):
    status, body = admin(hook_server.url, "GET", "/admin/webhooks", token="not-the-token")
    assert status == 401 and body["code"] == "signed_out"
    request = urllib.request.Request(hook_server.url + "/admin/webhooks")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    refused.value.close()
    hook = register("https://hooks.example/ripple")
    listed = admin(hook_server.url, "GET", "/admin/webhooks", token=ADMIN_TOKEN)[1]["webhooks"]
    assert [h["id"] for h in listed if h["id"] == hook["id"]] and all("secret" not in h for h in listed)
    assert admin(hook_server.url, "GET", "/admin/webhooks/" + hook["id"])[1]["url"] == "https://hooks.example/ripple"
    for bad in ({"url": "ftp://x"}, {"url": "http://x", "events": "message,nope"}, {"url": "http://x", "rooms": "a b"},
                {"url": "http://x", "bot": " "}, {}):
        status, body = admin(hook_server.url, "POST", "/admin/webhooks", bad)
        assert status == 400 or status == 422, (bad, status)
        assert body["error"] and body["code"] == "invalid"
    assert admin(hook_server.url, "GET", "/admin/webhooks/nope")[0] == 404
    guest = Browser(hook_server.url)
    assert guest.sign_in("guest-" + hook["id"][:6]) == 200
    status, _, body = guest.request("GET", "/admin/webhooks")
    assert status == 403 and json.loads(body)["code"] == "not_admin"
    status, _, body = guest.request("POST", "/admin/webhooks", body={"url": "https://hooks.example/x"})
    assert status == 403
    assert admin(hook_server.url, "DELETE", "/admin/webhooks/" + hook["id"])[0] == 200
    assert admin(hook_server.url, "GET", "/admin/webhooks/" + hook["id"])[0] == 404


def hooks_cli(redis_url, *args):
    return flask_cli(redis_url, "webhooks", *args)


def test_the_cli_adds_lists_and_removes_and_shows_the_secret_once(hook_redis, hook_client):
    made = hooks_cli(hook_redis.url, "add", "https://hooks.example/cli", "--events", "message,join",
                     "--rooms", "ops,deploy-*", "--bot", "deploy-bot")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("whsec_") and "shown only this once" in made.stderr
    listed = hooks_cli(hook_redis.url, "list")
    assert "https://hooks.example/cli" in listed.stdout and "message,join" in listed.stdout
    assert secret not in listed.stdout
    hook_id = [line.split()[0] for line in listed.stdout.splitlines() if "hooks.example/cli" in line][0]
    assert hooks_cli(hook_redis.url, "add", "not a url").returncode == 2
    assert hooks_cli(hook_redis.url, "remove", hook_id).returncode == 0
    assert hook_id not in hooks_cli(hook_redis.url, "list").stdout
    assert hooks_cli(hook_redis.url, "remove", hook_id).returncode == 2


def test_a_webhook_failing_for_a_whole_day_is_disabled_and_shown_so(hook_server, register, hook_client, room):
    with Receiver(lambda request: (503, {}, b"")) as receiver:
        # Basic auth in the URL: its password must not reach the log that says it was disabled
        hook = register(receiver.url.replace("http://", "http://ops:hunter2@"), rooms=room)
        day_ago = int(time.time() * 1000) - 25 * 3600 * 1000  # its failures began a day ago
        hook_client.hset("ripple:{webhooks}:h:%s" % hook["id"], "failing_since", day_ago)
        post(hook_server.url, room, "anyone there?")

        def disabled():
            shown = admin(hook_server.url, "GET", "/admin/webhooks/" + hook["id"])[1]
            return not shown["enabled"] and shown

        shown = wait_until(disabled, 30, message="the webhook disabled")
        assert "24 hours" in shown["disabled_reason"] and shown["failing_since"] == day_ago
        assert shown["deliveries"][0]["status"] == 503
        time.sleep(3)  # every worker has noticed (they look every 2 s)
        before = len(receiver.requests())
        post(hook_server.url, room, "nobody is listening")
        time.sleep(2)
        assert len(receiver.requests()) == before
        status, enabled = admin(hook_server.url, "POST", "/admin/webhooks/%s/enable" % hook["id"])
        assert status == 200 and enabled["enabled"] and enabled["failing_since"] is None
    log = hook_server.log_tail(400)
    assert "webhook disabled" in log and "hunter2" not in log, log


def test_edits_reactions_and_deletions_reach_a_webhook_that_asked_for_them(hook_server, register, room):
    ann = Browser(hook_server.url)
    assert ann.sign_in("ann-" + room[-6:]) == 200
    with Receiver() as receiver:
        register(receiver.url, events="edit,reaction,delete", rooms=room)
        status, message = ann.post(room, "frist")
        assert status == 201
        mid = message["id"]
        assert ann.request("PATCH", "/rooms/%s/messages/%s" % (room, mid), body={"text": "first"})[0] == 200
        assert ann.request("PUT", "/rooms/%s/messages/%s/reactions/%s" % (
            room, mid, urllib.parse.quote("👍")))[0] == 200
        assert ann.request("DELETE", "/rooms/%s/messages/%s" % (room, mid))[0] == 204
        wait_until(lambda: len(receiver.requests()) >= 3, 30, message="three change events")
        got = sorted(receiver.requests(), key=lambda r: r.json["data"]["id"])
    assert [r.json["type"] for r in got] == ["edit", "reaction", "delete"]  # not the message itself
    assert [r.headers["Ripple-Event"] for r in got] == ["edit", "reaction", "delete"]
    edit, reaction, deletion = (r.json["data"] for r in got)
    assert edit["message_id"] == reaction["message_id"] == deletion["message_id"] == mid
    assert edit["text"] == "first" and reaction["emoji"] == "👍" and reaction["on"] is True
    assert all(r.json["room"] == room for r in got) and len({r.delivery for r in got}) == 3


def test_a_burst_arrives_exactly_once_after_dedup_through_500s_and_a_killed_worker(hook_server, register, room):
    """Issue 19's 'done when': 200 messages, every first attempt answered 500, one worker
    SIGKILLed mid-burst: every acknowledged message reaches the receiver, signed, and after
    de-duplication by delivery id exactly once."""
    import concurrent.futures
    import threading

    attempts, lock = {}, threading.Lock()

    def answer(request):
        with lock:
            attempts[request.delivery] = attempts.get(request.delivery, 0) + 1
            first = attempts[request.delivery] == 1
        time.sleep(0.02)  # deliveries stay in flight a moment: the kill lands mid-delivery
        return (500, {}, b"not yet") if first else (200, {}, b"")

    def publish(i):
        key = "burst-%s-%d" % (room, i)
        deadline = time.monotonic() + 60
        while True:  # as a careful client does: the same idempotency key until an answer
            try:
                status, body = post(hook_server.url, room, "burst %d" % i, key=key, timeout=10)
                if status in (200, 201):
                    return body["id"]
            except OSError:
                pass  # the worker holding this connection was killed
            assert time.monotonic() < deadline, "message %d was never acknowledged" % i
            time.sleep(0.1)

    with Receiver(answer) as receiver:
        hook = register(receiver.url, rooms=room)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            first_half = list(pool.map(publish, range(100)))
            wait_until(lambda: receiver.open > 0 or len(receiver.requests()) > 150, 30, interval=0.005,
                       message="deliveries in flight")
            latest = receiver.requests()[-1]
            victim = worker_sending_from(hook_server, latest.port) or hook_server.worker_pids()[0]
            os.kill(victim, signal.SIGKILL)
            acked = first_half + list(pool.map(publish, range(100, 200)))

        def delivered():  # the message ids whose event was attempted again (and answered 200)
            return {r.json["data"]["id"] for r in receiver.requests() if attempts.get(r.delivery, 0) >= 2}

        wait_until(lambda: delivered() >= set(acked), 120, interval=0.2,
                   message="every acknowledged message delivered")
        got = receiver.requests()
    assert len(set(acked)) == 200
    deliveries = {}
    for r in got:
        deliveries.setdefault(r.json["data"]["id"], set()).add(r.delivery)
    assert set(deliveries) == set(acked)  # nothing unacknowledged, nothing foreign
    assert all(len(ids) == 1 and ids.pop().startswith(hook["id"] + "-") for ids in deliveries.values())
    assert all(signing.verify(hook["secret"], r.body, r.headers["Ripple-Timestamp"], r.headers["Ripple-Signature"])
               for r in got)
    by_delivery = {}
    for r in got:
        by_delivery.setdefault(r.delivery, set()).add(r.body)
    assert all(len(bodies) == 1 for bodies in by_delivery.values())  # retries carry the same body
    assert sorted(json.loads(next(iter(b)))["data"]["text"] for b in by_delivery.values()) == sorted(
        "burst %d" % i for i in range(200))
    wait_until(lambda: len(hook_server.worker_pids()) == 2, 30, message="gunicorn's replacement worker")


def test_join_and_leave_reach_a_webhook_that_asked_for_them(hook_server, register, room):
    bob = Browser(hook_server.url)
    assert bob.sign_in("bob-" + room[-6:]) == 200
    with Receiver() as receiver:
        register(receiver.url, events="join,leave", rooms=room)
        stream = bob.stream(room)
        try:
            stream.until("ready")
            wait_until(receiver.requests, 30, message="the join")
        finally:
            stream.close()
        wait_until(lambda: len(receiver.requests()) >= 2, 30, message="the leave")
        join, leave = (r.json for r in receiver.requests()[:2])
    assert (join["type"], leave["type"]) == ("join", "leave")
    assert join["data"]["name"] == leave["data"]["name"] == bob.name
    assert bob.name in join["data"]["online"] and bob.name not in leave["data"]["online"]
    assert join["room"] == leave["room"] == room


def test_the_admin_api_answers_in_the_readers_language(hook_server):
    request = urllib.request.Request(hook_server.url + "/admin/webhooks", method="POST",
                                     data=json.dumps({"url": "ftp://x"}).encode(),
                                     headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json",
                                              "Accept-Language": "zh-Hans"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    with refused.value as answer:
        body = json.loads(answer.read())
    assert answer.code == 400 and body["code"] == "invalid" and "必须" in body["error"]


def test_a_webhook_sent_as_anything_but_json_is_415_as_every_json_route(hook_server):
    request = urllib.request.Request(hook_server.url + "/admin/webhooks", method="POST",
                                     data=b"url=https://hooks.example/x",
                                     headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "text/plain"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    with refused.value as answer:
        body = json.loads(answer.read())
    assert answer.code == 415 and body == {
        "error": "Send the body as JSON, with Content-Type: application/json.", "code": "unsupported_type"}


def test_the_admin_page_shows_webhooks_and_enables_a_disabled_one_without_javascript(hook_redis):
    app = create_app({"TESTING": True, "REDIS_URL": hook_redis.url, "PUBLISH_TOKEN": TOKEN,
                      "SECRET_KEY": "test-secret", **LIMITS_OFF})
    client = app.test_client()
    name = "adm-" + uuid.uuid4().hex[:6]
    with app.app_context():
        services(app).accounts.create(name, "correct horse battery", admin=True)
        hooks = services(app).webhooks.hooks
        hook, _ = hooks.add("https://hooks.invalid/admin-page", "message,join", "ops-*", "ops-bot")
        hooks.disable(hook["id"], "It failed every delivery for 24 hours.")
    try:
        token = client.get("/session").get_json()["csrf_token"]
        signed_in = client.post("/session", json={"name": name, "password": "correct horse battery"},
                                headers={"X-CSRF-Token": token})
        token = signed_in.get_json()["csrf_token"]
        page = client.get("/admin", headers={"Accept": "text/html"}).get_data(as_text=True)
        row = page[page.index('data-webhook="%s"' % hook["id"]):].split("</tr>")[0]
        assert "https://hooks.invalid/admin-page" in row and "message, join" in row and "ops-bot" in row
        assert "disabled" in row and "24 hours" in row
        enabled = client.post("/admin/webhooks/%s/enable" % hook["id"],
                              data={"csrf_token": token, "next": "/admin"}, headers={"Accept": "text/html"})
        assert enabled.status_code == 303 and enabled.headers["Location"].endswith("/admin")
        with app.app_context():
            assert services(app).webhooks.hooks.get(hook["id"])["enabled"]
    finally:
        with app.app_context():
            services(app).webhooks.hooks.remove(hook["id"])
        topology.close_client(services(app).redis)


def test_a_message_that_mentions_someone_is_a_mention_event_too(hook_server, register, room):
    carol = Browser(hook_server.url)
    assert carol.sign_in("carol-" + room[-6:]) == 200
    assert carol.post(room, "hello")[0] == 201  # the room knows her name now
    with Receiver() as receiver:
        register(receiver.url, events="mention", rooms=room)
        post(hook_server.url, room, "no one in particular")
        _, message = post(hook_server.url, room, "@%s your build is green" % carol.name)
        got = wait_until(receiver.requests, 30, message="the mention")[0]
        time.sleep(1)  # the message that mentions nobody never comes
        assert len(receiver.requests()) == 1
    assert got.json["type"] == "mention" and got.headers["Ripple-Event"] == "mention"
    assert got.json["data"]["id"] == message["id"] and got.json["data"]["mentions"] == [carol.name]


def test_the_queue_is_trimmed_below_what_every_webhook_has_finished(hook_server, hook_redis, hook_client, register,
                                                                    room):
    from app.webhooks import queue
    with Receiver() as receiver:
        register(receiver.url, rooms=room)
        for i in range(5):
            post(hook_server.url, room, "trim me %d" % i)
        wait_until(lambda: len(receiver.requests()) >= 5, 30, message="five deliveries")
        queued = [mid for mid, fields in hook_client.xrange(queue.EVENTS) if fields.get("r") == room]
        app = create_app({"TESTING": True, "REDIS_URL": hook_redis.url, "SECRET_KEY": "test-secret", **LIMITS_OFF})
        dispatcher = services(app).webhooks.dispatcher
        dispatcher.consumer = "test-trim"
        try:  # every delivered event goes (acknowledged by the webhook's group); the newest stays
            wait_until(lambda: hook_client.delete(queue.TAG + ":trimming") is not None
                       and dispatcher.trim() is not None
                       and not set(queued[:-1]) & {mid for mid, _ in hook_client.xrange(queue.EVENTS)},
                       30, interval=0.5, message="the delivered events trimmed")
        finally:
            topology.close_client(services(app).redis)
        # The groups of the webhooks removed before are gone too: nothing older pins the queue.
        assert {g["name"] for g in hook_client.xinfo_groups(queue.EVENTS)} == {
            queue.group(h) for h in hook_client.smembers(queue.ALL)}


def test_an_unreachable_endpoints_log_entry_says_why_first():
    # urllib3's wrapping ("HTTPConnectionPool(...): Max retries exceeded ...") used to fill the
    # log's 200 characters before the reason: the operator read no "Connection refused".
    outcome = sender.send(requests.Session(), "http://127.0.0.1:%d/hook" % free_port(), b"{}", {}, 5, 1024)
    assert outcome.status is None and outcome.retry
    assert outcome.error.startswith("Could not reach the endpoint: Connection refused ("), outcome.error
    assert len(outcome.error) <= 230


@pytest.mark.parametrize("header, seconds", [("120", 120.0), ("²", None), ("", None), ("soon", None)])
def test_a_receivers_retry_after_is_read_as_seconds_or_not_at_all(header, seconds):
    from app.webhooks.sender import retry_after
    assert retry_after(header) == seconds


def test_a_redelivered_event_whose_bot_answers_differently_keeps_the_first_answer(hook_redis, room):
    # A redelivery (after a worker died mid-attempt) may meet a receiver that answers anew.
    app = create_app({"TESTING": True, "REDIS_URL": hook_redis.url, "SECRET_KEY": "test-secret", **LIMITS_OFF})
    with app.app_context():
        ripple = services(app)
        message = json.loads(ripple.store.publish(room, "ann", "!roll", bot=True)[0])
        hook = {"id": "h-" + uuid.uuid4().hex[:6], "bot": "dice"}
        said = [ripple.webhooks.dispatcher.reply(hook, room, message, "d-1", sender.Outcome(
                    200, body=json.dumps({"text": text}).encode(), content_type="application/json"))
                for text in ("4", "6")]
        history = ripple.store.redis.xrange(keys.RoomKeys(room).log)
    assert said == ["posted", "posted (the answer to this delivery's first attempt stands)"]
    assert len(history) == 2  # the message and one answer
