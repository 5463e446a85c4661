"""Defaults for every setting; RIPPLE_<NAME> in the environment overrides each one."""
import json
import math
import re

# REDIS_URL is read unprefixed (the usual name); unset means the embedded server's socket.
REDIS_URL = None

HISTORY_LENGTH = 1000          # messages kept per room (and per person's direct messages)
HEARTBEAT_SECONDS = 15         # keep-alive sent after this much silence on a stream
POST_TIMEOUT_SECONDS = 12      # a page waits this long for a post's (an edit's...) answer, then retries
RETRY_MS = 2000                # reconnect delay an EventSource is told to use
SEND_TIMEOUT_SECONDS = 30      # a stream whose client takes no bytes for this long is dropped
MAX_MESSAGE_CHARS = 2000       # characters of text in one message
MAX_CONTENT_LENGTH = 64 * 1024  # bytes in one request body (Flask's own setting)
BODY_TIMEOUT_SECONDS = 30      # a request body must arrive whole within this, else 408
BACKLOG_MAX = 200              # ?backlog=N on a fresh stream
DIRECT_BACKLOG = 20            # direct messages a signed-in stream replays on a fresh connect
PAGE_LIMIT_DEFAULT = 50        # messages per history page
PAGE_LIMIT_MAX = 200
IDEMPOTENCY_SECONDS = 24 * 3600  # how long a retried post returns the original message
ROOM_PAGE_MESSAGES = 50        # messages the server renders on a room page
LOBBY_ROOMS = 50               # rooms listed in the lobby
LOBBY_INDEX_MAX = 10000        # rooms the lobby's index remembers (least recently active drop out)

MAX_STREAMS_PER_WORKER = 9800  # each holds one Redis pub/sub connection (and a client socket)
DRAIN_STREAMS_PER_SECOND = 1000  # a leaving worker tells this many streams a second to reconnect
REDIS_MAX_CONNECTIONS = 50     # command connections per worker (posting, history, health)
REDIS_SOCKET_TIMEOUT = 5.0     # seconds before a Redis command counts as failed
REDIS_RETRY_AFTER = 5          # Retry-After seconds when Redis is unreachable
REPLICA_ACKS = 0               # replicas that must have a post before it is acknowledged (WAIT)
REPLICA_TIMEOUT_MS = 1000      # how long a post waits for them; then 503 (a retry is safe)

# Identity and abuse limits (Flask-Limiter strings: "N per M seconds", several joined by ";")
PUBLISH_TOKEN = None           # RIPPLE_PUBLISH_TOKEN: Bearer token for server-to-server posts
NAME_IDLE_SECONDS = 300        # a name stays claimed this long after its holder's last request
NAME_GRACE_HEARTBEATS = 3      # ...and this many heartbeats after their last open stream closed
# Names browsers may not take (nor look-alikes of them): the service's own voices.
RESERVED_NAMES = ("system,admin,administrator,ripple,root,moderator,mod,staff,support,official,"
                  "operator,server,bot,everyone,here")
