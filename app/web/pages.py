"""Server-rendered pages: the lobby and a room. Both work with JavaScript off.

A room page can show, besides the live room, an older page of its history (``?before=<id>``)
and a conversation with one person (``?with=<name>``): direct messages have their own panel
and composer, never the room's.
"""
import json
import logging
import time
import uuid
from datetime import datetime, timedelta, timezone

import redis
from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, url_for
from flask_babel import format_timedelta, gettext

from ..ops.services import services
from ..people import identity, names
from ..people import reading as reading_people
from ..rooms import deletions, keys, messages, records, timeline
from ..rooms.conversation import DEFAULT_REACTIONS
from ..rooms.moderation import SENTENCES as MODERATION
from . import gate, i18n

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

logger = logging.getLogger(__name__)
bp = Blueprint("pages", __name__)

DIRECT_SCAN = 200      # newest direct messages a room page reads for its conversations panel
CONVERSATIONS = 10     # people listed under "Direct messages"
NO_ONE = N_("There is no one by that name.")
CREATE_SIGNED_OUT = N_("No room was created: you are signed out (perhaps in another tab or window). "
                       "Sign in, then press Create again.")
CREATE_FIELDS = ("name", "topic", "visibility")


@bp.get("/")
def lobby():
    """List recently active rooms and offer to join one."""
    # A create form refused for its session comes back here (form_pages), filled in as typed.
    create = typed_create(request.args)
    if request.args.get("expired") and not identity.shown():  # a link cannot tell the signed-in so
        create["error"] = CREATE_SIGNED_OUT
    return lobby_page(create=create if any(create.values()) else None)


def typed_create(source):
    """The create form's fields as typed in ``source`` (a form or the query), each kept short."""
    return {field: source.get(field, "")[:200] for field in CREATE_FIELDS}


def create_refused(form, status, sentence):
    """The lobby again for a refused create form: ``sentence``, and the form as it was typed."""
    return lobby_page(status=status, create={"error": sentence, **typed_create(form)})


@bp.get("/go")
def go():
    """Join a room by name: the lobby's form lands here."""
    typed = request.args.get("room", "").strip()
    room = keys.canonical_room(typed)
    if room is None:
        return lobby_page(error=N_("“%s” is not a room name. %s") % (typed[:80], keys.ROOM_RULE),
                          typed=typed, status=400)
    return redirect(url_for("pages.room", room=room), 303)


# A permalink or a page link (?at=, ?before=, ?after=) that is not one: said to a person who
# followed a link, so no parameter names or id formats (the history API says those: api.BAD_BOUND).
BROKEN_LINK = N_("This link does not point to a message in this room.")
# A permalink (?at=) of the right shape whose message the room does not have: another room's, or
# one no longer kept. The page around where it would be, with this sentence (404).
NOT_IN_ROOM = N_("The message this link points to is not in this room (it may have been deleted).")


@bp.get("/rooms/<room>")
def room(room):
    """Render a room: recent messages, the message form and the live feed."""
    canonical = keys.canonical_room(room)
    if canonical is None:
        abort(404, N_("There is no room with that name. %s") % keys.ROOM_RULE)
    if canonical != room:  # one address per room: "Lobby" and "ＬＯＢＢＹ" lead to "lobby"
        query = request.query_string.decode("latin-1")  # kept as sent (?before=, ...)
        return redirect(url_for("pages.room", room=canonical) + ("?" + query if query else ""), 301)
    gate.require_read(room)  # a private room's non-member: the same 404 as no room at all
    bounds = {}
    for name in ("before", "after", "at"):
        value = request.args.get(name)
        if value is not None:
            bounds[name] = keys.parse_stream_id(value)
            if bounds[name] is None:
                abort(400, BROKEN_LINK)
    if len(bounds) > 1:
        abort(400, BROKEN_LINK)
    reply_to = request.args.get("reply_to") or None
    other = request.args.get("with")
    if other is not None:
        try:
            other = messages.check_name(other)
        except messages.Invalid:
            abort(404, NO_ONE)
    note = None
    if other and request.args.get("delivery") == "waiting":  # app/people/direct.py: Ripple-Delivery
        note = gettext("Sent. %(name)s is away: it is delivered when they are back.", name=other)
    return room_page(room, before=bounds.get("before"), after=bounds.get("after"), at=bounds.get("at"),
                     other=other, dm_note=note, reply_to=reply_to)


