"""The blocking client: ``Client(base_url, token=...)``; ``publish``, ``history``, ``subscribe``."""
import logging
import socket
import threading

import httpx
from httpx_sse import EventSource

from . import errors
from ._core import (
    Backoff,
    Page,
    StreamState,
    edit_request,
    headers,
    history_params,
    message_path,
    publish_request,
    retryable,
    room_path,
)

logger = logging.getLogger(__name__)


class Client:
    """A Ripple server at ``base_url`` (``http://127.0.0.1:8000``), as one program.

    ``token``: a publish token (``RIPPLE_PUBLISH_TOKEN`` or a scoped one); without it a client
    can read history and follow rooms. ``timeout``: seconds for one request. ``stream_timeout``:
    seconds a stream may stay silent before it counts as dead (the server sends a keep-alive
    every ``RIPPLE_HEARTBEAT_SECONDS``, 15 by default). ``backoff``: retry timing (``Backoff``).
    Use it as a context manager, or call ``close()``: that also ends every open subscription.
    """

    def __init__(self, base_url, token=None, timeout=10.0, stream_timeout=45.0, backoff=None):
        self.token, self.backoff = token, backoff or Backoff()
        self.stream_timeout = float(stream_timeout)
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self._subscriptions = set()
        self._closed = threading.Event()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """End every subscription of this client and release its connections."""
        self._closed.set()
        for sub in list(self._subscriptions):
            sub.close()
        self._http.close()

    def publish(self, room, text, user=None, idempotency_key=None, reply_to=None):
        """Post ``text`` to ``room``; return the stored message as a dict.

        Every attempt carries one idempotency key (a fresh one unless given), so retrying after
        no answer, a 5xx or a 504 "unconfirmed" never stores it twice. Raises a ``RippleError``
        (its ``idempotency_key`` set: publish again with it later) once the attempts are spent,
        at once for a 4xx.
        """
        body, extra, key = publish_request(text, user, idempotency_key, reply_to)
        return self._send("POST", room_path(room, "messages"), key, json=body, headers=extra)

    def edit(self, room, message_id, text, base_edited_ts=None):
        """Replace the text of a message this client's token posted (within the server's
        RIPPLE_EDIT_WINDOW_SECONDS); return the message as a dict (``edited_ts`` set). Safe to
        retry: the same text again changes nothing.

        ``base_edited_ts``: the message's ``edited_ts`` when this edit started (0 for a message
        not edited then); if it was edited since to another text, nothing changes and
        ``EditConflict`` is raised, carrying its ``text`` and ``edited_ts`` now. Without it the
        last edit wins. Raises a ``RippleError``: ``Forbidden`` (403: not this token's message,
        or outside its rooms), ``EditConflict`` (409 ``edit_conflict``), ``Conflict`` (409:
        deleted, or past the edit window), ``BadRequest`` (400 ``bad_base``), ``NotFound`` (404)."""
        return self._send("PATCH", message_path(room, message_id), None, json=edit_request(text, base_edited_ts))

    def delete(self, room, message_id):
        """Delete a message this client's token posted (the admin token: any); returns None.
        Deleting a deleted message succeeds too, so a retry is safe."""
        self._send("DELETE", message_path(room, message_id), None)

    def history(self, room, before=None, after=None, around=None, limit=None):
        """A ``Page`` of ``room``'s history, oldest first (at most one of before/after/around)."""
        params = history_params(before, after, around, limit)
        return Page.from_json(self._send("GET", room_path(room, "messages"), None, params=params))

    def subscribe(self, room, last_event_id=None, backlog=None):
        """Follow ``room``: a ``Subscription`` to iterate (typed events, see ``ripple_client.events``).

        From now on, or from just after ``last_event_id`` (a cursor an event gave before), or
        with the last ``backlog`` messages first. It reconnects by itself and resumes from its
        cursor, so every message is delivered once, in order, across restarts and reloads.
        """
        sub = Subscription(self, room, last_event_id, backlog)
        self._subscriptions.add(sub)
        return sub

    def _send(self, method, path, key, **kwargs):
        kwargs["headers"] = {**headers(self.token), **kwargs.get("headers", {})}
        failures = 0
        while True:
            hint = None
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                error = errors.ConnectionFailed(errors.UNREACHABLE % exc, idempotency_key=key)
            else:
                if response.status_code < 400:
                    return response.json() if response.content else None  # 204: nothing
                error = errors.from_response(response.status_code, response.headers, response.content, key)
                if not retryable(response.status_code):
                    raise error
                hint = error.retry_after
            failures += 1
            if failures >= self.backoff.attempts or self._closed.is_set():
                raise error
            logger.info("retrying %s %s after %s", method, path, error)
            if self._closed.wait(self.backoff.delay(failures, hint)):
                raise error


class Subscription:
    """An open-ended iterator of a room's events; ``cursor`` is where it would resume.

    Ends when ``close()`` is called (from any thread, or from the loop itself), the client
    closes, or after it yields ``Removed`` or ``RoomDeleted`` (the room is no longer this
    person's to follow); raises a ``RippleError`` for an answer retrying cannot mend (a bad room:
    400; ``Gone``, 410 ``room_deleted``: resuming from a room deleted meanwhile).
    """

    def __init__(self, client, room, cursor, backlog):
        self._client, self.room = client, room
        self._state = StreamState(cursor, client.backoff)
        self._params = {"backlog": str(backlog)} if backlog else {}
        self._closed = threading.Event()
        self._response = None

    @property
    def cursor(self):
        return self._state.cursor

    @property
    def skipped(self):
        """Events not handed on because they had been delivered before (0 on a healthy server)."""
        return self._state.skipped

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __iter__(self):
        client, state = self._client, self._state
        timeout = httpx.Timeout(client._http.timeout.connect, read=client.stream_timeout)
        try:
            while not self._stopped():
                try:
                    yield from self._connection(timeout)
                except httpx.TransportError as exc:
                    if self._stopped():
                        return
                    logger.info("stream of %s lost: %r", self.room, exc)
                    state.failed()
                if self._stopped() or self._closed.wait(state.wait()):
                    return
        finally:
            self.close()

    def _connection(self, timeout):
        client, state = self._client, self._state
        with client._http.stream("GET", room_path(self.room, "events"), params=self._params,
                                 headers=state.request_headers(client.token), timeout=timeout) as response:
            self._response = response
            if self._stopped():
                return
            if response.status_code != 200 or "text/event-stream" not in response.headers.get("content-type", ""):
                error = state.refused(response.status_code, response.headers, response.read())
                if error is not None:
                    raise error
                return
            for sse in EventSource(response).iter_sse():
                event = state.feed(sse)
                if event is not None:
                    yield event
                if self._stopped():
                    return

    def _stopped(self):
        return self._closed.is_set() or self._client._closed.is_set() or self._state.ended

    def close(self):
        """Stop: the iteration ends (at once, or at its next event if it is mid-read)."""
        self._closed.set()
        self._client._subscriptions.discard(self)
        _shutdown(self._response)


def _shutdown(response):
    """Wake a thread blocked reading ``response``: shut its socket down (closing does not)."""
    if response is None:
        return
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed
