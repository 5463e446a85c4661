"""Anonymous streams opened on the shortest path: the stream route's success without Flask.

After a deploy, a reload or a crashed worker every client of a worker reconnects at once (issue
20), and through Flask each open spent ~0.8 ms of CPU on the request context, the session
cookie, routing and hooks that decide nothing for it (docs/performance.md, "Opening streams").
This WSGI middleware opens a stream that needs none of them: a ``GET /rooms/<room>/events``
without a session cookie, an Authorization header, a ``?token=``, a trusted proxy's user header
or a cross-origin ``Origin`` (when CORS is on), with a well-formed ``backlog`` and cursor. It runs
the very checks of the stream route (app/web/opening.py's one script: the limits, the room's
access, the address's admission) and, when they all let the stream through, answers with the
headers Flask would have sent and ``stream.relay``, as ``api.events`` does.

Everything else goes on to Flask unchanged, so every refusal and error is Flask's own answer
(translated, in the form an EventSource retries): when the checks ran and did not let the
stream through, their reply goes along in the environ (opening.CHECKED) and Flask uses it,
so nothing is counted twice. On a Redis Cluster nothing is done here (its checks are several
calls: app/web/opening.py).
"""
import logging
import time
from urllib.parse import parse_qsl

import redis

from ..delivery import stream, wire
from ..ops.services import services
from ..rooms import keys, records
from . import cors, gate, guard, headers, opening, request_ids

logger = logging.getLogger(__name__)

_PREFIX, _SUFFIX = "/rooms/", "/events"
_FRAMING = {"HTTP/1.1": True, "HTTP/1.0": False}  # chunked? (as api.events)
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
        self.cookie = cfg["SESSION_COOKIE_NAME"] + "="
        self.user_header = ("HTTP_" + cfg["TRUSTED_USER_HEADER"].upper().replace("-", "_")
                            if cfg.get("TRUSTED_USER_HEADER") and cfg.get("TRUSTED_PROXIES") else None)
        self.cors = bool(cors.origins(cfg["CORS_ORIGINS"]))  # its answers need flask-cors's headers
        self.backlog_max = int(cfg["BACKLOG_MAX"])

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if (environ.get("REQUEST_METHOD") != "GET" or not path.startswith(_PREFIX)
                or not path.endswith(_SUFFIX) or "HTTP_AUTHORIZATION" in environ
                or self.cookie in environ.get("HTTP_COOKIE", "")
                or (self.user_header and self.user_header in environ)
                or (self.cors and "HTTP_ORIGIN" in environ)):
            return self.next(environ, start_response)
        opened = self._open(environ, path[len(_PREFIX):-len(_SUFFIX)])
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
        if not (backlog.isdigit() and int(backlog) <= self.backlog_max):
            return None  # Flask's 400, in the reader's language
        raw = environ.get("HTTP_LAST_EVENT_ID") or args.get("last_event_id")
        cursor = keys.parse_cursor(raw)
        if raw and cursor is None:
            return None  # Flask logs it and streams from now
        ext = services(self.app)
        if isinstance(ext.redis, redis.RedisCluster):
            return None
        hub = ext.hub
        if hub.streams.draining or hub.streams.full():
            return None
        address = environ.get("REMOTE_ADDR") or "-"  # gate.address()'s, without a request
        found = (opening.stream_limits(self.app.config, address, cursor is not None, None)
                 if guard.limiter.enabled else [])
        conn, now_ms = ext.addresses.new_conn(), _now_ms()
        try:
            reply = opening.run_checks(ext.redis, room, found, now_ms, None, address, True,
                                       ext.addresses.admit_args(conn))
        except redis.RedisError:
            return None  # nothing was counted: Flask's path tries again, and answers the outage
        if reply[0] == 0:
            _, info, member, bans, admitted = reply
            access = records.access_from(None, info, member, bans)
            if admitted == 1 and not gate.hidden(access) and access.ban is None:
                ext.addresses.keep(address, conn)
                try:
                    return self._relay(environ, hub, room, cursor, int(backlog), access, address)
                except Exception:
                    ext.addresses.give_back(address, conn)
                    raise
        environ[opening.CHECKED] = (now_ms, conn, reply)  # Flask answers it, counting nothing again
        return None

    def _relay(self, environ, hub, room, cursor, backlog, access, address):
        """api._relay for a stream with nobody signed in: its subscription and socket settings."""
        cfg = self.app.config
        hub.presence.ensure_sweeper()
        if cursor is not None:
            hub.metrics.resumes.inc()
        client = environ.get("gunicorn.socket")
        framing = _FRAMING.get(environ.get("SERVER_PROTOCOL")) if hub.direct_writes else None
        sub = stream.Subscription(room, cursor, backlog, client=client, environ=environ, chunked=framing)
        sub.gate = gate.stream_gate_of(services(self.app).rooms, room, access, None, address)
        if client is not None:  # as api._relay: a stalled reader ends, a vanished one is found
            client.settimeout(float(cfg["SEND_TIMEOUT_SECONDS"]))
            wire.keep_alive(client, hub.heartbeat, float(cfg["SEND_TIMEOUT_SECONDS"]))
        head = _HEAD + [("X-Request-ID", request_ids.request_id(environ))]

        def answer(start_response):
            start_response("200 OK", head)
            return stream.relay(hub, sub)

        return answer


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
