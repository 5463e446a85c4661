"""A request id on every request: taken from X-Request-ID (nginx's $request_id) or made here,
echoed in the response and put on every log line (gunicorn.conf.py's filter reads it)."""
import re
import uuid

from flask import g, request

_SAFE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def init_app(app):
    app.before_request(_assign)
    app.after_request(_echo)


def _assign():
    given = request.headers.get("X-Request-ID", "")
    g.request_id = given if _SAFE.fullmatch(given) else uuid.uuid4().hex[:16]


def _echo(response):
    response.headers["X-Request-ID"] = g.get("request_id", "-")
    return response
