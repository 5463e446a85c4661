"""Streams opened on the shortest path: the stream route's success without Flask.

After a deploy, a reload or a crashed worker every client of a worker reconnects at once (issue
20), and through Flask each open spent ~0.8 ms of CPU on the request context, routing and hooks
that decide nothing for it (docs/performance.md, "Opening streams"). While CORS is off (flask-cors
adds its headers to every answer), this WSGI middleware opens a ``GET /rooms/<room>/events``
with a well-formed ``backlog`` and cursor and no Authorization header, ``?token=`` or trusted
proxy's user header: anonymous, or signed in by the session cookie (read as Flask reads it, its
session asked of Redis as identity.current() asks). It runs the very checks of the stream route
(app/web/opening.py's one script: the limits, the room's access, the address's admission, and
a signed-in person's registration where those surely pass) and,
when they all let the stream through, builds the stream as the route does
(opening.subscription) and answers with the head Flask would have sent (a signed-in session's
refreshed cookie included).

Everything else goes on to Flask unchanged, so every refusal and error is Flask's own answer
(translated, in the form an EventSource retries): when the checks ran and did not let the
stream through, their reply goes along in the environ (opening.CHECKED) and Flask uses it,
so nothing is counted twice. On a Redis Cluster nothing is done here (its checks are several
calls: app/web/opening.py).
"""
import logging
import time
from datetime import datetime, timezone
from urllib.parse import parse_qsl

import redis
from itsdangerous import BadSignature
from werkzeug.http import dump_cookie, parse_cookie

from ..delivery import stream
from ..ops.services import services
from ..people import identity
from ..rooms import keys, records
from . import cors, gate, guard, headers, onesend, opening, request_ids

logger = logging.getLogger(__name__)

_PREFIX, _SUFFIX = "/rooms/", "/events"
_ARGS = frozenset(("backlog", "last_event_id"))  # any other parameter: Flask's path
# The head Flask sends for a stream (api._relay's, headers.EVERY_ANSWER, i18n's Vary), in its order.
_HEAD = [("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no"),
         ("Content-Type", "text/event-stream; charset=utf-8"), *headers.EVERY_ANSWER,
         ("Vary", "Accept-Language, Cookie")]


