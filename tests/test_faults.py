"""Graceful reloads, shutdowns and killed workers: streams end promptly and resume with nothing
missed and nothing twice."""
import os
import signal
import time

import pytest

from .servers import Gunicorn, wait_until
from .sse import SSEStream
from .support import SERVER_ENV, post

pytestmark = pytest.mark.slow


@pytest.fixture
def own_server(redis_url, tmp_path):
    gunicorn = Gunicorn(tmp_path, redis_url=redis_url, workers=2, env=SERVER_ENV)
    gunicorn.start()
    yield gunicorn
    gunicorn.halt()


def open_streams(server, room, count):
    streams = []
    for _ in range(count):
        stream = SSEStream("%s/rooms/%s/events" % (server.url, room))
        stream.until("ready")
        streams.append(stream)
    return streams


def drain_to_end(stream, timeout):
    """Read until the server ends the stream; return the message ids seen on the way."""
    ids = []
    deadline = time.monotonic() + timeout
    while True:
        event = stream.next(max(0.01, deadline - time.monotonic()))
        if event is None:
            return ids
        if event.name == "message":
            ids.append(event.id)


def resume(server, room, stream, timeout=15):
    """Reconnect with the stream's cursor, as EventSource would (a leaving worker may send us
    away with a retry hint); return the ids replayed before ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with SSEStream("%s/rooms/%s/events" % (server.url, room), {"Last-Event-ID": stream.last_id}) as again:
            try:
                _, before = again.until("ready")
            except AssertionError:
                time.sleep((again.retry or 100) / 1000)  # the retry the server asked for
                continue
            return [e.id for e in before if e.name == "message"]
    raise AssertionError("could not resume within %s s" % timeout)


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM], ids=["reload", "shutdown"])
def test_streams_end_within_two_seconds_with_a_retry_hint(own_server, room, sig):
    streams = open_streams(own_server, room, 6)
    started = time.monotonic()
    own_server.signal(sig)
    for stream in streams:
        drain_to_end(stream, 5)
        # A reload: "come back now", to the workers that took over; a shutdown: "soon" (none did).
        assert stream.retry == (100 if sig == signal.SIGHUP else 500)
    assert time.monotonic() - started < 2.0
    for stream in streams:
        stream.close()


def test_reload_loses_nothing_for_reconnecting_clients(own_server, room, fault_report):
    streams = open_streams(own_server, room, 4)
    sent = [post(own_server.url, room, "before %d" % i)[1]["id"] for i in range(3)]
    own_server.signal(signal.SIGHUP)
    seen = [drain_to_end(s, 5) for s in streams]
    # Posts while the old workers leave and the new ones boot: each is 201 or retried.
    for i in range(5):
        status, body = wait_until(lambda: (lambda r: r if r[0] == 201 else None)(
            post(own_server.url, room, "during %d" % i)), 15, 0.1, "post during reload")  # noqa: B023
        sent.append(body["id"])
    got = [before + resume(own_server, room, s) for s, before in zip(streams, seen)]
    fault_report.add("graceful reload (HUP) with posts during it", len(streams), len(sent), got)
    for stream, ids in zip(streams, got):
        assert ids == sent
        stream.close()


def test_a_killed_workers_clients_resume_on_the_survivor(own_server, room, fault_report):
    streams = open_streams(own_server, room, 12)
    workers = {own_server.worker_of(s.local_port) for s in streams} - {None}
    victim = sorted(workers)[0]
    sent = [post(own_server.url, room, "one")[1]["id"]]
    for stream in streams:
        assert [e.id for e in stream.messages(1)] == sent
    os.kill(victim, signal.SIGKILL)
    sent += [post(own_server.url, room, "after kill %d" % i)[1]["id"] for i in range(3)]
    got = []
    for stream in streams:
        try:
            ids = [e.id for e in stream.messages(3, timeout=3)]
        except (AssertionError, TimeoutError, ConnectionError):
            ids = resume(own_server, room, stream)  # the victim's streams: cut off mid-flight
        got.append(sent[:1] + ids)
        stream.close()
    fault_report.add("worker killed with SIGKILL", len(streams), len(sent), got)
    assert all(ids == sent for ids in got)
