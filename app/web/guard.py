"""Protection for browser requests: CSRF tokens and rate limits that hold across all workers."""
import logging
import math
import time

import redis
from flask import current_app, has_app_context, request, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect
from limits import parse_many
from werkzeug.exceptions import TooManyRequests

from ..ops import outage, topology
from ..ops.services import services
from ..people import identity, jwts, tokens
from ..rooms import keys, messages
from . import bodies, gate

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

logger = logging.getLogger(__name__)

# Reads that are cheap one by one and cost Redis round trips in bulk: limited per address,
# generously (RIPPLE_READ_RATE_IP); a stream has its own opening limits and caps.
READ_ENDPOINTS = frozenset(("api.history", "api.room_presence", "pages.lobby", "pages.room"))
READS_REFUSED = N_("Too many requests from your network; try again in %d s.")
ROOMS_REFUSED = (N_("You have created too many new rooms for now; post in an existing room, or try "
                    "again in %d minutes."))

# Unbound extension objects, as Flask extensions are made; init_app binds them to an app.
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address)


def init_app(app):
    cfg = app.config
    cfg.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # checked in _protect, bearer requests exempt
    cfg.setdefault("WTF_CSRF_TIME_LIMIT", None)       # a chat tab stays open for hours: tie to session
    cfg.setdefault("RATELIMIT_STORAGE_URI", _storage_uri(cfg["REDIS_URL"]))
    cfg.setdefault("RATELIMIT_STRATEGY", "sliding-window-counter")
    cfg.setdefault("RATELIMIT_HEADERS_ENABLED", True)  # Retry-After on every 429
    cfg.setdefault("RATELIMIT_SWALLOW_ERRORS", True)   # Redis down: the request's own 503 says so
    cfg.setdefault("RATELIMIT_KEY_PREFIX", "ripple:limit")
    url = cfg["REDIS_URL"]
    if ("RATELIMIT_STORAGE_OPTIONS" not in cfg and cfg["RATELIMIT_STORAGE_URI"] == _storage_uri(url)
            and not (topology.is_sentinel(url) or topology.is_cluster(url))):
        # The storage's own default pool holds 100 connections and fails the 101st at once
        # (a burst of stream opens then skips its limits, logging a traceback each): a
        # bounded pool that waits for a free connection instead, like the app's own.
        cfg["RATELIMIT_STORAGE_OPTIONS"] = {"connection_pool": topology.blocking_pool(
            url, int(cfg["REDIS_MAX_CONNECTIONS"]), float(cfg["REDIS_SOCKET_TIMEOUT"]))}
    csrf.init_app(app)
    # RATELIMIT_SWALLOW_ERRORS logs each swallowed failure with its traceback: during a Redis
    # outage, every request. The worker's outage log tells it once instead.
    limiter_log = logging.getLogger("flask-limiter")  # one per process, shared by every app
    if not any(isinstance(f, outage.SwallowedRedisErrors) for f in limiter_log.filters):
        limiter_log.addFilter(outage.SwallowedRedisErrors("rate limits", _outage_log))
    app.after_request(_retry_after_only_when_refused)  # before the limiter's: runs after it
    limiter.init_app(app)
    app.before_request(_protect)
    app.before_request(_limit_reads)


def _outage_log():
    return services().outage if has_app_context() else None


def _retry_after_only_when_refused(response):
    """Keep Retry-After on a 429, 503 or 504 (a post's unknown outcome) only. The limiter sets
    it on every answer of a limited view (its window's reset), and a client that reads it on a
    404 or a 200 would wait, or tell the person to wait, for nothing (RFC 9110 §10.2.3: it
    says when to come back). A stream keeps its own: a refused one is a 200 with
    ``event: busy`` (an EventSource reads no status)."""
    if response.status_code not in (429, 503, 504) and response.mimetype != "text/event-stream":
        response.headers.pop("Retry-After", None)
    return response


def _protect():
    # A publish token is no browser's: a page on another site cannot make one send it. A
    # scoped token that is not valid is refused here (401), before anything else is done.
    # Nor is a host application's JWT in an Authorization header (app/people/jwts.py).
    # The language switch carries no token: a forged one can only change the page's language.
    if request.endpoint == "i18n.switch":
        return
    if request.routing_exception is not None:
        return  # no such route or method: nothing would be done; its 404 / 405 (with Allow) follows
    if request.mimetype == "multipart/form-data":
        request.get_data(cache=True)  # as below: the bytes kept for require_utf8_form
        if None in request.form or None in request.files:  # a part with no name (werkzeug keys it None)
            raise bodies.BadBody(bodies.UNNAMED_FIELD)
    if (request.method in ("POST", "PUT", "PATCH", "DELETE") and tokens.current() is None
            and jwts.bearer() is None and not gate.admin_token_presented()):
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            # Keep the bytes as they came: the check parses the form, and a view's UTF-8 rule
            # (replies.require_utf8_form) must see them, not werkzeug's repaired text.
            request.get_data(cache=True)
        csrf.protect()


