"""Who may read, write and run a room: every route of a room asks here, on every request.

One Redis round trip per request (Rooms.access) answers for the person and their address, so a
change (a ban, a removal, a room made private) holds on every worker and host from the next
request on; open streams hear it at once (app/rooms/moderation.py).

The rules, written once:
- a **private** room does not exist for anyone but its members and administrators (who read
  every room, on every path: hidden(), the stream's gate, sidebars): every route answers others
  exactly as it answers a name that is no room (404, code "not_found", the same sentence and
  headers), never any content. "No room" is a name with neither a record nor any history: the
  routes that need a room (running it: members, moderators, bans, invitations, audit, the
  management page, changing or deleting it) answer such a name 404 "not_found" too, before
  asking who is asking (tests/test_room_existence.py walks every route of app.url_map). Where a
  free name is, by design, an empty public room anyone may start by posting (its page, history,
  stream, presence, typing, the first post, following it; its messages' edit, delete and
  reaction routes, where every id is unknown), a private room still answers its 404. So a
  room's *name* is not a secret (those routes, and POST /rooms' 409, tell a taken name from a
  free one); its topic, members, messages and activity are (docs/security.md).
- a **ban** in force refuses posts, typing and streams (403, code "banned"). Reading: a public
  room's page, history and permalinks stay as public to a banned person as they are to anyone
  signed out (they could read them signed out anyway); a **private** room's member under a ban
  (by address: a ban by person ends the membership) reads nothing of it: page, history,
  permalinks and stream answer 403 "banned", and it drops out of their sidebar and mentions.
- running a room needs a role: moderators moderate, owners also change and delete the room;
  administrators (an admin account, or RIPPLE_ADMIN_TOKEN) may do both in every room.
- writing (posting, editing, reacting, typing) in a **private** room needs membership, an
  administrator's too: they read and moderate it, and are told so (403 "members_only").
"""
import hmac
import json
from datetime import datetime, timedelta, timezone

import redis
from flask import abort, current_app, g, has_request_context, request
from flask_babel import format_timedelta
from flask_babel import lazy_gettext as _l

from ..ops.services import services
from ..people import accounts as people_accounts
from ..people import bearer, identity
from ..rooms import keys, messages, moderation, records

NOT_FOUND = _l("There is no room with that name.")
SENTENCES = {
    "sign_in": _l("Sign in to do that."),
    "moderator": _l("Only the room's moderators and owner can do that."),
    "owner": _l("Only the room's owner can do that."),
    "banned": _l("You are banned from #%s."),
    "members_only": _l("Only the members of #%s can write there; as an administrator you can read it and "
                       "moderate it."),
    # How long, in the reader's words ("12 minutes", "12分钟"): the time is UTC, which the
    # server alone can name, and a reader eight hours east of it misread it.
    "banned_until": _l("You are banned from #%(room)s for %(left)s more (until %(when)s UTC)."),
}


class Refused(messages.Invalid):
    """A refusal with a stable ``code`` and headers; posts catch it as messages.Invalid."""

    def __init__(self, status, sentence, code, headers=None):
        super().__init__(sentence, status)
        self.code, self.headers = code, headers or {}


def rooms():
    return services().rooms


def address():
    return request.remote_addr or "-"


def access(room):
    """This request's person's Access to ``room`` (asked once per request and room; whether
    the room is ``used`` comes in the same round trip)."""
    cache = g.setdefault("ripple_room_access", {})
    if room not in cache:
        cache[room] = rooms().access(room, identity.uid(), address(), keys.RoomKeys(room).log,
                                     name=identity.current()[0])
    return cache[room]


def remember(room, found):
    """Keep ``found`` as this request's Access to ``room`` (read with other work in one round
    trip: app/web/opening.py)."""
    g.setdefault("ripple_room_access", {})[room] = found


def hidden(found, admin=None):
    """Tell whether a room is invisible to this person: private, and they are no member and no
    administrator. ``admin``: whether they are one (a bool, or a callable asked only for a
    private room); None: this request's person (is_admin), or no one outside a request."""
    return found.visibility == records.PRIVATE and found.role is None and not _admin(admin)


def shut_out(found, admin=None):
    """Tell whether a member may read nothing of a room: a ban in force in a private room
    (administrators read every room; ``admin`` as for hidden)."""
    return found.visibility == records.PRIVATE and found.ban is not None and not _admin(admin)


def may_read(found, admin=None):
    """Tell whether this person may read a room (its page, history, stream, activity)."""
    return not hidden(found, admin) and not shut_out(found, admin)


