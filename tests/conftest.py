"""Fixtures: a real redis-server and a real Gunicorn (2 gevent workers) on free loopback ports."""
import json
import os
import shutil
import sys
import threading
import uuid

import psutil
import pytest
import redis as redis_py

from app import create_app
from app.ops.embedded_redis import EmbeddedRedis

from .chromium import ChromiumProcess
from .servers import ROOT, Gunicorn, free_port
from .support import LIMITS_OFF, SERVER_ENV, TEST_HEARTBEAT, TOKEN, post  # noqa: F401
from .web import Browser

# Keep the test modules' bytecode (pytest's assertion-rewritten .pyc in tests/__pycache__), as
# the test servers keep the app's (tests/servers.py): with PYTHONDONTWRITEBYTECODE (set on the CI
# machine) each test process rewrote and compiled every test module again, ~10 s of CPU apiece.
sys.dont_write_bytecode = False


# The servers' settings and post() live in tests/support.py; re-exported for older imports.
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
    gunicorn.halt()


@pytest.fixture(scope="session")
def other_host(redis_url, tmp_path_factory):
    """A second Ripple host on the session's Redis, set up as ``server`` is (a master and two
    workers of its own): what crosses hosts is tested between the two. Shared like ``server``:
    test_scaleout, test_moderation and test_stream_faults each started their own."""
    gunicorn = Gunicorn(tmp_path_factory.mktemp("other-host"), redis_url=redis_url, workers=2,
                        env=SERVER_ENV)
    gunicorn.start()
    yield gunicorn
    gunicorn.halt()


@pytest.fixture(scope="session")
def chromium_process():
    """One Chromium per test process, launched when a test first needs it (tests/chromium.py).

    Tests never share a page: each opens browser contexts of its own (cookies, storage, cache,
    connections, Web Locks), and the contexts a file leaves open close when it ends
    (tests/browser.py's ``browser``). Playwright's sync API runs one instance per thread: a test
    wanting Chromium takes this one, never its own.
    """
    process = ChromiumProcess()
    yield process
    process.stop()


@pytest.fixture
def chromium(chromium_process):
    """The process's Chromium, for a test that opens (and closes) its own contexts or pages."""
    return chromium_process.get()


@pytest.fixture
def without_playwright(chromium_process):
    """No Playwright running in this process during the test, for one that runs an asyncio loop
    (asyncio.run() refuses while Playwright's sync API holds the thread's loop)."""
    chromium_process.stop()


@pytest.fixture
def person(server):
    """Sign people in on the shared server: ``person("ann")`` is a tests.web.Browser holding
    a fresh guest name that starts with "ann" (unique per call, so tests never share one)."""
    def sign_in(name="ann"):
        browser = Browser(server.url)
        status = browser.sign_in("%s-%s" % (name, uuid.uuid4().hex[:6]))
        assert status == 200, status
        return browser
    return sign_in


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the Gunicorn log to a failing test that used the server."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and "server" in item.fixturenames:
        gunicorn = item.funcargs.get("server")
        if gunicorn is not None:
            report.sections.append(("gunicorn log", gunicorn.log_tail()))


