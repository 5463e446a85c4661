"""Publish tokens: who may post without a browser session, in which rooms, and as whom.

Two kinds, one check (``PublishTokens.grant``) that every entry point calls: Flask's views,
its CSRF and rate-limit exemptions (through ``current()``), and the fast path before Flask.

- ``RIPPLE_PUBLISH_TOKEN``, the operator's global token: any room, any name, direct messages,
  no rate limit. Compared in constant time, in process: no Redis round trip.
- Scoped tokens ``rpl_<id>_<secret>`` made by ``flask --app app tokens create``: rooms matching
  their glob patterns only (on the canonical room name), only as their names, direct messages
  only if created with ``--direct``, an optional expiry, and their own rate limit
  (``RIPPLE_POST_RATE_TOKEN``). Redis keeps ``ripple:{t:<id>}:token``, a hash holding the
  SHA-256 of the token, never the token. Each use is one script call on that key (check the
  hash and expiry, count the rate, note when it was last used): revoking (deleting the key)
  holds on every worker and host from the next request on.

Scoped tokens publish; they grant nothing on reads (a GET with one counts as anonymous).
"""
import fnmatch
import hashlib
import hmac
import json
import re
import secrets
import time
import unicodedata

import redis
from flask import request
from limits import parse_many

from ..ops.services import services
from ..rooms import messages
from ..web.replies import json_error
from . import bearer

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

PREFIX = "rpl_"
UID_PREFIX = "token:"  # a token's uid, as its messages carry it: "token:<id>" (Grant.uid)
INDEX = "ripple:tokens"  # hash: token name -> id (names are unique; list and revoke read it)
_SHAPE = re.compile(r"rpl_([0-9a-f]{16})_[A-Za-z0-9_-]{43}\Z")
_ID = re.compile(r"[0-9a-f]{16}\Z")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_GLOB = set("*?[]!")
_CACHE = "ripple.publish_grant"  # environ key: this request's grant (or refusal), checked once
_WRITES = ("POST", "PUT", "PATCH", "DELETE")

INVALID = N_("This publish token is not valid: it was revoked, or never existed.")
EXPIRED = N_("This publish token has expired; ask for a new one.")
LIMITED = N_("This publish token is posting too fast; try again in %d s.")
NO_AUTHOR = N_('A post with the global publish token names its author: give "user", the name to show.')
ROOM_SCOPE = N_("This publish token may post only in rooms matching “%s”, not in “%s”.")
NAME_SCOPE = N_("This publish token may post only as “%s”, not as “%s”.")
DIRECT_SCOPE = N_("This publish token may not send direct messages (it was created without --direct).")
NAME_RULE = N_("Token names are 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.")
PATTERN_RULE = (N_("Room patterns are room names with the wildcards * ? [...], separated by commas "
                   "(support-*,ops)."))

# KEYS[1]: the token's record.  ARGV[1]: SHA-256 (hex) of the token presented, then pairs of
# (amount, period in ms) of the token's rate limits. Returns {0} unknown (or wrong secret),
# {1} expired, {2, ms until allowed} over a limit, {3, name, rooms, post_as, direct} allowed.
# Rate limits are sliding-window counters (as Flask-Limiter's for browsers): per period, the
# current window's count plus the previous one's, weighted by how much of it still overlaps.
# The hash is compared here with ==: timing can at most reveal bytes of a SHA-256 of a
# 256-bit secret, which gives nothing towards the secret itself.
_GRANT_LUA = """
local rec = redis.call('HMGET', KEYS[1], 'hash', 'expires', 'last_used', 'name', 'rooms', 'post_as', 'direct')
if rec[1] ~= ARGV[1] then return {0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expires = tonumber(rec[2]) or 0
if expires > 0 and now >= expires then return {1} end
local counts = {}
for i = 2, #ARGV, 2 do
  local amount, period = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local window = math.floor(now / period)
  local cur, prev = 0, 0
  local held = redis.call('HGET', KEYS[1], 'rate:' .. ARGV[i + 1])
  if held then
    local w, c, p = string.match(held, '^(%d+):(%d+):(%d+)$')
    w, c, p = tonumber(w), tonumber(c), tonumber(p)
    if w == window then cur, prev = c, p elseif w == window - 1 then prev = c end
  end
  local elapsed = now - window * period
  if prev * (period - elapsed) / period + cur + 1 > amount then return {2, period - elapsed} end
  counts[#counts + 1] = {'rate:' .. ARGV[i + 1], string.format('%d:%d:%d', window, cur + 1, prev)}
end
for _, c in ipairs(counts) do redis.call('HSET', KEYS[1], c[1], c[2]) end
if now - (tonumber(rec[3]) or 0) >= 60000 then
  redis.call('HSET', KEYS[1], 'last_used', string.format('%d', now))
end
return {3, rec[4], rec[5], rec[6], rec[7]}
"""


