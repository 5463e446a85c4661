"""/metrics: Prometheus text, summed across all Gunicorn workers."""
import urllib.request

from .servers import wait_until
from .sse import SSEStream
from .support import post


def scrape(server):
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
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