# A test still running after this long is hung: the slowest take about a minute. Two CI runs
# hung in a browser test, a Playwright call that never returned (every call has a timeout), and
# the whole run waited; pytest.ini's faulthandler_timeout printed only the event loop's stack.
HUNG_AFTER_S = float(os.environ.get("RIPPLE_TEST_HUNG_AFTER_S", "280"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    watchdog = threading.Timer(HUNG_AFTER_S, _hung, args=(item.nodeid,))
    watchdog.daemon = True
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()


def _hung(nodeid):
    """Say the test ``nodeid`` hung, then end this process's Chromium: the Playwright call
    waiting on it fails, and that test with it (its traceback shows the call), not the whole
    run. (A thread dump shows only Playwright's event loop: the test runs in a greenlet.)"""
    sys.__stderr__.write("\nHUNG: %s still running after %d s: ending Chromium\n" % (nodeid, HUNG_AFTER_S))
    sys.__stderr__.flush()
    for child in psutil.Process().children(recursive=True):
        try:
            if "chrom" in child.name():
                child.kill()
        except psutil.Error:
            pass


class FaultReport:
    """Counts from the fault tests: what was acknowledged, delivered, lost and duplicated.

    Each test process (one per pytest-xdist worker) writes its rows to
    test-output/fault-report.parts/<worker>.json; the session's end merges them into
    test-output/fault-report.md, which docs/reliability.md quotes.
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


FAULT_PARTS = ROOT / "test-output" / "fault-report.parts"


def _is_xdist_worker(config):
    return hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    """The controller (or a lone process) starts with no parts from an earlier run."""
    if not _is_xdist_worker(session.config):
        shutil.rmtree(FAULT_PARTS, ignore_errors=True)


def pytest_sessionfinish(session):
    """The controller (or a lone process) merges every process's rows into the report."""
    if _is_xdist_worker(session.config) or not FAULT_PARTS.is_dir():
        return
    rows = [row for part in sorted(FAULT_PARTS.glob("*.json")) for row in json.loads(part.read_text())]
    shutil.rmtree(FAULT_PARTS, ignore_errors=True)
    if rows:
        lines = ["| fault | clients | messages acknowledged | deliveries | lost | duplicated |",
                 "|---|---|---|---|---|---|"]
        lines += ["| %s | %d | %d | %d | %d | %d |" % tuple(row) for row in sorted(rows)]
        (ROOT / "test-output" / "fault-report.md").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def fault_report(request):
    report = FaultReport()
    yield report
    if report.rows:
        worker = getattr(request.config, "workerinput", {}).get("workerid", "main")
        FAULT_PARTS.mkdir(parents=True, exist_ok=True)
        (FAULT_PARTS / ("%s.json" % worker)).write_text(json.dumps(report.rows))


# The files that take longest, longest first (seconds summed per file by
# `pytest --durations=0` on cfd278e, two runs on a loaded machine scaled to a 940 s suite: 196,
# 181, 115, 98, 92, 91, 89, 66, 62, 59, 56, 55, 51, 43, 41, 40, 33, 32, 32, 31, 28, 28; every
# other file under 20 s). The two test processes take files in collection order (pytest.ini:
# --dist loadfile, --no-loadscope-reorder): with the long ones first, the short ones fill in at
# the end and both processes finish together, instead of one running a long file alone while the
# other has nothing left.
SLOWEST_FILES = [
    "test_scaleout.py", "test_hardening.py", "test_browser.py", "test_rooms_browser.py",
    "test_page_ux.py", "test_conversation_browser.py", "test_stream_faults.py", "test_ux_walkthrough.py",
    "test_connection.py", "test_webhooks.py", "test_i18n_browser.py", "test_accounts.py",
    "test_outage.py", "test_faults.py", "test_reload.py", "test_run_command.py", "test_moderation.py",
    "test_metrics.py", "test_python_client.py", "test_reading_browser.py", "test_accounts_browser.py",
    "test_bench_smoke.py",
]


def pytest_collection_modifyitems(config, items):
    """Order the collection: SLOWEST_FILES first, in that order; the rest as collected. And
    give each Schemathesis operation its own node id (see _unique_node_ids)."""
    _unique_node_ids(items)
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable


def _unique_node_ids(items):
    """Schemathesis (4.32) names each operation's test "test_api_…[POST /rooms/{room}/messages]"
    but gives them all the function's node id, and pytest-xdist runs a node id once: under
    ``-n 2`` only one of test_fuzz.py's 91 API operations ran (the rest were collected and
    never reported). The node id is made the name's, as pytest's own parametrized tests have."""
    for item in items:
        head, _, last = item.nodeid.rpartition("::")
        if head and last != item.name and item.name.startswith(last + "["):
            unique = head + "::" + item.name
            if hasattr(item, "_id"):  # pytest 9 keeps it as a NodeId
                from _pytest.nodeid import NodeId
                item._id = NodeId.parse(unique)
            else:
                item._nodeid = unique
