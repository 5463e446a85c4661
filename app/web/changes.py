"""Edit, delete and react over HTTP: JSON for programs and scripts, plain forms (PRG) for pages.

JSON: ``PATCH /rooms/<room>/messages/<id>`` {"text", "base_edited_ts"?} -> 200 the message; ``DELETE`` -> 204;
``PUT|DELETE /rooms/<room>/messages/<id>/reactions/<emoji>`` -> 200 {"message_id", "reactions"}.
Forms (JavaScript off): ``POST .../<id>/edit`` (text, base_edited_ts), ``.../<id>/delete``, ``.../<id>/reactions``
(emoji; toggles) -> 303 back to the room page at the message. A deletion is asked first: a
delete form without ``confirm=1`` gets a 303 to ``GET .../<id>/delete``, a page showing the
message with "Yes, delete it" (the same form, confirmed) and Cancel; a mis-tap deletes nothing.
Refusals: JSON {"error", "code"} with the status app/rooms/conversation.py names (409 edit_conflict
adds the message's "text" and "edited_ts" now); a form gets
the room page with the sentence.
"""
import redis
from flask import Blueprint, Response, abort, current_app, jsonify, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _

from ..ops.services import services
from ..people import identity, tokens
from ..rooms import conversation, keys, messages
from ..rooms.conversation import SENTENCES, Person, Refused
from . import api, bodies, gate, guard, pages
from .replies import json_error, require_utf8_form, wants_json

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

bp = Blueprint("conversation", __name__)



def _service():
    return services().conversation


BAD_BASE = N_("\"base_edited_ts\" must be the edited_ts the edit started from: a whole number of "
              "milliseconds, 0 or null for a message not edited yet.")
_MAX_TS = 2 ** 53  # a JSON number a browser still reads exactly


def _base(fields, form=False):
    """The ``base_edited_ts`` of a JSON body or a ``form`` (``fields``): None when it is not
    there (the last edit wins), 0 for null (a form's "") or 0 (an unedited message), else its
    milliseconds. Raises messages.Invalid (400 bad_base) for anything else."""
    if "base_edited_ts" not in fields:
        return None
    value = fields.get("base_edited_ts")
    if value is None or (form and value == ""):
        return 0
    if form and value.isascii() and value.isdigit() and len(value) < 17:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_TS:
        raise messages.Invalid(BAD_BASE, 400, "bad_base")
    return value


def delete_message(room, message_id, by, reason=None):
    """Delete message ``message_id`` of ``room`` on behalf of ``by``, checking who may.

    For the parts of the service that delete someone else's message (moderation, issue 15):
    ``by`` is a conversation.Person(name, uid, admin) (``person(with_admin=True)`` is the
    signed-in one); ``reason`` (optional, up to 200 characters) travels on the ``delete`` event.
    Who may: the author, or whoever ``Conversation.moderates`` allows (today a site
    administrator; room roles belong there). Raises conversation.Refused (403
    not_yours_delete, 404 unknown_message); deleting twice is harmless. Needs an app context.
    """
    return _service().delete(room, message_id, by, reason=reason)


def _room(room, message_id=None, deleting=False):
    canonical = keys.canonical_room(room)
    if canonical is None:
        abort(400, keys.ROOM_RULE)
    # Checked for whoever acts (_actor): a private room's non-member: 404; a banned person
    # changes nothing there (403 banned); an administrator who is no member of a private room
    # deletes there (``deleting``: moderation), but neither edits nor reacts (403 members_only).
    # A free name is an empty public room: its every message id is unknown (404 unknown_message).
    # The admin token sees every room; a publish token goes where it posts, its rooms (403
    # token_scope elsewhere), and a scoped one is refused a private room it is no member of and
    # a room that bans it, as a person is.
    kind = _actor()
    if kind == "admin":
        gate.access(canonical)
    elif kind == "token":
        grant = tokens.current()
        grant.check_room(canonical)
        gate.require_token_write(canonical, grant, _token_name(canonical, grant, message_id))
    elif deleting:
        gate.require_open(canonical)
    else:
        gate.require_write(canonical)
    return canonical


def _token_name(room, grant, message_id):
    """The name a scoped token's ban by name is checked against: for an edit or a delete
    (``message_id``), the name its own message was posted under (a ban of "name:second" stops
    it changing what it posted as "second", and a ban of its first name does not); otherwise,
    and for a reaction, the name it acts as, its first (Grant.acting_name)."""
    if message_id is not None and grant.scoped:
        message = _service().message(room, message_id)
        if message and message.get("uid") == grant.uid and isinstance(message.get("user"), str):
            return message["user"]
    return grant.acting_name


def _actor():
    """Who acts on this request: "admin" (RIPPLE_ADMIN_TOKEN), "person" (a session, or a host
    application's JWT), "token" (a publish token, no person), or None. A person always acts as
    themselves, whatever Bearer a proxy added."""
    if gate.admin_token_presented():
        return "admin"
    if identity.current()[0]:
        return "person"
    return "token" if tokens.current() is not None else None


