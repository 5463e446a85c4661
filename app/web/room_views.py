"""Running a room over HTTP: create, change and delete it, its members and moderators, bans,
and its audit record. JSON for programs; every action is also a plain HTML form (POST, with
``_method`` naming PUT/PATCH/DELETE) that answers with a redirect (works with JavaScript off).
"""
import ipaddress

import redis
from flask import Blueprint, flash, jsonify, redirect, render_template, request, session, url_for
from flask_babel import lazy_gettext as _l

from ..ops.services import services
from ..people import identity
from ..people import reading as reading_people
from ..rooms import keys, messages, records
from ..rooms.moderation import N_
from . import bodies, gate, guard, pages, targets
from .replies import json_error, require_utf8_form, wants_json

bp = Blueprint("rooms", __name__)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_SLOW_SECONDS = 3600
MAX_BAN_SECONDS = 10 * 365 * 86400

# Runs after every other after_request (they run in reverse order), Flask-Limiter's included.
bp.record_once(lambda state: state.app.after_request_funcs.setdefault(None, []).insert(0, gate.keep_retry_after))

SENTENCES = {
    "body": _l("The body must be a JSON object or a form."),
    "visibility": _l("Visibility must be “public” or “private”."),
    "topic": _l("The topic must be text of at most %(high)d characters."),
    "slow": _l("slow_mode_seconds must be a whole number from %(low)d to %(high)d."),
    "seconds": _l("seconds must be a whole number from %(low)d to %(high)d, or left out for good."),
    "taken": _l("There is already a room called #%(room)s; pick another name."),
    "no_account": _l("There is no account called “%s”."),
    "no_one": _l("There is no one called “%(name)s” in or around #%(room)s."),
    "not_member": _l("“%(name)s” is not a member of #%(room)s."),
    "owner_stays": _l("The owner cannot be removed, banned or demoted; delete the room instead."),
    "peer": _l("Only the owner can remove or ban a moderator."),
    "self": _l("You cannot ban yourself."),
    "address": _l("“%s” is not an IP address."),
    "no_ban": _l("There is no ban on “%(name)s” in #%(room)s."),
    "no_target": _l("Say whom to ban: “user” (a name), “user_id” or “address”."),
    "sign_in": _l("Sign in to create a room."),
    "room_cap": _l("This service has reached its limit of %(limit)d rooms; ask an administrator."),
    "member_cap": _l("This room has reached its limit of %(limit)d members."),
    "ban_cap": _l("This room has reached its limit of %(limit)d bans."),
    "bot_role": _l("A bot (publish token) can be a member of a room, not a moderator."),
    "name_taken": _l("“%(name)s” is already the name of a member of #%(room)s; a bot and a person "
                     "cannot share a name there."),
}


ROLE_NAMES = {records.OWNER: _l("owner"), records.MODERATOR: _l("moderator"), records.MEMBER: _l("member")}


@bp.app_errorhandler(gate.Refused)
def refused(exc):
    """A refusal as JSON for programs, or as a page for a browser's form or navigation."""
    from . import form_pages  # its imports reach the views that import this module
    page = form_pages.page(exc.status, str(exc)) or refused_manage_form(exc)
    if page is not None:
        return page[0], page[1], exc.headers
    if not wants_json() and (request.mimetype in FORM_TYPES or request.method == "GET"):
        if request.headers.get("Sec-Fetch-Mode") == "navigate" or request.mimetype in FORM_TYPES:
            return render_template("error.html", status=exc.status, message=str(exc)), exc.status, exc.headers
    return json_error(exc.status, str(exc), exc.headers, exc.code)


def read_body():
    """(fields dict, is a plain form) of a JSON or form request; an empty body is {}."""
    if request.mimetype == "application/json":
        return bodies.json_body(), False
    if request.mimetype in FORM_TYPES:
        require_utf8_form()
        return request.form.to_dict(), not wants_json()
    if not request.get_data(cache=True):
        return {}, False
    raise gate.Refused(415, SENTENCES["body"], "unsupported_type")


