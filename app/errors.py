"""Every error becomes a clear answer: JSON for API clients, a page for browsers, never a bare 500.

A plain HTML form that fails for any reason (a rate limit, a stale page's CSRF token, a body the
server cannot read) gets its own page back: a sentence a person can act on, and what they typed.
Rate limits are told as sentences with the real wait ("try again in 40 s", the Retry-After).
"""
import json
import logging
import sys
import time

import redis
from flask import current_app, g, redirect, render_template, request, session, url_for
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from . import api, bodies, fastpost, guard, headers, keys, pages, requests, sessions
from .replies import json_error, wants_json, wants_page

logger = logging.getLogger(__name__)
INTERNAL = "Something went wrong on our side; nothing was changed. Please try again."

API_PREFIXES = ("/rooms/", "/users/", "/session", "/accounts", "/account/", "/admin/", "/readyz", "/metrics")

# What a stale page's CSRF failure means, per form: nothing happened, and how to go on.
_CSRF = {
    "sessions.sign_in": sessions.STALE_SIGN_IN,
    "sessions.sign_out_form": "You are still signed in: that page was out of date (its CSRF security "
                              "token had expired). Press Leave again.",
}
_CSRF_SEND = ("Nothing was sent: this page was out of date (its CSRF security token had expired, "
              "for example after signing in or out in another tab). Your text is kept; send it again.")

# Rate limits by what they protect, and whose budget ran out: the address or the session.
_LIMITED = {
    "sessions.sign_in": ("Too many sign-in attempts from your network; try again in %s.",) * 2,
    "api.post_message": ("Too many messages from your network; try again in %s.",
                         "You are sending messages too fast; try again in %s."),
}
_LIMITED["direct.post_direct"] = _LIMITED["api.post_message"]
_LIMITED_OTHER = "Too many requests; try again in %s."


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
            body = json.dumps({"error": INTERNAL}).encode()
            start_response("500 Internal Server Error", [
                ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                ("X-Request-ID", requests.request_id(environ)), *headers.PLAIN], sys.exc_info())
            return [body]


def _is_api():
    if wants_page():
        return False  # a browser opening /session, a form's address or a history link
    path = request.path
    # Room pages are HTML; everything under /rooms/<room>/... is API.
    if path.startswith("/rooms/") and path.count("/") == 2:
        return wants_json()
    return wants_json() or path.startswith(API_PREFIXES)


def _http_error(exc):
    if request.endpoint == "api.events" and exc.code in (429, 503):
        # A refused stream (a rate limit): in a form an EventSource retries.
        retry_after = _retry_after(exc)
        message = STREAM_LIMITED % retry_after if exc.code == 429 else _sentence(exc)
        return api.refuse_stream(exc.code, message, retry_after)
    if isinstance(exc, RateLimitExceeded):
        # The wait is only known once the limiter has set Retry-After (_tell_the_wait).
        sentence = _limited_sentence(exc)
        g.answer_limited = lambda wait: _answer(exc, sentence % _seconds(wait))
        return _answer(exc, sentence % _seconds(_wait_now()))
    if isinstance(exc, CSRFError):
        return _fresh_form() or _answer(exc, _CSRF.get(request.endpoint, _CSRF_SEND), code="csrf")
    return _answer(exc, _sentence(exc))


def _answer(exc, message, code=None):
    status = exc.code or 500
    headers = _kept_headers(exc)
    page = _form_page(status, message)
    if page is not None:
        return page[0], page[1], headers
    if _is_api():
        return json_error(status, message, headers, code)
    return render_template("error.html", status=status, message=message), status, headers


def _form_page(status, message):
    """The page a plain HTML form (JavaScript off) gets back, with ``message``; None if no form."""
    if request.method != "POST" or wants_json():
        return None
    is_form = request.mimetype in api.FORM_TYPES
    if not is_form and not wants_page():
        return None
    # A body too large (413) is never read; a form's fields are otherwise the person's own text.
    form = request.form if is_form and status != 413 else {}
    text = form.get("text", "").replace("\r\n", "\n")
    key = api.kept_key(form.get("idempotency_key"))  # a retry must not store it twice
    endpoint, args = request.endpoint, request.view_args or {}
    if endpoint == "api.post_message" and keys.canonical_room(args.get("room", "")):
        return pages.room_page(keys.canonical_room(args["room"]), error=message, text=text, status=status,
                               key=key)
    if endpoint == "direct.post_direct" and keys.canonical_room(request.args.get("room", "")):
        return pages.room_page(keys.canonical_room(request.args["room"]), other=args.get("name"),
                               dm_error=message, dm_text=text, dm_key=key, status=status)
    if endpoint == "sessions.sign_in":
        return pages.sign_in_page(error=message, typed=form.get("name", ""),
                                  target=sessions.safe_next(form.get("next")), status=status)
    if endpoint == "sessions.sign_out_form":
        return pages.lobby_page(notice=message, status=status)
    return None


def _fresh_form():
    """A 303 to a page that can carry a working form, when this answer could not; else None.

    A form's CSRF token is checked against a secret in the session cookie. A stale page whose
    session is gone (signed out in another tab, cookies cleared) has no secret any more, and an
    error answer to a POST writes no cookie (identity.SessionInterface: a cross-site post must not
    replace anyone's session), so a form shown again in that answer would fail forever. A GET
    page can set the cookie: the sign-in form goes there with the typed name. Only a browser
    loading a page is sent on; any other client gets the plain 4xx.
    """
    if (request.method != "POST" or not wants_page() or request.mimetype not in api.FORM_TYPES
            or current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token") in session):
        return None
    if request.endpoint == "sessions.sign_in":
        return redirect(url_for("sessions.whoami", name=request.form.get("name", "")[:64], expired=1,
                                next=sessions.safe_next(request.form.get("next"))), 303)
    if request.endpoint == "sessions.sign_out_form":
        return redirect(url_for("pages.lobby"), 303)  # no session: already signed out
    return None


def _redis_error(exc):
    current_app.extensions["outage"].failed(request.endpoint or "request", exc)
    retry = str(current_app.config["REDIS_RETRY_AFTER"])
    message = fastpost.store_failure(exc)
    if request.endpoint == "api.events":
        return api.refuse_stream(503, message, int(retry))
    status, code = 503, None
    if request.endpoint in _POSTS:  # the outcome may be unknown: never say "nothing stored"
        status, code, message = fastpost.post_failure(exc)
    page = _form_page(status, message)
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
    return "%d s" % wait if wait > 0 else "a moment"


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
