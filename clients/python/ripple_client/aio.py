"""The asyncio client: the same calls as ``Client``, awaited; subscriptions are async iterators."""
import asyncio
import logging

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
from .client import _shutdown

logger = logging.getLogger(__name__)


class AsyncClient:
    """``Client`` for asyncio: ``await publish(...)``, ``await history(...)``,
    ``async with client.subscribe(room) as sub: async for event in sub``. Same arguments."""

    def __init__(self, base_url, token=None, timeout=10.0, stream_timeout=45.0, backoff=None):
        self.token, self.backoff = token, backoff or Backoff()
        self.stream_timeout = float(stream_timeout)
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)
        self._subscriptions = set()
        self._closed = asyncio.Event()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()

    async def aclose(self):
        """End every subscription of this client and release its connections."""
        self._closed.set()
        for sub in list(self._subscriptions):
            await sub.aclose()
        await self._http.aclose()

    async def publish(self, room, text, user=None, idempotency_key=None, reply_to=None):
        """See ``Client.publish``."""
        body, extra, key = publish_request(text, user, idempotency_key, reply_to)
        return await self._send("POST", room_path(room, "messages"), key, json=body, headers=extra)

    async def edit(self, room, message_id, text, base_edited_ts=None):
        """See ``Client.edit``."""
        return await self._send("PATCH", message_path(room, message_id), None,
                                json=edit_request(text, base_edited_ts))

    async def delete(self, room, message_id):
        """See ``Client.delete``."""
        await self._send("DELETE", message_path(room, message_id), None)

    async def history(self, room, before=None, after=None, around=None, limit=None):
        """See ``Client.history``."""
        params = history_params(before, after, around, limit)
        return Page.from_json(await self._send("GET", room_path(room, "messages"), None, params=params))

    def subscribe(self, room, last_event_id=None, backlog=None):
        """See ``Client.subscribe``; iterate with ``async for``."""
        sub = AsyncSubscription(self, room, last_event_id, backlog)
        self._subscriptions.add(sub)
        return sub

    async def _send(self, method, path, key, **kwargs):
        kwargs["headers"] = {**headers(self.token), **kwargs.get("headers", {})}
        failures = 0
        while True:
            hint = None
            try:
                response = await self._http.request(method, path, **kwargs)
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
            if await _wait(self._closed, self.backoff.delay(failures, hint)):
                raise error


class AsyncSubscription:
    """See ``Subscription``; ``aclose()`` ends it."""

    def __init__(self, client, room, cursor, backlog):
        self._client, self.room = client, room
        self._state = StreamState(cursor, client.backoff)
        self._params = {"backlog": str(backlog)} if backlog else {}
        self._closed = asyncio.Event()
        self._response = None
        self._events = None

    @property
    def cursor(self):
        return self._state.cursor

    @property
    def skipped(self):
        return self._state.skipped

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()

    def __aiter__(self):
        if self._events is None:
            self._events = self._run()
        return self._events

    async def _run(self):
        client, state = self._client, self._state
        timeout = httpx.Timeout(client._http.timeout.connect, read=client.stream_timeout)
        while not self._stopped():
            try:
                async for event in self._connection(timeout):
                    yield event
            except httpx.TransportError as exc:
                if self._stopped():
                    return
                logger.info("stream of %s lost: %r", self.room, exc)
                state.failed()
            if self._stopped() or await _wait(self._closed, state.wait()):
                return

    async def _connection(self, timeout):
        client, state = self._client, self._state
        async with client._http.stream("GET", room_path(self.room, "events"), params=self._params,
                                       headers=state.request_headers(client.token), timeout=timeout) as response:
            self._response = response
            if self._stopped():
                return
            if response.status_code != 200 or "text/event-stream" not in response.headers.get("content-type", ""):
                error = state.refused(response.status_code, response.headers, await response.aread())
                if error is not None:
                    raise error
                return
            async for sse in EventSource(response).aiter_sse():
                event = state.feed(sse)
                if event is not None:
                    yield event
                if self._stopped():
                    return

    def _stopped(self):
        return self._closed.is_set() or self._client._closed.is_set() or self._state.ended

    async def aclose(self):
        """Stop the subscription and close its connection."""
        self._closed.set()
        self._client._subscriptions.discard(self)
        _shutdown(self._response)  # a task reading it now hears the end and stops
        if self._events is not None and not self._events.ag_running:
            await self._events.aclose()


async def _wait(event, seconds):
    """Sleep ``seconds`` unless ``event`` is set first; tell whether it was."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True