def method():
    """The method a request means: a form's ``_method`` (PUT, PATCH, DELETE) or its own."""
    if request.method == "POST" and request.mimetype in FORM_TYPES:
        return (request.form.get("_method") or "POST").upper()
    return request.method


def room_or_404(room):
    canonical = keys.canonical_room(room)
    if canonical is None:
        raise gate.Refused(404, gate.NOT_FOUND, "not_found")
    return canonical


def done(form, target, payload=None, status=200):
    """A form's redirect to ``target``, or the JSON answer (204 when there is nothing to say)."""
    if form:  # a form may name where to go back to (the admin page does): a local path only
        return redirect(targets.local(request.form.get("next"), target), 303)
    if payload is None:
        return "", 204
    response = jsonify(payload)
    response.status_code = status
    return response


def manage_url(room):
    return url_for("rooms.manage", room=room)


def registry():
    return services().rooms


def moderation():
    return services().moderation


DELETED = N_("#%s was deleted.")
LEFT = N_("You left #%s.")  # the same sentence a stream of theirs ends with
BAN_FOR = N_("for %d s")  # an audit entry's detail: stored in English, shown in the reader's language


def record(room, action, target="", detail=""):
    uid, name = gate.actor()
    moderation().record(room, uid, name, action, target, detail)


def check_topic(topic):
    if not isinstance(topic, str) or len(topic) > records.MAX_TOPIC_CHARS:
        raise gate.Refused(400, SENTENCES["topic"] % {"high": records.MAX_TOPIC_CHARS}, "bad_topic")
    topic = " ".join(topic.split())
    if any(messages._is_control(ch) for ch in topic):
        raise gate.Refused(400, SENTENCES["topic"] % {"high": records.MAX_TOPIC_CHARS}, "bad_topic")
    return topic


def check_visibility(value):
    if value not in records.VISIBILITIES:
        raise gate.Refused(400, SENTENCES["visibility"], "bad_visibility")
    return value