class FastStream:
    """Wraps the Flask app's WSGI callable (inside ProxyFix: it reads the client's address)."""

    def __init__(self, app, wsgi_app):
        self.app, self.next = app, wsgi_app
        cfg = app.config
        self.cookie_name = cfg["SESSION_COOKIE_NAME"]
        self.lifetime_s = int(app.permanent_session_lifetime.total_seconds())
        self.user_header = ("HTTP_" + cfg["TRUSTED_USER_HEADER"].upper().replace("-", "_")
                            if cfg.get("TRUSTED_USER_HEADER") and cfg.get("TRUSTED_PROXIES") else None)
        # With CORS on, flask-cors adds its headers to every answer (with or without Origin).
        self.cors = bool(cors.origins(cfg["CORS_ORIGINS"]))
        self.backlog_max = int(cfg["BACKLOG_MAX"])
        self._serializer = (None, None)  # (the keys it was made with, Flask's cookie serializer)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if (environ.get("REQUEST_METHOD") != "GET" or not path.startswith(_PREFIX)
                or not path.endswith(_SUFFIX) or "HTTP_AUTHORIZATION" in environ
                or (self.user_header and self.user_header in environ) or self.cors):
            return self.next(environ, start_response)
        try:
            opened = self._open(environ, path[len(_PREFIX):-len(_SUFFIX)])
        except _ToFlask:
            opened = None
        if opened is None:
            return self.next(environ, start_response)
        return opened(start_response)

    def _open(self, environ, raw_room):
        """The stream's answer (a callable of start_response), or None: Flask's path answers."""
        room = _room(raw_room)
        args = _args(environ.get("QUERY_STRING", ""))
        if room is None or args is None:
            return None
        backlog = args.get("backlog", "0")
        # ASCII digits only ("²" is a digit to isdigit(), not to int()), and few of them.
        if not (backlog.isascii() and backlog.isdigit() and len(backlog) <= 9
                and int(backlog) <= self.backlog_max):
            return None  # Flask's 400, in the reader's language
        raw = environ.get("HTTP_LAST_EVENT_ID") or args.get("last_event_id")
        cursor = keys.parse_cursor(raw)
        if raw and cursor is None:
            return None  # Flask logs it and streams from now
        ext = services(self.app)
        if isinstance(ext.redis, redis.RedisCluster):
            return None
        streams = ext.hub.streams
        if streams.draining or streams.full():
            return None
        address = environ.get("REMOTE_ADDR") or "-"  # gate.address()'s, without a request
        try:
            person, cookie = self._person(environ)
        except redis.RedisError:
            return None  # Flask's path asks again, and answers the outage
        uid, sid = (person.uid, person.sid) if person is not None else (None, None)
        found = (opening.stream_limits(self.app.config, address, cursor is not None, sid)
                 if guard.limiter.enabled else [])
        conn, now_ms = ext.addresses.new_conn(), _now_ms()
        # A signed-in person is registered in the checks' round trip where they surely pass.
        admission = (opening.PersonAdmission(ext, person.name, sid, person.guest, person.account, uid)
                     if person is not None else None)
        if admission is not None:  # Flask's path, should it take over, registers with its id
            environ[opening.ADMISSION] = admission
        try:
            reply = opening.run_checks(ext.redis, room, found, now_ms, uid, address, True,
                                       ext.addresses.admit_args(conn), person.name if person is not None else None,
                                       admission)
        except redis.RedisError:
            # Flask's path tries again and answers the outage. Nothing was counted, unless the
            # reply was lost after the script ran: then the limits count this open twice.
            return None
        if reply[0] == 0:
            info, member, bans, admitted, gone = reply[1:6]
            access = records.access_from(uid, info, member, bans)
            if (admitted == 1 and not gate.hidden(access, admin=False) and access.ban is None
                    and not records.deleted_since(cursor, gone)):
                ext.addresses.keep(address, conn)
                if admission is not None:
                    admission.answer(reply[6])
                try:
                    return self._relay(environ, room, cursor, int(backlog), access, address, person, cookie,
                                       admission)
                except redis.RedisError:
                    # Flask's path takes over with the checks' reply (counting nothing again),
                    # the admission, which it keeps, or gives back when it fails too (503), and
                    # the person's registration (answered already, or made with the same id).
                    environ[opening.CHECKED] = (now_ms, conn, reply)
                    return None
                except Exception:
                    ext.addresses.give_back(address, conn)
                    raise
        environ[opening.CHECKED] = (now_ms, conn, reply)  # Flask answers it, counting nothing again
        return None

    def _person(self, environ):
        """(Person, the Set-Cookie value Flask would send) for the request's signed-in session
        cookie, (None, None) without one. Raises _ToFlask when Flask's path must decide (a
        cookie that is not a signed-in session's, a session that ended or has a room scope)
        and redis.RedisError."""
        raw = parse_cookie(environ).get(self.cookie_name)
        if raw is None:
            return None, None
        try:  # SecureCookieSessionInterface.open_session's reading of it
            data, signed_at = self._signing().loads(raw, max_age=self.lifetime_s, return_timestamp=True)
        except BadSignature:
            raise _ToFlask from None
        name, sid = data.get("name"), data.get("sid")
        if not (isinstance(name, str) and isinstance(sid, str)):
            raise _ToFlask
        record = services(self.app).sessions.record(sid)  # identity.current()'s question
        if record is None or record.get("name") != name or record.get("rooms") is not None:
            raise _ToFlask
        account = record.get("account")
        person = opening.Person(name, sid, identity.stable_id(record, sid), account,
                                not account and not record.get("sub"), record.get("exp"))
        return person, self._cookie(environ, data, signed_at.timestamp())

    def _signing(self):
        """Flask's session cookie serializer (SecureCookieSessionInterface.get_signing_serializer),
        made once per secret key rather than twice per open; a changed key makes a new one."""
        made_with = (self.app.secret_key, tuple(self.app.config.get("SECRET_KEY_FALLBACKS") or ()))
        if self._serializer[0] != made_with:
            self._serializer = (made_with, self.app.session_interface.get_signing_serializer(self.app))
        return self._serializer[1]

    def _cookie(self, environ, data, signed_at):
        """The Set-Cookie value Flask's save_session sends for an unchanged session ``data``
        whose cookie was signed at ``signed_at`` (Unix seconds), or None: a permanent one is
        sent again with a fresh expiry once that is due (identity.SessionInterface)."""
        cfg, interface = self.app.config, self.app.session_interface
        if not (data.get("_permanent") and cfg["SESSION_REFRESH_EACH_REQUEST"]
                and identity.cookie_refresh_due(signed_at, self.lifetime_s,
                                                identity.navigation(environ.get("HTTP_SEC_FETCH_MODE")))):
            return None
        return dump_cookie(
            self.cookie_name, self._signing().dumps(dict(data)),
            expires=datetime.now(timezone.utc) + self.app.permanent_session_lifetime,
            httponly=interface.get_cookie_httponly(self.app), domain=interface.get_cookie_domain(self.app),
            path=interface.get_cookie_path(self.app),
            secure=bool(cfg["SESSION_COOKIE_SECURE"] or environ.get("wsgi.url_scheme") == "https"),
            partitioned=interface.get_cookie_partitioned(self.app), samesite=interface.get_cookie_samesite(self.app))

    def _relay(self, environ, room, cursor, backlog, access, address, person, cookie, admission=None):
        """The admitted stream's answer, as api.events': a callable of start_response;
        ``admission`` as opening.subscription takes it."""
        ext = services(self.app)
        sub = opening.subscription(ext, self.app.config, environ, room, access, cursor, backlog, address, person,
                                   admission=admission)
        head = _HEAD + [("X-Request-ID", request_ids.request_id(environ))]
        if cookie is not None:
            head.append(("Set-Cookie", cookie))

        def answer(start_response):
            body = stream.relay(ext.hub, sub)
            gunicorns = onesend.gunicorn_answer(start_response("200 OK", head))
            # The first chunk (the stream's retry:) leaves with the head, in one send.
            return body if gunicorns is None else onesend.FirstChunkWithHead(gunicorns, body)

        return answer


class _ToFlask(Exception):
    """Flask's path answers this request (nothing was counted yet)."""


def _room(raw):
    """The canonical room of the path's segment (PATH_INFO: latin-1 of the bytes), or None."""
    if not raw or "/" in raw:
        return None
    try:
        return keys.canonical_room(raw.encode("latin-1").decode("utf-8"))
    except UnicodeError:
        return None


def _args(query):
    """The query's backlog and last_event_id (the first of each, as Flask's request.args), or
    None when it has anything else (``?token=`` among them: Flask's path reads it)."""
    found = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in _ARGS:
            return None
        found.setdefault(name, value)
    return found


def _now_ms():
    return int(time.time() * 1000)  # opening.open_stream's clock
