"""Scale out: several Ripple hosts on one Redis deployment, and a Sentinel failover mid-traffic
that loses no acknowledged message."""
import json
import os
import threading
import time
import urllib.request
import uuid

import pytest
import redis
from redis.crc import key_slot

from app.delivery import listener
from app.people import names
from app.rooms import keys

from .servers import Gunicorn, wait_until
from .sse import SSEStream
from .support import SERVER_ENV, TOKEN
from .test_hardening import From, an_address
from .topologies import DEBIAN_REDIS, ClusterSet, SentinelSet
from .web import Browser

pytestmark = pytest.mark.scaleout


def test_every_key_and_channel_of_a_room_shares_one_cluster_slot():
    k = keys.RoomKeys("lobby")
    names = [k.log, k.channel, k.meta, k.online, k.idempotency("abc")]
    assert len({key_slot(n.encode()) for n in names}) == 1
    p = keys.PersonKeys("sid123")
    assert len({key_slot(n.encode()) for n in (p.log, p.channel, p.meta, p.streams, p.session,
                                                p.idempotency("x"))}) == 1


@pytest.fixture(scope="module")
def two_hosts(server, other_host):
    """Two Ripple instances (separate masters, as separate hosts would be) on one Redis: the
    session's two (tests/conftest.py)."""
    return [server, other_host]


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
    bob_on_a = Browser(a.url).same_session_as(bob)
    with bob_on_a.stream(room, {"Last-Event-ID": stream.last_id}) as again:
        _, before = again.until("ready")
        assert [e.json()["id"] for e in before if e.name == "message"] == missed
        assert not [e for e in before if e.name == "direct"]  # already had it: not again
    with urllib.request.urlopen("%s/rooms/%s/presence" % (a.url, room), timeout=10) as r:
        assert json.loads(r.read())["online"] in ([], [bob.name])  # bob's grace may still run