def whole(value, low, high, sentence, code):
    """A whole number from ``low`` to ``high`` given as JSON or form text, else 400."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise gate.Refused(400, sentence % {"low": low, "high": high}, code)
    return value


@bp.post("/rooms")
def create_room():
    """Create a room {"name", "topic"?, "visibility"?: "public"|"private"}: 201 + the room; its
    creator is its owner. 409 when the name is taken (any history counts) or the cap is reached."""
    data, form = read_body()
    try:
        uid, name = gate.actor()
        if uid is None:
            raise gate.Refused(401, SENTENCES["sign_in"], "signed_out")
        room = keys.canonical_room(data.get("name"))
        if room is None:
            raise gate.Refused(400, keys.ROOM_RULE, "bad_room")
        topic = check_topic(data.get("topic") or "")
        visibility = check_visibility(data.get("visibility") or records.PUBLIC)
        if not gate.is_admin():
            guard.may_create_room()  # the same hourly caps as creating a room by posting
        created = registry().create(room, topic, visibility, uid, name, keys.RoomKeys(room).log)
    except records.Taken:
        return _create_failed(form, data, 409, SENTENCES["taken"] % {"room": room}, "room_exists")
    except records.Full:
        return _create_failed(form, data, 409, SENTENCES["room_cap"] % {"limit": registry().max_rooms}, "room_cap")
    except messages.Invalid as exc:
        return _create_failed(form, data, exc.status, str(exc), getattr(exc, "code", "refused"),
                              getattr(exc, "headers", None))
    if visibility == records.PRIVATE:
        # Streams opened on the free name (a public room nobody posted to answers 200) look
        # again and end: else they would carry the private room's messages.
        moderation().recheck(room)
    record(room, "create", detail=visibility)
    return done(form, url_for("pages.room", room=room), created, 201)


def _create_failed(form, data, status, sentence, code, headers=None):
    if not form:
        return json_error(status, sentence, headers, code)
    return pages.create_refused(data, status, sentence)[0], status, headers or {}


@bp.route("/rooms/<room>", methods=["PATCH", "DELETE", "POST"])
def change_room(room):
    """PATCH {"topic"?, "visibility"?, "slow_mode_seconds"?}: the owner changes the room
    (moderators: slow mode only); DELETE: the owner deletes it, history and all, and its open
    streams end with ``event: room-deleted``."""
    room = room_or_404(room)
    verb = method()
    if verb == "DELETE":
        gate.require_role(room, records.OWNER)
        data, form = read_body()
        if form and data.get("confirm") != "1":
            # A page's form asks first (PRG: reloading the question deletes nothing); a program
            # (JSON, or a form with Accept: application/json) deletes at once.
            return redirect(url_for("rooms.delete_page", room=room, next=data.get("next") or None), 303)
        delete_room(room)
        if form:
            flash(DELETED % room)  # shown, in the reader's language, where the redirect lands
            _drop_from_own_sidebar(room)
        return done(form, url_for("pages.lobby"))
    if verb != "PATCH":
        raise gate.Refused(405, _l("Use PATCH or DELETE."), "method")
    data, form = read_body()
    changes = {}
    if "slow_mode_seconds" in data:
        changes["slow"] = whole(data["slow_mode_seconds"], 0, MAX_SLOW_SECONDS, SENTENCES["slow"], "bad_slow_mode")
    if "topic" in data:
        changes["topic"] = check_topic(data["topic"])
    if "visibility" in data:
        changes["visibility"] = check_visibility(data["visibility"])
    found = gate.require_role(room, records.OWNER if set(changes) - {"slow"} else records.MODERATOR)
    if not found.exists:  # an administrator takes a room made by posting under management
        changes.setdefault("visibility", records.PUBLIC)
        changes.update(created=records.now_ms(), owner="")
    registry().update(room, **changes)
    if changes.get("visibility") and changes["visibility"] != found.visibility:
        moderation().recheck(room)  # each open stream checks whether it may stay
    record(room, "change", detail=", ".join("%s=%s" % item for item in sorted(changes.items())
                                            if item[0] not in ("created", "owner")))
    return done(form, manage_url(room), registry().info(room))


@bp.get("/rooms/<room>/delete")
def delete_page(room):
    """Ask the owner (or an administrator) before deleting the room: what goes, "Yes, delete it"
    (the delete form, confirmed) and Cancel (back to ``next``, else the manage page)."""
    room = room_or_404(room)
    gate.require_role(room, records.OWNER)
    target = request.args.get("next")
    back = targets.local(target, manage_url(room))
    return render_template("delete_room.html", room=room, back=back, user=identity.shown(),
                           next=targets.local(target, ""))


def _drop_from_own_sidebar(room):
    """Take the deleted room out of the deleter's own rooms list, where they land next."""
    try:
        reader = reading_people.current_reader()
        if reader is not None:
            services().reading.drop(reader, room)
    except redis.RedisError as exc:  # the room is gone already; the list catches up on its own
        services().outage.failed("sidebar", exc)


def delete_room(room):
    """Delete ``room`` everywhere: its record, history and keys; its streams end."""
    moderation().delete(room)
    record(room, "delete-room")


@bp.get("/rooms/<room>/members")
def members(room):
    """The room's members: {"room", "members": [{"id", "name", "role", "since"}]}."""
    room = room_or_404(room)
    gate.require_room(room)  # a free name has no members: the same 404 as a private room
    return jsonify(room=room, members=registry().members(room))


@bp.post("/rooms/<room>/members")
def add_member_form(room):
    """The owner adds an account by name, or a scoped publish token by its uid "token:<id>"
    (``name`` in the body): the form's way to PUT."""
    room = room_or_404(room)
    data, form = read_body()
    return _add_member(room, data.get("name"), form)