def person(with_admin=False, programs=False):
    """Whoever acts (_actor) as a conversation.Person, or None. ``with_admin`` (a deletion of
    someone else's message needs it) asks Redis whether a person's account is a site
    administrator, and lets RIPPLE_ADMIN_TOKEN act as one named "admin" (gate.actor's), as on
    the rooms' other moderation routes. ``programs``: a publish token acts as the author of
    what it posted (Grant.uid), and reacts as a bot (its uid, and its first name: Grant.acting_name)."""
    kind = _actor()
    if kind == "admin":
        if not with_admin:
            return None
        uid, name = gate.actor()
        return Person(name, uid, True)
    if kind == "token":
        grant = tokens.current()
        return Person(grant.acting_name, grant.uid) if programs else None
    if kind is None:
        return None
    name = identity.current()[0]
    # The one rule (gate.is_admin: an admin account that is not disabled), asked only when needed.
    return Person(name, identity.uid(), bool(with_admin and gate.is_admin()))


def _form():
    """Whether this is a plain form post wanting a page back (JavaScript off)."""
    if request.mimetype in api.FORM_TYPES:
        require_utf8_form()
        return not wants_json()
    return False


def _refused(room, exc, form, editing=None):
    status, code = getattr(exc, "status", 422), getattr(exc, "code", None) or "invalid"
    # The rules' sentences are English (app/rooms/conversation.py marks them for the catalogue).
    params = getattr(exc, "params", {})
    if "seconds" in params:  # a duration in the reader's words ("15 minutes", "15分钟")
        params = {**params, "window": conversation.window(params["seconds"], get_locale())}
    sentence = _(SENTENCES[code], **params) if isinstance(exc, Refused) else str(exc)
    if form:  # a refused edit comes back in its open menu, as typed (not the stored text)
        return pages.room_page(room, notice=sentence, status=status, editing=editing)
    return json_error(status, sentence, code=code, fields=getattr(exc, "fields", None))


def _back(room, message_id):
    """Where a form goes after a change: the room page, at the message."""
    return redirect(url_for("pages.room", room=room) + "#m-" + message_id, 303)


def _do(room, message_id, form, act, admin=False, editing=None, programs=False):
    """Run ``act(person)`` for whoever acts (``person``); answer a refusal the way the client
    asked."""
    who = person(with_admin=admin, programs=programs)
    if who is None:
        return _refused(room, Refused(401, "signed_out"), form)
    try:
        return act(who)
    except (Refused, messages.Invalid) as exc:
        return _refused(room, exc, form, editing)
    except redis.RedisError:
        if not form:
            raise  # errors.py: 503 + Retry-After
        return pages.room_page(room, notice=_("That could not be done: the service is unavailable. "
                                              "Try again shortly."), status=503)


def _delete(room, message_id, reason=None, key=None):
    return lambda who: _service().delete(room, message_id, who, reason=reason, key=key() if key else None)


NO_CHANGE_KEY = N_("Changes by the global publish token or the admin token take no Idempotency-Key: they "
                   "cannot be withdrawn. Send the change without one.")


def _change_key():
    """The change's Idempotency-Key header (str, or None), by which its sender may withdraw it
    while an attempt is unanswered (POST /rooms/<room>/withdrawals); raises messages.Invalid:
    400 bad_idempotency_key for one that is not 1-128 printable ASCII, 400
    idempotency_key_unsupported from the global publish token or the admin token (which act
    under a name of their own choosing, apart from the one a withdrawal names)."""
    key = messages.check_idempotency_key(request.headers.get("Idempotency-Key"))
    grant = tokens.current()
    if key is not None and _actor() != "person" and (grant is None or not grant.scoped):
        raise messages.Invalid(NO_CHANGE_KEY, 400, "idempotency_key_unsupported")
    return key


_limits = (guard.limiter.limit(guard.rate("POST_RATE_SESSION"), key_func=guard.session_key),
           guard.limiter.limit(guard.rate("POST_RATE_IP")))


def limited(view):
    for limit in reversed(_limits):
        view = limit(view)
    return view


@bp.patch("/rooms/<room>/messages/<message_id>")
@limited
def edit_message(room, message_id):
    """Edit one's own message: {"text", "base_edited_ts"?} -> 200 with the message (``edited_ts``
    set); 409 edit_conflict when it was edited since ``base_edited_ts`` to another text."""
    room = _room(room, message_id)
    data = bodies.json_request()  # 415 unsupported_type, 400 bad_body: as every JSON route
    max_chars = current_app.config["MAX_MESSAGE_CHARS"]
    answer = _do(room, message_id, False,
                 lambda who: jsonify(_service().edit(room, message_id, who, data.get("text"), max_chars,
                                                     base=_base(data), key=_change_key())),
                 programs=True)
    return answer


