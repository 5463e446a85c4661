"""Fixtures: a real redis-server and a real Gunicorn (2 gevent workers) on free loopback ports."""
import json
import urllib.error
import urllib.request
import uuid

import pytest
import redis as redis_py

from app import create_app
from app.ops.embedded_redis import EmbeddedRedis

from .servers import Gunicorn, free_port

TEST_HEARTBEAT = 0.5  # seconds: dead streams are found quickly, tests stay short
TOKEN = "test-publish-token"  # the server-to-server publish token the test servers accept
# Environment of every test Gunicorn: short heartbeats, and limits high enough that a test
# opening hundreds of streams from one address is not throttled (test_limits checks limits).
SERVER_ENV = {
    "RIPPLE_HEARTBEAT_SECONDS": str(TEST_HEARTBEAT), "RIPPLE_PUBLISH_TOKEN": TOKEN,
    "SECRET_KEY": "test-secret", "RIPPLE_STREAM_RATE_IP": "100000 per minute",
    "RIPPLE_STREAM_RATE_SESSION": "100000 per minute", "RIPPLE_POST_RATE_IP": "100000 per minute",
    "RIPPLE_POST_RATE_SESSION": "100000 per minute", "RIPPLE_SESSION_RATE_IP": "100000 per minute",
    "RIPPLE_PRESENCE_GRACE_SECONDS": "1", "RIPPLE_MAX_STREAMS_PER_ADDRESS": "100000",
    "RIPPLE_READ_RATE_IP": "100000 per minute", "RIPPLE_ROOM_CREATE_RATE_IP": "100000 per minute",
    "RIPPLE_ROOM_CREATE_RATE_SESSION": "100000 per minute", "RIPPLE_SIGNIN_RATE_IP": "100000 per minute",
    "RIPPLE_ACCOUNT_CREATE_RATE_IP": "100000 per minute",
}


# The same for apps made in the test process (limits live in the shared Redis, across tests).
LIMITS_OFF = {"READ_RATE_IP": "100000 per minute", "ROOM_CREATE_RATE_IP": "100000 per minute",
              "ROOM_CREATE_RATE_SESSION": "100000 per minute"}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A throwaway redis-server (the same binary and launcher the service embeds)."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), port=free_port(), appendonly=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server):
    return redis_server.url


@pytest.fixture
def redis_client(redis_url):
    with redis_py.Redis.from_url(redis_url, decode_responses=True) as client:
        yield client


@pytest.fixture
def app(redis_url):
    return create_app({"TESTING": True, "REDIS_URL": redis_url, "PUBLISH_TOKEN": TOKEN,
                       "HEARTBEAT_SECONDS": TEST_HEARTBEAT, "SECRET_KEY": "test-secret",
                       **LIMITS_OFF})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def room():
    """A fresh room per test, so tests never see each other's messages."""
    return "t-" + uuid.uuid4().hex[:16]


@pytest.fixture(scope="session")
def server(redis_url, tmp_path_factory):
    """One Gunicorn for the session: 2 gevent workers, real Redis, short heartbeats."""
    log_dir = tmp_path_factory.mktemp("gunicorn")
    gunicorn = Gunicorn(log_dir, redis_url=redis_url, workers=2,
                        env=SERVER_ENV)
    gunicorn.start()
    yield gunicorn
    gunicorn.stop()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the Gunicorn log to a failing test that used the server."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and "server" in item.fixturenames:
        gunicorn = item.funcargs.get("server")
        if gunicorn is not None:
            report.sections.append(("gunicorn log", gunicorn.log_tail()))


def post(base_url, room, text, user="ann", key=None, timeout=10):
    """POST a JSON message as a server-to-server publisher; return (status, body as dict)."""
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + TOKEN}
    if key:
        headers["Idempotency-Key"] = key
    request = urllib.request.Request(
        "%s/rooms/%s/messages" % (base_url, room), method="POST", headers=headers,
        data=json.dumps({"text": text, "user": user}).encode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


class FaultReport:
    """Counts from the fault tests: what was acknowledged, delivered, lost and duplicated.

    Written to test-output/fault-report.md at the end of the session; docs/reliability.md
    quotes it.
    """

    def __init__(self):
        self.rows = []

    def add(self, fault, clients, acked, delivered_ids):
        """Record one fault: ``delivered_ids`` is one list of message ids per client."""
        expected = acked * clients
        unique = sum(len(set(ids)) for ids in delivered_ids)
        duplicated = sum(len(ids) - len(set(ids)) for ids in delivered_ids)
        lost = expected - unique
        self.rows.append((fault, clients, acked, sum(len(ids) for ids in delivered_ids), lost, duplicated))

    def write(self, path):
        lines = ["| fault | clients | messages acknowledged | deliveries | lost | duplicated |",
                 "|---|---|---|---|---|---|"]
        lines += ["| %s | %d | %d | %d | %d | %d |" % row for row in self.rows]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def fault_report():
    report = FaultReport()
    yield report
    if report.rows:
        from .servers import ROOT
        report.write(ROOT / "test-output" / "fault-report.md")
