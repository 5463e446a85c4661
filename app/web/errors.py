"""Every error becomes a clear answer: JSON for API clients, a page for browsers, never a bare 500.

A plain HTML form that fails for any reason gets its own page back (app/web/form_pages.py). Rate
limits are told as sentences with the real wait ("try again in 40 s", the Retry-After).
"""
import logging
import sys
import time

import redis
from flask import current_app, g, render_template, request
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from ..ops.services import services
from ..people import bearer, tokens
from . import api, bodies, fastpost, form_pages, guard, headers, request_ids
from .i18n import translate
from .replies import error_body, json_error, wants_json, wants_page

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

logger = logging.getLogger(__name__)
INTERNAL = N_("Something went wrong on our side; nothing was changed. Please try again.")

API_PREFIXES = ("/rooms/", "/users/", "/session", "/accounts", "/account/", "/admin/", "/me/", "/healthz", "/readyz",
                "/metrics")

# Rate limits by what they protect, and whose budget ran out: the address or the session.
_LIMITED = {
    "sessions.sign_in": (N_("Too many sign-in attempts from your network; try again in %s."),) * 2,
    "api.post_message": (N_("Too many messages from your network; try again in %s."),
                         N_("You are sending messages too fast; try again in %s.")),
}
_LIMITED["direct.post_direct"] = _LIMITED["api.post_message"]
_LIMITED_OTHER = N_("Too many requests; try again in %s.")


def init_app(app):
    app.json = bodies.JSONProvider(app)  # a body nested 20,000 deep is a 400, not a crash
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(redis.RedisError, _redis_error)
    # Runs after every other after_request, Flask-Limiter's included (they run in reverse order
    # of registration): the limiter sets Retry-After there, and the sentence must say the same.
    app.after_request_funcs.setdefault(None, []).insert(0, _tell_the_wait)


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
            body = error_body(INTERNAL, "internal")
            start_response("500 Internal Server Error", [
                ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                ("X-Request-ID", request_ids.request_id(environ)), *headers.PLAIN], sys.exc_info())
            return [body]


def _is_api():
    if wants_page():
        return False  # a browser opening /session, a form's address or a history link
    path = request.path
    # Room pages are HTML; everything under /rooms/<room>/... is API, and so is /rooms (POST).
    if path.startswith("/rooms/") and path.count("/") == 2:
        return wants_json()
    return wants_json() or path == "/rooms" or path.startswith(API_PREFIXES)


def _http_error(exc):
    if request.endpoint == "api.events" and exc.code in (429, 503):
        # A refused stream (a rate limit): in a form an EventSource retries.
        retry_after = _retry_after(exc)
        # The wait the sentence names is the one the client will use (refuse_stream's).
        message = (lambda wait: STREAM_LIMITED % wait) if exc.code == 429 else _sentence(exc)
        return api.refuse_stream(exc.code, message, retry_after)
    if isinstance(exc, RateLimitExceeded):
        # The wait is only known once the limiter has set Retry-After (_tell_the_wait).
        sentence = _limited_sentence(exc)
        g.answer_limited = lambda wait: _answer(exc, sentence % _seconds(wait))
        return _answer(exc, sentence % _seconds(_wait_now()))
    if isinstance(exc, CSRFError):
        missing = exc.description == "The CSRF token is missing."  # (Flask-WTF's words for "none came")
        if missing and bearer.credentials(request.headers.get("Authorization")) is not None \
                and request.mimetype not in api.FORM_TYPES:
            # A program's Bearer that is no publish token (mistyped, or another service's), and
            # no session to post as: say the token is not valid, not "no token came".
            return json_error(401, tokens.INVALID, code="token_invalid")
        if exc.description in form_pages.REFERRER_REFUSALS:
            return _answer(exc, form_pages.NOT_FROM_HERE, code="csrf")
        return form_pages.fresh_form() or _answer(exc, form_pages.stale(request.endpoint, missing), code="csrf")
    return _answer(exc, _sentence(exc), code=getattr(exc, "error_code", None))


def _answer(exc, message, code=None):
    status = exc.code or 500
    headers = _kept_headers(exc)
    page = form_pages.page(status, message)
    if page is not None:
        return page[0], page[1], headers
    if _is_api():
        return json_error(status, message, headers, code)
    return render_template("error.html", status=status, message=message), status, headers


def _redis_error(exc):
    services().outage.failed(request.endpoint or "request", exc)
    retry = str(current_app.config["REDIS_RETRY_AFTER"])
    message = fastpost.store_failure(exc)
    if request.endpoint == "api.events":
        return api.refuse_stream(503, message, int(retry))
    status, code = 503, None
    page_message = message
    if request.endpoint in _POSTS:  # once storing began, the outcome may be unknown: never "nothing stored"
        storing = bool(g.get("storing"))
        status, code, message = fastpost.post_failure(exc, storing)
        page_message = api.form_post_failure(exc, storing)[1]  # a form's page also says the text is kept
    page = form_pages.page(status, page_message)
    if page is not None:
        return page[0], page[1], {"Retry-After": retry}
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


def _tell_the_wait(response):
    answer = g.pop("answer_limited", None)
    wait = response.headers.get("Retry-After", "")
    if answer is not None and response.status_code == 429 and wait.isdigit():
        again = current_app.make_response(answer(int(wait)))
        response.set_data(again.get_data())
    return response


def _limited_sentence(exc):
    by_address, by_session = _LIMITED.get(request.endpoint, (_LIMITED_OTHER,) * 2)
    return by_session if exc.limit.key_func is guard.session_key else by_address


def _wait_now():
    limit = guard.limiter.current_limit
    return int(limit.reset_at - time.time()) if limit else 0


def _seconds(wait):
    return N_("%d s") % wait if wait > 0 else N_("a moment")


def _kept_headers(exc):
    sent = dict(exc.get_headers())
    return {name: sent[name] for name in ("Retry-After", "Allow") if name in sent}


STREAM_LIMITED = (N_("Too many live connections were opened from your network or session just now; "
                     "this one tries again in %d s."))

_SENTENCES = {
    400: N_("The request could not be understood."),
    404: N_("There is nothing here."),
    405: N_("That method is not allowed here."),
    415: N_("Unsupported content type: send JSON or a form."),
    429: N_("Too many requests. Please slow down."),
    # The rest, werkzeug's names as sentences (a view's own sentence is used when it gave one).
    401: N_("Unauthorized."), 403: N_("Forbidden."), 408: N_("Request Timeout."), 409: N_("Conflict."),
    410: N_("Gone."), 500: N_("Internal Server Error."), 503: N_("Service Unavailable."),
}


TOO_LARGE = N_("The request is too large: the limit is %s.")


def _sentence(exc):
    # abort(400, "...") carries our own sentence; werkzeug's defaults are long and generic.
    default = type(exc).description
    if exc.description and exc.description != default:
        return exc.description
    if exc.code == 413:  # the limit named (RIPPLE_MAX_CONTENT_LENGTH): "64 KiB"
        return TOO_LARGE % size(current_app.config["MAX_CONTENT_LENGTH"])
    return _SENTENCES.get(exc.code, exc.name + ".")


def size(count):
    """A number of bytes as people read it: "64 KiB", "1 MiB", "1000 bytes"."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale and count % scale == 0:
            return "%d %s" % (count // scale, unit)
    return translate(N_("%d bytes") % count)