POST_RATE_SESSION = "20 per 10 seconds"
POST_RATE_IP = "200 per 10 seconds"    # generous: many people share one address behind NAT
POST_RATE_TOKEN = "60 per 10 seconds"  # posts per scoped publish token (the global one has none)
STREAM_RATE_SESSION = "30 per minute"
STREAM_RATE_IP = "300 per minute"
STREAM_RESUME_RATE_IP = "3000 per minute"  # reconnects with a cursor: a reload brings them all at once
SESSION_RATE_IP = "120 per minute"  # an office behind one address signs in together
# Accounts (app/people/accounts.py)
GUESTS = True                  # RIPPLE_GUESTS=false: only account holders may sign in
FIRST_ACCOUNT_ADMIN = False    # the first account registered on a fresh install is an admin
SIGNIN_RATE_ACCOUNT = "10 per 5 minutes"  # password sign-ins (and changes) per account name
SIGNIN_RATE_IP = "200 per 5 minutes"      # password sign-ins per address (an office: one address)
ACCOUNT_CREATE_RATE_IP = "60 per hour"    # registrations per address
# Identity from the host application (app/people/jwts.py): one of the two keys turns it on
JWT_SECRET = None              # HS256 shared secret
JWT_PUBLIC_KEY = None          # RS256/ES256 public key (PEM; "\n" for newlines in one line)
JWT_AUDIENCE = None            # required "aud", if set
JWT_ISSUER = None              # required "iss", if set
JWT_LEEWAY_SECONDS = 5         # clock skew allowed on "exp" (at most 10)
TRUSTED_USER_HEADER = None     # e.g. X-Forwarded-User: an authenticating proxy names the user
OIDC_ISSUER = None             # OpenID Connect provider (app/people/oidc.py): its issuer URL...
OIDC_CLIENT_ID = None          # ...and this service's client id and secret there
OIDC_CLIENT_SECRET = None
OIDC_NAME = "your organisation's account"  # the button says "Sign in with <this>"
CORS_ORIGINS = None            # comma-separated origins whose pages may use the API (app/web/cors.py)
MAX_STREAMS_PER_SESSION = 10   # open streams one session may hold at once, across all workers
MAX_STREAMS_PER_ADDRESS = 500  # open streams from one client address (an office behind one NAT)
READ_RATE_IP = "600 per 10 seconds"     # page, lobby, history and presence reads per address
ROOM_CREATE_RATE_SESSION = "10 per hour"  # new rooms one session may create by posting
ROOM_CREATE_RATE_IP = "60 per hour"
PRESENCE_GRACE_SECONDS = 5     # a reload or quick reconnect within this emits no leave/join
PRESENCE_LIST_MAX = 200       # names an online list shows; above it joins/leaves carry the change alone
PRESENCE_BATCH_MS = 1000      # a room's joins/leaves this close together go out together (0: each at once)
EDIT_WINDOW_SECONDS = 900      # a message can be edited by its author this long after sending
TYPING_INTERVAL_SECONDS = 3    # at most one "is typing" broadcast per person per room this often
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = False  # also Secure whenever the request came over HTTPS
PERMANENT_SESSION_LIFETIME = 30 * 24 * 3600
METRICS_TOKEN = None           # RIPPLE_METRICS_TOKEN: Bearer token for /metrics; unset: loopback only
TRUSTED_PROXIES = 0            # how many proxies' X-Forwarded-* to trust (1 behind one nginx)
# Rooms that belong to someone (app/rooms/): caps keep a script in a loop from growing Redis
ROOMS_MAX = 10000              # rooms with a record (POST /rooms); more are refused (409 room_cap)
ROOM_MEMBERS_MAX = 10000       # members per room
ROOM_BANS_MAX = 1000           # bans in force per room (expired ones drop out)
ROOM_MENTION_NAMES_MAX = 1000  # names a room knows for @mentions (the least recently seen go)
ROOM_INVITES_MAX = 100         # standing invitations per room (expired and used-up ones drop out)
ADMIN_TOKEN = None             # RIPPLE_ADMIN_TOKEN: Bearer token for the admin API and room routes
HISTORY_MAX_AGE_DAYS = 0       # trim rooms by age too (XTRIM MINID) when > 0

# Outgoing webhooks (app/webhooks/, docs/webhooks.md)
WEBHOOK_TIMEOUT_SECONDS = 10   # one delivery attempt, whole (connect, send, answer, redirects)
WEBHOOK_RETRY_HOURS = 24       # a failing delivery is retried for this long after its first attempt
WEBHOOK_RETRY_BASE_SECONDS = 5  # first retry after ~this; doubling each time (at most an hour apart)
WEBHOOK_DISABLE_HOURS = 24     # a webhook failing every delivery this long is disabled
WEBHOOK_MAX_RESPONSE_BYTES = 65536  # an answer's body read at most this far (a bot's answer)
WEBHOOK_LOG_LENGTH = 100       # delivery attempts kept per webhook
WEBHOOK_CONCURRENCY = 4        # deliveries in flight per webhook per worker
WEBHOOK_QUEUE_MAX = 100000     # events the queue holds at most (the oldest drop beyond)