class Refused(Exception):
    """A token that may not do this: ``status`` (401, 403, 429), a stable ``code``, a sentence."""

    def __init__(self, status, code, sentence, retry_after=None):
        super().__init__(sentence)
        self.status, self.code, self.retry_after = status, code, retry_after


class Grant:
    """What one presented token may do. ``id`` is None for the global token (everything)."""

    __slots__ = ("id", "name", "rooms", "post_as", "direct")

    def __init__(self, id, name, rooms=None, post_as=None, direct=True):
        self.id, self.name, self.direct = id, name, direct
        self.rooms, self.post_as = rooms, post_as  # None: any

    @property
    def scoped(self):
        return self.id is not None

    @property
    def uid(self):
        """The stable id this token's messages carry ("token:<id>"; the global token's
        "token:global"): with it a program edits and deletes what it posted, as a person does."""
        return UID_PREFIX + (self.id or "global")

    @property
    def acting_name(self):
        """The name a change by this token shows (a deletion's "by"): its first name, if scoped."""
        return self.post_as[0] if self.post_as else "ripple"

    def room_ok(self, room):
        """Tell whether this token may post in ``room`` (its canonical name)."""
        return self.rooms is None or any(fnmatch.fnmatchcase(room, p) for p in self.rooms)

    def check_room(self, room):
        if not self.room_ok(room):
            raise Refused(403, "token_scope", ROOM_SCOPE % (", ".join(self.rooms), room))

    def sender(self, claimed):
        """The name a post with this token is sent as: ``claimed``, which must be one of the
        token's names (a scoped token's first name when none is given). Raises messages.Invalid
        for a name the name rule refuses, Refused (403) for a name the token may not use."""
        if self.post_as is None:
            if claimed is None:  # the global token posts as anyone: it must say who
                raise messages.Invalid(NO_AUTHOR, 400, "bad_name")
            return messages.check_name(claimed)
        if claimed is None:
            return self.post_as[0]
        if isinstance(claimed, str) and claimed.strip() not in self.post_as:
            raise Refused(403, "token_scope", NAME_SCOPE % (", ".join(self.post_as), claimed.strip()))
        return messages.check_name(claimed)

    def check_direct(self):
        if not self.direct:
            raise Refused(403, "token_scope", DIRECT_SCOPE)


