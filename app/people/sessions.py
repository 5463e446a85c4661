"""Signing in (an account's name and password, or a guest's display name): POST, GET and
DELETE /session."""
import json

import redis
from flask import Blueprint, abort, current_app, flash, jsonify, redirect, request, session, url_for
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import generate_csrf

from ..ops.services import flag, services
from ..rooms import keys, messages
from ..web import bodies, guard, pages, targets
from ..web.replies import json_error, require_utf8_form, wants_json, wants_page
from . import accounts, identity, jwts
from .names import fold

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

bp = Blueprint("sessions", __name__)

STALE_SIGN_IN = (N_("You are not signed in yet: this page was out of date (its CSRF security token had "
                    "expired, for example after signing in or out in another tab). Press Start chatting again."))


@bp.post("/session")
@guard.limiter.limit(guard.rate("SESSION_RATE_IP"))
def sign_in():
    """Sign in. With a password: the account of that name (401 if the pair does not match,
    403 if disabled, 429 past the attempt limits). Without: a guest's display name (403 when
    guests are off). With a host application's token (JSON {"token"}, or the request's own
    ``Authorization: Bearer`` header, any body or none): its user, with a session cookie from
    then on. Form -> 303 to ``next``; JSON -> 200 ``describe()`` + "csrf_token"."""
    is_json = request.mimetype == "application/json"
    presented = jwts.bearer()
    if presented is not None and not request.mimetype:  # a bare exchange: the header says it all
        is_json, name, password, token = True, None, None, presented
    elif is_json:
        data = bodies.json_body()
        name, password, token = data.get("name"), data.get("password"), data.get("token")
    elif request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        require_utf8_form()
        name, password, token = request.form.get("name", ""), request.form.get("password") or None, None
    else:
        abort(415)
    if token is None and presented is not None:
        token = presented  # the header names the user: a name or password beside it does not
    target = safe_next(request.form.get("next") if not is_json else None)
    typed = name if isinstance(name, str) else ""
    try:
        if token is not None:
            _sign_in_with_token(token)
        elif password is not None:
            _sign_in_with_password(name, password)
        else:
            _sign_in_as_guest(name)
    except Refused as exc:
        if is_json or wants_json():
            return json_error(exc.status, str(exc), exc.headers, code=exc.code)
        page, status = pages.sign_in_page(error=str(exc), typed=typed.strip(), target=target,
                                          status=exc.status)
        return page, status, exc.headers
    if is_json or wants_json():
        return jsonify(**describe(), csrf_token=generate_csrf())
    return redirect(target, 303)


class Refused(Exception):
    """A sign-in, registration or password change refused: a sentence, a status, headers."""

    def __init__(self, message, status, headers=None, code=None):
        super().__init__(message)
        self.status, self.headers, self.code = status, headers or {}, code


def _sign_in_as_guest(name):
    if not flag(current_app.config["GUESTS"]):
        raise Refused(GUESTS_OFF, 403)
    try:
        name = messages.check_name(name)
        identity.sign_in(name)
    except messages.Invalid as exc:
        raise Refused(str(exc), exc.status) from None
    except identity.NameTaken:
        raise Refused(identity.taken(name), 409) from None


def _sign_in_with_password(name, password):
    if not isinstance(name, str) or not isinstance(password, str):
        raise Refused(N_("Name and password must be strings."), 400)
    limit_attempts(name)
    account = services().accounts.authenticate(name.strip(), password)
    if account is None:
        raise Refused(accounts.SENTENCES["wrong"], 401)
    if account["disabled"]:
        raise Refused(accounts.SENTENCES["disabled"], 403)
    try:
        identity.sign_in(account["name"], account=account["id"])
    except identity.Disabled:
        raise Refused(accounts.SENTENCES["disabled"], 403) from None
    except identity.NameTaken:  # cannot happen to the account's own name; said plainly if it does
        raise Refused(identity.taken(account["name"]), 409) from None


def _sign_in_with_token(token):
    """A host application's signed token (app/people/jwts.py) names the person: its ``sub`` is their
    stable id, its ``name`` their display name, and the session ends when the token expires."""
    try:
        claims = services().jwts.claims(token)
        name = messages.check_name(claims["name"])
        identity.sign_in(name, token=claims)
    except jwts.Refused as exc:
        raise Refused(str(exc), exc.status, code=exc.code) from None
    except messages.Invalid as exc:
        raise Refused(str(exc), exc.status) from None
    except identity.NameTaken:
        raise Refused(identity.taken(claims["name"]), 409) from None