# -- what each setting may be (checked once the environment is read: app/__init__.py) -----------

# Numbers that must be at least 1 (durations: above 0); every other may be 0 too (off, or none).
_at_least_one = frozenset((
    "HISTORY_LENGTH", "HEARTBEAT_SECONDS", "POST_TIMEOUT_SECONDS", "RETRY_MS", "SEND_TIMEOUT_SECONDS",
    "MAX_MESSAGE_CHARS", "MAX_CONTENT_LENGTH", "BODY_TIMEOUT_SECONDS", "PAGE_LIMIT_DEFAULT",
    "PAGE_LIMIT_MAX", "ROOM_PAGE_MESSAGES", "LOBBY_ROOMS", "LOBBY_INDEX_MAX", "MAX_STREAMS_PER_WORKER",
    "REDIS_MAX_CONNECTIONS", "REDIS_SOCKET_TIMEOUT", "REDIS_RETRY_AFTER", "REPLICA_TIMEOUT_MS",
    "NAME_IDLE_SECONDS", "MAX_STREAMS_PER_SESSION", "MAX_STREAMS_PER_ADDRESS", "PRESENCE_LIST_MAX",
    "TYPING_INTERVAL_SECONDS", "PERMANENT_SESSION_LIFETIME", "ROOMS_MAX", "ROOM_MEMBERS_MAX",
    "ROOM_BANS_MAX", "ROOM_MENTION_NAMES_MAX", "ROOM_INVITES_MAX", "WEBHOOK_TIMEOUT_SECONDS",
    "WEBHOOK_RETRY_BASE_SECONDS", "WEBHOOK_MAX_RESPONSE_BYTES", "WEBHOOK_LOG_LENGTH",
    "WEBHOOK_CONCURRENCY", "WEBHOOK_QUEUE_MAX"))
# Durations may be fractions; counts and sizes are whole numbers.
_fractions = ("_SECONDS", "_HOURS", "_DAYS", "_TIMEOUT")  # milliseconds are whole
_on, _off = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


# What a value must be, for settings whose kind the default does not tell (check_choices).
_redis_schemes = ("redis://", "rediss://", "unix://", "redis+sentinel://", "redis+cluster://")
_samesite = ("Lax", "Strict", "None")  # werkzeug refuses any other when it sets the cookie
_jwt_secret_min_bytes = 32  # RFC 7518 3.2: an HS256 key of at least the hash's size
_jwt_leeway_max = 10        # app/people/jwts.py MAX_LEEWAY
# Redis's memory units (redis.conf: "1k => 1000 bytes, 1kb => 1024 bytes", also m/mb, g/gb).
_memory = re.compile(r"\A[0-9]+(?:[kmg]b?|b)?\Z", re.IGNORECASE)


class SettingError(ValueError):
    """A setting the service cannot run with; the message names it as the environment does
    (RIPPLE_HISTORY_LENGTH) and says what it must be."""


