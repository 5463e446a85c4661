"""Identity from the host application: JSON Web Tokens it signs for its own users (PyJWT).

Configured by RIPPLE_JWT_SECRET (HS256) or RIPPLE_JWT_PUBLIC_KEY (RS256/ES256, PEM), with
optional RIPPLE_JWT_AUDIENCE and RIPPLE_JWT_ISSUER. Claims: ``sub`` (the user's stable id),
``name`` (display name), ``exp`` (required); the clock leeway is RIPPLE_JWT_LEEWAY_SECONDS
(at most 10 s).
"""
import fnmatch
import hashlib
import re

import jwt
from flask import current_app, request

from ..ops.services import services
from ..rooms import messages
from . import tokens
from .bearer import credentials

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\Z")
STREAM_ENDPOINT = "api.events"  # EventSource cannot set headers: the stream takes ?token=

MAX_LEEWAY = 10
MAX_TOKEN_CHARS = 8192
MAX_SUB_CHARS = 255

SENTENCES = {
    "off": N_("Signing in with a token is not set up on this service."),
    "type": N_("The token must be a string."),
    "too_long": N_("The token is too long: a token may have at most %d characters."),
    "expired": N_("The token has expired: get a fresh one from the application you came from."),
    "invalid": N_("The token is not valid here (signature, audience, issuer or format)."),
    "claims": N_("The token must carry a string 'sub' (your id) and 'name' (your display name)."),
    "rooms": N_("The token's 'rooms' claim must be a list of room names or patterns such as support-* "
                "(or one string of them separated by commas)."),
}


# The stable error code of each refusal (the JSON answer's "code"); token_invalid otherwise.
CODES = {"expired": "token_expired", "too_long": "token_too_long"}


class Refused(ValueError):
    """A token that cannot sign anyone in; ``status`` is the HTTP answer (400 or 401), ``code``
    the stable error code."""

    def __init__(self, key, status=401, sentence=None):
        # ``sentence``: what exactly is wrong, when another rule says it (a name the name rule refuses)
        super().__init__(sentence or (SENTENCES[key] % MAX_TOKEN_CHARS if key == "too_long" else SENTENCES[key]))
        self.status, self.code = status, CODES.get(key, "token_invalid")


class Verifier:
    """Checks tokens against the operator's key; ``enabled`` is False when none is set."""

    def __init__(self, secret=None, public_key=None, audience=None, issuer=None, leeway=5):
        if public_key:
            self.key, self.algorithms = str(public_key).replace("\\n", "\n"), ["RS256", "ES256"]
        elif secret:
            self.key, self.algorithms = str(secret), ["HS256"]
        else:
            self.key, self.algorithms = None, []
        self.audience, self.issuer = audience or None, issuer or None
        self.leeway = min(MAX_LEEWAY, max(0, float(leeway)))

    @property
    def enabled(self):
        return self.key is not None

    def claims(self, token):
        """Return {"sub", "name", "exp"} of a valid token, else raise Refused."""
        if not self.enabled:
            raise Refused("off", 400)
        if not isinstance(token, str) or not token:
            raise Refused("type", 400)
        if len(token) > MAX_TOKEN_CHARS:
            raise Refused("too_long", 400)
        try:
            found = jwt.decode(token, self.key, algorithms=self.algorithms, audience=self.audience,
                               issuer=self.issuer, leeway=self.leeway,
                               options={"require": ["exp", "sub"], "verify_aud": self.audience is not None})
        except jwt.ExpiredSignatureError:
            raise Refused("expired") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise Refused("invalid") from None
        sub, name = found.get("sub"), found.get("name")
        if not isinstance(sub, str) or not sub or len(sub) > MAX_SUB_CHARS or not isinstance(name, str):
            raise Refused("claims", 401)
        return {"sub": sub, "name": name, "exp": found["exp"],
                "rooms": _rooms(found["rooms"]) if "rooms" in found else None}


def _rooms(claim):
    """A present ``rooms`` claim (a list of room names or glob patterns, or one comma-separated
    string) as canonical patterns. An empty list grants no room at all; anything else (``null``
    included: a host application's "no rooms" must never read as "every room") is malformed."""
    if isinstance(claim, list) and all(isinstance(item, str) for item in claim):
        if not claim:
            return []
        claim = ",".join(claim)
    if not isinstance(claim, str):
        raise Refused("rooms")
    try:
        return list(tokens.parse_patterns(claim))
    except messages.Invalid:
        raise Refused("rooms") from None


def room_ok(patterns, room):
    """Tell whether a token limited to ``patterns`` (None: unlimited) may use ``room``."""
    return patterns is None or any(fnmatch.fnmatchcase(room, p) for p in patterns)


def bearer():
    """The JWT this request carries as ``Authorization: Bearer``, or None (none, another kind
    of Bearer such as a publish token, or tokens not set up)."""
    if not services().jwts.enabled:
        return None
    value = credentials(request.headers.get("Authorization"))
    if not value or not _SHAPE.match(value) or value == str(current_app.config.get("PUBLISH_TOKEN")):
        return None
    return value


def presented():
    """The JWT this request carries: its Bearer header, or ``?token=`` on a stream; or None."""
    found = bearer()
    if found is None and request.endpoint == STREAM_ENDPOINT and services().jwts.enabled:
        found = request.args.get("token") or None
    return found


def session_id(sub):
    """The session id every request and stream of one token user shares (all their devices):
    derived from ``sub``, so their direct messages and name claim are one person's."""
    return "jwt-" + hashlib.sha256(sub.encode()).hexdigest()[:32]
