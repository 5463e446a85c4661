"""Direct messages: POST /users/<name>/messages reaches every open stream of that person only."""
import logging
import time
import uuid

from flask import Blueprint, Response, abort, current_app, g, redirect, request, url_for
from werkzeug.routing import BaseConverter

from ..ops.services import services
from ..rooms import keys, messages
from ..web import api, guard
from ..web.replies import json_error, wants_page
from . import identity, sessions, tokens

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

logger = logging.getLogger(__name__)
bp = Blueprint("direct", __name__)


class NameConverter(BaseConverter):
    """A display name in a URL: any characters, "/" included (even leading), up to /messages."""

    regex = ".+?"
    part_isolating = False


bp.record_once(lambda state: state.app.url_map.converters.setdefault("name", NameConverter))


@bp.post("/users/<name:name>/messages")
@guard.limiter.limit(guard.rate("POST_RATE_SESSION"), key_func=guard.session_key)
@guard.limiter.limit(guard.rate("POST_RATE_IP"))
def post_direct(name):
    """Send a direct message: JSON gets 201 + the sender's copy, a form gets a 303 back."""
    try:
        recipient = messages.check_name(name)
    except messages.Invalid:
        abort(404, N_("There is no one by that name."))
    grant = tokens.current()
    if grant is not None:
        grant.check_direct()  # 403 for a scoped token created without --direct
    text, claimed, key, page = api.read_post()
    try:
        text = messages.check_text(text, current_app.config["MAX_MESSAGE_CHARS"])
        bot = grant is not None
        sender = (api.sender(claimed), None if bot else identity.current()[1])
        uid = grant.uid if bot else identity.uid()  # names in a conversation keep meaning one person
        # One key for every copy (each device's log stores it once), made here if none came.
        key = messages.check_idempotency_key(key)
        own_key = key is not None  # the client's: it may name another message already
        if page and key:  # the plain form's text changed after a failed send is a new message
            key = messages.form_key(key, text, "@" + recipient)
        key = key or "server-" + uuid.uuid4().hex
        waiting = False
        found = _account_sessions(recipient)
        if found is not None:  # an account: every device it is signed in on, here or not
            held, sids, waiting = found
        else:
            owner = services().names.owner(recipient)
            # The holder's own spelling: a look-alike of a name reaches the one person who has it.
            held = services().sessions.name_of(owner, refresh=False) if owner else None
            sids = [owner]
        if held is None:
            raise messages.Invalid(N_("No one called “%s” is here right now.") % recipient, 404)
        if page and not bot and api.asks_again() and _sent_just_now(sender, held, text, key, uid):
            g.ask_again = True  # the page the form comes back in sends it anyway (form_pages.page)
            raise api.SentJustNow()
        if sender[1] is None and own_key:
            # A program's own key, and no copy of its own to check first: every device's log.
            services().store.check_direct_key(sender, held, sids, text, key, uid)
        if sender[1] is not None:  # a page's person: it may withdraw it (withdraw_direct)
            services().store.claim_direct(sender, key, uid)
        stored = created = None
        g.storing = True  # from here a Redis failure may leave the outcome unknown (app/web/errors.py)
        for sid in sids:  # the same key: the sender's copy is stored once, each device's once
            copy, fresh = services().store.publish_direct(sender, (held, sid), text, key, bot, uid)
            if stored is None:  # the sender's copy, as the first device's call stored it (or had)
                stored, created = copy, fresh
        for other in _own_devices(sender[1], sids):  # the sender's other devices keep it too
            services().store.keep_direct((sender[0], other), held, text, key, bot, uid)
    except messages.Invalid as exc:
        if page:
            abort(exc.status, str(exc))
        return json_error(exc.status, str(exc), code=exc.code)
    services().metrics.published.labels("direct").inc()
    if page:  # the conversation says "delivered when they are back" (pages.WAITING)
        target = sessions.safe_next(request.form.get("next"))
        if waiting:
            target += ("&" if "?" in target else "?") + "delivery=waiting"
        if "#" not in target:  # the conversation's end (room.html): no script scrolls it (helper-86)
            target += "#dm-latest"
        return redirect(target, 303)
    headers = {"Ripple-Delivery": "waiting"} if waiting else {}
    return Response(stored, status=201 if created else 200, mimetype="application/json", headers=headers)


ALREADY_SENT = N_("It had already been sent when it was withdrawn: it is in the conversation.")
NO_TOKEN_WITHDRAWING = N_("A direct message sent with a token cannot be withdrawn.")


