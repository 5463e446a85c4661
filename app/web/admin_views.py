"""The administrators' view of the service: ``GET /admin`` (a page of plain forms) and the same
as JSON under ``/admin/api/`` for automation. Administrators are a signed-in admin account or
``Authorization: Bearer $RIPPLE_ADMIN_TOKEN`` (app/web/gate.py); anyone else gets 401 (signed
out) or 403 ``not_admin``. The page's actions post to the rooms' and accounts' own routes
(deleting a room, banning, unbanning, disabling an account), with ``next`` bringing them back."""
from flask import Blueprint, abort, jsonify, render_template, request, url_for
from flask_babel import lazy_gettext as _l

from ..ops.services import services
from ..people import identity
from ..rooms import census
from . import gate, pages
from .reading_views import BAD_LIMIT
from .replies import wants_page

bp = Blueprint("admin", __name__)
NOT_ADMIN = _l("Only an administrator can see this.")
SIGN_IN = _l("Sign in with an administrator's account to see this.")
AUDIT_MAX = 1000  # actions one audit page lists at most


def require_admin(page=False):
    """Let administrators through; 401 signed out, 403 otherwise (raised). ``page``: the admin
    page's caller, who gets the sign-in page for a signed-out browser *returned*, to send; the
    API's routes never get it back (they ignore the answer: a returned page let them go on)."""
    if gate.is_admin():
        return None
    name, _ = identity.current()
    if not name:
        if page and wants_page():
            return pages.sign_in_page(error=SIGN_IN, target=request.full_path.rstrip("?"), status=401)
        raise gate.Refused(401, SIGN_IN, "signed_out")
    raise gate.Refused(403, NOT_ADMIN, "not_admin")


def _rooms():
    ripple = services()
    return census.summaries(ripple.redis, census.room_names(ripple.redis))


def _accounts():
    return [{"id": a["id"], "name": a["name"], "admin": a["admin"], "disabled": a["disabled"]}
            for a in services().accounts.all()]


def _webhooks():
    """Every webhook with its three newest delivery attempts (``recent``): app/webhooks/."""
    hooks = services().webhooks.hooks
    return [dict(hook, recent=hooks.deliveries(hook["id"], 3)) for hook in hooks.all()]


def _bans(rooms):
    return census.bans(services().moderation, [r["room"] for r in rooms if r["record"] or r["members"]])


@bp.get("/admin")
def page():
    """Rooms (members, messages, last activity), accounts, bans and recent moderation actions."""
    refused = require_admin(page=True)
    if refused is not None:
        return refused
    rooms = _rooms()
    return render_template("admin.html", rooms=rooms, accounts=_accounts(), bans=_bans(rooms),
                           actions=services().moderation.audit(count=100), user=identity.current()[0],
                           webhooks=_webhooks(),
                           here=url_for("admin.page"))


@bp.get("/admin/api/rooms")
def api_rooms():
    """{"rooms": [{"room", "visibility", "topic", "owner", "record", "members", "messages", "last"}]}"""
    require_admin()
    return jsonify(rooms=_rooms())


@bp.get("/admin/api/rooms/<room>")
def api_room(room):
    """One room: {"room", "record", "summary", "members", "bans", "actions"}."""
    require_admin()
    from .room_views import room_or_404
    room = room_or_404(room)
    ripple = services()
    return jsonify(room=room, record=ripple.rooms.info(room), summary=census.summaries(ripple.redis, [room])[0],
                   members=ripple.rooms.members(room), bans=ripple.moderation.active_bans(room),
                   actions=ripple.moderation.audit(room, 100))


@bp.get("/admin/api/accounts")
def api_accounts():
    """{"accounts": [{"id", "name", "admin", "disabled"}]}"""
    require_admin()
    return jsonify(accounts=_accounts())


@bp.get("/admin/api/bans")
def api_bans():
    """{"bans": [{"room", "user", "until", "name", "by", "at"}]}: every ban in force."""
    require_admin()
    return jsonify(bans=_bans(_rooms()))


@bp.get("/admin/api/audit")
def api_audit():
    """{"actions": [...]}: the newest moderation actions of every room (up to 10000 are kept)."""
    require_admin()
    count = request.args.get("limit", "100")
    if not (count.isascii() and count.isdigit()) or not 1 <= int(count) <= AUDIT_MAX:  # said, not guessed
        abort(400, str(BAD_LIMIT) % {"max": AUDIT_MAX})
    return jsonify(actions=services().moderation.audit(count=int(count)))
