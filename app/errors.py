"""Every error becomes a clear answer: JSON for API clients, a page for browsers, never a bare 500."""
import redis
from flask import current_app, render_template, request
from werkzeug.exceptions import HTTPException

from . import api, fastpost, keys, pages
from .replies import json_error, wants_json


API_PREFIXES = ("/rooms/", "/users/", "/session", "/readyz", "/metrics")


def init_app(app):
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(redis.RedisError, _redis_error)


def _is_api():
    path = request.path
    # Room pages are HTML; everything under /rooms/<room>/... is API.
    if path.startswith("/rooms/") and path.count("/") == 2:
        return wants_json()
    return wants_json() or path.startswith(API_PREFIXES)


def _http_error(exc):
    message = _sentence(exc)
    if request.endpoint == "api.post_message" and request.mimetype in api.FORM_TYPES and not wants_json():
        # A plain form post (JavaScript off) refused by CSRF or a rate limit: the room page
        # again, with the error and the text the person typed.
        room = (request.view_args or {}).get("room", "")
        if keys.valid_room(room):
            text = "" if exc.code == 413 else request.form.get("text", "")
            page, status = pages.room_page(room, error=message, text=text, status=exc.code)
            return page, status, _kept_headers(exc)
    if _is_api():
        return json_error(exc.code or 500, message, _kept_headers(exc))
    return render_template("error.html", status=exc.code, message=message), exc.code, _kept_headers(exc)


def _redis_error(exc):
    current_app.extensions["outage"].failed(request.endpoint or "request", exc)
    retry = str(current_app.config["REDIS_RETRY_AFTER"])
    message = fastpost.UNAVAILABLE
    if _is_api():
        return json_error(503, message, {"Retry-After": retry})
    return render_template("error.html", status=503, message=message), 503, {"Retry-After": retry}


def _kept_headers(exc):
    sent = dict(exc.get_headers())
    return {name: sent[name] for name in ("Retry-After", "Allow") if name in sent}


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
