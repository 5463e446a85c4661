"""Prometheus metrics, summed across every Gunicorn worker (prometheus_client multiprocess mode).

Gunicorn's config points PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers fork;
each worker writes its values there and /metrics adds them up. Without that variable (a test
client, ``flask run``), the metrics are this process's own.
"""
import hmac
import ipaddress
import os

import redis
from flask import Blueprint, Response, abort, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from ..people import bearer
from .services import services

bp = Blueprint("metrics", __name__)

WEBHOOK_OUTCOMES = ("delivered", "retrying", "gave_up", "failed")  # app/webhooks/dispatcher.py
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """The service's metrics; one set per app, never registered in the global registry."""

    def __init__(self):
        self.registry = CollectorRegistry()
        multi = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        own = None if multi else self.registry
        self.open_streams = Gauge("ripple_open_streams", "Open event streams.",
                                  registry=own, multiprocess_mode="livesum")
        self.published = Counter("ripple_messages_published", "Messages stored and published.",
                                 ["kind"], registry=own)
        self.delivered = Counter("ripple_messages_delivered", "Messages written to streams.", registry=own)
        self.publish_seconds = Histogram("ripple_publish_seconds", "Time to store and publish a post.",
                                         buckets=_LATENCY_BUCKETS, registry=own)
        self.delivery_seconds = Histogram(
            "ripple_delivery_seconds",
            "Publish-to-write latency (the newest message of every 16th write of each stream).",
            buckets=_LATENCY_BUCKETS, registry=own)
        self.redis_errors = Counter("ripple_redis_errors", "Redis calls that failed.", ["where"], registry=own)
        self.slow_consumers = Counter(
            "ripple_slow_consumers",
            "Streams whose pub/sub connection Redis closed because they fell behind "
            "(client-output-buffer-limit pubsub); not Redis errors.", registry=own)
        self.resumes = Counter("ripple_stream_resumes", "Streams opened with a cursor.", registry=own)
        # Pub/sub loss the streams hid from people: each gap was filled from the room's (or the
        # person's) log before the next message went out (app/delivery/position.py).
        self.gaps = Counter("ripple_stream_gaps", "Gaps streams found in their live feed and filled.",
                            ["log"], registry=own)
        self.repaired = Counter("ripple_messages_repaired",
                                "Messages streams read from history to fill a gap.", ["log"], registry=own)
        self.webhook_attempts = Counter(
            "ripple_webhook_attempts",
            "Webhook delivery attempts, by outcome: delivered, retrying (a retry is due), gave_up "
            "(retried for RIPPLE_WEBHOOK_RETRY_HOURS), failed (not retryable: a 4xx).",
            ["outcome"], registry=own)
        # Series an operator alerts on exist from the start, at 0: a dashboard shows "0", not
        # "no data", and a rule over them never waits for the first incident to see a series.
        for log in ("room", "direct"):
            self.gaps.labels(log)
            self.repaired.labels(log)
            self.published.labels(log)
        for outcome in WEBHOOK_OUTCOMES:
            self.webhook_attempts.labels(outcome)
        if multi:
            multiprocess.MultiProcessCollector(self.registry)
        self.webhook_queue = WebhookQueue(self.redis_errors)
        self.registry.register(self.webhook_queue)


class WebhookQueue:
    """``ripple_webhook_queue_events{webhook, state}``: each enabled webhook's events not yet
    finished: ``waiting`` (not yet handed to a delivery), ``in_flight`` (a first attempt under
    way), ``retrying`` (parked for a later attempt: the receiver failed). Read from Redis at
    each scrape, by the worker that answers it (one XINFO GROUPS and a ZCARD per webhook: the
    queue is shared, so every worker would read the same); left out of a scrape that Redis does
    not answer (counted in ``ripple_redis_errors_total{where="metrics"}``)."""

    def __init__(self, errors):
        self.depths = None  # a callable: app/webhooks/dispatcher.py Dispatcher.queue_depths
        self.errors = errors  # ripple_redis_errors_total

    def collect(self):
        family = GaugeMetricFamily("ripple_webhook_queue_events",
                                   "Events a webhook has not finished: waiting, in flight, retrying.",
                                   labels=["webhook", "state"])
        try:
            depths = self.depths() if self.depths is not None else []
        except redis.RedisError:
            depths = []
            self.errors.labels("metrics").inc()
        for hook_id, waiting, in_flight, retrying in depths:
            if waiting is not None:
                family.add_metric([hook_id, "waiting"], waiting)
            family.add_metric([hook_id, "in_flight"], in_flight)
            family.add_metric([hook_id, "retrying"], retrying)
        yield family



def init_app(app):
    """Serve /metrics (the Metrics object itself is one of app/ops/services.py's)."""
    app.register_blueprint(bp)


NOT_YOURS = ("Metrics are served only to this host (loopback) or with the metrics token "
             "(RIPPLE_METRICS_TOKEN).")


def allowed():
    """Tell whether this request may read the metrics: the bearer metrics token when one is
    set, else a client on the loopback interface (a scraper on the same host).

    Behind a proxy that does not forward the client's address every request looks local:
    the documented nginx refuses /metrics itself (docs/deploy/nginx.conf).
    """
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        presented = bearer.credentials(request.headers.get("Authorization"))
        return presented is not None and hmac.compare_digest(
            presented.encode("utf-8", "replace"), str(token).encode())
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False  # a unix-socket bind has no address: set a token


@bp.get("/metrics")
def metrics():
    """Serve every worker's metrics, summed, in Prometheus text format."""
    if not allowed():
        abort(403, NOT_YOURS)
    # content_type, not mimetype: werkzeug adds "; charset=utf-8" to a mimetype, and
    # CONTENT_TYPE_LATEST has one already (a repeated parameter fails strict parsers, Go's).
    return Response(generate_latest(services().metrics.registry), content_type=CONTENT_TYPE_LATEST)
