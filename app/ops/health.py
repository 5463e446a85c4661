"""Probes for load balancers: /healthz (process alive) and /readyz (Redis reachable)."""
import redis
from flask import Blueprint, current_app, jsonify

from .services import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Answer while the process can serve HTTP; touches nothing else."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Answer 200 only when Redis answers a PING."""
    try:
        services().store.ping()
    except redis.RedisError as exc:
        services().outage.failed("readyz", exc)
        response = jsonify(status="unavailable", redis=False)
        response.status_code = 503
        response.headers["Retry-After"] = str(current_app.config["REDIS_RETRY_AFTER"])
        return response
    services().outage.ok()
    return jsonify(status="ok", redis=True)
