"""The HTTP interface of rooms: post a message, read history, stream live events."""
import json
import logging

import redis
from flask import (Blueprint, Response, abort, current_app, redirect, request,
                   url_for)

from . import broker, keys, messages, pages, stream
from .replies import json_error, wants_json

logger = logging.getLogger(__name__)
bp = Blueprint("api", __name__)

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
ROOM_RULE = "Room names are 1-64 characters of a-z, 0-9, _ and -, starting with a letter or digit."


def _room_or_400(room):
    if not keys.valid_room(room):
        abort(400, ROOM_RULE)
    return room


@bp.post("/rooms/<room>/messages")
def post_message(room):
    """Store a message and publish it; JSON gets 201 + the message, a form gets a 303."""
    _room_or_400(room)
    is_form = request.mimetype in FORM_TYPES
    if request.mimetype == "application/json":
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            abort(400, "The body must be a JSON object.")
        text, user = data.get("text"), data.get("user")
        key = request.headers.get("Idempotency-Key")
    elif is_form:
        text, user = request.form.get("text", ""), request.form.get("user", "")
        key = request.form.get("idempotency_key") or request.headers.get("Idempotency-Key")
    else:
        abort(415)
    page = is_form and not wants_json()
    try:
        text = messages.check_text(text, current_app.config["MAX_MESSAGE_CHARS"])
        user = messages.check_name(user)
        key = messages.check_idempotency_key(key)
        stored, created = broker.get_store().publish(room, user, text, key)
    except messages.Invalid as exc:
        if page:
            return pages.room_page(room, error=str(exc), text=text, user=user, status=exc.status)
        return json_error(exc.status, str(exc))
    except redis.RedisError as exc:
        if not page:
            raise  # errors.py answers 503 + Retry-After
        logger.warning("redis unavailable while posting room=%s error=%s", room, exc)
        return pages.room_page(room, error="The message could not be sent: the service is "
                               "unavailable. Your text is kept below; try again shortly.",
                               text=text, user=user, status=503)
    if page:
        response = redirect(url_for("pages.room", room=room), 303)
        pages.remember_name(response, user)
        return response
    return Response(stored, status=201 if created else 200, mimetype="application/json")


@bp.get("/rooms/<room>/messages")
def history(room):
    """Return a page of history, oldest first: ?before=<id>&limit=<n>."""
    _room_or_400(room)
    cfg = current_app.config
    before = request.args.get("before")
    if before is not None:
        before = keys.parse_stream_id(before)
        if before is None:
            abort(400, "before must be a message id such as 1732371730000-0.")
    limit = _int_arg("limit", cfg["PAGE_LIMIT_DEFAULT"], 1, cfg["PAGE_LIMIT_MAX"])
    found, more = broker.get_store().page(room, before, limit)
    body = '{"room":%s,"messages":[%s],"more":%s}' % (
        json.dumps(room), ",".join(found), "true" if more else "false")
    return Response(body, mimetype="application/json")


@bp.get("/rooms/<room>/events")
def events(room):
    """Stream a room as server-sent events, resuming after Last-Event-ID when given."""
    _room_or_400(room)
    cfg = current_app.config
    backlog = _int_arg("backlog", 0, 0, cfg["BACKLOG_MAX"])
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    cursor = keys.parse_cursor(raw)
    if raw and cursor is None:
        # Never an error: an EventSource stops reconnecting on one. Start from now instead.
        logger.info("malformed cursor, streaming from now room=%s cursor=%.80r", room, raw)
    streams = current_app.extensions["streams"]
    if streams.draining:  # this worker is leaving: come back at once, to another one
        return Response(stream.come_back(int(cfg["RETRY_MS"])), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache"})
    if streams.full():
        return json_error(503, "This server is at its stream limit; try again shortly.",
                          {"Retry-After": str(cfg["REDIS_RETRY_AFTER"])})
    body = stream.relay(broker.get_store(), broker.get_listeners(), streams, room, cursor, backlog,
                        float(cfg["HEARTBEAT_SECONDS"]), int(cfg["RETRY_MS"]))
    return Response(body, mimetype="text/event-stream", headers={
        "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _int_arg(name, default, low, high):
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        abort(400, "%s must be a whole number from %d to %d." % (name, low, high))
    if not low <= value <= high:
        abort(400, "%s must be a whole number from %d to %d." % (name, low, high))
    return value
