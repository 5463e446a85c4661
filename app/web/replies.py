"""How an answer is shaped: JSON for programs and fetch, HTML pages for browsers."""
import json
from urllib.parse import unquote_to_bytes

from flask import abort, jsonify, request
from werkzeug.exceptions import default_exceptions

from ..people.bearer import credentials
from .i18n import translate

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str


def wants_json():
    """Tell whether the client asked for JSON rather than a page. A program that authenticates
    with ``Authorization: Bearer`` always does, whatever body it sent (curl's ``-d`` alone sends a
    form) and whatever it accepts, unless a browser is navigating (a gateway in front, such as
    oauth2-proxy, may add a Bearer to every request)."""
    if request.is_json:
        return True
    if credentials(request.headers.get("Authorization")) is not None and not _navigating():
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def _navigating():
    """A browser loading a page (typed, a link, a plain form): Fetch Metadata says so."""
    return request.headers.get("Sec-Fetch-Mode") == "navigate"


def wants_page():
    """Tell whether a browser is loading this address as a page (typed, reopened, a plain form).

    Browsers name text/html in Accept for a navigation; fetch, EventSource and HTTP libraries
    send */* or nothing, so API answers stay JSON for them.
    """
    if _navigating():
        return True
    if credentials(request.headers.get("Authorization")) is not None:
        return False  # a program's (see wants_json)
    named = dict(request.accept_mimetypes)
    return named.get("text/html", 0) > named.get("application/json", 0)


# Every JSON error carries a stable machine-readable ``code`` beside its sentence (which is in the
# reader's language: programs must never parse it). An error without a code of its own gets its
# status's.
STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 408: "timeout", 409: "conflict", 413: "too_large",
                410: "gone", 415: "unsupported_type", 422: "invalid", 429: "rate_limited", 500: "internal",
                503: "unavailable", 504: "unconfirmed"}


def json_error(status, message, headers=None, code=None, fields=None):
    """One JSON error: {"error": "<a sentence a person can read>", "code": "<stable_code>"}, and
    a refusal's own ``fields`` beside them (409 edit_conflict: the message's text now)."""
    # The sentence in the reader's language; the code stays the same in every one.
    response = jsonify(**(fields or {}), error=translate(str(message)), code=code or status_code(status))
    response.status_code = status
    if headers:
        response.headers.update(headers)
    return response


def error_body(sentence, code):
    """A JSON error's bytes for an answer made outside Flask (the WSGI layers, the fast path),
    spelled as ``json_error``'s jsonify spells it: ``{"code":"...","error":"..."}``, keys sorted,
    no spaces, non-ASCII escaped (one shape for programs that compare bodies)."""
    return json.dumps({"code": code, "error": str(sentence)}, separators=(",", ":")).encode()


def status_code(status):
    """The generic error code of an HTTP status (``not_found``), for errors without their own."""
    return STATUS_CODES.get(status, "error")


def refuse(status, code, message):
    """abort(status, message) with a stable error ``code`` the JSON answer carries (app/errors.py)."""
    exc = default_exceptions[status](message)
    exc.error_code = code
    raise exc


def require_utf8_form():
    """Refuse a form body that is not UTF-8 (400), before werkzeug repairs it.

    Werkzeug keeps undecodable %XX escapes as literal text, drops a raw undecodable body, and
    decodes bad bytes in multipart fields as U+FFFD: each would store something nobody typed.
    Our forms carry no file fields, so a whole multipart body must be UTF-8 too.
    """
    raw = request.get_data(cache=True)  # cached: form parsing reads it again afterwards
    if request.mimetype == "application/x-www-form-urlencoded":
        raw = unquote_to_bytes(raw.replace(b"+", b" "))
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        abort(400, N_("The form is not valid UTF-8."))
