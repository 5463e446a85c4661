"""Scale out: several Ripple hosts on one Redis deployment, and a Sentinel failover mid-traffic
that loses no acknowledged message."""
import json
import threading
import time
import urllib.request
import uuid

import pytest
from redis.crc import key_slot

from app import keys

from .conftest import SERVER_ENV, TOKEN
from .servers import Gunicorn, wait_until
from .sse import SSEStream
from .topologies import SentinelSet
from .web import Browser

pytestmark = pytest.mark.scaleout


def test_every_key_and_channel_of_a_room_shares_one_cluster_slot():
    k = keys.RoomKeys("lobby")
    names = [k.log, k.channel, k.meta, k.online, k.idempotency("abc")]
    assert len({key_slot(n.encode()) for n in names}) == 1
    p = keys.PersonKeys("sid123")
    assert len({key_slot(n.encode()) for n in (p.log, p.channel, p.meta, p.streams, p.idempotency("x"))}) == 1


@pytest.fixture(scope="module")
def two_hosts(redis_url, tmp_path_factory):
    """Two Ripple instances (separate masters, as separate hosts would be) on one Redis."""
    hosts = [Gunicorn(tmp_path_factory.mktemp("host%d" % i), redis_url=redis_url, workers=2,
                      env=SERVER_ENV).start() for i in range(2)]
    yield hosts
    for host in hosts:
        host.stop()


def test_post_on_one_host_stream_from_another_and_resume_on_the_first(two_hosts, room):
    a, b = two_hosts
    bob = Browser(b.url)
    assert bob.sign_in("bob-" + uuid.uuid4().hex[:6]) == 200
    ann = Browser(a.url)
    assert ann.sign_in("ann-" + uuid.uuid4().hex[:6]) == 200
    with bob.stream(room) as stream:
        stream.until("ready")
        assert ann.post(room, "from host a")[0] == 201
        assert stream.messages(1)[0].json()["text"] == "from host a"
        assert ann.direct(bob.name, "a direct one, across hosts")[0] == 201
        assert stream.messages(1, name="direct")[0].json()["from"] == ann.name
    missed = [ann.post(room, "missed %d" % i)[1]["id"] for i in range(3)]
    # Bob's cookie works on host a too (same SECRET_KEY): the reconnect lands on the other host.
    bob_on_a = Browser(a.url)
    bob_on_a.jar = bob.jar
    with bob_on_a.stream(room, {"Last-Event-ID": stream.last_id}) as again:
        _, before = again.until("ready")
        assert [e.json()["id"] for e in before if e.name == "message"] == missed
        assert not [e for e in before if e.name == "direct"]  # already had it: not again
    with urllib.request.urlopen("%s/rooms/%s/presence" % (a.url, room), timeout=10) as r:
        assert json.loads(r.read())["online"] in ([], [bob.name])  # bob's grace may still run


@pytest.mark.slow
def test_sentinel_failover_mid_traffic_loses_no_acknowledged_message(tmp_path, room, fault_report):
    redis_set = SentinelSet(str(tmp_path / "redis"))
    env = {**SERVER_ENV, "RIPPLE_REPLICA_ACKS": "1", "RIPPLE_REPLICA_TIMEOUT_MS": "500",
           "RIPPLE_REDIS_SOCKET_TIMEOUT": "1", "RIPPLE_REDIS_RETRY_AFTER": "1"}
    hosts = [Gunicorn(tmp_path / ("h%d" % i), redis_url=redis_set.url, workers=2, env=env) for i in range(2)]
    for i, host in enumerate(hosts):
        (tmp_path / ("h%d" % i)).mkdir()
        host.start()
    acked, delivered, stop = {}, [], threading.Event()

    def publisher():
        """Post 60 messages through host 0, each retried with its key until acknowledged."""
        for i in range(60):
            key, deadline = uuid.uuid4().hex, time.monotonic() + 30
            while time.monotonic() < deadline:
                request = urllib.request.Request(
                    "%s/rooms/%s/messages" % (hosts[0].url, room), method="POST",
                    data=json.dumps({"text": "m%03d" % i, "user": "pub"}).encode(),
                    headers={"Content-Type": "application/json", "Authorization": "Bearer " + TOKEN,
                             "Idempotency-Key": key})
                try:
                    with urllib.request.urlopen(request, timeout=5) as response:
                        acked["m%03d" % i] = json.loads(response.read())["id"]
                        break
                except OSError:
                    time.sleep(0.2)  # 503 during the failover: retry, same key
            time.sleep(0.02)

    def reader():
        """Stream from host 1, reconnecting with the cursor like an EventSource."""
        cursor = "0-0"  # from the room's beginning
        while not stop.is_set():
            try:
                headers = {"Last-Event-ID": cursor} if cursor else {}
                with SSEStream("%s/rooms/%s/events" % (hosts[1].url, room), headers, timeout=5) as s:
                    while not stop.is_set():
                        event = s.next(1.0)
                        if event is None:
                            break
                        if event.name == "message":
                            delivered.append((event.json()["text"], event.json()["id"]))
                        cursor = s.last_id or cursor
            except (OSError, TimeoutError, AssertionError):
                time.sleep(0.2)

    threads = [threading.Thread(target=publisher), threading.Thread(target=reader)]
    try:
        for t in threads:
            t.start()
        wait_until(lambda: len(acked) >= 20, 30, message="traffic before the failover")
        failover_seconds = redis_set.kill_master()
        threads[0].join(90)
        try:
            wait_until(lambda: {t for t, _ in delivered} >= set(acked), 30, 0.2, "every acknowledged message delivered")
        except AssertionError:
            raise AssertionError("acked %d, delivered %d, missing %s\n%s" % (
                len(acked), len(delivered), sorted(set(acked) - {t for t, _ in delivered})[:10],
                hosts[1].log_tail(30)))
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        for host in hosts:
            host.stop()
        redis_set.stop()
    texts = [t for t, _ in delivered]
    lost = set(acked) - set(texts)
    duplicated_ids = len(delivered) - len(set(i for _, i in delivered))
    print("sentinel failover: %.1f s; acked %d, delivered %d, lost %d, duplicate ids %d, repeated texts %d"
          % (failover_seconds, len(acked), len(delivered), len(lost), duplicated_ids, len(texts) - len(set(texts))))
    fault_report.add("Sentinel master SIGKILLed mid-traffic (replica-ack on), 2 hosts", 1, len(acked),
                     [[i for t, i in delivered if t in acked]])
    assert len(acked) == 60 and not lost and duplicated_ids == 0
    # The acknowledged copy of every message is the one delivered (ids match the acks).
    assert {i for t, i in delivered if t in acked} >= set(acked.values())
