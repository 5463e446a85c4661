"""Probes for load balancers: /healthz (process alive) and /readyz (Redis reachable)."""
import logging

import redis
from flask import Blueprint, current_app, jsonify

from . import broker

logger = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Answer while the process can serve HTTP; touches nothing else."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Answer 200 only when Redis answers a PING."""
    try:
        broker.get_store().ping()
    except redis.RedisError as exc:
        logger.warning("readyz: redis unavailable error=%s", exc)
        response = jsonify(status="unavailable", redis=False)
        response.status_code = 503
        response.headers["Retry-After"] = str(current_app.config["REDIS_RETRY_AFTER"])
        return response
    return jsonify(status="ok", redis=True)
