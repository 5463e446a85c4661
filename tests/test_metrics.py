"""/metrics: Prometheus text, summed across all Gunicorn workers."""
import fcntl
import glob
import os
import shutil
import signal
import urllib.request
import uuid

import psutil
from prometheus_client import CONTENT_TYPE_LATEST

from .servers import ROOT, Gunicorn, wait_until
from .sse import SSEStream
from .support import SERVER_ENV, post


def scrape(server):
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
        # Exactly Prometheus's own: a parameter twice ("charset") fails strict scrapers' parsers.
        assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_metrics_count_streams_posts_and_deliveries_across_workers(server, room):
    before = scrape(server)
    streams = [SSEStream("%s/rooms/%s/events" % (server.url, room)) for _ in range(6)]
    try:
        for stream in streams:
            stream.until("ready")
        post(server.url, room, "counted")
        for stream in streams:
            stream.messages(1)
        # Streams report deliveries in batches, at the latest when they next fall quiet.
        delivered = "ripple_messages_delivered_total"
        after = wait_until(lambda: (lambda m: m if m.get(delivered, 0) >= before.get(delivered, 0) + 6 else None)(
            scrape(server)), 10, 0.2, "deliveries reported")
        assert after["ripple_open_streams"] >= 6  # ours; others' may close meanwhile
        published = 'ripple_messages_published_total{kind="room"}'
        assert after[published] >= before.get(published, 0) + 1
        assert after["ripple_delivery_seconds_count"] >= 6 and after["ripple_publish_seconds_count"] >= 1
    finally:
        for stream in streams:
            stream.close()


def test_the_series_operators_alert_on_are_there_at_zero_before_any_incident(server):
    values = scrape(server)
    for log in ("room", "direct"):
        for series in ("ripple_stream_gaps_total", "ripple_messages_repaired_total",
                       "ripple_messages_published_total"):
            assert '%s{kind="%s"}' % (series, log) in values or '%s{log="%s"}' % (series, log) in values, (
                series, log, sorted(name for name in values if name.startswith(series)))


def test_two_servers_on_one_checkout_keep_their_own_metrics(redis_url, tmp_path, room):
    # The default directory (no PROMETHEUS_MULTIPROC_DIR) is the master's own: a second server
    # (another port on the same Redis, a USR2 upgrade) neither counts nor empties the first's.
    first, second = (Gunicorn(tmp_path, redis_url=redis_url, env=SERVER_ENV) for _ in range(2))
    for server in (first, second):
        server.env.pop("PROMETHEUS_MULTIPROC_DIR")
    published = 'ripple_messages_published_total{kind="room"}'
    try:
        first.start()
        assert post(first.url, room, "counted once, by the first")[0] == 201
        second.start()
        assert scrape(second).get(published, 0) == 0
        assert scrape(first)[published] == 1
        (own,) = glob.glob(os.path.join(ROOT, "instance", "metrics", "%d-*" % first.process.pid))
    finally:
        first.halt()
        second.halt()
    assert not os.path.exists(own)  # removed when its master exits


def test_a_gone_masters_metrics_are_removed_and_a_live_ones_kept_whatever_its_pid(redis_url, tmp_path):
    # Masters in containers are all pid 1: a directory is a live master's while its lock is held.
    base = os.path.join(ROOT, "instance", "metrics")
    gone, live = (os.path.join(base, "1-%s" % uuid.uuid4().hex[:8]) for _ in range(2))
    for path in (gone, live):
        os.makedirs(path)
        open(os.path.join(path, ".lock"), "w").close()
    with open(os.path.join(live, ".lock")) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        server = Gunicorn(tmp_path, redis_url=redis_url, env=SERVER_ENV)
        server.env.pop("PROMETHEUS_MULTIPROC_DIR")
        try:
            server.start()
            assert not os.path.exists(gone) and os.path.isdir(live)
        finally:
            server.halt()
            shutil.rmtree(live, ignore_errors=True)


def metrics_dirs_of(pid):
    return glob.glob(os.path.join(ROOT, "instance", "metrics", "%d-*" % pid))


def test_a_usr2_upgrade_after_a_reload_gets_its_own_metrics_directory(redis_url, tmp_path):
    # gunicorn's re-exec after a HUP hands the new master the environment the old one had set.
    server = Gunicorn(tmp_path, redis_url=redis_url, env=SERVER_ENV, command=Gunicorn.SCRIPT)
    server.env.pop("PROMETHEUS_MULTIPROC_DIR")
    new_master = None
    try:
        server.start()
        (old_dir,) = metrics_dirs_of(server.process.pid)
        before = set(server.worker_pids())
        server.signal(signal.SIGHUP)
        wait_until(lambda: len(server.worker_pids()) == 2 and not before & set(server.worker_pids()), 30, 0.1,
                   "new workers after HUP")
        workers = set(server.worker_pids())
        server.signal(signal.SIGUSR2)
        new_master = psutil.Process(wait_until(lambda: sorted(set(server.worker_pids()) - workers), 30, 0.1,
                                               "the new master")[0])
        wait_until(lambda: metrics_dirs_of(new_master.pid), 20, 0.1, "the new master's own directory")
        assert os.path.isdir(old_dir)  # the old master's, untouched
    finally:
        if new_master is not None and new_master.is_running():
            new_master.send_signal(signal.SIGINT)
            new_master.wait(15)
        server.halt()
