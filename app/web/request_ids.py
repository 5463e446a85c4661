"""A request id on every request: taken from X-Request-ID (nginx's $request_id) or made here,
echoed in the response and put on every log line (gunicorn.conf.py's filter reads it)."""
import itertools
import os
import re

from flask import g, request

_SAFE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def init_app(app):
    app.before_request(_assign)
    app.after_request(_echo)


class _Ids:
    """Ids unique across processes and restarts without drawing randomness for each: a random
    prefix per process (re-drawn in a forked child, told by os.register_at_fork: asking
    getpid() on every request was a syscall per request) and a counter."""

    def __init__(self):
        self.prefix = None

    def forget(self):
        self.prefix = None

    def next(self):
        if self.prefix is None:
            self.prefix, self.count = os.urandom(5).hex(), itertools.count(1)
        return "%s%06x" % (self.prefix, next(self.count))


_ids = _Ids()
os.register_at_fork(after_in_child=_ids.forget)


def request_id(environ):
    """The request's id: the X-Request-ID it came with when that is safe to log, else a new one."""
    given = environ.get("HTTP_X_REQUEST_ID", "")
    return given if _SAFE.fullmatch(given) else _ids.next()


def _assign():
    g.request_id = request_id(request.environ)


def _echo(response):
    response.headers["X-Request-ID"] = g.get("request_id", "-")
    return response