@bp.get("/rooms/<room>/here.css")
def here(room):
    """Mark a signed-in person online in a room their page shows with JavaScript off.

    Only such a page asks: the room page names this stylesheet inside <noscript>. The presence
    lasts as long as an idle name stays claimed (RIPPLE_NAME_IDLE_SECONDS).
    """
    room = keys.canonical_room(room)
    name, sid = identity.shown(), identity.shown_sid()
    if room and name and sid and gate.may_read(gate.access(room)):
        try:
            services().presence.visit(room, name, sid, current_app.config["NAME_IDLE_SECONDS"],
                                      guest=_is_guest())
        except redis.RedisError as exc:  # a stylesheet: the page already says the service is down
            services().outage.failed("here.css", exc)
    return Response("", mimetype="text/css", headers={"Cache-Control": "no-store"})


def room_page(room, error=None, text="", status=200, key=None, before=None, other=None,
              dm_error=None, dm_text="", dm_key=None, notice=None, dm_note=None, after=None, at=None,
              reply_to=None, editing=None, again=False, dm_again=False, note=None):
    """Render a room page, optionally with a form error and the text the person typed.

    ``key`` is the idempotency key the failed post carried: the form sends it again, so a retry
    of a post that was stored after all returns the original instead of storing it twice.
    ``other``: the person whose conversation is open (its form's error, text and key: ``dm_*``).
    ``notice``: a sentence for the whole page (a refused edit, deletion or reaction).
    ``before``/``after``/``at`` ((ms, seq)): the page of history older than, newer than, or
    around (a permalink, highlighted) that id; a page with newer messages beyond it is not
    live. ``reply_to``: the id the composer answers (a Reply link followed without JavaScript).
    ``editing``: {"id", "text"} of a refused edit ({"id", "emoji"} of a refused reaction): that
    message's menu open, holding what was typed.
    ``again``, ``dm_again``: the room's or the conversation's composer sends its text even if
    it was just sent (api.SENT_JUST_NOW). ``note``, ``dm_note``: a composer's sentence that is
    no error (that question; "delivered when they are back").
    """
    cfg = current_app.config
    user, sid = identity.shown(), identity.shown_sid()
    unavailable = False
    directs = []
    record, standing, administers, observer = None, None, False, None
    sidebar, read_id, first_unread = None, None, None
    try:
        standing = gate.access(room)
        # A refused form's text stays, to copy (a member removed meanwhile, JavaScript off: helper-86).
        kept = text or dm_text or None
        if gate.hidden(standing):  # every way to a room page (a failed form's too) ends here
            return render_template("error.html", status=404, message=gate.NOT_FOUND, kept=kept), 404
        if gate.shut_out(standing):  # a private room's member under a ban reads nothing of it
            return render_template("error.html", status=403,
                                   message=gate.banned_sentence(room, standing.ban), kept=kept), 403
        if standing.used is False and deletions.deleted_at(services().redis, room):
            return deleted_page(room)
        administers = bool(user) and gate.is_admin()  # every power of a moderator, everywhere
        if user and standing.visibility == records.PRIVATE and standing.role is None:
            observer = gate.SENTENCES["members_only"] % room  # an administrator: reads, moderates, never writes
        if standing.exists:
            record = services().rooms.info(room)
        store = services().store
        if user:
            sidebar, read_id = _sidebar(room, user)
        found, more, more_after = store.window(room, before=before, after=after, around=at,
                                               limit=cfg["ROOM_PAGE_MESSAGES"])
        if read_id and before is None and after is None and at is None and found and _newer(found[-1], read_id):
            # New since the person left: the page starts at the first unread message (the
            # stream brings the rest, so the page stays live), not at the bottom.
            if more and _newer(found[0], read_id):  # the first unread is older than this page
                found, more, _ = store.window(room, after=keys.parse_stream_id(read_id),
                                              limit=cfg["ROOM_PAGE_MESSAGES"])
            first_unread = next(json.loads(raw)["id"] for raw in found if _newer(raw, read_id))
        replying = _replying(room, reply_to)
        online, guests = services().presence.people(room)
        if user:
            directs = store.directs(sid, DIRECT_SCAN)
    except redis.RedisError as exc:
        services().outage.failed("room page", exc)
        found, more, online, guests, unavailable = [], False, [], [], True
        more_after, replying = False, None
        sidebar, first_unread = None, None
    now = int(time.time() * 1000)
    shown = [json.loads(raw) for raw in found]
    if at is not None and not unavailable and all(m["id"] != keys.format_stream_id(at) for m in shown):
        notice, status = notice or NOT_IN_ROOM, 404 if status == 200 else status
    if user and user not in online:
        # This page is the person's presence until its stream (if any) says so; without
        # JavaScript there is no stream at all, and the list must still show them.
        online = sorted(online + [user])
        if _is_guest():
            guests = sorted(guests + [user])
    # Bounded like a stream's snapshot: a room with hundreds online lists the first few and a count.
    online, guests, online_count = services().presence.bounded(online, guests, keep=user)
    directs = [json.loads(raw) for raw in directs]
    conversation = None
    if other is not None and user:
        conversation = timeline.arrange([m for m in directs if _other(m, user) == names.fold(other)],
                                        lambda m: m["from"], now)
    # The room part only: a fresh stream replays the newest direct messages, which the page's
    # lists drop by id, and which a tab leading the browser's shared stream keeps for the others.
    cursor = shown[-1]["id"] if shown else ("" if unavailable else "0-0")
    older_url = newer_url = None
    if more and shown:
        older_url = url_for("pages.room", room=room, before=shown[0]["id"],
                            **({"with": other} if other else {}))
    # Without JavaScript nothing brings new messages: a link does (room.html). ``new`` changes at
    # every page, so following it from a page it opened is a new page, not a scroll to #latest.
    latest_url = url_for("pages.room", room=room, new=now, **({"with": other} if other else {})) + "#latest"
    if more_after and shown:
        newer_url = url_for("pages.room", room=room, after=shown[-1]["id"],
                            **({"with": other} if other else {}))
    return render_template(
        "room.html", room=room, log=timeline.arrange(shown, lambda m: m["user"], now), more=more,
        older_url=older_url, newer_url=newer_url, latest_url=latest_url, archive=before is not None or more_after,
        highlight=keys.format_stream_id(at) if at else None, replying=replying, editing=editing,
        dm_action=url_for("direct.post_direct", name=other, room=room) if other else None,
        dm_idempotency_key=dm_key or uuid.uuid4().hex,
        cursor=cursor, error=error, text=text or "", user=user,
        idempotency_key=key or uuid.uuid4().hex, again=again, dm_again=dm_again,
        unavailable=unavailable, online=online, guests=guests,
        online_count=online_count, online_max=services().presence.list_max,
        other=other, conversation=conversation, dm_error=dm_error, dm_text=dm_text or "", dm_note=dm_note, note=note,
        conversations=_conversations(directs, user) if user else [],
        backlog=cfg["ROOM_PAGE_MESSAGES"], max_chars=cfg["MAX_MESSAGE_CHARS"], client=_client_config(),
        withdrawals=int(cfg["IDEMPOTENCY_SECONDS"]) > 0,  # no keys kept: "Don't send" drops it (pending.js)
        group_seconds=timeline.GROUP_SECONDS, notice=notice, my_uid=_uid(user),
        default_reactions=DEFAULT_REACTIONS,
        edit_window_ms=cfg["EDIT_WINDOW_SECONDS"] * 1000,
        editable_after=now - cfg["EDIT_WINDOW_SECONDS"] * 1000, record=record,
        manages=bool(standing and standing.role in ("owner", "moderator")) or administers, sidebar=sidebar,
        member=bool(user and standing and standing.role == "member"),  # offered "Leave" (room_views.leave_page)
        read_id=read_id, first_unread=first_unread, unread_before=_unread_count(sidebar, room),
        observer=observer), status


