"""Registering and keeping an account: POST /accounts, POST /account/password, and their pages."""
import redis
from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import generate_csrf

from ..ops.services import services
from ..rooms import messages
from ..web import bodies, guard
from ..web.replies import json_error, require_utf8_form, wants_json
from . import accounts, identity
from .sessions import Refused, describe, limit_attempts, safe_next

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

bp = Blueprint("accounts", __name__)

TOO_MANY_ACCOUNTS = N_("Too many accounts were registered from your network; try again in %d minutes.")
NOT_SIGNED_IN = N_("Sign in with your account's name and password first.")
GUEST = N_("You are signed in as a guest: register an account to have a password.")
ELSEWHERE = (N_("You signed in through another service (your organisation's sign-in, or the application "
                "you came from): there is no password to change here."))
CHANGED = N_("Password changed. Your other sessions were signed out.")
NOT_ADMIN = N_("Only an administrator can do that.")


@bp.app_context_processor
def _person():
    """``signed_in_kind()`` for templates: "account", "token", "guest" or None (never raises)."""
    def signed_in_kind():
        try:
            return identity.kind()
        except redis.RedisError:
            return None
    return {"signed_in_kind": signed_in_kind}


@bp.get("/register")
def register_page():
    """The registration form (works without JavaScript)."""
    return _register_page()