@bp.route("/rooms/<room>/members/<path:name>", methods=["PUT", "DELETE", "POST"])
def member(room, name):
    """PUT: the owner adds the account ``name`` (or the scoped publish token "token:<id>", so it
    may post in a private room). DELETE: a moderator removes a member (their
    open streams end at once); anyone may remove themselves (leave). DELETE names a member by
    name, or by uid with ``?by=id``."""
    room = room_or_404(room)
    verb = method()
    data, form = read_body()
    if verb == "PUT":
        return _add_member(room, name, form)
    if verb != "DELETE":
        raise gate.Refused(405, _l("Use PUT or DELETE."), "method")
    uid, me = gate.actor()
    found = gate.access(room)
    if gate.hidden(found):  # a member shut out by a ban may still leave
        gate.not_found()
    target = _find(room, name)
    if target is not None and target["id"] == uid and found.role != records.OWNER:
        moderation().remove(room, uid, leaving=True)  # an old invitation still lets them back
        record(room, "leave", me)
        if form:
            flash(LEFT % room)
            _drop_from_own_sidebar(room)
        return done(form, url_for("pages.lobby"))
    actor = gate.require_role(room, records.MODERATOR)
    if target is None:
        raise gate.Refused(404, SENTENCES["not_member"] % {"name": name, "room": room}, "not_member")
    _may_act_on(actor, target["role"])
    moderation().remove(room, target["id"])
    record(room, "remove", target["name"])
    return done(form, manage_url(room))


@bp.get("/rooms/<room>/leave")
def leave_page(room):
    """Ask a member before they leave (the room page's "Leave" link, no JavaScript needed): what
    leaving means here (a private room: only an invitation lets them back), "Yes, leave" (the
    DELETE form of their own membership) and Cancel. The owner cannot leave: the page says so."""
    room = room_or_404(room)
    found = gate.access(room)
    uid = gate.actor()[0]
    if uid is None:
        raise gate.Refused(401, gate.SENTENCES["sign_in"], "signed_out")
    if gate.hidden(found) or (found.role is None and (not found.used or found.visibility == records.PRIVATE)):
        gate.not_found()  # a private room answers a non-member as no room does: nothing to tell
    # A public room, with a record or only messages (which has no members): not theirs to leave.
    if found.role is None:
        raise gate.Refused(404, SENTENCES["not_member"] % {"name": gate.actor()[1], "room": room}, "not_member")
    return render_template("leave.html", room=room, user=identity.shown(), uid=uid, role=found.role,
                           private=found.visibility == records.PRIVATE)


def _find(room, who):
    """The member ``who`` names: a name, or a uid with ``?by=id`` (never one taken for the other)."""
    if gate.by_id():
        return registry().find_member(room, uid=who)
    return registry().find_member(room, name=who)


def _add_member(room, name, form):
    gate.require_role(room, records.OWNER)
    accounts = services().accounts
    account = accounts.get(accounts.id_for(name)) if isinstance(name, str) and name.strip() else None
    if account is None and isinstance(name, str):  # a scoped publish token, "token:<id>": a bot
        uid, shown = services().tokens.of_uid(name.strip())
        account = {"id": uid, "name": shown} if uid else None
    if account is None:
        raise gate.Refused(404, SENTENCES["no_account"] % (name or ""), "no_account")
    current = registry().member(room, account["id"])
    role = current["role"] if current else records.MEMBER
    if account["id"].startswith(records.TOKEN_PREFIX):
        role = records.MEMBER  # a bot is never more (bot_role): adding it again puts that right
    try:
        registry().add_member(room, account["id"], account["name"], role, check_name=True)
    except records.NameShared:
        raise name_taken(room, account["name"]) from None
    except records.Full:
        raise gate.Refused(409, SENTENCES["member_cap"] % {"limit": registry().max_members}, "member_cap") from None
    record(room, "add", account["name"])
    return done(form, manage_url(room), registry().member(room, account["id"]))


def name_taken(room, name):
    """The refusal (409 name_taken) of a member added under ``name`` when a bot and a person
    would share it in ``room`` (records.SHARES_NAME_LUA, checked as the member is stored)."""
    return gate.Refused(409, SENTENCES["name_taken"] % {"name": name, "room": room}, "name_taken")


def _may_act_on(actor, role):
    """A moderator acts on members only; the owner (or an administrator) on moderators too;
    nobody on the owner."""
    if role == records.OWNER:
        raise gate.Refused(403, SENTENCES["owner_stays"], "owner")
    if role == records.MODERATOR and actor.role != records.OWNER and not gate.is_admin():
        raise gate.Refused(403, SENTENCES["peer"], "forbidden")


