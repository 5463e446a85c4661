"""How an answer is shaped: JSON for programs and fetch, HTML pages for browsers."""
from urllib.parse import unquote_to_bytes

from flask import abort, jsonify, request


def wants_json():
    """Tell whether the client asked for JSON rather than a page."""
    if request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def wants_page():
    """Tell whether a browser is loading this address as a page (typed, reopened, a plain form).

    Browsers name text/html in Accept for a navigation; fetch, EventSource and HTTP libraries
    send */* or nothing, so API answers stay JSON for them.
    """
    if request.headers.get("Sec-Fetch-Mode") == "navigate":
        return True
    named = dict(request.accept_mimetypes)
    return named.get("text/html", 0) > named.get("application/json", 0)


def json_error(status, message, headers=None, code=None):
    """One JSON error: {"error": "<a sentence a person can read>"}, and a stable ``code`` if given."""
    response = jsonify(error=message) if code is None else jsonify(error=message, code=code)
    response.status_code = status
    if headers:
        response.headers.update(headers)
    return response


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
        abort(400, "The form is not valid UTF-8.")