@bp.post("/rooms/<room>/messages/<message_id>/edit")
@limited
def edit_form(room, message_id):
    """The form twin of PATCH: a 303 back to the room page, or the page with the sentence."""
    room = _room(room, message_id)
    form = _form()
    text = request.form.get("text", "").replace("\r\n", "\n")
    max_chars = current_app.config["MAX_MESSAGE_CHARS"]

    def act(who):
        message = _service().edit(room, message_id, who, text, max_chars, base=_base(request.form, form=True))
        return _back(room, message_id) if form else jsonify(message)

    return _do(room, message_id, form, act, editing={"id": message_id, "text": text}, programs=True)


@bp.delete("/rooms/<room>/messages/<message_id>")
@limited
def remove_message(room, message_id):
    """Delete one's own message (a site administrator: anyone's): 204."""
    room = _room(room, message_id, deleting=True)
    deleting = _delete(room, message_id, key=_change_key)
    return _do(room, message_id, False, lambda who: (deleting(who), Response(status=204))[1], admin=True,
               programs=True)


@bp.post("/rooms/<room>/messages/<message_id>/delete")
@limited
def delete_form(room, message_id):
    """The form twin of DELETE: a 303 back to the room page. From a page, only once confirmed
    (``confirm=1``); unconfirmed, a 303 to the page that asks (PRG: reloading it deletes nothing).
    A program posting the form (Accept: application/json) deletes at once: 204."""
    room = _room(room, message_id, deleting=True)
    form = _form()
    reason = request.form.get("reason") or None
    deleting = _delete(room, message_id, reason)

    def act(who):
        if form and request.form.get("confirm") != "1":
            # Refused at once (not someone's own, gone): asking first would only delay the no.
            if _service().check_delete(room, message_id, who).get("deleted"):
                return _back(room, message_id)
            return redirect(url_for("conversation.delete_page", room=room, message_id=message_id,
                                    reason=reason), 303)
        deleting(who)
        return _back(room, message_id) if form else Response(status=204)

    return _do(room, message_id, form, act, admin=True, programs=True)


@bp.get("/rooms/<room>/messages/<message_id>/delete")
def delete_page(room, message_id):
    """Ask before deleting (the no-JavaScript path; the page's script asks in the menu itself):
    the message, "Yes, delete it" (its delete form, confirmed) and Cancel (back to it). A message
    already deleted: 303 back to it. Refusals: the room page with the sentence (401, 403, 404)."""
    room = _room(room, deleting=True)

    def act(who):
        message = _service().check_delete(room, message_id, who)
        if message.get("deleted"):
            return _back(room, message_id)
        back = url_for("pages.room", room=room) + "#m-" + message_id
        return render_template("delete.html", room=room, message=message, back=back, user=identity.shown(),
                               reason=request.args.get("reason", "")[:200],
                               own=bool(who.uid) and message.get("uid") == who.uid)

    return _do(room, message_id, True, act, admin=True)


def _reactions(message_id, reactions):
    return jsonify(message_id=message_id, reactions=reactions)


@bp.route("/rooms/<room>/messages/<message_id>/reactions/<emoji>", methods=["PUT", "DELETE"])
@limited
def reaction(room, message_id, emoji):
    """React (PUT) or take the reaction back (DELETE); idempotent: 200 {"message_id", "reactions"}."""
    room = _room(room)
    on = request.method == "PUT"
    return _do(room, message_id, False, lambda who: _reactions(
        message_id, _service().react(room, message_id, who, emoji, on, key=_change_key())), programs=True)


REACTION_FORM_ONLY = N_("This address takes a form (emoji, on), as the page sends it. A program sets a "
                        "reaction with PUT /rooms/%s/messages/%s/reactions/<emoji> and takes it back with DELETE.")


@bp.post("/rooms/<room>/messages/<message_id>/reactions")
@limited
def reaction_form(room, message_id):
    """The form twin: toggle ``emoji`` (``on`` "1"/"0" to set it either way): a 303 back.
    Any other body (JSON) is 415, pointing to the PUT a program uses."""
    room = _room(room)
    if request.mimetype not in api.FORM_TYPES:
        return json_error(415, _(REACTION_FORM_ONLY) % (room, message_id), code="unsupported_type")
    form = _form()
    emoji, wanted = request.form.get("emoji", "").strip(), request.form.get("on")

    def act(who):
        service = _service()
        on = wanted == "1" if wanted in ("0", "1") else None
        if on is None:  # a toggle: on unless this person has reacted so already
            message = service.message(room, message_id) or {}
            on = not service.has_reacted(message, emoji, who.uid)
        reactions = service.react(room, message_id, who, emoji, on)
        return _back(room, message_id) if form else _reactions(message_id, reactions)

    # refused: the menu comes back open with the emoji as typed (JavaScript off)
    return _do(room, message_id, form, act, editing={"id": message_id, "emoji": emoji}, programs=True)