def deleted_page(room):
    """The page of a room deleted lately whose name nobody took since (app/rooms/deletions.py):
    what a live page said when it happened (410), and a way to create a new room of the name on
    purpose (the lobby's form, filled in), never a fresh public room that looks like the old."""
    create = url_for("pages.lobby", name=room) + "#create-name"  # signed out: the sign-in keeps it
    return render_template("error.html", status=410, message=i18n.translate(MODERATION["deleted"]) % room,
                           action={"url": create, "label": gettext("Create a new #%(room)s", room=room)}), 410


def _replying(room, message_id):
    """The quote of the message the composer answers (messages.quote), or None when there is
    none to answer (no such message, or deleted)."""
    if not message_id:
        return None
    found = services().conversation.message(room, message_id)
    return None if found is None or found.get("deleted") else messages.quote(found)


def _uid(user):
    """The signed-in person's stable id (messages' "uid"), for marking their own messages."""
    if not user:
        return None
    try:
        return identity.uid()
    except redis.RedisError:
        return None


def _sidebar(room, user):
    """The signed-in person's sidebar entries, and their read position in ``room`` as it was
    before this visit (None: never read). Opening the room puts it in the sidebar (unless they
    hid it); the room counts as being read (no badge while open)."""
    reading = services().reading
    reader = reading_people.current_reader()
    if reader is None:
        return None, None
    read_id = reading.position(reader, room)
    reading.visit(reader, room, user)
    entries = reading.entries(reader, allow=gate.readable)
    for entry in entries:
        if entry["room"] == room:
            entry["current"], entry["unread_before"] = True, entry["unread"]
            entry["unread"] = entry["mentions"] = 0
    return entries, read_id