@bp.route("/rooms/<room>/moderators/<path:name>", methods=["PUT", "DELETE", "POST"])
def moderator(room, name):
    """PUT: the owner makes a member a moderator; DELETE: back to member (a member by name, or
    by uid with ``?by=id``)."""
    room = room_or_404(room)
    verb = method()
    data, form = read_body()
    if verb not in ("PUT", "DELETE"):
        raise gate.Refused(405, _l("Use PUT or DELETE."), "method")
    gate.require_role(room, records.OWNER)
    target = _find(room, name)
    if target is None:
        raise gate.Refused(404, SENTENCES["not_member"] % {"name": name, "room": room}, "not_member")
    if target["role"] == records.OWNER:
        raise gate.Refused(403, SENTENCES["owner_stays"], "owner")
    if verb == "PUT" and target["id"].startswith(records.TOKEN_PREFIX):
        # A publish token edits and deletes only what it posted (docs/api.md): no bot moderates.
        raise gate.Refused(422, SENTENCES["bot_role"], "bot_role")
    role = records.MODERATOR if verb == "PUT" else records.MEMBER
    registry().add_member(room, target["id"], target["name"], role)
    record(room, "appoint" if verb == "PUT" else "dismiss", target["name"])
    return done(form, manage_url(room), registry().member(room, target["id"]))


@bp.route("/rooms/<room>/bans", methods=["GET", "POST"])
def bans(room):
    """GET: the bans in force. POST {"user"?, "user_id"?, "address"?, "seconds"?}: ban a person
    (``user``: a member or an account by name, or whoever holds that name now; ``user_id``: a
    member's or an account's uid) or an address, for
    ``seconds`` or for good: their membership and open streams end at once."""
    room = room_or_404(room)
    actor = gate.require_role(room, records.MODERATOR)
    if request.method == "GET":
        return jsonify(room=room, bans=moderation().active_bans(room))
    data, form = read_body()
    seconds = data.get("seconds")
    if seconds in (None, "", 0, "0"):
        seconds = None
    else:
        seconds = whole(seconds, 1, MAX_BAN_SECONDS, SENTENCES["seconds"], "bad_seconds")
    if data.get("address"):
        key, name = _address_key(data["address"]), str(data["address"]).strip()
        banned_uid = None
    else:
        who = data.get("user_id") if data.get("user_id") else data.get("user")
        if not (isinstance(who, str) and who.strip()):  # nobody named: no lookup of "" or of 5
            raise gate.Refused(400, SENTENCES["no_target"], "no_target")
        uid, name = gate.resolve(room, who, by_id=bool(data.get("user_id")))
        if uid is None:
            raise gate.Refused(404, SENTENCES["no_one"] % {"name": who if isinstance(who, str) else "",
                                                           "room": room}, "no_one")
        if uid == gate.actor()[0]:
            raise gate.Refused(400, SENTENCES["self"], "self")
        target = registry().member(room, uid)
        _may_act_on(actor, target["role"] if target else None)
        key = _ban_key(uid, name)
        banned_uid = uid
    try:
        ban = moderation().ban(room, key, name, gate.actor()[1] or "", seconds, uid=banned_uid)
    except ValueError:
        raise gate.Refused(409, SENTENCES["ban_cap"] % {"limit": moderation().max_bans}, "ban_cap") from None
    record(room, "ban", name, BAN_FOR % seconds if seconds else "for good")  # shown translated (manage.html)
    return done(form, manage_url(room), ban, 201)


def _ban_key(uid, name):
    # A guest's uid is one sign-in's: signing in again with the same name would lift a ban
    # kept under it, so a guest's ban is kept under the name (records.guest_ban_key).
    return records.guest_ban_key(name) if uid.startswith(records.GUEST_PREFIX) else uid


def _address_key(text):
    try:
        address = ipaddress.ip_address(str(text).strip())
        if getattr(address, "scope_id", None) is not None:  # "fe80::1%eth0": anything may follow the %
            raise ValueError(text)
        return "addr:" + str(address)
    except ValueError:
        raise gate.Refused(400, SENTENCES["address"] % str(text)[:64], "bad_address") from None


