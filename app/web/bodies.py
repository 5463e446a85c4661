"""Request bodies: read within a time limit before anything else sees them, parsed as JSON safely.

A client that announces ``Content-Length: 500`` and then sends nothing would otherwise hold its
connection (and one of the worker's ``worker_connections``) for ever: gunicorn's ``timeout`` is
the worker's liveness, not a request's, and its keep-alive timeout covers only the headers. The
outermost middleware reads the whole body (at most ``MAX_CONTENT_LENGTH`` bytes) under one
deadline and answers 408 when the client does not finish in time.
"""
import functools
import io
import json
import logging
import socket

import gevent
from flask import request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from . import headers, replies, request_ids

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

logger = logging.getLogger(__name__)

SLOW_BODY = N_("The request body did not arrive in time. Please try again.")
TOO_DEEP = N_("The JSON body is nested too deeply.")
NUMBER_TOO_LONG = N_("A number in the JSON body is too long.")
NOT_JSON = N_("The body is not valid JSON (UTF-8).")
NOT_OBJECT = N_("The body must be a JSON object.")
NOT_JSON_TYPE = N_("Send the body as JSON, with Content-Type: application/json.")
NUMBER_DIGITS = 1000  # more digits than any field takes; Python refuses 4,300 with a long sentence


def _not_json(constant):
    # Python's parser takes NaN, Infinity and -Infinity, which JSON (RFC 8259) has not.
    raise ValueError("%s is not JSON" % constant)


def _int(text):
    if len(text) > NUMBER_DIGITS:
        raise ValueError(NUMBER_TOO_LONG)
    return int(text)


def loads(raw):
    """Parse JSON text or UTF-8 bytes (RFC 8259: no NaN or Infinity); every failure, deep
    nesting and over-long numbers included, is a ValueError (their own: TOO_DEEP,
    NUMBER_TOO_LONG).

    Python's parser recurses once per ``[`` or ``{``: 20,000 of them raise RecursionError,
    which no caller expects from a parse (it escaped as gunicorn's HTML 500).
    """
    try:
        return json.loads(raw, parse_constant=_not_json, parse_int=_int)
    except RecursionError:
        raise ValueError(TOO_DEEP) from None


UNNAMED_FIELD = N_("Every part of a multipart form needs a name (Content-Disposition: form-data; name=\"...\").")


class BadBody(BadRequest):
    """400 "bad_body": a JSON body that is not the JSON object the route takes."""

    error_code = "bad_body"


class NotJSON(UnsupportedMediaType):
    """415 "unsupported_type": a body that is not JSON where the route takes JSON only."""

    error_code = "unsupported_type"


def json_body():
    """The request's body, sent as JSON, as a dict (an empty body: {}); raises BadBody (400
    "bad_body") with a sentence that says what is wrong: not JSON, nested too deeply, a number
    too long, or JSON but not an object. Every JSON route reads its body here or through
    ``json_request``, so the same mistake gets the same answer on every route."""
    raw = request.get_data(cache=True)
    if not raw:  # many HTTP clients send Content-Type: application/json with no body at all
        return {}
    try:
        data = loads(raw)
    except ValueError as exc:
        said = str(exc)
        raise BadBody(said if said in (TOO_DEEP, NUMBER_TOO_LONG) else NOT_JSON) from None
    if not isinstance(data, dict):
        raise BadBody(NOT_OBJECT)
    return data


def json_request():
    """``json_body`` of a route that takes JSON only: a body sent as anything else is 415
    "unsupported_type" (an empty body is {}, whatever its Content-Type)."""
    if request.mimetype != "application/json" and request.get_data(cache=True):
        raise NotJSON(NOT_JSON_TYPE)
    return json_body()


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, parsing bodies with ``loads``'s rules (``request.get_json`` then answers 400)."""

    def loads(self, s, **kwargs):
        kwargs.setdefault("parse_constant", _not_json)
        kwargs.setdefault("parse_int", _int)
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError(TOO_DEEP) from None


class BodyDeadline:
    """WSGI middleware: the whole request body within ``seconds``, or 408 and the connection closed."""

    def __init__(self, wsgi_app, seconds, max_body):
        self.next, self.seconds, self.max_body = wsgi_app, float(seconds), int(max_body)

    def __call__(self, environ, start_response):
        length = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not chunked:
            try:
                want = int(length) if length else 0
            except ValueError:
                return self.next(environ, start_response)  # Flask refuses it
            if want <= 0 or want > self.max_body:
                return self.next(environ, start_response)  # nothing to read, or a 413 unread
        else:
            want = self.max_body + 1  # one byte past the limit tells a body too large
        body = environ["wsgi.input"]
        closing = functools.partial(_must_close, body)
        timer = gevent.Timeout(self.seconds)
        timer.start()
        try:
            raw = _read(body, want)
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            closing()
            return self._too_slow(environ, start_response)
        finally:
            timer.close()
        environ["wsgi.input"] = io.BytesIO(raw)  # what Flask and the fast path read
        if not chunked:
            return self.next(environ, start_response)
        # A chunked body (no length announced) is from here on one of the length read, so every
        # reader applies the same limit: past it, Flask answers 413 as for a Content-Length too
        # large, and the connection closes after it (the rest of the body is never read).
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["CONTENT_LENGTH"] = str(len(raw))
        if len(raw) <= self.max_body:
            return self.next(environ, start_response)
        closing()  # the answer's head says so: Connection: close, not keep-alive
        return _ThenClose(self.next(environ, start_response), environ.get("gunicorn.socket"))

    def _too_slow(self, environ, start_response):
        logger.info("request body too slow path=%s seconds=%s", environ.get("PATH_INFO"), self.seconds)
        body = replies.error_body(SLOW_BODY, "timeout")
        start_response("408 Request Timeout", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
            ("X-Request-ID", request_ids.request_id(environ)), *headers.PLAIN])
        return _ThenClose([body], environ.get("gunicorn.socket"))


def _must_close(body):
    """Tell gunicorn that the connection of the request whose ``wsgi.input`` is ``body`` closes
    after its answer, so the answer's head says ``Connection: close`` (gunicorn drops an app's
    own Connection header and says keep-alive unless its request must close). Only a chunked
    body's reader knows its request; otherwise the head still says keep-alive, though the
    connection closes all the same (_ThenClose)."""
    request = getattr(getattr(body, "reader", None), "req", None)
    if request is not None and hasattr(request, "must_close"):
        request.must_close = True


def _read(stream, size):
    parts, left = [], size
    while left > 0:
        data = stream.read(left)
        if not data:
            break  # the client closed early: Flask sees a short body and refuses it
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


class _ThenClose:
    """A response body after which the connection is shut: the rest of the request body never
    comes, so the connection cannot carry another request."""

    def __init__(self, chunks, sock):
        self.chunks, self.sock = chunks, sock

    def __iter__(self):
        return iter(self.chunks)

    def close(self):  # gunicorn calls this after writing the whole response
        inner = getattr(self.chunks, "close", None)
        if inner is not None:
            inner()
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
