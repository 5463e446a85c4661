"""The HTTP interface of rooms: post a message, read history, stream live events."""
import json
import logging
import random
import time

import redis
from flask import Blueprint, Response, abort, current_app, g, jsonify, redirect, request, url_for
from flask_babel import gettext as _

from ..delivery import sse, stream
from ..ops.services import services
from ..people import identity, tokens
from ..people import reading as reading_people
from ..rooms import deletions, keys, messages, moderation, records
from . import bodies, fastpost, gate, guard, opening, pages
from .i18n import translate
from .replies import json_error, refuse, require_utf8_form, status_code, wants_json, wants_page

logger = logging.getLogger(__name__)
# A stream request that reaches a leaving worker before its replacements listen waits this long at
# most (connection open, no CPU) instead of bouncing; gunicorn's worker timeout bounds the hand-over.
HANDOVER_WAIT_SECONDS = 30

bp = Blueprint("api", __name__)
N_ = str  # marks a sentence for the catalogue; translated where it is used

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
PAGE_BOUNDS = ("before", "after", "around")  # a history page takes at most one
ONE_BOUND = N_("Give at most one of before, after and around.")
BAD_BOUND = N_("%s must be a message id such as 1732371730000-0.")


def _room_or_400(room):
    """The canonical form of a room name from the URL ("Lobby" answers for "lobby"), or 400."""
    canonical = keys.canonical_room(room)
    if canonical is None:
        refuse(400, "bad_room", _(keys.ROOM_RULE))
    return canonical


def _writer(room):
    """The publish token's grant of a post (or withdrawal) to ``room``, None for a browser's;
    refuses a scoped token outside its rooms (403) and a private room's non-member (404)
    before anything is read."""
    # No X-RateLimit-* headers on an accepted post: computing them reads the limit's window
    # again (a round trip per post); a refusal (429) still says when to come back (Retry-After).
    guard.no_limit_headers()
    grant = tokens.current()
    if grant is not None:
        grant.check_room(room)
    else:
        gate.require_read(room)
    return grant


@bp.post("/rooms/<room>/messages")
@guard.limiter.limit(guard.rate("POST_RATE_SESSION"), key_func=guard.session_key)
@guard.limiter.limit(guard.rate("POST_RATE_IP"))
def post_message(room):
    """Store a message and publish it; JSON gets 201 + the message, a form gets a 303."""
    room = _room_or_400(room)
    grant = _writer(room)
    text, user, key, page = read_post()
    try:
        text = messages.check_text(text, current_app.config["MAX_MESSAGE_CHARS"])
        user = sender(user)
        key = messages.check_idempotency_key(key)
        reply_to_id = request_reply_to()
        storing_key = messages.form_key(key, text, reply_to_id) if page and key else key
        if page and grant is None and asks_again() and _sent_just_now(room, text, reply_to_id, user, storing_key):
            raise SentJustNow()
        if grant is None:
            gate.may_post(room, user, storing_key)  # bans and slow mode (429 + Retry-After)
        else:  # a scoped token: a private room's non-member (404), or banned (403)
            gate.require_token_write(room, grant, user)
        try:
            reply_to, stored = reply_quote(room, reply_to_id), None
        except messages.Invalid:
            # A retry of a reply stored before its original was deleted (or trimmed): the
            # reply as stored, not a refusal that says it was never sent.
            uid = grant.uid if grant is not None else identity.uid()
            # The original may be stored but not yet confirmed by replicas: a failure here is
            # the 504 "unconfirmed" its first attempt got, never "nothing was stored".
            g.storing = True
            stored = services().store.prior(room, user, storing_key, text, reply_to_id, uid, messages.body(
                room, user, text, grant is not None, uid, {"id": reply_to_id, "user": "", "text": ""})) if key else None
            if stored is None:
                raise
            created = False
        if stored is None:
            g.storing = True  # from here a Redis failure may leave the outcome unknown (errors.py)
            with services().metrics.publish_seconds.time():
                # The global token creates rooms freely; browsers and scoped tokens within caps.
                stored, created = services().store.publish(
                    room, user, text, storing_key, may_create=None if grant is not None and not grant.scoped
                    else lambda: _may_create(room), bot=grant is not None,
                    uid=grant.uid if grant is not None else identity.uid(), reply_to=reply_to)
        services().outage.ok()
    except messages.Invalid as exc:
        gate.give_back_slow_wait()
        headers, code = getattr(exc, "headers", None), getattr(exc, "code", None)
        if page:
            # Asked, or asked before and sent anyway (a refusal now must not ask again).
            asked = isinstance(exc, SentJustNow)  # a question, shown as a note, not an error
            again = asked or request.form.get("again") == "1"
            answer, status = pages.room_page(room, error=None if asked else str(exc), note=str(exc) if asked else None,
                                             text=text, status=exc.status, key=kept_key(key), again=again)
            return answer, status, headers or {}
        return json_error(exc.status, str(exc), headers, code)
    except redis.RedisError as exc:
        gate.give_back_slow_wait()  # a retry with the same key finds a stored post anyway
        if not page:
            raise  # errors.py answers 503 (or 504 when the outcome is unknown) + Retry-After
        services().outage.failed("post", exc)
        status, sentence = form_post_failure(exc, bool(g.get("storing")))
        page, status = pages.room_page(room, error=sentence, text=text, status=status, key=kept_key(key),
                                       again=request.form.get("again") == "1")
        return page, status, {"Retry-After": str(current_app.config["REDIS_RETRY_AFTER"])}
    services().metrics.published.labels("room").inc()
    if grant is None:
        _visited(room, user, stored)
    if page:
        # At the log's end (room.html's #latest): without JavaScript nothing scrolls the log, and
        # the page opened at its oldest message, the one just sent out of sight (helper-86).
        return redirect(url_for("pages.room", room=room) + "#latest", 303)
    return Response(stored, status=201 if created else 200, mimetype="application/json")