@bp.post("/users/<name:name>/withdrawals")
@guard.limiter.limit(guard.rate("POST_RATE_SESSION"), key_func=guard.session_key)
@guard.limiter.limit(guard.rate("POST_RATE_IP"))
def withdraw_direct(name):
    """Withdraw a direct message to ``name`` whose outcome its sender (the session's person)
    does not know, by its idempotency key, as POST /rooms/<room>/withdrawals does a post: 200
    {"withdrawn": true} when nothing was stored, and nothing will be (a later attempt with
    that key gets 409 "withdrawn", for RIPPLE_IDEMPOTENCY_SECONDS); 409 "already_sent" with
    the sender's copy as "message" when it was stored first; 503 "withdraw_in_flight" while an
    attempt is storing it (ask again: Retry-After), 409 "withdraw_unknown" once one failed on
    its way (a recipient may have it: Store.withdraw_direct); 400 without a key; 409
    "withdraw_unavailable" for a token's (it has no log of its own to decide in: Store.
    claim_direct) or when keys are kept no time; 401 signed out, 404 for a name no one could
    hold. The recipient need not be here: the withdrawal is kept in the sender's log's slot."""
    try:
        messages.check_name(name)
    except messages.Invalid:
        abort(404, N_("There is no one by that name."))
    _, claimed, key, _ = api.read_post()
    try:
        if tokens.current() is not None:
            raise messages.Invalid(NO_TOKEN_WITHDRAWING, 409, "withdraw_unavailable")
        key = api.withdrawal_idempotency_key(key)
        sender = (api.sender(claimed), identity.current()[1])
        stored = services().store.withdraw_direct(sender, key, identity.uid())
    except messages.Invalid as exc:
        if exc.status == 503:
            g.ripple_retry_after = 1  # set over the limiter's window (gate.keep_retry_after)
        return json_error(exc.status, str(exc), code=exc.code)
    return api.withdrawal_answer(stored, ALREADY_SENT)


def _sent_just_now(sender, held, text, key, uid):
    """Tell whether ``sender`` (name, session id) sent ``text`` to ``held`` within
    api.JUST_NOW_SECONDS with another key: Back to a page with the text put back, and Send
    (api.SentJustNow). The same form sent again is the same key: stored once, not asked."""
    store = services().store
    if sender[1] is None or store.sent_direct(sender, held, text, key, uid):
        return False
    since_ms = int(time.time() * 1000) - api.JUST_NOW_SECONDS * 1000
    return any(message.get("from") == sender[0] and message.get("to") == held and message.get("text") == text
               for message in store.logged_since(keys.PersonKeys(sender[1]), since_ms))


def _account_sessions(recipient):
    """(the account's name, its sessions, none of them online now) when ``recipient`` (or a
    look-alike) is an account (signed in nowhere: its parking log); (None, [], False) for a
    disabled one; None when no account has the name. Messages to an account reach every device it
    is signed in on (each resumes by its own cursor), and wait in their logs while it is away."""
    accounts, sessions = services().accounts, services().sessions
    account = accounts.get(accounts.id_for(recipient))
    if account is None:
        return None
    if account["disabled"]:
        return None, [], False
    sids = sorted(sid for sid in accounts.session_ids(account["id"]) if sessions.alive(sid))
    if not sids:  # signed in nowhere: parked until it signs in (identity.sign_in moves them)
        return account["name"], [parked(account["id"])], True
    return account["name"], sids, not any(sessions.online(sid) for sid in sids)


def _own_devices(sid, recipients):
    """The sender's account's other live sessions (none for a guest, a token or a program),
    but the recipients' (a note to oneself already reached every device)."""
    account_id = identity.account() if sid else None
    if not account_id:
        return []
    sessions = services().sessions
    return sorted(other for other in services().accounts.session_ids(account_id)
                  if other != sid and other not in recipients and sessions.alive(other))


def parked(account_id):
    """The log where direct messages wait for an account signed in nowhere."""
    return "parked-" + account_id


@bp.get("/users/<name:name>/messages")
def conversation(name):
    """A browser reopening a direct message form's address: the conversation in its room."""
    room = keys.canonical_room(request.args.get("room", ""))
    if not wants_page():
        abort(405, valid_methods=["POST"])
    if room is None:
        return redirect(url_for("pages.lobby"), 303)
    return redirect(url_for("pages.room", room=room, **{"with": name}), 303)
