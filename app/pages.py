"""Server-rendered pages: the lobby and a room. Both work with JavaScript off."""
import json
import logging
import uuid
from datetime import datetime, timezone

import redis
from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for

from . import broker, identity, keys

logger = logging.getLogger(__name__)
bp = Blueprint("pages", __name__)


@bp.get("/")
def lobby():
    """List recently active rooms and offer to join one."""
    return _lobby()


@bp.get("/go")
def go():
    """Join a room by name: the lobby's form lands here."""
    typed = request.args.get("room", "").strip()
    room = keys.canonical_room(typed)
    if room is None:
        return _lobby(error="“%s” is not a room name. %s" % (typed[:80], keys.ROOM_RULE),
                      typed=typed, status=400)
    return redirect(url_for("pages.room", room=room), 303)


@bp.get("/rooms/<room>")
def room(room):
    """Render a room: recent messages, the message form and the live feed."""
    canonical = keys.canonical_room(room)
    if canonical is None:
        abort(404, "There is no room with that name. " + keys.ROOM_RULE)
    if canonical != room:  # one address per room: "Lobby" and "ＬＯＢＢＹ" lead to "lobby"
        query = request.query_string.decode("latin-1")  # kept as sent (?before=, ...)
        return redirect(url_for("pages.room", room=canonical) + ("?" + query if query else ""), 301)
    return room_page(room)


def room_page(room, error=None, text="", status=200, key=None):
    """Render a room page, optionally with a form error and the text the person typed.

    ``key`` is the idempotency key the failed post carried: the form sends it again, so a retry
    of a post that was stored after all returns the original instead of storing it twice.
    """
    unavailable = False
    try:
        found, more = broker.get_store().page(room, None, current_app.config["ROOM_PAGE_MESSAGES"])
        online = current_app.extensions["presence"].online(room)
    except redis.RedisError as exc:
        current_app.extensions["outage"].failed("room page", exc)
        found, more, online, unavailable = [], False, [], True
    shown = [_for_page(raw) for raw in found]
    return render_template(
        "room.html", room=room, messages=shown, more=more,
        cursor=shown[-1]["id"] if shown else "", error=error, text=text or "",
        user=identity.shown(),
        idempotency_key=key or uuid.uuid4().hex, unavailable=unavailable, online=online,
        backlog=current_app.config["ROOM_PAGE_MESSAGES"], client=_client_config()), status


def sign_in_page(error=None, typed="", target=None, status=200):
    """The name form on its own page, with an error and the name typed kept."""
    return render_template("signin.html", error=error, typed=typed,
                           target=target or url_for("pages.lobby")), status


def _lobby(error=None, typed="", status=200):
    try:
        rooms = broker.get_store().rooms(current_app.config["LOBBY_ROOMS"])
        counts = current_app.extensions["presence"].online_counts([r["room"] for r in rooms])
        for entry, count in zip(rooms, counts):
            entry["online"] = count
    except redis.RedisError as exc:
        current_app.extensions["outage"].failed("lobby", exc)
        rooms = None
    for entry in rooms or []:
        entry["when"] = _iso(entry["last"])
    return render_template("lobby.html", rooms=rooms, error=error, typed=typed,
                           user=identity.shown()), status


def _for_page(raw):
    message = json.loads(raw)
    message["iso"] = _iso(message["ts"])
    return message


def _iso(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds")


def _client_config():
    cfg = current_app.config
    # The page's script needs the heartbeat to tell a quiet stream from a dead one.
    return {"maxChars": cfg["MAX_MESSAGE_CHARS"],
            "heartbeatMs": int(float(cfg["HEARTBEAT_SECONDS"]) * 1000),
            "postTimeoutMs": int(float(cfg["POST_TIMEOUT_SECONDS"]) * 1000)}
