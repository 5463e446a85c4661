"""The webhooks' admin API: /admin/webhooks (JSON), for administrators and the operator's token.

Who may: an administrator as app/web/gate.py says (a signed-in account with the admin role, its
CSRF token on writes; or RIPPLE_ADMIN_TOKEN as Bearer), or the operator's RIPPLE_PUBLISH_TOKEN as
Bearer. Scoped publish tokens may not (403).
"""
from flask import Blueprint, jsonify, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ..ops.services import services
from ..people import identity, tokens
from ..rooms import messages
from ..web import bodies, gate, targets
from ..web.replies import json_error, wants_json

bp = Blueprint("webhooks", __name__, url_prefix="/admin/webhooks")

NOT_SIGNED_IN = _l("Sign in as an administrator, or send RIPPLE_ADMIN_TOKEN or RIPPLE_PUBLISH_TOKEN as a "
                   "Bearer token.")
NOT_ADMIN = _l("Only an administrator can manage webhooks.")
NOT_FOUND = _l("There is no webhook with that id.")
SHOWN_ONCE = _l("The secret is shown only this once: store it where the receiver verifies signatures.")
BAD_LIMIT = _l("limit must be a whole number from 1 to %(most)d.")
MAX_LOG = 1000
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class _Refused(Exception):
    def __init__(self, status, sentence, code):
        super().__init__(sentence)
        self.status, self.code = status, code


@bp.before_request
def _administrators_only():
    grant = tokens.current()
    if grant is not None and not grant.scoped:
        return None  # the operator's own publish token
    if gate.is_admin():
        return None
    if grant is None and not identity.current()[0]:
        return json_error(401, NOT_SIGNED_IN, code="signed_out")
    return json_error(403, NOT_ADMIN, code="not_admin")


@bp.errorhandler(_Refused)
def _refused(exc):
    return json_error(exc.status, str(exc), code=exc.code)


@bp.errorhandler(messages.Invalid)
def _invalid(exc):
    return json_error(exc.status, _(str(exc)), code="invalid")  # the rules' sentences are in the catalogue


@bp.get("")
def list_webhooks():
    """{"webhooks": [webhook...]}, oldest first (never their secrets)."""
    return jsonify(webhooks=_hooks().all())


@bp.post("")
def add_webhook():
    """JSON {"url", "events" (list or comma-separated; default ["message"]), "rooms" (glob
    patterns, list or comma-separated; default "*"), "bot" (a name its answers are posted as;
    optional)} -> 201 the webhook with its "secret" (shown this once)."""
    data = bodies.json_request()  # as every JSON route: 415 unsupported_type, 400 bad_body
    # Only a field left out (or null) takes its default: an empty list or string is refused as
    # the CLI's --rooms '' is (read as "*" it would send every room's events, private ones too).
    events, rooms = data.get("events"), data.get("rooms")
    hook, secret = _hooks().add(data.get("url"), "message" if events is None else events,
                                "*" if rooms is None else rooms, data.get("bot"))
    return jsonify(**hook, secret=secret, notice=str(SHOWN_ONCE)), 201


@bp.get("/<hook_id>")
def show_webhook(hook_id):
    """The webhook and its newest delivery attempts: {..., "deliveries": [attempt...]}."""
    return jsonify(**_found(hook_id), deliveries=_hooks().deliveries(hook_id, 20))


@bp.get("/<hook_id>/deliveries")
def deliveries(hook_id):
    """{"deliveries": [attempt...]}, newest first, ?limit= (default 100)."""
    _found(hook_id)
    limit = request.args.get("limit", "100")
    if not (limit.isascii() and limit.isdigit()) or not 1 <= int(limit) <= MAX_LOG:
        raise _Refused(400, BAD_LIMIT % {"most": MAX_LOG}, "invalid")
    return jsonify(deliveries=_hooks().deliveries(hook_id, int(limit)))


@bp.delete("/<hook_id>")
def remove_webhook(hook_id):
    """Remove a webhook (its queued and waiting deliveries too): 200 with what it was."""
    hook = _hooks().remove(hook_id)
    if hook is None:
        raise _Refused(404, NOT_FOUND, "not_found")
    return jsonify(hook)


@bp.post("/<hook_id>/enable")
def enable_webhook(hook_id):
    """Enable a disabled webhook, from the next event on: 200 with the webhook (a form from the
    admin page: 303 back to it)."""
    hook = _hooks().enable(hook_id)
    if hook is None:
        raise _Refused(404, NOT_FOUND, "not_found")
    return _done(hook)


@bp.post("/<hook_id>/disable")
def disable_webhook(hook_id):
    """Stop delivering to a webhook until it is enabled again: 200 with the webhook (a form from
    the admin page: 303 back to it)."""
    _found(hook_id)
    _hooks().disable(hook_id, "Disabled by an administrator.")
    return _done(_found(hook_id))


def _done(hook):
    if request.mimetype in FORM_TYPES and not wants_json():  # the admin page, JavaScript off
        return redirect(targets.local(request.form.get("next"), url_for("admin.page")), 303)
    return jsonify(hook)


def _found(hook_id):
    hook = _hooks().get(hook_id)
    if hook is None:
        raise _Refused(404, NOT_FOUND, "not_found")
    return hook


def _hooks():
    return services().webhooks.hooks

