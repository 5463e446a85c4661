"""/metrics: Prometheus text, summed across all Gunicorn workers."""
import urllib.request

from prometheus_client import CONTENT_TYPE_LATEST

from .servers import wait_until
from .sse import SSEStream
from .support import post


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
