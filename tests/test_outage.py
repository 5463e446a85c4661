"""Redis going away: posts get 503 + Retry-After with nothing stored, readiness says so,
streams end with a retry hint and resume with no gap once Redis is back."""
import json
import logging
import shutil
import urllib.error
import urllib.request

import pytest

from app.ops.embedded_redis import EmbeddedRedis

from .servers import Gunicorn, free_port, wait_until
from .sse import SSEStream
from .support import SERVER_ENV, post
from .web import Browser

pytestmark = pytest.mark.slow


@pytest.fixture
def own_redis(tmp_path):
    """A Redis this test may stop and start again on the same port, with AOF on."""
    server = EmbeddedRedis(tmp_path / "redis", port=free_port(), appendonly=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_server(own_redis, tmp_path):
    gunicorn = Gunicorn(tmp_path, redis_url=own_redis.url, workers=2,
                        env={**SERVER_ENV, "RIPPLE_REDIS_SOCKET_TIMEOUT": "1"})
    gunicorn.start()
    yield gunicorn
    gunicorn.halt()


def status_of(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def test_posts_during_an_outage_get_503_with_retry_after_and_nothing_is_stored(own_server, own_redis, room):
    assert post(own_server.url, room, "before")[0] == 201
    own_redis.stop()
    status, body = post(own_server.url, room, "during")
    assert status == 503 and "unavailable" in body["error"]
    code, headers = status_of(own_server.url + "/readyz")
    assert code == 503 and headers.get("Retry-After")
    own_redis.start()
    wait_until(lambda: status_of(own_server.url + "/readyz")[0] == 200, 15, message="ready again")
    with urllib.request.urlopen("%s/rooms/%s/messages" % (own_server.url, room), timeout=10) as r:
        texts = [m["text"] for m in json.loads(r.read())["messages"]]
    assert texts == ["before"]  # AOF kept it across the restart; "during" was never acknowledged


def test_streams_resume_without_a_gap_after_redis_restarts(own_server, own_redis, room, fault_report):
    stream = SSEStream("%s/rooms/%s/events" % (own_server.url, room))
    stream.until("ready")
    first = post(own_server.url, room, "one")[1]["id"]
    assert stream.messages(1)[0].id == first
    own_redis.stop()
    # The stream tells the client Redis is gone and ends; the client keeps its cursor.
    event = stream.next(10)
    assert event is None or event.name == "unavailable"
    stream.close()
    own_redis.start()
    wait_until(lambda: post(own_server.url, room, "two")[0] == 201, 15, 0.2, "posting again")
    with SSEStream("%s/rooms/%s/events" % (own_server.url, room), {"Last-Event-ID": stream.last_id}) as again:
        _, before = again.until("ready")
    fault_report.add("Redis stopped and restarted (AOF), posts 503 meanwhile", 1, 2,
                     [[first] + [e.id for e in before]])
    assert [e.json()["text"] for e in before] == ["two"]


def test_form_post_during_an_outage_keeps_the_typed_text(own_server, own_redis, room):
    browser = Browser(own_server.url)
    assert browser.sign_in("ann") == 200
    own_redis.stop()
    status, _, body = browser.request("POST", "/rooms/%s/messages" % room,
                                      form={"text": "keep me", "csrf_token": browser.token})
    html = body.decode()
    assert status == 503 and "keep me</textarea>" in html and "could not be sent" in html


def test_a_page_that_cannot_load_during_an_outage_offers_to_try_it_again(own_server, own_redis, room):
    # helper-86: the 503 page's one link went to the lobby, which an outage takes down too.
    browser = Browser(own_server.url)
    assert browser.sign_in("ann") == 200
    own_redis.stop()
    path = "/rooms/%s?before=1-0" % room
    status, headers, body = browser.request("GET", path)
    html = body.decode()
    assert status == 503 and headers.get("Retry-After")
    assert '<a class="button" href="%s" data-try-again>Try again</a>' % path in html


def test_an_outage_is_logged_once_per_worker_not_per_stream(own_server, own_redis, room):
    streams = [SSEStream("%s/rooms/%s/events" % (own_server.url, room)) for _ in range(20)]
    for stream in streams:
        stream.until("ready")
    own_redis.stop()
    for stream in streams:  # each ends with its "unavailable" event
        event = stream.next(10)
        assert event is None or event.name == "unavailable"
        stream.close()
    post(own_server.url, room, "during")  # more failures, of another kind
    lines = [line for line in own_server.log_tail(400).splitlines() if "redis unavailable" in line]
    assert 1 <= len(lines) <= 2 * own_server.workers, "\n".join(lines)


def embedded(tmp_path, directory):
    """A started server whose master runs its own Redis, with its files in ``directory``."""
    env = {**SERVER_ENV, "RIPPLE_EMBEDDED_REDIS_DIR": str(directory)}
    return Gunicorn(tmp_path, redis_url=None, workers=2, env=env).start()


def history_texts(server, room):
    with urllib.request.urlopen("%s/rooms/%s/messages" % (server.url, room), timeout=10) as r:
        return [m["text"] for m in json.loads(r.read())["messages"]]


def test_history_survives_a_full_restart_with_the_embedded_redis(tmp_path, room):
    first = embedded(tmp_path, tmp_path / "data")
    try:
        assert post(first.url, room, "kept across restarts")[0] == 201
    finally:
        first.stop()
    second = embedded(tmp_path, tmp_path / "data")
    try:
        assert history_texts(second, room) == ["kept across restarts"]
    finally:
        second.stop()


def test_a_copy_of_the_embedded_redis_aof_directory_restores_history_elsewhere(tmp_path, room):
    """docs/deployment.md, "Backups, restores and upgrades": appendonlydir/, copied with the service
    stopped, is all the history needs; redis.password is not (the next start makes another)."""
    first = embedded(tmp_path, tmp_path / "data")
    try:
        assert post(first.url, room, "backed up")[0] == 201
    finally:
        first.stop()
    shutil.copytree(tmp_path / "data" / "appendonlydir", tmp_path / "restored" / "appendonlydir")
    restored = embedded(tmp_path, tmp_path / "restored")
    try:
        assert history_texts(restored, room) == ["backed up"]
    finally:
        restored.stop()


def redis_errors(server, where):
    """ripple_redis_errors_total{where=...}, summed over the workers (/metrics needs no Redis)."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    prefix = 'ripple_redis_errors_total{where="%s"} ' % where
    return sum(float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix))


def test_the_workers_own_loops_log_an_outage_once_and_its_end(own_server, own_redis, room):
    """The presence sweeper (every quarter heartbeat), the address registry and the webhook
    supervisor failed every round, each with its own WARNING: dozens of lines a minute per worker."""
    streams = [SSEStream("%s/rooms/%s/events" % (own_server.url, room)) for _ in range(10)]
    for stream in streams:  # (a stream starts its worker's presence sweeper)
        stream.until("ready")
    own_server.log_path.write_text("")  # this test's lines only
    own_redis.stop()
    for stream in streams:
        stream.close()
    # Ten failed sweeps and more: the loops have run many rounds into the outage.
    wait_until(lambda: redis_errors(own_server, "presence.sweep") >= 10, 30, 0.2, "failed sweeps")
    own_redis.start()
    wait_until(lambda: status_of(own_server.url + "/readyz")[0] == 200, 15, message="ready again")
    wait_until(lambda: own_server.log_path.read_text().count("redis reachable again") >= own_server.workers,
               15, 0.2, "each worker to log the end of the outage")
    warnings = [line for line in own_server.log_path.read_text().splitlines() if " WARNING " in line]
    failures = [line for line in warnings if "reachable again" not in line]
    assert 1 <= len(failures) <= own_server.workers, "\n".join(warnings)


def test_a_stream_opened_during_an_outage_is_told_to_come_back(own_server, own_redis, room):
    # The opening's checks (limits, gate, admission: app/web/opening.py) need Redis: without it
    # the answer is a clear 503 with Retry-After (an EventSource's: a short stream saying so).
    signed_in = Browser(own_server.url)
    assert signed_in.sign_in("out-" + room[-6:]) == 200
    own_redis.stop()
    status, headers = status_of("%s/rooms/%s/events" % (own_server.url, room))
    assert status == 503 and int(headers["Retry-After"]) >= 1
    for stream in (SSEStream("%s/rooms/%s/events" % (own_server.url, room)), signed_in.stream(room)):
        try:
            assert int(stream.headers["Retry-After"]) >= 1
            event = stream.next(10)
            assert event is not None and event.name in ("busy", "unavailable"), event
            assert event.json()["status"] == 503
        finally:
            stream.close()


def test_the_rate_limiters_swallowed_redis_errors_are_the_outages_one_line(own_server, own_redis, room):
    """Flask-Limiter logged an ERROR with two chained tracebacks for every request of an outage
    (a poster: 55 of them in 37 s), where the outage is one line per worker when it starts."""
    browser = Browser(own_server.url)
    assert browser.sign_in("lim-" + room[-6:]) == 200
    own_server.log_path.write_text("")  # this test's lines only
    own_redis.stop()
    for _ in range(6):
        assert browser.post(room, "during")[0] == 503
    log = own_server.log_path.read_text()
    assert "Swallowing error" not in log and "Traceback" not in log, log
    lines = [line for line in log.splitlines() if "redis unavailable" in line]
    assert 1 <= len(lines) <= own_server.workers, log
    assert redis_errors(own_server, "rate limits") >= 1  # counted, not dropped


def test_the_rate_limiters_other_errors_are_still_logged_as_they_were(app, caplog):
    with app.test_request_context():
        try:
            raise ValueError("a bug, not an outage")
        except ValueError:
            logging.getLogger("flask-limiter").exception("Failed to rate limit. Swallowing error")
    assert "Swallowing error" in caplog.text and "a bug, not an outage" in caplog.text
