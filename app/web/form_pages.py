"""What a plain HTML form (JavaScript off) gets back when it fails: its own page again, with a
sentence a person can act on and what they typed (the name, the text, the idempotency key).

errors.py calls ``page`` for every refusal of a form post (a rate limit, a rule, Redis) and
``fresh_form`` first for a stale CSRF token.
"""
from flask import current_app, g, redirect, request, session, url_for

from ..people import identity, sessions
from ..rooms import keys
from . import api, pages
from .replies import wants_json, wants_page

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

# What a stale page's CSRF failure means, per form: nothing happened, and how to go on.
_STALE = {
    "sessions.sign_in": sessions.STALE_SIGN_IN,
    "sessions.sign_out_form": N_("You are still signed in: that page was out of date (its CSRF security "
                                 "token had expired). Press Sign out again."),
    "rooms.create_room": N_("No room was created: this page was out of date (its CSRF security token had "
                            "expired, for example after signing in again in another tab). Press Create again."),
}
_STALE_SEND = (N_("Nothing was sent: this page was out of date (its CSRF security token had expired, "
                  "for example after signing in or out in another tab). Your text is kept; send it again."))
# A request that is no form and carries no CSRF token at all is a program's, not a stale page's.
NO_TOKEN = N_("Nothing was done: this request carries neither a publish token nor a CSRF token. A program "
              "sends its publish token as \"Authorization: Bearer <token>\"; a browser page sends the "
              "token GET /session gives as the X-CSRF-Token header.")
# The same, with an Authorization header in another scheme ("Token <token>", "Basic ..."): the
# publish token may be there, sent the wrong way.
NOT_BEARER = N_("Nothing was done: this request's Authorization header is not “Bearer <token>”, so it "
                "carries no publish token, nor a CSRF token. A program sends its publish token as "
                "\"Authorization: Bearer <token>\"; a browser page sends the token GET /session gives as "
                "the X-CSRF-Token header.")

# Over HTTPS Flask-WTF also wants a Referer of this host (WTF_CSRF_SSL_STRICT), after a valid token:
# its two refusals were answered as a stale page's ("press ... again"), which never helps.
REFERRER_REFUSALS = ("The referrer header is missing.", "The referrer does not match the host.")
NOT_FROM_HERE = N_("Nothing was done: over HTTPS a request that uses the session cookie must come from "
                   "this site's own pages, and this one's Referer header was missing or named another "
                   "site. A program sends \"Referer: https://<this site>/\" with it, or uses a token "
                   "instead.")


TOO_LARGE = (N_("Nothing was sent: the message was far too long to send (over %d KB), so it could not be "
                "kept here either. A message may hold up to %d characters."))


def stale(endpoint, missing=False):
    """The sentence for a form whose CSRF token is out of date: nothing happened, how to go on.
    ``missing``: no token came at all; unless a browser is loading a page (a plain form: it may
    send "Authorization: Basic" on every request behind HTTP basic auth), that is a program's,
    whatever its body (curl's -d sends a form)."""
    if missing and (request.mimetype not in api.FORM_TYPES or not wants_page()):
        return NOT_BEARER if request.headers.get("Authorization", "").strip() else NO_TOKEN
    if endpoint == "rooms.create_room" and not identity.shown():
        return pages.CREATE_SIGNED_OUT  # signed out in another tab: "press Create again" would fail
    return _STALE.get(endpoint, _STALE_SEND)


def page(status, message):
    """The page a plain HTML form (JavaScript off) gets back, with ``message``; None if no form."""
    if request.method != "POST" or wants_json():
        return None
    is_form = request.mimetype in api.FORM_TYPES
    if not is_form and not wants_page():
        return None
    # A body too large (413) is never read; a form's fields are otherwise the person's own text.
    form = request.form if is_form and status != 413 else {}
    if status == 413 and request.endpoint in ("api.post_message", "direct.post_direct"):
        cfg = current_app.config
        message = TOO_LARGE % (cfg["MAX_CONTENT_LENGTH"] // 1024, cfg["MAX_MESSAGE_CHARS"])
    text = form.get("text", "").replace("\r\n", "\n")
    key = api.kept_key(form.get("idempotency_key"))  # a retry must not store it twice
    endpoint, args = request.endpoint, request.view_args or {}
    if endpoint == "api.post_message" and keys.canonical_room(args.get("room", "")):
        return pages.room_page(keys.canonical_room(args["room"]), error=message, text=text, status=status,
                               key=key, again=form.get("again") == "1")
    if endpoint == "direct.post_direct" and keys.canonical_room(request.args.get("room", "")):
        asked = bool(g.get("ask_again"))  # "sent just now": a question, shown as a note, not an error
        return pages.room_page(keys.canonical_room(request.args["room"]), other=args.get("name"),
                               dm_error=None if asked else message, dm_note=message if asked else None,
                               dm_text=text, dm_key=key, status=status,
                               dm_again=asked or form.get("again") == "1")
    if endpoint == "sessions.sign_in":
        return pages.sign_in_page(error=message, typed=form.get("name", ""),
                                  target=sessions.safe_next(form.get("next")), status=status)
    if endpoint == "sessions.sign_out_form":
        return pages.lobby_page(notice=message, status=status)
    if endpoint == "rooms.create_room":
        return pages.create_refused(form, status, message)
    return None


def fresh_form():
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
    if request.endpoint == "rooms.create_room":  # signed out: the lobby says so, the fields kept
        return redirect(url_for("pages.lobby", expired=1, **pages.typed_create(request.form)), 303)
    return None