def _admin(admin):
    """``admin`` (hidden's) answered: a bool, a callable's answer, or this request's is_admin()."""
    if admin is None:
        return has_request_context() and is_admin()
    return bool(admin() if callable(admin) else admin)


def not_found():
    """Answer as for a name that is no room: the one answer a stranger gets from a private room
    (app/web/errors.py: the page, or JSON code "not_found", as for any 404)."""
    abort(404, NOT_FOUND)


def require_read(room):
    """Access to read ``room``; 404 for a private room this person is not a member of, 403
    "banned" for a private room's member under a ban."""
    found = access(room)
    if hidden(found):
        not_found()
    if shut_out(found):
        raise Refused(403, banned_sentence(room, found.ban), "banned")
    return found


def require_room(room):
    """Access to a room that must exist (to run it, or to change its messages): readable (as
    require_read), and a room at all, a record or history; else the same 404 as a private room
    gives a stranger. Administrators pass on a free name (they may take it under management)."""
    found = require_read(room)
    used = found.used
    if used is None:  # an Access read without it (app/web/opening.py)
        used = found.exists or bool(services().redis.exists(keys.RoomKeys(room).log))
    if not used and not is_admin():
        not_found()
    return found


def require_open(room):
    """Access to stream ``room`` (or to delete a message there): readable, and no ban in force."""
    found = require_read(room)
    if found.ban is not None:
        raise Refused(403, banned_sentence(room, found.ban), "banned")
    return found


def require_write(room):
    """Access to post, edit, react or type in ``room``: require_open's, and in a private room a
    member. An administrator reads every room and moderates it (deletes, bans: require_role),
    but speaks only where they belong: a private room's members would otherwise see someone
    who is not one of them post, react and type among them (403 "members_only"; strangers, who
    cannot see the room, get require_read's 404)."""
    found = require_open(room)
    if found.visibility == records.PRIVATE and found.role is None:  # here only an administrator
        raise Refused(403, SENTENCES["members_only"] % room, "members_only")
    return found


def token_access(registry, room, grant, name):
    """The Access of scoped publish token ``grant`` (tokens.Grant) posting as ``name`` to
    ``room`` (one round trip; ``registry``: the app's Rooms). A token is a member as a person
    is, by its uid "token:<id>" (an owner adds it: PUT /rooms/<room>/members/token:<id>), and
    banned by that uid or by the name it posts as ("name:<name>", as a guest is); an address's
    ban is for browsers (a program is told apart by its token). None for the global token: the
    operator's own, outside a room's privacy and bans. Needs no request (the fast path's)."""
    if not grant.scoped:
        return None
    return registry.access(room, grant.uid, None, name=name)


def token_refusal(found):
    """Why a scoped token with Access ``found`` (token_access) may not write to the room:
    "private" (not a member of a private room), "banned", or None (it may; None Access too)."""
    if found is None:
        return None
    if hidden(found, admin=False):  # a token's own access: never a cookie's admin flag
        return "private"
    return "banned" if found.ban is not None else None


def require_token_write(room, grant, name):
    """Refuse a scoped publish token's write (post, edit, delete, reaction) to ``room`` as
    ``name`` as a person's is refused: 404 "not_found" for a private room it is no member of
    (as for a name that is no room), 403 "banned" under a ban."""
    found = token_access(rooms(), room, grant, name)
    refusal = token_refusal(found)
    if refusal == "private":
        not_found()
    if refusal == "banned":
        raise Refused(403, banned_sentence(room, found.ban), "banned")
    return found


def banned_sentence(room, ban):
    if not ban.get("until"):
        return SENTENCES["banned"] % room
    when = datetime.fromtimestamp(ban["until"] / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M")
    left = timedelta(milliseconds=max(1000, ban["until"] - records.now_ms()))
    return SENTENCES["banned_until"] % {"room": room, "when": when, "left": format_timedelta(left, threshold=2)}


def admin_token_presented():
    """Tell whether the request carries RIPPLE_ADMIN_TOKEN as its Bearer (constant time)."""
    expected = current_app.config.get("ADMIN_TOKEN")
    presented = bearer.credentials(request.headers.get("Authorization"))
    if not expected or presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "replace"), str(expected).encode())


def is_admin():
    """An administrator: the admin token, or a signed-in admin account (asked once a request)."""
    if "ripple_admin" not in g:
        g.ripple_admin = admin_token_presented() or admin_account(services().accounts, identity.account())
    return g.ripple_admin


def admin_account(accounts, account_id):
    """Tell whether account ``account_id`` (or None) is an enabled admin account; ``accounts``
    the app's Accounts. Needs no request."""
    return people_accounts.administers(accounts.get(account_id) if account_id else None)