class PublishTokens:
    """The global token and the scoped ones kept in Redis (``client``: decode_responses=True)."""

    def __init__(self, client, global_token=None, rate=""):
        self.redis = client
        self.global_token = str(global_token).encode() if global_token else None
        self.everything = Grant(None, "RIPPLE_PUBLISH_TOKEN")
        self._rate = [arg for item in (parse_many(rate) if rate else ())
                      for arg in (item.amount, item.get_expiry() * 1000)]
        self._grant = client.register_script(_GRANT_LUA)

    def of_environ(self, environ):
        """This request's Grant, or None when it carries no publish token (a browser).

        Checked once per request (kept in the WSGI environ: the fast path's answer serves Flask
        too, and a token's use is counted once). Raises Refused for a scoped token that is not
        valid (401), expired (401) or over its rate (429), and redis.RedisError when Redis
        cannot tell (also kept: a request waits for a failing Redis once, not at every look).
        """
        cached = environ.get(_CACHE)
        if cached is None:
            try:
                cached = self.grant(environ.get("HTTP_AUTHORIZATION", ""), environ.get("REQUEST_METHOD"))
            except (Refused, redis.RedisError) as exc:
                cached = exc
            environ[_CACHE] = cached
        if isinstance(cached, Exception):
            raise cached.with_traceback(None)
        return cached or None

    def grant(self, header, method="POST"):
        """The Grant an ``Authorization`` header carries; False for none (see of_environ)."""
        value = bearer.credentials(header)
        if value is None:
            return False
        if self.global_token is not None and hmac.compare_digest(value.encode("utf-8", "replace"), self.global_token):
            return self.everything
        if not value.startswith(PREFIX) or method not in _WRITES:
            return False  # another kind of Bearer (or a read): the request is a browser's
        match = _SHAPE.match(value)
        if match is None:
            raise Refused(401, "token_invalid", INVALID)
        found = self._grant(keys=[record_key(match.group(1))], args=[digest(value), *self._rate])
        if found[0] == 0:
            raise Refused(401, "token_invalid", INVALID)
        if found[0] == 1:
            raise Refused(401, "token_expired", EXPIRED)
        if found[0] == 2:
            wait = max(1, -(-int(found[1]) // 1000))
            raise Refused(429, "token_rate", LIMITED % wait, wait)
        _, name, rooms, post_as, direct = found
        return Grant(match.group(1), name, tuple(rooms.split(",")), tuple(json.loads(post_as)), direct == "1")

    def create(self, name, rooms, post_as, days=None, direct=False):
        """Store a new scoped token; return (token, record). The token exists nowhere else.

        ``rooms``: comma-separated glob patterns; ``post_as``: names; ``days``: lifetime (None:
        until revoked). Raises messages.Invalid for a bad name, pattern, post-as name or
        lifetime, or a name another token has (409).
        """
        if not isinstance(name, str) or not _NAME.match(name):
            raise messages.Invalid(NAME_RULE, 400)
        patterns = parse_patterns(rooms)
        names = tuple(dict.fromkeys(messages.check_name(n) for n in post_as))
        if not names:
            raise messages.Invalid(N_("Give at least one name the token may post as (--post-as)."), 400)
        if days is not None and not 0 < days <= 100 * 366:
            raise messages.Invalid(N_("--expires is a number of days above 0."), 400)
        now_ms = int(time.time() * 1000)
        expires_ms = now_ms + int(days * 86400000) if days is not None else 0
        token_id = secrets.token_hex(8)
        token = "%s%s_%s" % (PREFIX, token_id, secrets.token_urlsafe(32))
        record = {"name": name, "hash": digest(token), "rooms": ",".join(patterns),
                  "post_as": json.dumps(names, ensure_ascii=False), "direct": "1" if direct else "0",
                  "created": str(int(now_ms)), "expires": str(int(expires_ms))}
        self.redis.hset(record_key(token_id), mapping=record)
        if not self.redis.hsetnx(INDEX, name, token_id):
            self.redis.delete(record_key(token_id))
            raise messages.Invalid(N_("A token named “%s” exists already: revoke it, or pick another "
                                      "name.") % name, 409)
        return token, _shown(token_id, record)

    def list(self):
        """Every scoped token as a dict (id, name, rooms, post_as, direct, created, expires,
        last_used; times in ms, 0 for never), oldest first. Never the hash."""
        ids = self.redis.hgetall(INDEX)
        pipe = self.redis.pipeline(transaction=False)
        for token_id in ids.values():
            pipe.hgetall(record_key(token_id))
        found = [_shown(token_id, rec) for token_id, rec in zip(ids.values(), pipe.execute()) if rec]
        return sorted(found, key=lambda t: (t["created"], t["name"]))

    def get(self, token_id):
        """The scoped token with id ``token_id`` (as ``list`` shows it), or None."""
        if not isinstance(token_id, str) or not _ID.match(token_id):
            return None
        record = self.redis.hgetall(record_key(token_id))
        return _shown(token_id, record) if record else None

    def of_uid(self, uid):
        """(uid, the first name it posts as) of the scoped token whose uid ("token:<id>",
        Grant.uid) is ``uid``, or (None, None): a token as rooms name a member or a ban."""
        found = self.get(uid[len(UID_PREFIX):]) if isinstance(uid, str) and uid.startswith(UID_PREFIX) else None
        return (uid, found["post_as"][0] if found["post_as"] else found["name"]) if found else (None, None)

    def revoke(self, name_or_id):
        """Delete a token by name or id at once, for every worker; return it (dict) or None."""
        token_id = self.redis.hget(INDEX, name_or_id) or (name_or_id if _ID.match(name_or_id) else None)
        if token_id is None:
            return None
        record = self.redis.hgetall(record_key(token_id))
        self.redis.delete(record_key(token_id))  # from here on every worker refuses it
        name = record.get("name", name_or_id)
        if self.redis.hget(INDEX, name) == token_id:
            self.redis.hdel(INDEX, name)
        return _shown(token_id, record) if record else None


def init_app(app):
    """Answer a Refused as JSON (the PublishTokens object is one of app/ops/services.py's)."""
    app.register_error_handler(Refused, _refused)


def _refused(exc):
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return json_error(exc.status, str(exc), headers, exc.code)


def current():
    """This Flask request's Grant, or None for a browser (see PublishTokens.of_environ)."""
    return services().tokens.of_environ(request.environ)


def record_key(token_id):
    return "ripple:{t:%s}:token" % token_id


def digest(token):
    """What Redis keeps of a token: the hex SHA-256 (a 256-bit random secret needs no slow hash)."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_patterns(text):
    """Return the canonical glob patterns in ``text`` (comma-separated), or raise Invalid.

    Patterns are compared with canonical room names, so they are NFKC-normalised and
    case-folded the same way ("Support-*" matches "support-eu").
    """
    patterns = []
    for raw in (text or "").split(","):
        pattern = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", raw.strip()).casefold())
        if not pattern or not all(ch in _GLOB or ch in "-_" or unicodedata.category(ch)[0] in "LNM"
                                  for ch in pattern):
            raise messages.Invalid(PATTERN_RULE, 400)
        patterns.append(pattern)
    return tuple(dict.fromkeys(patterns))


def _shown(token_id, record):
    return {"id": token_id, "name": record.get("name", ""), "rooms": record.get("rooms", ""),
            "post_as": json.loads(record.get("post_as") or "[]"), "direct": record.get("direct") == "1",
            "created": int(record.get("created") or 0), "expires": int(record.get("expires") or 0),
            "last_used": int(record.get("last_used") or 0)}