def _limit_reads():
    if request.endpoint in READ_ENDPOINTS and request.method == "GET" and tokens.current() is None:
        wait = _spend("READ_RATE_IP", "read", get_remote_address())
        if wait:
            raise TooManyRequests(READS_REFUSED % wait, retry_after=wait)


def may_create_room():
    """Count a new room against the session's and the address's hourly caps; raise Invalid (429)
    past either (Store.publish calls this only when a post would create a room)."""
    for setting, who in (("ROOM_CREATE_RATE_SESSION", session_key()), ("ROOM_CREATE_RATE_IP", get_remote_address())):
        wait = _spend(setting, "rooms", who)
        if wait:
            raise messages.Invalid(ROOMS_REFUSED % max(1, math.ceil(wait / 60)), 429)


def spend(setting, scope, who):
    """Count one attempt against config ``setting``'s limits for ``who`` in ``scope``; return
    the seconds to wait when one of them refuses it, else 0."""
    return _spend(setting, scope, who)


def _spend(setting, scope, who):
    """Hit every limit in config ``setting`` for ``who``; return the seconds until the first one
    refused has room again, or 0 when all allowed it. A storage error allows the request when the
    limits have a Redis of their own; when they share the app's (the default), it is raised: the
    request needs that Redis too, and is answered 503 now instead of after a second timeout."""
    cfg = current_app.config
    strategy = limiter.limiter
    prefix = cfg["RATELIMIT_KEY_PREFIX"]
    try:
        for item in parse_many(cfg[setting]):
            if not strategy.hit(item, prefix, scope, who):
                reset = strategy.get_window_stats(item, prefix, scope, who).reset_time
                return max(1, math.ceil(reset - time.time()))
    except redis.RedisError as exc:
        if cfg["RATELIMIT_STORAGE_URI"] == _storage_uri(cfg["REDIS_URL"]):
            raise
        logger.warning("rate limit storage failed setting=%s error=%s", setting, exc)
    return 0


def _storage_uri(url):
    if url.startswith("unix://"):
        return "redis+unix://" + url[len("unix://"):]
    return url


def session_key():
    """Rate-limit key of the signed-in session (or scoped publish token); else the client address."""
    grant = _grant()
    if grant is not None and grant.scoped:
        return "token:" + grant.id
    return "sid:" + (session_id() or get_remote_address())


def session_id():
    """The session a request speaks for: the cookie's, or the one a JWT or a trusted proxy's
    user header maps to (those carry no cookie); None when Redis cannot tell."""
    sid = session.get("sid")
    if sid:
        return sid
    try:
        return identity.current()[1]
    except redis.RedisError:
        return None


def resuming():
    """Tell whether a stream request resumes a cursor (a reconnect, not a new stream).

    Reconnects come in waves (every stream of a reloaded worker at once, an office's worth from
    one address) and each one replaces a stream that was already counted when it opened: they
    have their own, larger per-address budget (STREAM_RESUME_RATE_IP) instead of the new-stream
    limits. A made-up cursor only moves a client into that budget.
    """
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    return keys.parse_cursor(raw) is not None


# Checked before any limit is looked up: a request with a token pays nothing for them
# (resolving them cost ~20 % of a server-to-server POST's CPU).
@limiter.request_filter
def exempt():
    """Posts with a publish token skip the browsers' limits: the global token has none, a scoped
    token its own (RIPPLE_POST_RATE_TOKEN, counted in the token check on every path, the fast
    one included) and the new-room caps (may_create_room, keyed by the token)."""
    try:
        return tokens.current() is not None
    except tokens.Refused:
        return False
    except redis.RedisError:
        return True  # Redis cannot tell: _protect answers 503 at once; a limit would wait for it again


@limiter.request_filter
def _stream_counts_its_own():
    """The stream route counts its limits with its other opening checks in one round trip
    (app/web/opening.py): Flask-Limiter skips it before resolving anything (it cost ~4 % of an
    open's CPU even with the route marked exempt)."""
    return request.endpoint == "api.events"


def _grant():
    """This request's publish grant for the limits, never raising: a refused token (or Redis
    failing to tell) is exempt from nothing, and _protect answers it (401/429, or 503)."""
    try:
        return tokens.current()
    except (tokens.Refused, redis.RedisError):
        return None


def rate(name):
    """A limit string read from config at request time (RIPPLE_POST_RATE_SESSION etc.)."""
    return lambda: current_app.config[name]


def no_limit_headers():
    """Send this answer without X-RateLimit-* headers: computing them reads the limit's window
    from Redis again (one round trip per request), and an EventSource cannot read headers. A
    refusal (429) still carries Retry-After: that path builds its own answer."""
    limiter.context.view_rate_limit = None