def actor():
    """(uid, name) of whoever acts: the signed-in person, or ("admin-token", "admin")."""
    if admin_token_presented():
        return "admin-token", "admin"
    name, _ = identity.current()
    return identity.uid(), name


def require_role(room, need):
    """Access of someone who may act as ``need`` ("moderator" or "owner") in ``room``; an owner
    is also a moderator, an administrator both. 404 for a private room they cannot see and for
    a name that is no room (the same answer), 401 signed out, 403 otherwise."""
    if is_admin():
        return access(room)
    found = require_room(room)  # a private room is not there for strangers, signed in or out
    if actor()[0] is None:
        raise Refused(401, SENTENCES["sign_in"], "signed_out")
    if found.role == records.OWNER or (need == records.MODERATOR and found.role == records.MODERATOR):
        return found
    raise Refused(403, SENTENCES[need], "forbidden")


def uid_of_session(sid):
    """The stable id of whoever holds session ``sid`` now (identity.uid's rule), or None."""
    record = services().sessions.record(sid, refresh=False)
    if record is None:
        return None
    return identity.stable_id(record, sid)


def resolve(room, who, by_id=False):
    """(uid, name) of the person ``who`` names in ``room``, or (None, None) if no one. By name
    (the default): a member of that name, an account of that name, or whoever holds that display
    name now. ``by_id``: ``who`` is a uid, a member's or an account's; never both ways at once
    (a display name may look like another person's account id)."""
    if not isinstance(who, str) or not who.strip():
        return None, None
    who = who.strip()
    accounts = services().accounts
    if by_id:
        member = rooms().find_member(room, uid=who)
        if member is not None:
            return member["id"], member["name"]
        if who.startswith(records.TOKEN_PREFIX):  # a scoped publish token, by its uid
            return services().tokens.of_uid(who)
        found = accounts.get(who) if len(who) <= 64 else None
        return (found["id"], found["name"]) if found else (None, None)
    member = rooms().find_member(room, name=who)
    if member is not None:
        return member["id"], member["name"]
    found = accounts.get(accounts.id_for(who)) if len(who) <= 64 else None
    if found is not None:
        return found["id"], found["name"]
    names = services().names
    try:
        name = messages.check_name(who)
    except messages.Invalid:
        return None, None
    owner = names.owner(name)
    uid = uid_of_session(owner) if owner else None
    return (uid, name) if uid else (None, None)


def by_id():
    """Whether this request names a person by uid (``?by=id``) rather than by name."""
    return request.args.get("by") == "id"


SLOW = _l("Slow mode is on in #%(room)s: one message every %(every)d s. You can post again in %(wait)d s.")