def check(config, rates=True):
    """Check every setting this module has a default for against the default's kind, in
    ``config`` (a mapping, changed in place): a number (whole unless a duration; at least 1, or
    0 where 0 means off), an on/off flag (``true``/``false``, ``1``/``0``, ``yes``/``no``,
    ``on``/``off``: turned into a bool), a Flask-Limiter rate ("20 per 10 seconds", several
    joined by ";"; only with ``rates``: gunicorn's master checks without them, as it must not
    import Flask-Limiter); an empty one is its default. Raises SettingError for the first one
    that is none of its kind."""

    for name, default in sorted(globals().items()):
        if not name.isupper() or name.startswith("_") or default is None or name not in config:
            continue
        value, shown = config[name], "RIPPLE_" + name if name != "REDIS_URL" else name
        if isinstance(value, str) and not value.strip():
            config[name] = value = default  # RIPPLE_X= (a blank line in an env file): the default
        if isinstance(default, bool):
            text = str(value).strip().lower()
            if not isinstance(value, bool) and text not in _on + _off:
                raise SettingError("%s must be true or false, not %r." % (shown, value))
            config[name] = value if isinstance(value, bool) else text in _on
        elif isinstance(default, (int, float)):
            needed = name in _at_least_one  # else 0 may mean off
            whole = isinstance(default, int) and not name.endswith(_fractions)
            number = _number(value)
            if whole and (number is None or number != int(number) or number < (1 if needed else 0)):
                raise SettingError("%s must be a whole number of at least %d, not %r."
                                   % (shown, 1 if needed else 0, value))
            if not whole and (number is None or number < 0 or (needed and number == 0)):
                raise SettingError("%s must be a number %s 0, not %r."
                                   % (shown, "above" if needed else "of at least", value))
        elif rates and name.endswith(("_RATE", "_RATE_IP", "_RATE_SESSION", "_RATE_TOKEN", "_RATE_ACCOUNT")):
            from limits import parse_many  # the limiter's own reading of a rate

            try:
                if not parse_many(str(value)):
                    raise ValueError(value)
            except ValueError:
                raise SettingError('%s must be a rate such as "20 per 10 seconds", not %r.'
                                   % (shown, value)) from None
    check_choices(config)


def check_choices(config):
    """Check the settings in ``config`` (a mapping, changed in place) whose rule is not their
    default's kind: REDIS_URL's scheme (_redis_schemes), the cookie's SameSite (_samesite, in
    Flask's spelling afterwards), an HS256 JWT secret's length, the JWT clock leeway's ceiling.
    Raises SettingError naming the first that breaks its rule."""
    url = config.get("REDIS_URL")
    if url and not (isinstance(url, str) and url.startswith(_redis_schemes)):
        # Only the scheme is shown: the rest may hold a password.
        found = ("it starts with %s://" % url.partition("://")[0] if isinstance(url, str) and "://" in url
                 else "it has no scheme")
        raise SettingError("REDIS_URL must start with %s or %s (%s)." % (
            ", ".join(_redis_schemes[:-1]), _redis_schemes[-1], found))
    samesite = config.get("SESSION_COOKIE_SAMESITE")
    if samesite is not None and samesite is not False:
        if str(samesite).title() not in _samesite:
            raise SettingError("RIPPLE_SESSION_COOKIE_SAMESITE must be Lax, Strict or None, not %r." % (samesite,))
        config["SESSION_COOKIE_SAMESITE"] = str(samesite).title()
    secret = config.get("JWT_SECRET")
    if secret and len(str(secret).encode()) < _jwt_secret_min_bytes:
        raise SettingError("RIPPLE_JWT_SECRET must be at least %d bytes, not %d." % (
            _jwt_secret_min_bytes, len(str(secret).encode())))
    leeway = _number(config.get("JWT_LEEWAY_SECONDS", 0))
    if leeway is not None and leeway > _jwt_leeway_max:
        raise SettingError("RIPPLE_JWT_LEEWAY_SECONDS must be at most %d, not %r." % (
            _jwt_leeway_max, config["JWT_LEEWAY_SECONDS"]))


def check_environment(environ):
    """Check what only the environment sets for gunicorn.conf.py's embedded Redis:
    RIPPLE_REDIS_MAXMEMORY in Redis's memory units (else Valkey stops with its own "FATAL CONFIG
    FILE ERROR"). Raises SettingError."""
    memory = environ.get("RIPPLE_REDIS_MAXMEMORY", "256mb").strip()
    if memory and not _memory.match(memory):
        raise SettingError('RIPPLE_REDIS_MAXMEMORY must be a size such as "256mb" or "2gb", not %r.' % memory)