def _unread_count(sidebar, room):
    return next((e.get("unread_before", 0) for e in sidebar or () if e["room"] == room), 0)


def _newer(raw, read_id):
    """Tell whether a stored message (JSON) is newer than the id ``read_id``."""
    return keys.parse_stream_id(json.loads(raw)["id"]) > keys.parse_stream_id(read_id)


@bp.app_template_filter("badge")
def badge(count):
    """An unread count as shown: "99+" past 99, "" for none."""
    return "99+" if count > 99 else (str(count) if count else "")


def sign_in_page(error=None, typed="", target=None, status=200):
    """The name form on its own page, with an error and the name typed kept."""
    return render_template("signin.html", error=error, typed=typed,
                           target=target or url_for("pages.lobby")), status


def lobby_page(error=None, typed="", status=200, notice=None, create=None):
    """The lobby; ``error`` belongs to its join form, ``notice`` to the page (a failed Sign out),
    ``create`` to its new-room form ({"error", "name", "topic", "visibility"}: kept as typed)."""
    try:
        rooms = services().store.rooms(current_app.config["LOBBY_ROOMS"])
        shown = services().rooms.visible([r["room"] for r in rooms], identity.uid())
        rooms = [{**r, "private": shown[r["room"]]} for r in rooms if r["room"] in shown]  # private: members only
        counts = services().presence.online_counts([r["room"] for r in rooms])
        for entry, count in zip(rooms, counts):
            entry["online"] = count
    except redis.RedisError as exc:
        services().outage.failed("lobby", exc)
        rooms = None
    now = datetime.now(timezone.utc)
    for entry in rooms or []:
        entry["when"] = _iso(entry["last"])
        # In the reader's language: "3 minutes ago" / "3分钟前", and the full time (UTC: the
        # server does not know the reader's zone; the page's script shows it in theirs).
        last = datetime.fromtimestamp(entry["last"] / 1000, timezone.utc)
        entry["ago"] = format_timedelta(min(last - now, timedelta(0)), add_direction=True)
        entry["full"] = i18n.ms_datetime(entry["last"])
    user, sidebar = identity.shown(), None
    if user:
        try:
            reader = reading_people.current_reader()
            sidebar = services().reading.entries(reader, allow=gate.readable) if reader else None
        except redis.RedisError as exc:
            services().outage.failed("lobby", exc)
    counts = {entry["room"]: entry for entry in sidebar or ()}
    for entry in rooms or []:
        entry["mine"] = counts.get(entry["room"])
    create = create or {}
    # Signed out, a refused create form's fields wait in the sign-in form's way back here.
    back = url_for("pages.lobby", **{field: create[field] for field in CREATE_FIELDS if create.get(field)})
    return render_template("lobby.html", rooms=rooms, error=error, typed=typed, notice=notice,
                           user=user, sidebar=sidebar, create=create, signin_target=back,
                           room_rule=keys.ROOM_RULE), status


def _is_guest():
    """Tell whether the signed-in person is a guest (False when Redis cannot tell)."""
    try:
        return identity.kind() == "guest"
    except redis.RedisError:
        return False


def _other(message, me):
    """The normalized name of the other person in a direct message (oneself in a note to self)."""
    sender = names.fold(message["from"])
    return names.fold(message["to"]) if sender == names.fold(me) else sender


def _conversations(directs, me):
    """The people one has direct messages with, the most recent first: name, last message."""
    people = {}
    for message in reversed(directs):
        other = _other(message, me)
        if other not in people:
            name = message["to"] if names.fold(message["from"]) == names.fold(me) else message["from"]
            people[other] = {"name": name, "last": message}
        if len(people) == CONVERSATIONS:
            break
    return list(people.values())


def _iso(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds")


def _client_config():
    cfg = current_app.config
    # The page's script needs the heartbeat to tell a quiet stream from a dead one.
    return {"maxChars": cfg["MAX_MESSAGE_CHARS"],
            "heartbeatMs": int(float(cfg["HEARTBEAT_SECONDS"]) * 1000),
            "postTimeoutMs": int(float(cfg["POST_TIMEOUT_SECONDS"]) * 1000)}
