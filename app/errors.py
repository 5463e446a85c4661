"""Every error becomes a clear answer: JSON for API clients, a page for browsers, never a bare 500."""
import json
import logging
import sys
import time

import redis
from flask import current_app, render_template, request
from werkzeug.exceptions import HTTPException

from . import api, bodies, fastpost, guard, headers, keys, pages, requests
from .replies import json_error, wants_json

logger = logging.getLogger(__name__)
INTERNAL = "Something went wrong on our side; nothing was changed. Please try again."

API_PREFIXES = ("/rooms/", "/users/", "/session", "/readyz", "/metrics")


def init_app(app):
    app.json = bodies.JSONProvider(app)  # a body nested 20,000 deep is a 400, not a crash
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(redis.RedisError, _redis_error)


class LastResort:
    """The outermost WSGI layer: a failure in a middleware before Flask (which answers its own)
    still gets Ripple's JSON error, never gunicorn's HTML page."""

    def __init__(self, wsgi_app):
        self.next = wsgi_app

    def __call__(self, environ, start_response):
        try:
            return self.next(environ, start_response)
        except Exception:  # noqa: BLE001 - logged with its traceback, answered as JSON
            logger.exception("request failed before the app path=%s", environ.get("PATH_INFO"))
            body = json.dumps({"error": INTERNAL}).encode()
            start_response("500 Internal Server Error", [
                ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                ("X-Request-ID", requests.request_id(environ)), *headers.PLAIN], sys.exc_info())
            return [body]


def _is_api():
    path = request.path
    # Room pages are HTML; everything under /rooms/<room>/... is API.
    if path.startswith("/rooms/") and path.count("/") == 2:
        return wants_json()
    return wants_json() or path.startswith(API_PREFIXES)


def _http_error(exc):
    message = _sentence(exc)
    if request.endpoint == "api.events" and exc.code in (429, 503):
        # A refused stream (a rate limit): in a form an EventSource retries.
        retry_after = _retry_after(exc)
        if exc.code == 429:
            message = STREAM_LIMITED % retry_after
        return api.refuse_stream(exc.code, message, retry_after)
    if request.endpoint == "api.post_message" and request.mimetype in api.FORM_TYPES and not wants_json():
        # A plain form post (JavaScript off) refused by CSRF or a rate limit: the room page
        # again, with the error and the text the person typed.
        room = keys.canonical_room((request.view_args or {}).get("room", ""))
        if room:
            text = "" if exc.code == 413 else request.form.get("text", "")
            page, status = pages.room_page(room, error=message, text=text, status=exc.code,
                                           key=api.kept_key(request.form.get("idempotency_key")))
            return page, status, _kept_headers(exc)
    if _is_api():
        return json_error(exc.code or 500, message, _kept_headers(exc))
    return render_template("error.html", status=exc.code, message=message), exc.code, _kept_headers(exc)


def _redis_error(exc):
    current_app.extensions["outage"].failed(request.endpoint or "request", exc)
    retry = str(current_app.config["REDIS_RETRY_AFTER"])
    message = fastpost.store_failure(exc)
    if request.endpoint == "api.events":
        return api.refuse_stream(503, message, int(retry))
    status, code = 503, None
    if request.endpoint in _POSTS:  # the outcome may be unknown: never say "nothing stored"
        status, code, message = fastpost.post_failure(exc)
    if _is_api():
        return json_error(status, message, {"Retry-After": retry}, code)
    return render_template("error.html", status=status, message=message), status, {"Retry-After": retry}


_POSTS = ("api.post_message", "direct.post_direct")


def _retry_after(exc):
    """Seconds until a refused request may succeed: the rate limit's reset, else a default."""
    sent = dict(exc.get_headers())
    if sent.get("Retry-After", "").isdigit():
        return int(sent["Retry-After"])
    limit = getattr(guard.limiter, "current_limit", None)
    if limit is not None:
        return max(1, int(limit.reset_at - time.time()))
    return int(current_app.config["REDIS_RETRY_AFTER"])


def _kept_headers(exc):
    sent = dict(exc.get_headers())
    return {name: sent[name] for name in ("Retry-After", "Allow") if name in sent}


STREAM_LIMITED = ("Too many live connections were opened from your network or session just now; "
                  "this one tries again in %d s.")

_SENTENCES = {
    400: "The request could not be understood.",
    404: "There is nothing here.",
    405: "That method is not allowed here.",
    413: "The request is too large.",
    415: "Unsupported content type: send JSON or a form.",
    429: "Too many requests. Please slow down.",
}


def _sentence(exc):
    # abort(400, "...") carries our own sentence; werkzeug's defaults are long and generic.
    default = type(exc).description
    if exc.description and exc.description != default:
        return exc.description
    return _SENTENCES.get(exc.code, exc.name + ".")