ALREADY_SENT = N_("It had already been sent when it was withdrawn: it is in the room.")


@bp.post("/rooms/<room>/withdrawals")
@guard.limiter.limit(guard.rate("POST_RATE_SESSION"), key_func=guard.session_key)
@guard.limiter.limit(guard.rate("POST_RATE_IP"))
def withdraw_post(room):
    """Withdraw a post whose outcome its sender does not know (its attempt got no answer), by
    its idempotency key, given as a post gives it (the JSON body's or the form's
    "idempotency_key", or the Idempotency-Key header), by the post's sender (the session's
    person; a token's "user"): a plain form's post answered with a page is keyed by its text too
    (messages.form_key), which the key alone does not name. Answers JSON (errors as every API
    route's): 200 {"withdrawn": true} when nothing was
    stored, and nothing will be (an attempt with that key arriving later, however late, gets
    409 "withdrawn", for RIPPLE_IDEMPOTENCY_SECONDS); 409 "already_sent" with the stored
    "message" as it is now when it was stored first; 400 without a key; as a post for the rest
    (401, 403, 404, 429; 503 when Redis fails: withdrawing again is safe)."""
    room = _room_or_400(room)
    grant = _writer(room)
    _, user, key, _ = read_post()
    try:
        key = withdrawal_idempotency_key(key)
        user = sender(user)
        stored = services().store.withdraw(room, user, key, grant.uid if grant is not None else identity.uid())
    except messages.Invalid as exc:
        return json_error(exc.status, str(exc), code=exc.code)
    return withdrawal_answer(stored, ALREADY_SENT)


def withdrawal_idempotency_key(key):
    """The idempotency key (str) a withdrawal names (``key`` as read_post read it); raises
    messages.Invalid: 400 "missing_idempotency_key" without one, as check_idempotency_key for
    a bad one."""
    key = messages.check_idempotency_key(key)
    if key is None:
        raise messages.Invalid(N_("Name the post to withdraw by its idempotency key."), 400,
                               "missing_idempotency_key")
    return key


def withdrawal_answer(stored, already_sent):
    """A withdrawal's answer: 200 {"withdrawn": true} when ``stored`` is None (nothing was
    stored, and nothing will be), else 409 "already_sent" with ``already_sent`` (the sentence)
    and the stored json (str) as "message"."""
    if stored is None:
        return jsonify(withdrawn=True)
    return json_error(409, already_sent, code="already_sent", fields={"message": json.loads(stored)})


def _may_create(room):
    """A post that would create ``room`` by posting: refused (410 "room_deleted") while a room
    of that name deleted lately is remembered (app/rooms/deletions.py): its former members,
    posting on from an old page or a program, would be talking in a new public room unawares.
    Creating it on purpose is POST /rooms (a record, and no history yet: posted to freely).
    Else counted against the new-room caps."""
    if not gate.access(room).exists and deletions.deleted_at(services().redis, room):
        raise messages.Invalid(translate(moderation.SENTENCES["deleted"]) % room, 410, "room_deleted")
    guard.may_create_room()


REPLY_UNKNOWN = N_("The message you are replying to is not in this room (it may be too old to be kept).")
REPLY_DELETED = N_("The message you are replying to was deleted.")
BAD_REPLY_TO = N_("reply_to must be a message id such as 1732371730000-0.")


