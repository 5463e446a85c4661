"""Who is speaking: display names held by signed sessions, claimed in Redis; publish tokens."""
import hashlib
import json
import os
import secrets
import time

import redis
from flask import abort, current_app, g, request, session
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature

from ..ops.services import services
from ..rooms import keys, messages
from . import accounts, jwts
from .names import Names, NameTaken, fold  # noqa: F401 - re-exported: who holds which name

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

RESERVED = N_("“%s” is reserved for the service itself. Pick another name.")

# The control payload (app/delivery/position.py) a person's channel carries when their session ends:
# every open stream of that session, on every worker and host, sends "event: signed-out", ends.
SIGNED_OUT = "!#signed-out\n"

# KEYS: the session's record, its channel (one slot).  ARGV: the control payload.
_REVOKE_LUA = """
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', KEYS[2], ARGV[1])
return 1
"""


def load_secret_key(app):
    """Use SECRET_KEY from the environment, else one generated once and kept in instance/."""
    key = os.environ.get("SECRET_KEY") or app.config.get("SECRET_KEY")
    if key:
        return key
    os.makedirs(app.instance_path, exist_ok=True)
    path = os.path.join(app.instance_path, "secret_key")
    try:  # O_EXCL: when workers race at first boot, exactly one writes and all read the same
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    except FileExistsError:
        pass
    deadline = time.monotonic() + 5
    while True:
        with open(path) as f:
            key = f.read().strip()
        if key or time.monotonic() > deadline:
            return key
        time.sleep(0.01)  # the winner has created the file but not yet written it


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, marked Secure whenever the request came over HTTPS.

    A refused request never replaces a session. An error answer to a request that came with a
    session leaves the cookie as it was; one to a request without a session may start a fresh
    session only if the request is a safe method or provably came from one of our own pages
    (``Sec-Fetch-Site: same-origin``, or an ``Origin`` of this site). Otherwise a cross-site
    form post, which arrives without the browser's SameSite=Lax cookie and is refused for its
    missing CSRF token, would answer with a fresh anonymous session (Flask-WTF puts a CSRF
    token in it when the error page renders a form) that replaces the person's real one: any
    website could sign anyone out. A same-origin post without a session (a stale page after a
    sign-out elsewhere) still gets one, so the form on its error page works on the next try.
    """

    def get_cookie_secure(self, app):
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)

    def open_session(self, app, request):
        """SecureCookieSessionInterface.open_session's reading, keeping when the cookie was
        signed (``signed_at``, Unix seconds; None without a valid cookie)."""
        serializer = self.get_signing_serializer(app)
        if serializer is None:
            return None
        opened, raw = self.session_class(), request.cookies.get(self.get_cookie_name(app))
        opened.signed_at = None
        if raw:
            try:
                data, signed_at = serializer.loads(
                    raw, max_age=int(app.permanent_session_lifetime.total_seconds()), return_timestamp=True)
            except BadSignature:
                pass
            else:
                opened = self.session_class(data)
                opened.signed_at = signed_at.timestamp()
        opened.came_with_session = bool(opened)
        return opened

    def should_set_cookie(self, app, session):
        """A changed session is sent; an unchanged permanent one only once its cookie is due a
        fresh expiry (cookie_refresh_due). Every cookie a request sends back replaces the
        browser's, so one that re-sent an unchanged session with each answer undid whatever a
        request running beside it had just written: a stylesheet or icon fetched while a form
        posted took its flash, a stream opened in another tab its sign-in or language."""
        if session.modified:
            return True
        return (bool(session.permanent and app.config["SESSION_REFRESH_EACH_REQUEST"])
                and cookie_refresh_due(getattr(session, "signed_at", None),
                                       app.permanent_session_lifetime.total_seconds(),
                                       navigation(request.headers.get("Sec-Fetch-Mode"))))

    def save_session(self, app, session, response):
        if request.endpoint == "static":
            return  # a file is the same for everyone: no cookie, nothing that varies with one
        if response.status_code >= 400 and (
                getattr(session, "came_with_session", True)
                or (request.method not in ("GET", "HEAD", "OPTIONS") and not _from_this_site())):
            if session.accessed:
                response.vary.add("Cookie")
            return
        super().save_session(app, session, response)


def cookie_refresh_due(signed_at, lifetime_s, is_navigation=True, now=None):
    """Tell whether an unchanged session's cookie, signed at ``signed_at`` (Unix seconds; None:
    not known), is to be sent again with a fresh expiry. With a page's navigation
    (``is_navigation``): once it has run down by a tenth of its lifetime ``lifetime_s`` (seconds)
    or an hour, whichever is less, as Sessions._slide pushes the session's record back in Redis.
    With anything else (a script's fetch, a stream: these run beside a tab's form posts and
    other tabs' sign-ins, whose cookies a stale one would undo) only once half of it is gone: a
    tab left open for weeks on one page still keeps its session."""
    if signed_at is None:
        return True
    age = (time.time() if now is None else now) - signed_at
    return age >= (min(3600, lifetime_s / 10) if is_navigation else lifetime_s / 2)


def navigation(fetch_mode):
    """Whether a request is a page's navigation by its ``Sec-Fetch-Mode`` header (str or None):
    a client that sends none (a program, an old browser) counts as one."""
    return fetch_mode is None or fetch_mode == "navigate"


def _from_this_site():
    """Tell whether the browser says the request came from a page of this very origin."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site == "same-origin"
    origin = request.headers.get("Origin")
    return origin is not None and origin == request.host_url.rstrip("/")


class Sessions:
    """Server-side session records: the cookie names a session, Redis says it still stands.

    ``ripple:{u:<sid>}:session`` holds {"name": ...}; it expires with the cookie's lifetime and
    every request that uses it pushes that forward. Signing out (or signing in again) deletes
    it, and a copy of the old cookie then counts as signed out on every worker and host.
    """

    def __init__(self, client, lifetime, publish_command="PUBLISH"):
        self.redis = client
        # Flask's PERMANENT_SESSION_LIFETIME: seconds, or a timedelta once Flask has read it.
        self.lifetime = int(getattr(lifetime, "total_seconds", lambda: lifetime)())
        # SPUBLISH on a cluster: the word travels on the session's shard only.
        self._revoke = client.register_script(_REVOKE_LUA.replace("'PUBLISH'", "'%s'" % publish_command))

    def create(self, sid, name, account=None, sub=None, until=None, rooms=None, via=None):
        """Record session ``sid``: an account's (``account`` id), a host application's user
        (``sub``, from a token whose ``exp`` is ``until``, epoch seconds: the session ends
        then; ``via``: which source vouched for ``sub``, one of SOURCES), or a guest's."""
        record, ttl = self._shape(name, account, sub, until, rooms, via)
        self.redis.set(keys.PersonKeys(sid).session, json.dumps(record), ex=ttl)

    def ensure(self, sid, name, sub, until=None, rooms=None, via="jwt"):
        """Make session ``sid`` of a user named anew on every request (a token, a trusted
        proxy's header) stand, writing only when its record is missing or says something else,
        or has less than half its life left: a request costs a GET and a PTTL in one round
        trip, not a write. Arguments as create()'s."""
        record, ttl = self._shape(name, None, sub, until, rooms, via)
        key = keys.PersonKeys(sid).session
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.pttl(key)
            raw, left_ms = pipe.execute()
        try:
            same = raw is not None and json.loads(raw) == record
        except ValueError:
            same = False
        if not same or left_ms < ttl * 500:
            self.redis.set(key, json.dumps(record), ex=ttl)

    def _shape(self, name, account, sub, until, rooms, via):
        """A session's record and its time to live (s)."""
        record = {"name": name}
        if account:
            record["account"] = account
        if sub:
            if via not in SOURCES:
                raise ValueError("a sub needs its source, one of %s" % (SOURCES,))
            record["sub"], record["via"] = sub, via
        if until is not None:
            record["exp"] = int(until)
        if rooms is not None:  # the token's rooms claim: only these rooms, by pattern
            record["rooms"] = list(rooms)
        ttl = self.lifetime if until is None else max(1, min(self.lifetime, int(until - time.time())))
        return record, ttl

    def record(self, sid, refresh=True):
        """{"name", "account"?} of session ``sid``, or None if it ended (refreshes its expiry:
        see _slide)."""
        key = keys.PersonKeys(sid).session
        left_ms = None
        if refresh:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.get(key)
                pipe.pttl(key)
                raw, left_ms = pipe.execute()
        else:
            raw = self.redis.get(key)
        if raw is None:
            return None
        try:
            record = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        if "sub" in record and record.get("via") not in SOURCES:
            return None  # written before sources were told apart: its uid would be ambiguous
        if "exp" in record:  # a token's session never outlives the token
            if not isinstance(record["exp"], int) or record["exp"] <= time.time():
                return None
        if refresh:
            self._slide(key, record, left_ms, sid)
        return record

    def _slide(self, key, record, left_ms, sid):
        """Push a used session's expiry back to its full lifetime (a token's: to its ``exp``),
        but only once it has run down by a tenth of that or an hour, whichever is less: a
        request costs a read, not a write (to the AOF and every replica) each time. An
        account's session pushes its account's list of sessions along: disabling the account
        or signing out everywhere ends the sessions that list names, so it must outlive each."""
        wanted_ms = (record["exp"] - time.time()) * 1000 if "exp" in record else self.lifetime * 1000
        if left_ms >= wanted_ms - min(3600, self.lifetime / 10) * 1000:
            return
        with self.redis.pipeline(transaction=False) as pipe:  # two slots: no MULTI
            if "exp" in record:
                pipe.expireat(key, record["exp"])
            else:
                pipe.pexpire(key, self.lifetime * 1000)
            if record.get("account"):  # its other sessions expire within a lifetime from now too
                listed = accounts.sessions_key(record["account"])
                pipe.sadd(listed, sid)  # named again should the list have lapsed before this release
                pipe.expire(listed, self.lifetime)
            pipe.execute()

    def name_of(self, sid, refresh=True):
        """The name session ``sid`` signed in with, or None if it ended (refreshes its expiry)."""
        return (self.record(sid, refresh) or {}).get("name")

    def alive(self, sid):
        """Tell whether session ``sid`` still stands (an open stream asks every heartbeat)."""
        return bool(self.redis.exists(keys.PersonKeys(sid).session))

    @staticmethod
    def alive_reads(pipe, sid):
        """Queue on ``pipe`` the read of alive(sid); returns finish(replies) -> bool
        (app/rooms/reads.py)."""
        pipe.exists(keys.PersonKeys(sid).session)
        return lambda replies: bool(replies[0])

    def revoke(self, sid):
        """End session ``sid`` everywhere: its record, then its open streams on every worker."""
        person = keys.PersonKeys(sid)
        self._revoke(keys=[person.session, person.channel], args=[SIGNED_OUT])

    def online(self, sid):
        """Tell whether session ``sid`` has a stream open now (presence's per-session registry)."""
        now = int(time.time() * 1000)
        return bool(self.redis.zcount(keys.PersonKeys(sid).streams, now, "+inf"))


# The sources that vouch for a host application's user, each a namespace of uids: the same
# ``sub`` from two of them is two people (uid()).
SOURCES = ("jwt", "proxy", "oidc")


def stable_id(record, sid):
    """The stable id (uid) of the person session ``sid`` with ``record`` signs in: an account id
    (24 hex digits), "jwt:<sub>", "proxy:<user>", "oidc:<sub>", or "guest:<16 hex digits of
    the session's hash>" (never the session id itself, which is a secret). Only an account id
    has no colon, and each other kind has its own prefix: no two kinds can ever share one."""
    if record.get("account"):
        return record["account"]
    if record.get("sub"):
        return "%s:%s" % (record["via"], record["sub"])
    return "guest:" + hashlib.sha256(sid.encode()).hexdigest()[:16]


def current():
    """Return (name, sid) of the signed-in person, or (None, None).

    The signed cookie is not enough: its session must still stand in Redis (one round trip,
    once per request). A cookie whose session ended is forgotten. Raises redis.RedisError
    when Redis cannot tell.
    """
    person = g.get("ripple_person")
    if person is not None:
        return person
    token = jwts.presented()
    if token is not None:  # the host application's user: the token alone says who, every time
        return _token_person(token)
    proxied = _proxy_user()
    if proxied is not None:  # an authenticating proxy in front names the user, every time
        return _proxied_person(proxied)
    name, sid = session.get("name"), session.get("sid")
    person, account = (None, None), None
    if isinstance(name, str) and isinstance(sid, str):
        failed = g.get("ripple_redis_failed")
        if failed is not None:  # asked already in this request: a slow Redis costs one timeout
            raise failed
        try:
            record = services().sessions.record(sid)
        except redis.RedisError as exc:
            g.ripple_redis_failed = exc
            raise
        if record is not None and record.get("name") == name:
            person, account = (name, sid), record.get("account")
            g.ripple_sub, g.ripple_rooms = record.get("sub"), record.get("rooms")
            g.ripple_via = record.get("via")
            g.ripple_expires = record.get("exp")
        else:  # signed out elsewhere, or a copy of a cookie that signed out
            session.pop("name", None)
            session.pop("sid", None)
    g.ripple_person, g.ripple_account = person, account
    return person


def _proxy_user():
    """The user RIPPLE_TRUSTED_USER_HEADER names, when it is set and Ripple trusts a proxy
    (RIPPLE_TRUSTED_PROXIES > 0: a client cannot reach Ripple but through it); else None."""
    cfg = current_app.config
    header = cfg.get("TRUSTED_USER_HEADER")
    if not header or not cfg.get("TRUSTED_PROXIES"):
        return None
    value = request.headers.get(header)
    return value.strip() if value and value.strip() else None


def _proxied_person(user):
    """(name, sid) of the user the proxy named: the header's value is both their display name
    and their stable id (``GET /session`` kind "token"); their devices share one session."""
    try:
        name = messages.check_name(user)
    except messages.Invalid as exc:
        abort(400, N_("The name your sign-in proxy sent is not usable here: %s") % exc)
    sid = jwts.session_id("proxy\0" + name)  # never the session of a token whose sub is the same
    services().sessions.ensure(sid, name, sub=name, via="proxy")
    g.ripple_person, g.ripple_account, g.ripple_sub, g.ripple_rooms = (name, sid), None, name, None
    g.ripple_via = "proxy"
    return g.ripple_person


def _token_person(token):
    """(name, sid) of the user a valid token names; raises jwts.Refused (401) otherwise. Their
    session record lives until the token's ``exp``: streams opened with it end then."""
    claims = services().jwts.claims(token)
    try:
        name = messages.check_name(claims["name"])
    except messages.Invalid as exc:  # the name rule's own sentence: the name is there, and a string
        raise jwts.Refused("claims", sentence=str(exc)) from None
    # The service's own names and their look-alikes, as the exchange for a cookie (sign_in)
    # refuses them: a Bearer request posted as "sуstem" (a Cyrillic у) where POST /session would not.
    if services().names.is_reserved(name):
        raise jwts.Refused("claims", sentence=RESERVED % name)
    sid = jwts.session_id(claims["sub"])
    services().sessions.ensure(sid, name, claims["sub"], until=claims["exp"], rooms=claims["rooms"], via="jwt")
    g.ripple_person, g.ripple_account, g.ripple_sub, g.ripple_via = (name, sid), None, claims["sub"], "jwt"
    g.ripple_rooms, g.ripple_expires = claims["rooms"], claims["exp"]
    return g.ripple_person


def account():
    """The account id of the signed-in session, or None (a guest, or nobody)."""
    current()
    return g.get("ripple_account")


def uid():
    """The signed-in person's stable id (stable_id's rule: account id, "jwt:<sub>",
    "proxy:<user>", "oidc:<sub>" or "guest:<hash of the session>"), or None."""
    name, sid = current()
    if not name:
        return None
    return stable_id({"account": account(), "sub": sub(), "via": g.get("ripple_via")}, sid)


def kind():
    """"account", "token" (a host application's user: a JWT, a trusted proxy, OpenID Connect)
    or "guest" for the signed-in person; None when nobody is signed in."""
    name, _ = current()
    if not name:
        return None
    return "account" if account() else "token" if sub() else "guest"


def expires():
    """When the signed-in session ends by itself (a token's ``exp``, epoch seconds), or None."""
    current()
    return g.get("ripple_expires")


def rooms():
    """The room patterns a token's session is limited to, or None (every room)."""
    current()
    return g.get("ripple_rooms")


def sub():
    """The host application's user id (a token's ``sub``) of the signed-in session, or None."""
    current()
    return g.get("ripple_sub")


def shown_sid():
    """The session id that goes with ``shown()``: the cookie's own when Redis could not tell."""
    person = g.get("ripple_person")
    if person is not None:
        return person[1]
    sid = session.get("sid")
    return sid if isinstance(sid, str) else None


def shown():
    """The signed-in name for a page (refreshing its claim), or None.

    With Redis unreachable, the cookie's own name: the page says the service is unavailable,
    and nothing can be posted or read meanwhile.
    """
    try:
        name, sid = current()
        if name:
            services().names.claim(name, sid, account=account())
    except NameTaken:
        pass  # the page still says who they are; their next post says what happened
    except redis.RedisError:
        name = session.get("name")
        return name if isinstance(name, str) else None
    return name


def sign_in(name, account=None, token=None):
    """Claim ``name`` for this browser under a NEW session id, ending the browser's previous
    session: nothing of one sign-in (direct messages, open streams) reaches the next.
    ``account``: the id of the account signing in (its name is ``name``), None for a guest.
    ``token``: {"sub", "exp", "via"?} of a host application's user (app/people/jwts.py; ``via``:
    "jwt" unless said, "oidc"): the session ends at ``exp``.

    Raises messages.Invalid for a reserved name, NameTaken when someone else holds it (or, for
    a guest, when an account has it).
    """
    names = services().names
    if account is None and names.is_reserved(name):
        raise messages.Invalid(RESERVED % name)
    sessions = services().sessions
    old_name, old_sid = current()
    old_account = g.get("ripple_account")
    # A token user's devices share one session, derived from their ``sub`` (app/people/jwts.py).
    sid = jwts.session_id(token.get("key", token["sub"])) if token else secrets.token_urlsafe(18)
    names.claim(name, sid, previous=old_sid, account=account)
    via = token.get("via", "jwt") if token else None
    sessions.create(sid, name, account, *((token["sub"], token["exp"], token.get("rooms"), via) if token else ()))
    if old_sid and old_sid != sid:  # revoked first: a stream's heartbeat between the two then cannot re-claim
        sessions.revoke(old_sid)
        names.release(old_name, old_sid)  # a no-op if the claim just moved to ``sid``
        if old_account:
            services().accounts.remove_session(old_account, old_sid)
    session.clear()  # a new CSRF secret too
    session.update(name=name, sid=sid)
    session.permanent = True
    g.ripple_person, g.ripple_account = (name, sid), account
    g.ripple_sub, g.ripple_via = (token["sub"], via) if token else (None, None)
    g.ripple_rooms = token.get("rooms") if token else None
    if account is not None:
        accounts = services().accounts
        accounts.add_session(account, sid)
        found = accounts.get(account)
        if found is None or found["disabled"]:  # disabled meanwhile: it missed this session
            sign_out()
            raise Disabled()
        # A new device starts with the account's recent direct messages, as its other devices
        # have them; then those sent while it was signed in nowhere (app/people/direct.py).
        others = [other for other in accounts.session_ids(account)
                  if other != sid and services().sessions.alive(other)]
        if old_account == account and old_sid:  # the same device signing in again: its own, too
            others.append(old_sid)
        services().store.copy_direct(others, sid, current_app.config["DIRECT_BACKLOG"])
        services().store.move_direct("parked-" + account, sid)


class Disabled(Exception):
    """The account is disabled: sign-in refused (403)."""


def sign_out():
    """End this browser's session everywhere: free the name, revoke the record, end streams."""
    name, sid = current()
    account_id = g.get("ripple_account")
    if sid:  # revoked first: a stream's heartbeat between the two then cannot re-claim
        services().sessions.revoke(sid)
        services().names.release(name, sid)
        services().presence.end_visits(sid, name)  # its pages without JavaScript: no longer here
        if account_id:
            services().accounts.remove_session(account_id, sid)
    session.clear()
    g.ripple_person, g.ripple_account = (None, None), None


def disable_account(account_id, disabled=True):
    """Disable (or enable) an account; disabling ends all its sessions and streams at once.
    Returns how many sessions ended. The flag goes first: a sign-in racing this one sees it
    (sign_in checks it again after registering its session)."""
    services().accounts.set_flag(account_id, "disabled", disabled)
    return end_account_sessions(account_id) if disabled else 0


def end_account_sessions(account_id, keep=None):
    """End every session of an account (but ``keep``) on every worker and host: each one's
    record goes, its name claim goes, its open streams get the signed-out word and end."""
    accounts = services().accounts
    sessions, names = services().sessions, services().names
    ended = 0
    for sid in accounts.session_ids(account_id):
        if sid == keep:
            continue
        held = sessions.name_of(sid, refresh=False)
        sessions.revoke(sid)
        if held:
            names.release(held, sid)
            services().presence.end_visits(sid, held)
        accounts.remove_session(account_id, sid)
        ended += 1
    return ended


def taken(name):
    """The sentence for a name someone else holds: true to whether they are here right now."""
    names, sessions = services().names, services().sessions
    if services().accounts.id_for(name):
        return accounts.SENTENCES["taken"] % name
    owner = names.owner(name)
    held = sessions.name_of(owner, refresh=False) if owner else None
    minutes = max(1, round(names.idle_ms / 60000))
    # Whole sentences, one per case, so that each can be translated (app/web/i18n.py).
    alike = held and fold(held) == fold(name) and held != name
    if owner and sessions.online(owner):
        if alike:
            return N_("“%s” is taken: it looks the same as “%s”, which is in use by someone else right now. "
                      "Pick another name.") % (name, held)
        return N_("“%s” is taken: it is in use by someone else right now. Pick another name.") % name
    if alike:
        if minutes == 1:
            return N_("“%s” is taken: it looks the same as “%s”, which is kept for someone else who was here "
                      "in the last %d minute. Pick another name.") % (name, held, minutes)
        return N_("“%s” is taken: it looks the same as “%s”, which is kept for someone else who was here "
                  "in the last %d minutes. Pick another name.") % (name, held, minutes)
    if minutes == 1:
        return N_("“%s” is taken: it is kept for someone else who was here in the last %d minute. "
                  "Pick another name.") % (name, minutes)
    return N_("“%s” is taken: it is kept for someone else who was here in the last %d minutes. "
              "Pick another name.") % (name, minutes)