# RIPPLE_ names read by gunicorn.conf.py and app/ops/embedded_redis.py, not by the app's config.
_server_only = ("EMBEDDED_REDIS_DIR", "EMBEDDED_REDIS_URL", "REDIS_MAXCLIENTS", "REDIS_MAXMEMORY",
                "REDIS_SERVER", "MEMORY_TRIM_CONNECTIONS")
# Names earlier releases read, and what replaced them.
_renamed = {"NAME_TTL_SECONDS": "NAME_IDLE_SECONDS"}
# What RIPPLE_<name> may set beside Ripple's own: Flask's settings (flask.Flask.default_config,
# Flask 3.1; not imported here: gunicorn's master loads this module before any worker patches)
# and its extensions' (Flask-WTF, Flask-Limiter, Flask-Babel). Never taken for a misspelling.
_flask = frozenset((
    "APPLICATION_ROOT", "DEBUG", "EXPLAIN_TEMPLATE_LOADING", "MAX_COOKIE_SIZE", "MAX_FORM_MEMORY_SIZE",
    "MAX_FORM_PARTS", "PREFERRED_URL_SCHEME", "PROPAGATE_EXCEPTIONS", "PROVIDE_AUTOMATIC_OPTIONS",
    "SECRET_KEY_FALLBACKS", "SEND_FILE_MAX_AGE_DEFAULT", "SERVER_NAME", "SESSION_COOKIE_DOMAIN",
    "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_NAME", "SESSION_COOKIE_PARTITIONED", "SESSION_COOKIE_PATH",
    "SESSION_REFRESH_EACH_REQUEST", "TEMPLATES_AUTO_RELOAD", "TESTING", "TRAP_BAD_REQUEST_ERRORS",
    "TRAP_HTTP_EXCEPTIONS", "TRUSTED_HOSTS", "USE_X_SENDFILE"))
_extensions = ("WTF_", "RATELIMIT_", "BABEL_")


def misspelt(environ):
    """Sentences for RIPPLE_ variables in ``environ`` that look like a setting but are none: a
    renamed one, or one a letter or two away from a setting (RIPPLE_HISTORY_LENGHT). Each is
    ignored, as any other RIPPLE_<Flask setting> is taken as given: the master warns."""
    import difflib

    known = [name for name in globals() if name.isupper() and not name.startswith("_") and name != "REDIS_URL"]
    known += ["SECRET_KEY", *_server_only]
    found = []
    for key in sorted(environ):
        name = key[len("RIPPLE_"):]
        if not key.startswith("RIPPLE_") or name in known or name in _flask or name.startswith(_extensions):
            continue
        if name in _renamed:
            found.append("%s is no longer read: RIPPLE_%s replaced it (ignored)." % (key, _renamed[name]))
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
        if close:
            found.append("%s is no Ripple setting: did you mean RIPPLE_%s? (ignored)" % (key, close[0]))
    return found


def from_environ(environ):
    """The ``RIPPLE_`` settings in ``environ`` (a mapping of str) as Flask's
    ``Config.from_prefixed_env`` reads them: keyed without the prefix, each value JSON where it
    parses as JSON ("5" is 5, "true" True), else the text; plus ``REDIS_URL``. For gunicorn's
    master, which checks them before the app exists."""
    config = {}
    for key, text in environ.items():
        if key.startswith("RIPPLE_"):
            try:
                config[key[len("RIPPLE_"):]] = json.loads(text)
            except ValueError:
                config[key[len("RIPPLE_"):]] = text
    if environ.get("REDIS_URL"):
        config["REDIS_URL"] = environ["REDIS_URL"]
    return config


def _number(value):
    """``value`` as a finite number, or None (JSON's reader takes NaN and Infinity: not numbers)."""
    if isinstance(value, bool):
        return None
    if not isinstance(value, (int, float)):
        try:
            value = float(str(value).strip())
        except ValueError:
            return None
    return value if math.isfinite(value) else None