def request_reply_to():
    """The id a post answers (JSON ``reply_to``, or the form field), or None."""
    if request.mimetype == "application/json":
        value = bodies.json_body().get("reply_to")
    else:
        value = request.form.get("reply_to")
    if value in (None, ""):
        return None
    if not isinstance(value, str) or keys.parse_stream_id(value) is None:  # not an id at all: 400
        raise messages.Invalid(_(BAD_REPLY_TO), 400, "bad_reply_to")
    return value


def reply_quote(room, message_id):
    """The quote a reply to ``message_id`` carries (messages.quote), None for no reply; raises
    messages.Invalid: 404 when the room holds no such message, 409 when it was deleted."""
    if message_id is None:
        return None
    found = services().conversation.message(room, message_id)
    if found is None:
        raise messages.Invalid(_(REPLY_UNKNOWN), 404, "unknown_message")
    if found.get("deleted"):
        raise messages.Invalid(_(REPLY_DELETED), 409, "deleted")
    return messages.quote(found)


def _visited(room, name=None, stored=None):
    """A signed-in person posted ``stored`` (the message as JSON) in ``room`` as ``name``, or
    (``stored`` None) read its history (an API client, which opens no page): it joins their
    sidebar and learns their name for @mentions (Reading.visit: at most once a minute per
    process), and after a post they have read up to their own message (else leaving right after
    sending showed it as unread in their sidebar). Done already: a failure here only logs."""
    try:
        reader = reading_people.current_reader()
        if reader is not None:
            services().reading.visit(reader, room, name or identity.current()[0])
            if stored is not None:
                services().reading.mark(reader, room, json.loads(stored)["id"])
    except reading_people.Ahead:
        pass  # the room was emptied meanwhile: nothing to have read
    except redis.RedisError as exc:
        logger.warning("could not record a visit room=%s error=%s", room, exc)


# Without JavaScript, Back to the page a post left brings a new page (a new idempotency key) and
# the browser puts the typed text back, so that a post the network refused is not lost; a
# second Send of a text just sent is asked about first (the composer then carries "again").
SENT_JUST_NOW = N_("You sent this message a moment ago. Press Send again to send it once more.")
JUST_NOW_SECONDS = 120


class SentJustNow(messages.Invalid):
    """A plain form's post of the text its person sent in this room within JUST_NOW_SECONDS,
    from another page (409 ``sent_just_now``; the page shows the text, its Send sends it)."""

    def __init__(self):
        super().__init__(SENT_JUST_NOW, 409, "sent_just_now")


def asks_again():
    """Tell whether a form post may be asked "sent just now?": a browser's page (Back, then
    Send) that has not said "send it anyway". Never a program's, even with a session cookie:
    one that names no text/html (curl -d, an HTTP library) stores what it posts, as JSON does."""
    return wants_page() and request.form.get("again") != "1"


def _sent_just_now(room, text, reply_to_id, user, storing_key):
    """Tell whether this session's person posted ``text`` (answering ``reply_to_id``) to ``room``
    within JUST_NOW_SECONDS with another key (the same form sent again is the same key: the
    store answers it with the message it stored). Any of the person's posts of those minutes
    counts, not only the last: Back may reach any page of them. Two reads, on the plain form's
    path only."""
    uid, store = identity.uid(), services().store
    if uid is None or store.prior(room, user, storing_key, text, reply_to_id, uid) is not None:
        return False
    since_ms = int(time.time() * 1000) - JUST_NOW_SECONDS * 1000
    return any(message.get("uid") == uid and message.get("text") == text
               and (message.get("reply_to") or {}).get("id", "") == (reply_to_id or "")
               for message in store.logged_since(keys.RoomKeys(room), since_ms))


def kept_key(key):
    """The idempotency key a failed form post carried, for the form shown again (None if unusable)."""
    try:
        return messages.check_idempotency_key(key)
    except messages.Invalid:
        return None


def read_post():
    """Return (text, user, idempotency key, answer-with-a-page) from a JSON or form body."""
    if request.mimetype == "application/json":
        data = bodies.json_body()  # 400 bad_body, saying what is wrong with it
        try:  # the body's "idempotency_key" is the header's twin (as a form's field is)
            key = messages.body_idempotency_key(data.get("idempotency_key"), request.headers.get("Idempotency-Key"))
        except messages.Invalid as exc:
            refuse(exc.status, exc.code, str(exc))
        return data.get("text"), data.get("user"), key, False
    if request.mimetype in FORM_TYPES:
        if wants_json() and request.get_data(cache=True)[:1] in (b"{", b"["):
            # curl -d '{"text": ...}' without -H 'Content-Type: application/json': a form to
            # the server, whose "text" field is then missing.
            abort(415, N_("The body looks like JSON but is sent as a form: send it with "
                          "Content-Type: application/json."))
        require_utf8_form()
        form = request.form
        key = form.get("idempotency_key") or request.headers.get("Idempotency-Key")
        # Browsers submit a textarea's line breaks as CRLF; store what the person typed (LF),
        # so a break costs one character of the limit, as it does through the JSON API.
        text = form.get("text", "").replace("\r\n", "\n")
        return text, form.get("user"), key, not wants_json()
    abort(415)