@bp.post("/accounts")
def register():
    """Register an account and sign in as it: JSON {"name", "password"} -> 201 describe() +
    "csrf_token"; a form -> 303 to ``next``. 409 when the name (or a look-alike) is an
    account's or someone holds it now, 422 for a bad name or password, 429 past the limit."""
    is_json = request.mimetype == "application/json"
    name, password, target = _read(("name", "password"), is_json)
    typed = name.strip() if isinstance(name, str) else ""
    try:
        wait = guard.spend("ACCOUNT_CREATE_RATE_IP", "register", get_remote_address())
        if wait:
            raise Refused(TOO_MANY_ACCOUNTS % max(1, -(-wait // 60)), 429, {"Retry-After": str(wait)})
        account = _create(name, password)
        identity.sign_in(account["name"], account=account["id"])
    except Refused as exc:
        if is_json or wants_json():
            return json_error(exc.status, str(exc), exc.headers)
        page, status = _register_page(error=str(exc), typed=typed, target=target, status=exc.status)
        return page, status, exc.headers
    except identity.Disabled:  # disabled by an admin in the instant after registering
        return json_error(403, accounts.SENTENCES["disabled"])
    if is_json or wants_json():
        return jsonify(**describe(), csrf_token=generate_csrf()), 201
    return redirect(target, 303)


def _create(name, password):
    names = services().names
    try:
        name = messages.check_name(name)
        if names.is_reserved(name):
            raise Refused(N_("“%s” is reserved for the service itself. Pick another name.") % name, 422)
        return services().accounts.create(name, password, previous_sid=identity.current()[1])
    except (messages.Invalid, accounts.Invalid) as exc:
        raise Refused(str(exc), exc.status) from None
    except accounts.NameInUse:
        if services().accounts.id_for(name):
            raise Refused(accounts.SENTENCES["taken"] % name, 409) from None
        raise Refused(identity.taken(name), 409) from None


@bp.get("/account")
def account_page():
    """Who you are, and the change-password form for an account holder."""
    return _account_page(notice=CHANGED if request.args.get("changed") else None)


@bp.post("/account/password")
def change_password():
    """Change the signed-in account's password: JSON {"current", "new"} -> 200 {"message",
    "ended": other sessions ended}; a form -> 303 to /account. Every other session of the
    account ends (streams too, on every worker). 401 not signed in or wrong current password,
    403 a guest, 422 a bad new password, 429 past the attempt limit."""
    is_json = request.mimetype == "application/json"
    current, new, _ = _read(("current", "new"), is_json)
    try:
        ended = _change(current, new)
    except Refused as exc:
        if is_json or wants_json():
            return json_error(exc.status, str(exc), exc.headers, code=exc.code)
        page, status = _account_page(error=str(exc), status=exc.status)
        return page, status, exc.headers
    if is_json or wants_json():
        return jsonify(message=CHANGED, ended=ended)
    return redirect(url_for("accounts.account_page", changed=1), 303)


def _change(current, new):
    name, sid = identity.current()
    account_id = identity.account()
    if not name:
        raise Refused(NOT_SIGNED_IN, 401, code="signed_out")
    if not account_id:
        raise Refused(GUEST if identity.kind() == "guest" else ELSEWHERE, 403)
    if not isinstance(current, str) or not isinstance(new, str):
        raise Refused(N_("Current and new password must be strings."), 400)
    limit_attempts(name)
    store = services().accounts
    account = store.authenticate(name, current)
    if account is None or account["id"] != account_id:
        raise Refused(accounts.SENTENCES["current"], 401)
    try:
        store.set_password(account_id, new)
    except accounts.Invalid as exc:
        raise Refused(str(exc), exc.status) from None
    return identity.end_account_sessions(account_id, keep=sid)


@bp.post("/admin/accounts/<name:name>/disable")
def disable(name):
    """An administrator disables an account: every session and open stream of it ends at once
    on every worker and host; its sign-in answers 403 from then on."""
    return _set_disabled(name, True)


@bp.post("/admin/accounts/<name:name>/enable")
def enable(name):
    """An administrator enables a disabled account again."""
    return _set_disabled(name, False)


def _set_disabled(name, disabled):
    """JSON -> 200 {"name", "disabled", "ended"}; a form -> 303 to /account. 401 not signed in,
    403 not an administrator, 404 no such account, 409 one's own account."""
    try:
        account = _administered(name)
        ended = identity.disable_account(account["id"], disabled)
    except Refused as exc:
        if wants_json() or request.mimetype == "application/json":
            return json_error(exc.status, str(exc), code=exc.code)
        page, status = _account_page(error=str(exc), status=exc.status)
        return page, status
    if wants_json() or request.mimetype == "application/json":
        return jsonify(name=account["name"], disabled=disabled, ended=ended)
    return redirect(url_for("accounts.account_page"), 303)


def _administered(name):
    """The account called ``name``, if the signed-in person is an administrator who may change it."""
    person = describe()
    if not person:  # the codes api.md's table gives every route (signed_out, not_admin, no_account)
        raise Refused(NOT_SIGNED_IN, 401, code="signed_out")
    if not person["admin"]:
        raise Refused(NOT_ADMIN, 403, code="not_admin")
    store = services().accounts
    account = store.get(store.id_for(name)) if isinstance(name, str) and name else None
    if account is None:
        raise Refused(N_("There is no account called “%s”.") % name[:80], 404, code="no_account")
    if account["id"] == person["id"]:
        raise Refused(N_("You cannot disable or enable your own account."), 409)
    return account


def _read(fields, is_json):
    """The named fields and the form's ``next`` target from a JSON object or a form; 400/415."""
    if is_json:
        data = bodies.json_body()
        return (*(data.get(f) for f in fields), safe_next(None))
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        require_utf8_form()
        return (*(request.form.get(f, "") for f in fields), safe_next(request.form.get("next")))
    return _bad(415, None)


def _bad(status, sentence):
    from flask import abort
    abort(status, sentence)


def _register_page(error=None, typed="", target=None, status=200):
    return render_template("register.html", error=error, typed=typed,
                           target=target or url_for("pages.lobby"),
                           guests=current_app.config["GUESTS"] not in (False, "false")), status


def _account_page(error=None, notice=None, status=200):
    person = describe()
    listed = services().accounts.all() if person and person["admin"] else None
    return render_template("account.html", person=person, error=error, notice=notice,
                           accounts=listed), status