def may_post(room, user, idempotency_key):
    """Refuse a post by a banned person (403) or one too soon under slow mode (429 with
    Retry-After, code "slow_mode"); moderators, owners and administrators are exempt from slow
    mode. ``user``/``idempotency_key``: the post's, so a retry of a stored post is never held back."""
    found = require_write(room)
    if not found.slow or found.role in (records.OWNER, records.MODERATOR) or is_admin():
        return
    scope = messages.idempotency_scope(user, identity.uid())
    idem = keys.RoomKeys(room).idempotency(messages.idempotency_digest(scope, idempotency_key)) \
        if idempotency_key else None
    wait_ms, started = services().moderation.slow_wait(room, identity.uid(), found.slow, idem)
    if started:
        g.ripple_slow_wait = (room, started)
    if wait_ms:
        wait = max(1, -(-wait_ms // 1000))
        g.ripple_retry_after = wait  # kept over the rate limiter's own (keep_retry_after)
        raise Refused(429, SLOW % {"room": room, "every": found.slow, "wait": wait}, "slow_mode",
                      {"Retry-After": str(wait)})


def give_back_slow_wait():
    """The post ``may_post`` let through was not stored (refused, or Redis failed): give its
    slow-mode wait back, so the person's corrected or repeated post is not held back for it.
    Best effort: a Redis failure here leaves the wait to expire (it is already being answered)."""
    started = g.pop("ripple_slow_wait", None)
    if started is not None:
        try:
            services().moderation.slow_release(started[0], identity.uid(), started[1])
        except redis.RedisError:
            pass


def keep_retry_after(response):
    """Restore the Retry-After a view chose (``g.ripple_retry_after``, s) on its 429 (slow
    mode) or 503 (a direct message's withdrawal while it is being stored): Flask-Limiter sets the
    header on every answer of a limited route to its own window's reset (registered to run
    after it)."""
    wait = g.pop("ripple_retry_after", None)
    if wait is not None and response.status_code in (429, 503):
        response.headers["Retry-After"] = str(wait)
    return response


def stream_gate(room, found):
    """The StreamGate of a stream this request opens: its person's keys, and a fresh look at its
    access that needs no request (the stream runs after the request is gone)."""
    return stream_gate_of(rooms(), room, found, identity.uid(), address(), identity.current()[0],
                          admin=is_admin())


def stream_gate_of(registry, room, found, uid, where, name=None, admin=False):
    """The StreamGate of a stream of ``room`` opened by ``uid`` (str or None, signed in as
    ``name``) from address ``where`` (str), whose Access at the open was ``found``; ``registry``
    the app's Rooms; ``admin``: whether an administrator opened it (a bool, or a callable asked
    only when a private room would otherwise end the stream). Needs no request
    (app/web/faststream.py opens streams without one)."""
    # Checked once more after subscribing (a ban between this look and the subscription would
    # otherwise be missed) when there is anyone to ban or any record to change.
    return moderation.StreamGate(room, [f for f in records.ban_fields(uid, where, name) if f != "-"],
                                 RoomLook(registry, room, uid, where, name, admin),
                                 checks_on_open=found.exists or uid is not None)


class RoomLook:
    """A stream's fresh look at its room's rules (moderation.StreamGate's ``look``): for
    ``uid`` (str or None, signed in as ``name``) from address ``where`` in ``room``, by
    ``registry`` (the app's Rooms); ``admin`` as stream_gate_of takes it."""

    __slots__ = ("registry", "room", "uid", "where", "name", "admin")

    def __init__(self, registry, room, uid, where, name, admin):
        self.registry, self.room, self.uid, self.where, self.name, self.admin = registry, room, uid, where, name, admin

    def _reason(self, now):
        if now.ban is not None:
            return "banned"
        if hidden(now, self.admin):
            return "private"
        return None

    def check(self):
        """"banned", "private" or None, asked of Redis now (a round trip)."""
        return self._reason(self.registry.access(self.room, self.uid, self.where, name=self.name))

    def check_reads(self, pipe):
        """check's look queued on ``pipe``: returns finish(replies) -> its answer."""
        finish = self.registry.access_reads(pipe, self.room, self.uid, self.where, name=self.name)
        return lambda replies: self._reason(finish(replies))

    def reads(self, other):
        """Whether the person may still read room ``other`` (a round trip)."""
        return may_read(self.registry.access(other, self.uid, self.where, name=self.name), self.admin)


def readable(room_names):
    """The rooms among ``room_names`` this request's person may read (in order): a private room
    they are not a member of, or are banned from, drops out. One round trip for all (a
    sidebar's rooms, mentions)."""
    room_names = list(room_names)
    if room_names and is_admin():
        return room_names  # administrators read every room
    return readable_of(services().redis, room_names, identity.uid(), address(), identity.current()[0])


def readable_of(redis_client, room_names, uid, address, name=None, admin=False):
    """The rooms among ``room_names`` that person ``uid`` (str or None, signed in as ``name``)
    from ``address`` (str) may read, as ``readable``; ``admin`` as for stream_gate_of. Needs no
    request. Raises redis.RedisError."""
    room_names = list(room_names)
    if not room_names:
        return []
    fields = records.ban_fields(uid, address, name)
    with redis_client.pipeline(transaction=False) as pipe:  # no ECHO: a cluster's pipelines refuse it
        for room in room_names:
            k = records.RecordKeys(room)
            pipe.hget(k.info, "visibility")
            pipe.hget(k.members, fields[0])
            pipe.hmget(k.bans, *fields)
        found = iter(pipe.execute())
    allowed, now, administrator = [], records.now_ms(), None
    for room in room_names:
        private, member, bans = next(found) == records.PRIVATE, next(found), next(found)
        if private and not _member_unbanned(member if uid else None, bans, now):
            if administrator is None:  # asked once, and only when it decides (an account read)
                administrator = _admin(admin)
            if not administrator:
                continue
        allowed.append(room)
    return allowed


def _member_unbanned(member, bans, now):
    """Tell whether ``member`` (a members hash's JSON, or None) holds a role no ban in force
    (``bans``: readable_of's HMGET of ban_fields) takes away: the rule of Rooms.access, where
    an address's ban spares the room's moderators and owner."""
    role = json.loads(member).get("role") if member else None
    if role is None:
        return False
    in_force = [json.loads(raw) for i, raw in enumerate(bans)
                if raw and not (i == records.BY_ADDRESS and role in records.MODERATING)]
    return not any(not ban.get("until") or ban["until"] > now for ban in in_force)