def sender(claimed):
    """Return the name a post is sent as.

    Server-to-server posts may name anyone (the global publish token) or one of their names (a
    scoped token: 403 for any other). A browser posts as the name its session holds, never as a
    name it sends; the claim is refreshed on every post.
    """
    grant = tokens.current()
    if grant is not None:
        return grant.sender(claimed)
    name, sid = identity.current()
    if not name:
        # signed_out, as every route that needs a session says it (api.md, "Error codes")
        raise messages.Invalid(N_("Sign in with a display name before posting."), 401, "signed_out")
    try:
        services().names.claim(name, sid, account=identity.account())
    except identity.NameTaken:
        raise messages.Invalid(N_("Your name “%s” was taken by someone else while you were away. "
                                  "Sign in again with another name.") % name, 409) from None
    return name


def form_post_failure(exc, storing=True):
    """(HTTP status, sentence) for a plain form's post that Redis failed with ``exc``, at any
    step (the room's gate or, ``storing``, the store): says whether it was sent, and that the
    text is kept."""
    status, code, sentence = fastpost.post_failure(exc, storing)
    if code == "unavailable":
        sentence = N_("The message could not be sent: the service is unavailable.")
    return status, N_("%s Your text is kept below; try again shortly.") % sentence


@bp.get("/rooms/<room>/messages")
def history(room):
    """Return a page of history, oldest first: ?before=|after=|around=<id>&limit=<n>.

    Answers {"room", "messages", "more", "more_before", "more_after"}; ``more`` is
    ``more_before`` (older messages exist), as it always was.
    """
    room = _room_or_400(room)
    gate.require_read(room)
    if wants_page():  # a browser opening this address: the same messages as a room page
        return redirect(url_for("pages.room", room=room, before=request.args.get("before")), 303)
    cfg = current_app.config
    given = [name for name in PAGE_BOUNDS if request.args.get(name) is not None]
    if len(given) > 1:
        abort(400, ONE_BOUND)
    bound = {}
    for name in given:
        bound[name] = keys.parse_stream_id(request.args[name])
        if bound[name] is None:
            abort(400, BAD_BOUND % name)
    limit = _int_arg("limit", cfg["PAGE_LIMIT_DEFAULT"], 1, cfg["PAGE_LIMIT_MAX"])
    found, more_before, more_after = services().store.window(room, limit=limit, **bound)
    if not bound:  # the newest page: a client opening the room (not "Load older")
        _visited(room)
    before, after = ("true" if more_before else "false"), ("true" if more_after else "false")
    body = '{"room":%s,"messages":[%s],"more":%s,"more_before":%s,"more_after":%s}' % (
        json.dumps(room), ",".join(found), before, before, after)
    return Response(body, mimetype="application/json")


