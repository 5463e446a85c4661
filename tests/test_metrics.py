"""/metrics: Prometheus text, summed across all Gunicorn workers."""
import urllib.request

from .conftest import post
from .sse import SSEStream


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
        after = scrape(server)
        assert after["ripple_open_streams"] >= before.get("ripple_open_streams", 0) + 6
        published = 'ripple_messages_published_total{kind="room"}'
        assert after[published] >= before.get(published, 0) + 1
        assert after["ripple_messages_delivered_total"] >= before.get("ripple_messages_delivered_total", 0) + 6
        assert after["ripple_delivery_seconds_count"] >= 6 and after["ripple_publish_seconds_count"] >= 1
    finally:
        for stream in streams:
            stream.close()