def traffic_through_a_failover(hosts, room, kill, messages=60):
    """Post ``messages`` through host 0 (each retried with its key until acknowledged) while a
    reader streams from host 1 (reconnecting with its cursor); ``kill`` runs after a third.

    Returns (seconds the failover took, acked {text: id}, delivered [(text, id)]).
    """
    acked, delivered, stop = {}, [], threading.Event()

    def publisher():
        for i in range(messages):
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
        cursor = "0-0"  # from the room's beginning
        while not stop.is_set():
            try:
                with SSEStream("%s/rooms/%s/events" % (hosts[1].url, room), {"Last-Event-ID": cursor},
                               timeout=5) as s:
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
        wait_until(lambda: len(acked) >= messages // 3, 30, message="traffic before the failover")
        seconds = kill()
        threads[0].join(120)
        try:
            wait_until(lambda: {t for t, _ in delivered} >= set(acked), 30, 0.2, "acknowledged messages delivered")
        except AssertionError:
            raise AssertionError("acked %d, delivered %d, missing %s\n%s" % (
                len(acked), len(delivered), sorted(set(acked) - {t for t, _ in delivered})[:10],
                hosts[1].log_tail(30)))
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    return seconds, acked, delivered


def check_failover(label, seconds, acked, delivered, fault_report, messages=60):
    texts = [t for t, _ in delivered]
    lost = set(acked) - set(texts)
    duplicated_ids = len(delivered) - len(set(i for _, i in delivered))
    print("%s: %.1f s; acked %d, delivered %d, lost %d, duplicate ids %d, repeated texts %d"
          % (label, seconds, len(acked), len(delivered), len(lost), duplicated_ids, len(texts) - len(set(texts))))
    fault_report.add(label, 1, len(acked), [[i for t, i in delivered if t in acked]])
    assert len(acked) == messages and not lost and duplicated_ids == 0
    # The acknowledged copy of every message is the one delivered (ids match the acks).
    assert {i for t, i in delivered if t in acked} >= set(acked.values())


FAILOVER_ENV = {**SERVER_ENV, "RIPPLE_REPLICA_ACKS": "1", "RIPPLE_REPLICA_TIMEOUT_MS": "500",
                "RIPPLE_REDIS_SOCKET_TIMEOUT": "1", "RIPPLE_REDIS_RETRY_AFTER": "1"}


def start_hosts(tmp_path, url, env, count=2):
    hosts = []
    try:
        for i in range(count):
            (tmp_path / ("h%d" % i)).mkdir(exist_ok=True)
            hosts.append(Gunicorn(tmp_path / ("h%d" % i), redis_url=url, workers=2, env=env).start())
    except BaseException:  # noqa: BLE001 - cleaned up, then raised again
        for host in hosts:  # the caller never gets them to stop
            host.halt()
        raise
    return hosts


# Failover runs per test: 1 in the suite; RIPPLE_FAILOVER_RUNS=20 for the soak that
# docs/reliability.md quotes (each run its own Redis set or cluster failover, fresh room).
FAILOVER_RUNS = range(int(os.environ.get("RIPPLE_FAILOVER_RUNS", "1")))


@pytest.mark.slow
@pytest.mark.parametrize("run", FAILOVER_RUNS)
def test_sentinel_failover_mid_traffic_loses_no_acknowledged_message(tmp_path, room, fault_report, run):
    redis_set = SentinelSet(str(tmp_path / "redis"))
    hosts = []
    try:
        hosts = start_hosts(tmp_path, redis_set.url, FAILOVER_ENV)
        result = traffic_through_a_failover(hosts, room, redis_set.kill_master)
    finally:
        for host in hosts:
            host.halt()
        redis_set.stop()
    check_failover("Sentinel master SIGKILLed mid-traffic (replica-ack on), 2 hosts", *result, fault_report)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not os.access(DEBIAN_REDIS, os.X_OK):
        pytest.skip("Debian's redis-server 7 is not installed (sharded pub/sub needs Redis 7): "
                    "scripts/ensure-system-packages installs it")
    cluster = ClusterSet(str(tmp_path_factory.mktemp("cluster")))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def cluster_hosts(cluster, tmp_path_factory):
    """Two Ripple hosts on the cluster with the test settings, for the tests that only use them
    (each test its own room and people); a test that needs other settings starts its own."""
    hosts = start_hosts(tmp_path_factory.mktemp("cluster-hosts"), cluster.url, SERVER_ENV)
    yield hosts
    for host in hosts:
        host.halt()


def test_cluster_keeps_a_room_on_one_node_and_serves_several_hosts(cluster, cluster_hosts, room):
    a, b = cluster_hosts
    ann, bob = Browser(a.url), Browser(b.url)
    assert ann.sign_in("ann-" + uuid.uuid4().hex[:6]) == 200
    assert bob.sign_in("bob-" + uuid.uuid4().hex[:6]) == 200
    with bob.stream(room) as stream:
        stream.until("ready")
        assert ann.post(room, "sharded") [0] == 201
        assert stream.messages(1)[0].json()["text"] == "sharded"
        assert ann.direct(bob.name, "to bob's shard") [0] == 201
        assert stream.messages(1, name="direct")[0].json()["text"] == "to bob's shard"
    missed = ann.post(room, "missed")[1]["id"]
    bob_on_a = Browser(a.url).same_session_as(bob)
    with bob_on_a.stream(room, {"Last-Event-ID": stream.last_id}) as again:
        _, before = again.until("ready")
        assert [e.json()["id"] for e in before if e.name == "message"] == [missed]
    # Slot routing: every key of the room lives on the one master that owns its slot.
    holders = []
    for node in cluster.alive():
        with redis.Redis(port=node.port, decode_responses=True) as client:
            if client.info("replication")["role"] == "master" and \
                    list(client.scan_iter(match="ripple:{r:%s}:*" % room)):
                holders.append(node.port)
    assert holders == [cluster.owner_of(keys.RoomKeys(room).log).port]


def test_edits_reactions_and_deletions_work_on_a_cluster_and_resume_on_another_host(cluster_hosts, room):
    a, b = cluster_hosts
    ann = Browser(a.url)
    assert ann.sign_in("ann-" + uuid.uuid4().hex[:6]) == 200
    sent = ann.post(room, "sharded draft")[1]
    path = "/rooms/%s/messages/%s" % (room, sent["id"])
    with SSEStream("%s/rooms/%s/events" % (b.url, room)) as on_b:
        on_b.until("ready")
        assert ann.request("PATCH", path, body={"text": "sharded, edited"})[0] == 200
        cursor = on_b.messages(1, name="edit")[0].id
    assert ann.request("PUT", path + "/reactions/%F0%9F%91%8D")[0] == 200
    assert ann.request("DELETE", path)[0] == 204
    with SSEStream("%s/rooms/%s/events" % (b.url, room), {"Last-Event-ID": cursor}) as again:
        _, before = again.until("ready")
        assert [e.name for e in before if e.name in ("message", "edit", "reaction", "delete")] \
            == ["reaction", "delete"]
    _, _, body = ann.request("GET", "/rooms/%s/messages" % room)
    assert [(m["id"], m["deleted"]) for m in json.loads(body)["messages"]] == [(sent["id"], True)]


def test_sign_out_through_one_host_ends_the_session_on_another_on_a_cluster(cluster_hosts, room):
    a, b = cluster_hosts
    ann = Browser(a.url)
    assert ann.sign_in("ann-" + uuid.uuid4().hex[:6]) == 200
    cookie = ann.cookie()  # a copy, as it was before the sign-out
    with SSEStream("%s/rooms/%s/events" % (b.url, room), {"Cookie": cookie}) as on_b:
        on_b.until("ready")
        assert ann.request("DELETE", "/session")[0] == 204
        on_b.until("signed-out")  # the record's shard carried the word to host b
    copied = Browser(b.url)
    status, _, _ = copied.request("GET", "/session", headers={"Cookie": cookie})
    assert status == 401


# Runs after the tests sharing cluster_hosts, which it would otherwise leave on a cluster one of
# whose masters it killed: they test a healthy cluster, this test the failover.
@pytest.mark.slow
@pytest.mark.parametrize("run", FAILOVER_RUNS)
def test_cluster_master_failover_mid_traffic_loses_no_acknowledged_message(cluster, tmp_path, room, fault_report,
                                                                             run):
    hosts = start_hosts(tmp_path, cluster.url, FAILOVER_ENV)
    try:
        owner = cluster.owner_of(keys.RoomKeys(room).log)
        result = traffic_through_a_failover(hosts, room, lambda: cluster.kill(owner))
    finally:
        for host in hosts:
            host.halt()
    check_failover("Cluster master owning the room SIGKILLed mid-traffic (replica-ack on), 2 hosts",
                   *result, fault_report)


def test_name_claims_and_presence_hold_across_hosts(two_hosts, room):
    a, b = two_hosts
    name = "ann-" + uuid.uuid4().hex[:6]
    assert Browser(a.url).sign_in(name) == 200
    assert Browser(b.url).sign_in(name.upper()) == 409  # taken, whichever host is asked
    bob = Browser(b.url)
    assert bob.sign_in("bob-" + uuid.uuid4().hex[:6]) == 200
    ann = Browser(a.url)
    assert ann.sign_in("cy-" + uuid.uuid4().hex[:6]) == 200
    with ann.stream(room) as on_a, bob.stream(room) as on_b:
        on_a.until("ready")
        on_b.until("ready")
        for host in (a, b):
            with urllib.request.urlopen("%s/rooms/%s/presence" % (host.url, room), timeout=10) as r:
                assert sorted(json.loads(r.read())["online"]) == sorted([ann.name, bob.name])


def test_rate_limits_hold_across_hosts(redis_url, tmp_path, room):
    env = {**SERVER_ENV, "RIPPLE_POST_RATE_SESSION": "3 per minute"}
    hosts = start_hosts(tmp_path, redis_url, env)
    try:
        ann = Browser(hosts[0].url)
        assert ann.sign_in("ann-" + uuid.uuid4().hex[:6]) == 200
        on_b = Browser(hosts[1].url).same_session_as(ann)  # the same session, through the other host
        statuses = [(ann if i % 2 else on_b).post(room, "m%d" % i)[0] for i in range(6)]
        assert statuses == [201, 201, 201, 429, 429, 429]
    finally:
        for host in hosts:
            host.halt()


def test_a_sharded_listener_refuses_a_replica_and_finds_the_master(cluster, room):
    channel = keys.RoomKeys(room).channel
    owner = cluster.owner_of(channel)
    with redis.Redis(port=owner.port, decode_responses=True) as client:
        replica_port = next(int(r["port"]) for r in client.info("replication").values()
                            if isinstance(r, dict) and "port" in r)
    with pytest.raises(listener.NotMaster):
        listener.Listener({"host": "127.0.0.1", "port": replica_port}, 2.0, [channel],
                          sharded=True, master_only=True)
    opened = listener.ListenerFactory(cluster.url, 2.0).open([channel])
    try:
        assert opened.sock.getpeername()[1] == owner.port
    finally:
        opened.close()


@pytest.mark.slow
def test_streams_leave_a_deposed_master_as_soon_as_sentinel_switches(tmp_path, room):
    redis_set = SentinelSet(str(tmp_path / "redis"))
    host = None
    try:
        host = Gunicorn(tmp_path, redis_url=redis_set.url, workers=2, env=SERVER_ENV).start()
        with SSEStream("%s/rooms/%s/events" % (host.url, room)) as stream:
            stream.until("ready")
            with redis.Redis(port=redis_set.sentinels[0].port) as sentinel:
                sentinel.execute_command("SENTINEL", "FAILOVER", redis_set.service)
            # The demoted master keeps its subscribers; only the announcement moves the stream.
            deadline = time.monotonic() + 15
            while stream.next(max(0.01, deadline - time.monotonic())) is not None:
                pass
            assert stream.retry == 500  # "come back at once" (RETRY_MS / 4), not an outage
            cursor = stream.last_id
        sent = wait_until(lambda: post_as_token(host.url, room, "after the switch"), 15, 0.2,
                          "a post on the new master")
        again = SSEStream("%s/rooms/%s/events" % (host.url, room), {"Last-Event-ID": cursor})
        with again:
            _, before = again.until("ready")
            assert [e.json()["id"] for e in before if e.name == "message"] == [sent]
    finally:
        if host is not None:
            host.halt()
        redis_set.stop()


def post_as_token(base_url, room, text):
    """Return the new message's id, or None if the post was refused (e.g. mid-failover)."""
    request = urllib.request.Request(
        "%s/rooms/%s/messages" % (base_url, room), method="POST",
        headers={"Content-Type": "application/json", "Authorization": "Bearer " + TOKEN},
        data=json.dumps({"text": text, "user": "ann"}).encode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())["id"] if response.status == 201 else None
    except OSError:
        return None


def test_python_publish_reaches_a_cluster_room_over_sharded_pub_sub(cluster, room):
    from app.ops import cli
    stored = json.loads(cli.publish(room, "from a script", "bot", redis_url=cluster.url))
    owner = cluster.owner_of(keys.RoomKeys(room).log)
    with redis.Redis(port=owner.port, decode_responses=True) as client:
        assert client.xrange(keys.RoomKeys(room).log)[-1][0] == stored["id"]


@pytest.mark.slow
def test_python_publish_follows_a_sentinel_url(tmp_path, room):
    from app.ops import cli
    redis_set = SentinelSet(str(tmp_path / "redis"))
    try:
        stored = json.loads(cli.publish(room, "from a script", "bot", redis_url=redis_set.url))
        with redis.Redis(port=redis_set.master_port(), decode_responses=True) as client:
            assert client.xrange(keys.RoomKeys(room).log)[-1][0] == stored["id"]
    finally:
        redis_set.stop()


def test_python_publish_to_an_unreachable_cluster_is_a_redis_error(room):
    from app.ops import cli
    with pytest.raises(redis.ConnectionError):
        cli.publish(room, "x", "bot", redis_url="redis+cluster://127.0.0.1:1")


@pytest.fixture(scope="module")
def sentinel_set(tmp_path_factory):
    redis_set = SentinelSet(str(tmp_path_factory.mktemp("sentinels")))
    yield redis_set
    redis_set.stop()


def test_the_switch_watch_leaves_a_sentinel_that_stops_answering(sentinel_set):
    import signal

    from app.ops.topology import SwitchWatch
    sentinel = sentinel_set.sentinels[0]
    watch = SwitchWatch(sentinel_set.url, 0.5, lambda announcement: None)
    failed = []
    follower = threading.Thread(target=lambda: failed.append(pytest.raises(
        redis.TimeoutError, watch._follow, "127.0.0.1", sentinel.port)), daemon=True)
    follower.start()
    wait_until(lambda: watch.master is not None, 10, message="the watch to follow the sentinel")
    sentinel.process.send_signal(signal.SIGSTOP)
    try:
        follower.join(10)
        assert failed and not follower.is_alive()
    finally:
        sentinel.process.send_signal(signal.SIGCONT)


def test_the_switch_watch_reports_a_switch_it_missed_between_sentinels(sentinel_set):
    from app.ops.topology import SwitchWatch
    heard = []
    watch = SwitchWatch(sentinel_set.url, 0.5, heard.append)
    watch.master = ("127.0.0.1", "1")  # what it knew before it lost its sentinel
    follower = threading.Thread(target=lambda: _quietly(watch._follow, "127.0.0.1",
                                                        sentinel_set.sentinels[1].port), daemon=True)
    follower.start()
    wait_until(lambda: heard, 10, message="the missed switch reported")
    assert heard[0].split()[:3] == [sentinel_set.service, "127.0.0.1", "1"]
    assert heard[0].split()[4] == str(sentinel_set.master_port())


def _quietly(fn, *args):
    try:
        fn(*args)
    except (redis.RedisError, OSError):
        pass


def test_disabling_an_account_on_one_host_ends_its_streams_on_another(two_hosts, redis_url, room):
    from .test_accounts import account_holder, cli, sign_in
    from .test_sessions_security import until_end
    a, b = two_hosts
    owner = account_holder(a)
    laptop = Browser(b.url)
    assert sign_in(laptop, owner.name)[0] == 200
    with owner.stream(room) as on_a, laptop.stream(room) as on_b:
        on_a.until("ready")
        on_b.until("ready")
        result = cli(redis_url, "disable", owner.name)  # the operator, on neither host
        assert result.returncode == 0 and "2 sessions ended" in result.stdout, result.stderr
        for stream in (on_a, on_b):
            stream.until("signed-out", timeout=10)
            assert until_end(stream, timeout=10) == []
    assert sign_in(Browser(b.url), owner.name)[0] == 403


def test_a_webhook_gets_a_cluster_rooms_messages_signed(cluster, tmp_path, room):
    """On a cluster the webhooks' keys ({webhooks}) and the room's are in different slots: a
    message is queued right after it is stored (docs/webhooks.md), and delivered all the same."""
    from app.webhooks import signing

    from .receivers import Receiver
    a, b = hosts = start_hosts(tmp_path, cluster.url, {**SERVER_ENV, "RIPPLE_WEBHOOK_RETRY_BASE_SECONDS": "0.2"})
    hook = None
    try:
        with Receiver() as receiver:
            request = urllib.request.Request(
                a.url + "/admin/webhooks", method="POST",
                data=json.dumps({"url": receiver.url, "rooms": room}).encode(),
                headers={"Content-Type": "application/json", "Authorization": "Bearer " + TOKEN})
            with urllib.request.urlopen(request, timeout=10) as response:
                hook = json.loads(response.read())
            ids = [post_as_token(host.url, room, "sharded %d" % i) for i, host in enumerate((a, b, a))]
            assert all(ids)
            wait_until(lambda: len({r.delivery for r in receiver.requests()}) >= 3, 30, message="three deliveries")
            got = receiver.requests()
        assert sorted(r.json["data"]["id"] for r in got) == sorted(ids)
        assert all(signing.verify(hook["secret"], r.body, r.headers["Ripple-Timestamp"],
                                  r.headers["Ripple-Signature"]) for r in got)
    finally:
        if hook is not None:
            request = urllib.request.Request(a.url + "/admin/webhooks/" + hook["id"], method="DELETE",
                                             headers={"Authorization": "Bearer " + TOKEN})
            urllib.request.urlopen(request, timeout=10).close()
        for host in hosts:
            host.halt()


def test_on_a_cluster_an_open_that_fails_after_its_admission_gives_its_place_back(cluster, tmp_path, room):
    # The opening's steps run apart on a cluster (app/web/opening.py's _open_apart): the place it
    # gives back must be the one it took.
    env = {**SERVER_ENV, "RIPPLE_TRUSTED_PROXIES": "1", "RIPPLE_MAX_STREAMS_PER_ADDRESS": "2",
           "RIPPLE_HEARTBEAT_SECONDS": "30"}
    (tmp_path / "host").mkdir()
    host = Gunicorn(tmp_path / "host", redis_url=cluster.url, workers=2, env=env).start()
    try:
        address = an_address()
        person = From(host.url, address)
        assert person.sign_in("mid-" + uuid.uuid4().hex[:8]) == 200
        with redis.RedisCluster.from_url(cluster.url.replace("redis+cluster://", "redis://").split(",")[0]) as client:
            client.hset(names.Names.account_key(person.name), "x", "1")  # the person's step fails
        for _ in range(3):  # past the address's two places, were they kept
            status, _, body = person.request("GET", "/rooms/%s/events" % room)
            assert status == 503, body
        with From(host.url, address).stream(room) as stream:
            assert stream.next(10).name == "ready"
    finally:
        host.halt()