@bp.route("/rooms/<room>/bans/<path:user>", methods=["DELETE", "POST"])
def unban(room, user):
    """Lift a ban: ``user`` is the ban's key as GET /bans lists it ("addr:<address>" too); with
    ``?by=name``, a name resolved as a ban's ``user`` is."""
    room = room_or_404(room)
    gate.require_role(room, records.MODERATOR)
    data, form = read_body()
    if method() != "DELETE":
        raise gate.Refused(405, _l("Use DELETE."), "method")
    if request.args.get("by") == "name":  # a name, resolved as a ban's "user" is
        uid, name = gate.resolve(room, user)
        # (and a guest's name banned while no one holds it now)
        candidates = ([_ban_key(uid, name)] if uid else []) + [records.guest_ban_key(user)]
    else:  # the ban's key as GET /bans lists it: never read as a name
        candidates = [user]
    if not any(moderation().unban(room, key) for key in candidates):
        raise gate.Refused(404, SENTENCES["no_ban"] % {"name": user, "room": room}, "no_ban")
    record(room, "unban", user)
    return done(form, manage_url(room))


@bp.get("/rooms/<room>/audit")
def audit(room):
    """The room's moderation record, newest first: {"room", "actions": [{"at", "actor",
    "actor_name", "action", "target", "detail"}]}; for its owner and administrators."""
    room = room_or_404(room)
    gate.require_role(room, records.OWNER)
    return jsonify(room=room, actions=moderation().audit(room))


@bp.get("/rooms/<room>/manage")
def manage(room):
    """The room's management page for its moderators, owner and administrators (plain forms)."""
    return manage_page(room_or_404(room))


# The manage page's forms whose refusal comes back on that page, the sentence in the form and
# what was typed kept (a member row's Ban carries user_id: not this form's); the admin page's
# forms name their own ``next``.
MANAGE_FORMS = {"rooms.change_room": "room", "rooms.add_member_form": "add", "rooms.bans": "ban",
                "invites.room_invites": "invite"}


def refused_manage_form(exc):
    """(page, status) of the manage page for a refused manage form (JavaScript off), else None:
    it had answered with a bare error page and a link to the lobby, the typed fields lost (helper-86)."""
    which = MANAGE_FORMS.get(request.endpoint)
    if (which is None or request.method != "POST" or request.mimetype not in FORM_TYPES or wants_json()
            or request.form.get("next") or request.form.get("user_id")
            or (which == "room" and method() != "PATCH")):
        return None
    room = keys.canonical_room((request.view_args or {}).get("room", ""))
    if room is None:
        return None
    try:
        return manage_page(room, {"form": which, "error": str(exc), "typed": request.form.to_dict()}, exc.status)
    except gate.Refused:  # no moderator of the room (any more): the plain refusal
        return None


# The session's one-time copy of the invitation link a form just made (invite_views.room_invites).
NEW_INVITE = "new_invite"


def manage_page(room, refused=None, status=200):
    """The management page; ``refused``: {"form", "error", "typed"} of a form it turned down."""
    found = gate.require_role(room, records.MODERATOR)
    made = session.get(NEW_INVITE)
    new_invite = session.pop(NEW_INVITE)["url"] if isinstance(made, dict) and made.get("room") == room else None
    try:
        info = registry().info(room) or {"room": room, "topic": "", "visibility": records.PUBLIC,
                                         "owner": None, "slow_mode_seconds": 0}
        people = registry().members(room)
        shown = moderation().active_bans(room)
        invites = services().invites.list(room)
        actions = moderation().audit(room, 50) if (found.role == records.OWNER or gate.is_admin()) else None
    except redis.RedisError:
        raise
    return render_template("manage.html", room=room, info=info, members=people, bans=shown, role_names=ROLE_NAMES,
                           invites=invites, actions=actions, role=found.role, admin=gate.is_admin(),
                           me=gate.actor()[0], new_invite=new_invite, now=records.now_ms(),
                           user=identity.shown(),  # the header's "Signed in as … / Sign out"
                           refused=refused), status