@bp.get("/rooms/<room>/events")
def events(room):
    """Stream a room as server-sent events, resuming after Last-Event-ID when given."""
    room = _room_or_400(room)
    cfg = current_app.config
    backlog = _int_arg("backlog", 0, 0, cfg["BACKLOG_MAX"])
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    cursor = keys.parse_cursor(raw)
    if raw and cursor is None:
        # Never an error: an EventSource stops reconnecting on one. Start from now instead.
        logger.info("malformed cursor, streaming from now room=%s cursor=%.80r", room, raw)
    hub = services().hub
    streams = hub.streams
    head = request.method == "HEAD"
    # The rate limits (429), the room's access and the address's admission: one round trip.
    opened = opening.open_stream(room, admit=not (head or streams.draining or streams.full()))
    try:
        found = gate.require_open(room)  # 404 for a private room's non-member, 403 when banned
        if records.deleted_since(cursor, opened.gone):  # resuming a deleted room: it ended for good
            raise gate.Refused(410, translate(moderation.SENTENCES["deleted"]) % room, "room_deleted")
    except Exception:
        opened.give_back()
        raise
    if head:  # the headers a stream would have, and no stream
        return Response(b"", mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})
    if streams.draining:  # this worker is leaving: come back once the workers that stay listen
        opened.give_back()  # admitted just before the worker began leaving
        streams.handed_over.wait(HANDOVER_WAIT_SECONDS)
        return Response(stream.leaving_hint(streams, int(cfg["RETRY_MS"])), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache"})
    if opened.admitted is None:  # at the stream limit when the checks ran
        return refuse_stream(503, N_("This server is at its stream limit; try again shortly."),
                             int(cfg["REDIS_RETRY_AFTER"]))
    if not opened.admitted:
        return refuse_stream(429, N_("Too many open streams from your network (the limit is %d). Close "
                             "a tab and try again.") % cfg["MAX_STREAMS_PER_ADDRESS"],
                             float(cfg["HEARTBEAT_SECONDS"]) * 2)
    try:
        return _relay(hub, room, found, cursor, backlog)
    except Exception:
        opened.give_back()  # failed after its admission (Redis, say): its place is free again
        raise


def _relay(hub, room, found, cursor, backlog):
    """The admitted stream's response: its subscription (opening.subscription), streamed.
    Raises redis.RedisError when Redis fails."""
    name, sid = identity.current()
    person = None
    if name:
        person = opening.Person(name, sid, identity.uid(), identity.account(), identity.kind() == "guest",
                                identity.expires())
    sub = opening.subscription(services(), current_app.config, request.environ, room, found, cursor,
                               backlog, gate.address(), person, gate.admin_token_presented() or None)
    # direct_passthrough: gunicorn iterates the generator itself (and closes it), without
    # werkzeug's two wrapping iterators on every chunk.
    return Response(stream.relay(hub, sub), mimetype="text/event-stream", direct_passthrough=True,
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def refuse_stream(status, message, retry_after):
    """Refuse to open a stream so that the client comes back after ``retry_after`` seconds.

    An EventSource gives up for good on any answer but a 200 ``text/event-stream``, so a client
    that asks for one (every EventSource does) gets exactly that: ``retry:`` (``retry_after``
    plus up to half again of jitter, so a refused crowd does not return at one instant), an
    ``event: busy`` with ``{"error", "status", "retry_after"}``, and the end of the stream,
    after which it reconnects by itself. Other clients get ``status`` with the JSON error.
    Both carry ``Retry-After``. ``message``: the sentence, or a function of the seconds the
    client will wait that returns it (the ``retry:`` it is sent, jitter and all, for an
    EventSource; ``Retry-After`` for others), so the sentence never names another wait.
    """
    retry_after = max(1, int(retry_after))
    headers = {"Retry-After": str(retry_after)}
    if "text/event-stream" not in request.headers.get("Accept", ""):
        return json_error(status, message(retry_after) if callable(message) else message, headers)
    retry_ms = int(retry_after * 1000 * (1 + random.random() / 2))
    if callable(message):
        message = message(-(-retry_ms // 1000))
    body = sse.retry(retry_ms) + sse.event("busy", json.dumps(
        {"error": translate(message), "code": status_code(status), "status": status, "retry_after": retry_after}))
    return Response(body, mimetype="text/event-stream", headers={"Cache-Control": "no-cache", **headers})


@bp.post("/rooms/<room>/typing")
@guard.limiter.limit(guard.rate("POST_RATE_SESSION"), key_func=guard.session_key)
def typing(room):
    """Tell the room this person is typing: 204 (broadcast at most once per interval), 401 if
    not signed in. Never stored: the room's streams show it for a few seconds."""
    room = _room_or_400(room)
    name, _ = identity.current()
    if not name:
        return json_error(401, N_("Sign in to show that you are typing."), code="signed_out")
    gate.require_write(room)
    services().typing.signal(room, name)
    return "", 204


@bp.get("/rooms/<room>/presence")
def room_presence(room):
    """Return who is online in the room: {"room", "online": [names], "guests": [the names
    among them that are guests: no account, no sign-in from another service]}."""
    room = _room_or_400(room)
    gate.require_read(room)
    online, guests = services().presence.people(room)
    return jsonify(room=room, online=online, guests=guests)


def _int_arg(name, default, low, high):
    raw = request.args.get(name)
    if raw is None:
        return default
    # ASCII digits only, as the fast stream path reads backlog: int() also takes " 5", "+5",
    # "1_0" (ten) and other scripts' digits ("٥", "５").
    if not (raw.isascii() and raw.isdigit()):
        abort(400, N_("%s must be a whole number from %d to %d.") % (name, low, high))
    try:
        value = int(raw)
    except ValueError:
        abort(400, N_("%s must be a whole number from %d to %d.") % (name, low, high))
    if not low <= value <= high:
        abort(400, N_("%s must be a whole number from %d to %d.") % (name, low, high))
    return value
