"""Read positions, the room sidebar and mentions over HTTP (issue 17).

    PUT    /rooms/<room>/read       {"id"} -> 204 (forward only; 422 past the newest message)
    GET    /me/rooms                -> [{"room", "unread", "mentions", "last_id", "read_id", "last_activity"}]
    PUT    /me/rooms/<room>         -> 204: show the room in the sidebar
    DELETE /me/rooms/<room>         -> 204: hide it
    POST   /me/rooms/<room>         form: action=show|hide, next -> 303 (the same, without JS)
    GET    /me/mentions?before=&limit= -> {"mentions": [...], "more"}; a page for browsers
    GET    /rooms/<room>/read.css?id= -> the position of a page read with JavaScript off
"""
from datetime import datetime, timezone

import redis
from flask import Blueprint, Response, abort, jsonify, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l

from ..ops.services import services
from ..people import identity, sessions
from ..people.reading import Ahead, current_reader
from ..rooms import keys
from . import bodies, gate
from .replies import json_error, wants_page

bp = Blueprint("reading", __name__)

SIGNED_OUT = _l("Sign in to keep read positions and a room list.")
BAD_ID = _l("id must be a message id such as 1732371730000-0.")
AHEAD = _l("That message is newer than the newest one in the room.")
BAD_ACTION = _l("action must be hide or show.")
BAD_BEFORE = _l("before must be a time in milliseconds, such as 1732371730000.")
BAD_LIMIT = _l("limit must be a whole number from 1 to %(max)d.")
MENTIONS_MAX = 100


def reading():
    return services().reading


def _reader_or_401():
    reader = current_reader()
    if reader is None:
        abort(json_error(401, SIGNED_OUT, code="signed_out"))
    return reader


def _room_or_400(room):
    canonical = keys.canonical_room(room)
    if canonical is None:
        abort(json_error(400, keys.ROOM_RULE, code="bad_room"))
    return canonical


@bp.put("/rooms/<room>/read")
def mark_read(room):
    """Move the person's read position in the room forward: 204 (an older id changes nothing)."""
    room = _room_or_400(room)
    data = bodies.json_request()  # broken JSON is bad_body, not a bad id
    mid = data.get("id")
    if not isinstance(mid, str) or keys.parse_stream_id(mid) is None:
        return json_error(400, BAD_ID, code="bad_id")
    reader = _reader_or_401()
    gate.require_read(room)  # a private room's non-member: 404, as everywhere
    try:
        reading().mark(reader, room, keys.format_stream_id(keys.parse_stream_id(mid)))
    except Ahead:
        return json_error(422, AHEAD, code="read_ahead")
    return "", 204


@bp.get("/rooms/<room>/read.css")
def read_css(room):
    """Mark a room page read up to ``id``: only a page shown with JavaScript off asks (inside
    <noscript>); with JavaScript the page reports what is really on screen."""
    room, mid = keys.canonical_room(room), keys.parse_stream_id(request.args.get("id", ""))
    if room and mid:
        try:
            reader = current_reader()
            if reader is not None and gate.may_read(gate.access(room)):
                reading().mark(reader, room, keys.format_stream_id(mid))
        except (Ahead, redis.RedisError):
            pass  # a stylesheet: the page says what it can
    return Response("", mimetype="text/css", headers={"Cache-Control": "no-store"})


@bp.get("/me/rooms")
def my_rooms():
    """The person's sidebar rooms with their counts, the most recently active first."""
    if wants_page():
        return redirect(url_for("pages.lobby"), 303)
    return jsonify(reading().entries(_reader_or_401(), allow=gate.readable))


@bp.put("/me/rooms/<room>")
def show_room(room):
    """Show the room in the person's sidebar."""
    room = _room_or_400(room)
    reader = _reader_or_401()
    gate.require_read(room)
    reading().show(reader, room)
    return "", 204


@bp.delete("/me/rooms/<room>")
def hide_room(room):
    """Hide the room from the person's sidebar (opening it no longer brings it back)."""
    room = _room_or_400(room)
    reading().hide(_reader_or_401(), room)
    return "", 204


@bp.post("/me/rooms/<room>")
def room_form(room):
    """The sidebar's plain form: action=hide or show, then back to ``next``."""
    room = keys.canonical_room(room)
    if room is None:
        abort(400, keys.ROOM_RULE)
    reader = current_reader()
    if reader is None:
        abort(401, str(SIGNED_OUT))
    action = request.form.get("action")
    if action == "hide":
        reading().hide(reader, room)
    elif action == "show":
        gate.require_read(room)
        reading().show(reader, room)
    else:
        abort(400, str(BAD_ACTION))
    return redirect(sessions.safe_next(request.form.get("next")), 303)


@bp.get("/me/mentions")
def my_mentions():
    """The person's recent mentions across rooms, newest first: ?before=<ms>&limit=<n>."""
    before = request.args.get("before")
    if before is not None and not (before.isascii() and before.isdigit()):
        abort(400, str(BAD_BEFORE))
    raw_limit = request.args.get("limit", "50")
    if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= MENTIONS_MAX:
        abort(400, str(BAD_LIMIT) % {"max": MENTIONS_MAX})
    reader = current_reader()
    page = wants_page()
    if reader is None:
        if page:
            return redirect(url_for("pages.lobby"), 303)
        return json_error(401, SIGNED_OUT, code="signed_out")
    found, more = reading().mentions(reader, int(before) if before else None, int(raw_limit), allow=gate.readable)
    if page:
        for mention in found:
            mention["when"] = datetime.fromtimestamp(mention["ts"] / 1000, timezone.utc).isoformat(timespec="seconds")
        older = url_for("reading.my_mentions", before=found[-1]["ts"]) if more and found else None
        return render_template("mentions.html", mentions=found, older_url=older, user=identity.shown())
    return jsonify(mentions=found, more=more)