def limit_attempts(name):
    """Count a password attempt against the name's and the address's limits; raise Refused
    (429, Retry-After) past either. Unknown names count too: a limit must not tell them apart."""
    for setting, scope, who, sentence in (
            ("SIGNIN_RATE_ACCOUNT", "signin-name", fold(name.strip()) or "-", TOO_MANY_FOR_NAME),
            ("SIGNIN_RATE_IP", "signin-ip", get_remote_address(), TOO_MANY_FROM_ADDRESS)):
        wait = guard.spend(setting, scope, who)
        if wait:
            raise Refused(sentence % wait, 429, {"Retry-After": str(wait)})


def describe():
    """{"name", "id", "uid", "kind": "account"|"token"|"guest", "admin": bool} of the signed-in
    person, or None. ``id``: the account id, a token's ``sub`` (as its source gave it), or
    "guest:<hash of the session>" (stable for the session); ``uid``: what their messages carry
    (identity.stable_id: the same but for a token's, "jwt:"/"proxy:"/"oidc:" + its ``sub``)."""
    name, _ = identity.current()
    if not name:
        return None
    account_id = identity.account()
    found = services().accounts.get(account_id) if account_id else None
    uid = identity.uid()
    return {"name": name, "id": identity.sub() or uid, "uid": uid, "kind": identity.kind(),
            "admin": accounts.administers(found)}  # a disabled account's session holds no powers


ROOM_SCOPE = N_("Your sign-in token allows only rooms matching “%s”, not “%s”.")
NO_ROOMS = N_("Your sign-in token allows no rooms (its 'rooms' claim is empty), so not “%s”.")
GUESTS_OFF = (N_("Guests are turned off on this service: register an account (at /register) or "
                 "sign in with your password."))
TOO_MANY_FOR_NAME = N_("Too many sign-in attempts for this name; try again in %d s.")
TOO_MANY_FROM_ADDRESS = N_("Too many sign-in attempts from your network; try again in %d s.")


@bp.before_app_request
def _check_token():
    """A JWT presented anywhere (even on a public room's history) must be valid: 401 otherwise,
    never a silent anonymous read."""
    if jwts.presented() is not None:
        identity.current()
    room = (request.view_args or {}).get("room")
    if room is not None and (jwts.presented() is not None or session.get("sid")):
        canonical = keys.canonical_room(room)
        try:
            allowed = identity.rooms()
        except redis.RedisError:
            return None  # Redis cannot tell: the view's own Redis call answers (503, text kept)
        if canonical is not None and not jwts.room_ok(allowed, canonical):
            if not allowed:  # an empty rooms claim
                return json_error(403, NO_ROOMS % canonical, code="token_scope")
            return json_error(403, ROOM_SCOPE % (", ".join(allowed), canonical), code="token_scope")


@bp.app_errorhandler(jwts.Refused)
def _token_refused(exc):
    return json_error(exc.status, str(exc), code=exc.code)


@bp.get("/session")
def whoami():
    """Return describe() + "csrf_token" for a signed-in session, else 401 {"error", "csrf_token"}.

    The 401 carries a token too: signing in is a POST, and it needs one. A browser opening this
    address (a failed sign-in's page, reopened or refreshed) gets the sign-in page instead.
    """
    person = describe()
    if wants_page():
        if person:
            return redirect(url_for("pages.lobby"), 303)
        # A stale page's sign-in lands here too (errors.py), with the name that was typed.
        return pages.sign_in_page(error=STALE_SIGN_IN if request.args.get("expired") else None,
                                  typed=request.args.get("name", ""), target=safe_next(request.args.get("next")))
    if not person:
        # json_error's body (the sentence in the reader's language, the stable code) plus the token
        response = json_error(401, N_("Not signed in."))
        response.set_data(json.dumps(dict(response.get_json(), csrf_token=generate_csrf())))
        return response
    return jsonify(**person, csrf_token=generate_csrf())


@bp.delete("/session")
def sign_out():
    """Sign out: free the name and end the session everywhere (its cookie, copies included, no
    longer counts; its open streams end on every worker with an event "signed-out")."""
    identity.sign_out()
    return "", 204


@bp.post("/session/leave")
def sign_out_form():
    """The same for a plain HTML form; the lobby it lands on says so once."""
    identity.sign_out()
    flash(pages.N_("You are signed out."))  # in the fresh session: read (and gone) on the lobby
    return redirect(url_for("pages.lobby"), 303)


@bp.get("/session/leave")
def sign_out_page():
    """A Sign out page reopened from history: the lobby (its header offers Sign out when signed in)."""
    return redirect(url_for("pages.lobby"), 303)


def safe_next(target):
    """Where to go after a form: ``target`` if it is a path on this site, else the lobby."""
    return targets.local(target, url_for("pages.lobby"))
