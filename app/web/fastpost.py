"""Server-to-server posts on the shortest path: the publish path's hot write without Flask.

A publisher holding a publish token posts JSON to ``/rooms/<room>/messages`` far more often
than anything else is requested; through Flask each such post spent ~1.5 ms of CPU on routing,
request hooks and limit lookups that do not apply to it (no session, no CSRF, no browser limits).
This WSGI middleware stores and publishes a well-formed token post itself, with the same token
check (app/people/tokens.py: no Redis round trip for the global token, one for a scoped token, which
also counts its rate), validation, store call, metrics and answer as ``api.post_message``. A
scoped token's post also reads the room's access (one round trip: gate.token_access), as Flask's
path does: a private room it is no member of, or a ban of it, is Flask's to answer.
Anything else, including every post it would have to refuse and a scoped token's post that
would create a room (counted against the new-room caps there), goes on to Flask unchanged, so
every error is Flask's; the token check's outcome goes along in the environ, checked once.
"""
import re
from io import BytesIO

import redis

from ..ops.services import services
from ..people import bearer, tokens
from ..rooms import keys, messages, store
from . import bodies, cors, gate, headers, onesend, replies, request_ids

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

_STATUS_LINES = {503: "503 Service Unavailable", 504: "504 Gateway Timeout"}
_PATH = re.compile(r"/rooms/([^/]+)/messages\Z")
UNAVAILABLE = N_("The message store is unavailable right now. Please try again shortly.")
FULL = (N_("The message store is full, so nothing was stored. Please tell the people who run "
           "this service."))


UNCONFIRMED = N_("We could not confirm your message was sent; sending again is safe.")


def store_failure(exc):
    """The sentence for a Redis failure: full (maxmemory reached, writes refused) or unavailable."""
    return FULL if isinstance(exc, redis.OutOfMemoryError) else UNAVAILABLE


def post_failure(exc, storing=True):
    """How to answer a post (room or direct, any entry point) that Redis failed with ``exc``:
    (HTTP status, code, sentence). Once storing began (``storing``), an outcome that is unknown
    (store.unconfirmed) is a 504 "unconfirmed", never "nothing was stored": the retry with the
    same idempotency key is safe either way. A known failure, or any before storing, is 503
    "full" (Redis out of memory) or "unavailable"."""
    if storing and store.unconfirmed(exc):
        return 504, "unconfirmed", UNCONFIRMED
    if isinstance(exc, redis.OutOfMemoryError):
        return 503, "full", FULL
    return 503, "unavailable", UNAVAILABLE


class FastPublish:
    """Wraps ``app.wsgi_app``; answers token posts of JSON messages, passes on the rest."""

    def __init__(self, app, wsgi_app):
        self.app, self.next = app, wsgi_app
        cfg = app.config
        self.max_chars, self.max_body = int(cfg["MAX_MESSAGE_CHARS"]), int(cfg["MAX_CONTENT_LENGTH"])
        self.retry_after = str(cfg["REDIS_RETRY_AFTER"])
        self.cors = bool(cors.origins(cfg["CORS_ORIGINS"]))  # its answers need flask-cors's headers

    def __call__(self, environ, start_response):
        if (environ.get("REQUEST_METHOD") != "POST"
                or bearer.credentials(environ.get("HTTP_AUTHORIZATION")) is None
                or (self.cors and "HTTP_ORIGIN" in environ)):
            return self.next(environ, start_response)
        match = _PATH.match(environ.get("PATH_INFO", ""))
        if match is None or not _is_json(environ.get("CONTENT_TYPE", "")):
            return self.next(environ, start_response)
        ext = services(self.app)
        try:
            grant = ext.tokens.of_environ(environ)
        except tokens.Refused:
            return self.next(environ, start_response)  # Flask answers the refusal
        except redis.RedisError as exc:  # nothing stored; Flask would only wait for Redis again
            return self._failed(ext, environ, start_response, exc, storing=False)
        if grant is None:
            return self.next(environ, start_response)  # another Bearer: a browser's request
        try:  # PATH_INFO holds the decoded path's bytes as latin-1 (PEP 3333)
            room = match.group(1).encode("latin-1").decode("utf-8")
        except UnicodeError:
            return self.next(environ, start_response)
        post = self._read(environ, room, grant)
        if post is None:
            return self.next(environ, start_response)  # Flask answers it, refusal and all
        if grant.scoped:  # a private room it is no member of, or a ban: Flask answers it
            try:
                if gate.token_refusal(gate.token_access(ext.rooms, room, grant, post[0])):
                    return self.next(environ, start_response)
            except redis.RedisError as exc:  # nothing stored
                return self._failed(ext, environ, start_response, exc, storing=False)
        try:
            with ext.metrics.publish_seconds.time():
                stored, created = ext.store.publish(
                    room, *post, may_create=_new_room if grant.scoped else None, bot=True, uid=grant.uid)
        except _NewRoom:
            return self.next(environ, start_response)  # nothing stored: Flask counts it, then stores
        except messages.Invalid:
            return self.next(environ, start_response)  # nothing stored: Flask answers the refusal
        except redis.RedisError as exc:
            return self._failed(ext, environ, start_response, exc)
        ext.outage.ok()
        self._published(ext).inc()
        return _answer(start_response, environ, "201 Created" if created else "200 OK", stored.encode())

    def _failed(self, ext, environ, start_response, exc, storing=True):
        """Answer a post that Redis failed with ``exc`` (post_failure), with Retry-After."""
        ext.outage.failed("api.post_message", exc)
        status, code, sentence = post_failure(exc, storing)
        return _answer(start_response, environ, _STATUS_LINES[status], replies.error_body(sentence, code),
                       [("Retry-After", self.retry_after)])

    def _published(self, ext):
        """The published-messages counter's "room" child, looked up once per worker (a labels()
        call takes a lock and builds a key on every post)."""
        child = self.__dict__.get("_room_counter")
        if child is None or child[0] is not ext.metrics:
            child = self._room_counter = (ext.metrics, ext.metrics.published.labels("room"))
        return child[1]

    def _read(self, environ, room, grant):
        """Return (user, text, idempotency key) of a post that passes every check (``grant``'s
        scope included), else None.

        The body is put back for Flask, which reads it again when this returns None.
        """
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return None  # chunked or malformed: Flask's rules apply
        if not 0 <= length <= self.max_body or not keys.valid_room(room) or not grant.room_ok(room):
            return None
        raw = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = BytesIO(raw)
        environ["CONTENT_LENGTH"] = str(len(raw))
        try:
            data = bodies.loads(raw)
            if not isinstance(data, dict) or "reply_to" in data:
                return None  # a reply's quote is read through Flask's path
            text = messages.check_text(data.get("text"), self.max_chars)
            user = grant.sender(data.get("user"))
            key = messages.check_idempotency_key(messages.body_idempotency_key(
                data.get("idempotency_key"), environ.get("HTTP_IDEMPOTENCY_KEY")))
        except (ValueError, messages.Invalid, tokens.Refused):  # every parse failure is a ValueError
            return None
        return user, text, key


class _NewRoom(Exception):
    """A scoped token's post would create a room: Flask's path counts it against the caps."""


def _new_room():
    raise _NewRoom


def _is_json(content_type):
    return content_type.partition(";")[0].strip().lower() == "application/json"


def _answer(start_response, environ, status, body, extra=()):
    write = start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                    ("X-Request-ID", request_ids.request_id(environ)), *headers.PLAIN, *extra])
    answer = onesend.gunicorn_answer(write)
    if answer is not None and not answer.chunked:
        return onesend.WholeAnswer(answer, body)
    return [body]
