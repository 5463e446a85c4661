"""Invitations over HTTP: moderators make and revoke links; a signed-in person who opens one
(``GET /invite/<token>``, a page with a Join button) and joins (``POST``) becomes a member."""
from flask import Blueprint, jsonify, render_template, request, session, url_for
from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from ..ops.services import services
from ..people import identity
from ..rooms import invites, keys, records
from . import gate, pages
from .replies import wants_json, wants_page
from .room_views import NEW_INVITE, done, manage_url, name_taken, read_body, record, room_or_404, whole

bp = Blueprint("invites", __name__)
MAX_EXPIRES_IN = 365 * 86400
MAX_USES = 100000
SENTENCES = {
    "expires_in": _l("expires_in must be a whole number of seconds from %(low)d to %(high)d."),
    "max_uses": _l("max_uses must be a whole number from %(low)d to %(high)d."),
    "no_invite": _l("There is no such invitation in #%s."),
    "sign_in": _l("Sign in to accept this invitation."),
}


def refused(exc):
    """The HTTP refusal of an invitations.Refused, in the reader's language."""
    status, code = invites.STATUS[exc.key]
    return gate.Refused(status, gettext(invites.SENTENCES[exc.key]) % exc.values, code)


def _invites():
    return services().invites


@bp.route("/rooms/<room>/invites", methods=["GET", "POST"])
def room_invites(room):
    """GET: the room's standing invitations. POST {"expires_in"?, "max_uses"?}: a new signed
    link, 201 {"id", "url", "expires" (ms or null), "max_uses" (or null)}."""
    room = room_or_404(room)
    gate.require_role(room, records.MODERATOR)
    if request.method == "GET":
        return jsonify(room=room, invites=_invites().list(room))
    data, form = read_body()
    expires_in = data.get("expires_in")
    expires_in = None if expires_in in (None, "") else whole(
        expires_in, 1, MAX_EXPIRES_IN, SENTENCES["expires_in"], "bad_expires_in")
    max_uses = data.get("max_uses")
    max_uses = None if max_uses in (None, "") else whole(max_uses, 1, MAX_USES, SENTENCES["max_uses"], "bad_max_uses")
    try:
        made = _invites().create(room, gate.actor()[1] or "", expires_in, max_uses)
    except invites.Refused as exc:
        raise refused(exc) from None
    made["url"] = url_for("invites.invitation", token=made.pop("token"), _external=True)
    record(room, "invite", made["id"], "expires_in=%s max_uses=%s" % (expires_in, max_uses))
    if form:  # the management page shows the new link once: from the session, never the address
        # (as ?invite= it stayed in the browser's history, where the next person at a shared
        # computer found a way into the private room: helper-86)
        session[NEW_INVITE] = {"room": room, "url": made["url"]}
        return done(True, manage_url(room))
    return done(False, None, made, 201)


@bp.route("/rooms/<room>/invites/<invite_id>", methods=["DELETE", "POST"])
def revoke(room, invite_id):
    """Revoke an invitation: its link admits nobody from now on."""
    room = room_or_404(room)
    gate.require_role(room, records.MODERATOR)
    data, form = read_body()
    if not _invites().revoke(room, invite_id):
        raise gate.Refused(404, SENTENCES["no_invite"] % room, "no_invite")
    record(room, "revoke-invite", invite_id)
    return done(form, manage_url(room))


@bp.route("/invite/<token>", methods=["GET", "POST"])
def invitation(token):
    """GET: what the link is for (a page with a Join button, or JSON); a revoked, expired or
    used-up link answers 410 "invite_used" with one sentence, nothing of the room (a forged one
    404). POST: join the room (signed in): JSON 200 {"room", "role"}, a form 303 to the room."""
    try:
        room, invite_id = _invites().read(token)
        room = keys.canonical_room(room) or "-"
        # A dead link (revoked, expired, used up) has expired, and shows nothing of the room.
        found = _invites().standing(room, invite_id) if request.method == "GET" else _invites().invite(room, invite_id)
        if found is None:
            raise invites.Refused(-1)
    except invites.Refused as exc:
        if request.method == "GET" and wants_page():
            status = invites.STATUS[exc.key][0]
            return render_template("error.html", status=status,
                                   message=gettext(invites.SENTENCES[exc.key]) % exc.values), status
        raise refused(exc) from None
    name, _ = identity.current()
    if request.method == "GET":
        if wants_page():
            standing = gate.access(room) if name else None
            if standing is not None and standing.ban is not None:  # say so before they press Join
                return render_template("error.html", status=403,
                                       message=gate.banned_sentence(room, standing.ban)), 403
            return render_template("invite.html", room=room, user=name, token=token,
                                   info=services().rooms.info(room), invite=found,
                                   target=url_for("invites.invitation", token=token))
        return jsonify(room=room, expires=found["expires"], max_uses=found["max_uses"], uses=found["uses"])
    data, form = read_body()
    if not name:
        if form and not wants_json():
            return pages.sign_in_page(error=SENTENCES["sign_in"],
                                      target=url_for("invites.invitation", token=token), status=401)
        raise gate.Refused(401, SENTENCES["sign_in"], "signed_out")
    uid = identity.uid()
    try:
        result = _invites().redeem(room, invite_id, uid, records.member_json(name, records.MEMBER), gate.address(),
                                   name)
    except records.NameShared:  # a member bot goes by this name already
        raise name_taken(room, name) from None
    except invites.Refused as exc:
        raise refused(exc) from None
    if result == invites.JOINED:
        services().moderation.record(room, uid, name, "join", name, "invite " + invite_id)
    role = services().rooms.member(room, uid)["role"]
    return done(form, url_for("pages.room", room=room), {"room": room, "role": role})
