"""Signing in with a display name: POST, GET and DELETE /session."""
import json

from flask import Blueprint, abort, jsonify, redirect, request, url_for
from flask_wtf.csrf import generate_csrf

from . import guard, identity, messages, pages, targets
from .replies import json_error, require_utf8_form, wants_json, wants_page

bp = Blueprint("sessions", __name__)

STALE_SIGN_IN = ("You are not signed in yet: this page was out of date (its CSRF security token had "
                 "expired, for example after signing in or out in another tab). Press Start chatting again.")


@bp.post("/session")
@guard.limiter.limit(guard.rate("SESSION_RATE_IP"))
def sign_in():
    """Claim a display name: form -> 303 to ``next``, JSON {"name"} -> 200 {"name", "csrf_token"}."""
    is_json = request.mimetype == "application/json"
    if is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            abort(400, "The body must be a JSON object.")
        name = data.get("name")
    elif request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        require_utf8_form()
        name = request.form.get("name", "")
    else:
        abort(415)
    target = safe_next(request.form.get("next") if not is_json else None)
    error, status = None, 200
    try:
        name = messages.check_name(name)
        identity.sign_in(name)
    except messages.Invalid as exc:
        error, status = str(exc), exc.status
    except identity.NameTaken:
        error, status = identity.taken(name), 409
    if error:
        if is_json or wants_json():
            return json_error(status, error)
        return pages.sign_in_page(error=error, typed=name if isinstance(name, str) else "",
                                  target=target, status=status)
    if is_json or wants_json():
        return jsonify(name=name, csrf_token=generate_csrf())
    return redirect(target, 303)


@bp.get("/session")
def whoami():
    """Return {"name", "csrf_token"} for a signed-in session, else 401 {"error", "csrf_token"}.

    The 401 carries a token too: signing in is a POST, and it needs one. A browser opening this
    address (a failed sign-in's page, reopened or refreshed) gets the sign-in page instead.
    """
    name, _ = identity.current()
    if wants_page():
        if name:
            return redirect(url_for("pages.lobby"), 303)
        # A stale page's sign-in lands here too (errors.py), with the name that was typed.
        return pages.sign_in_page(error=STALE_SIGN_IN if request.args.get("expired") else None,
                                  typed=request.args.get("name", ""), target=safe_next(request.args.get("next")))
    if not name:
        response = json_error(401, "Not signed in.")
        response.set_data(json.dumps({"error": "Not signed in.", "csrf_token": generate_csrf()}))
        return response
    return jsonify(name=name, csrf_token=generate_csrf())


@bp.delete("/session")
def sign_out():
    """Leave: free the name and end the session everywhere (its cookie, copies included, no
    longer counts; its open streams end on every worker with an event "signed-out")."""
    identity.sign_out()
    return "", 204


@bp.post("/session/leave")
def sign_out_form():
    """The same for a plain HTML form."""
    identity.sign_out()
    return redirect(url_for("pages.lobby"), 303)


@bp.get("/session/leave")
def sign_out_page():
    """A Leave page reopened from history: the lobby (its header offers Leave when signed in)."""
    return redirect(url_for("pages.lobby"), 303)


def safe_next(target):
    """Where to go after a form: ``target`` if it is a path on this site, else the lobby."""
    return targets.local(target, url_for("pages.lobby"))
