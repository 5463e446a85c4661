"""What the sync and async clients share: paths, retry timing, and a stream's bookkeeping.

No I/O here: ``client.py`` and ``aio.py`` do the requests and the waiting, in their own way.
"""
import random
import re
import urllib.parse
import uuid
from dataclasses import dataclass

from . import errors, events

# A server's Retry-After or retry: is honoured up to this many seconds (a typo must not park
# a subscriber for a day).
MAX_HINT_SECONDS = 300.0
_STREAM_ID = re.compile(r"(\d+)-(\d+)")


@dataclass(frozen=True)
class Backoff:
    """How long to wait between attempts: ``initial`` seconds doubling up to ``maximum``, each
    wait between half and all of that (jitter, so a crowd does not come back at one instant).

    ``attempts`` bounds a publish or history request (the first try included); a subscription
    retries for as long as it is open. A server's ``Retry-After`` or ``retry:`` is a floor.
    """

    initial: float = 0.5
    maximum: float = 10.0
    attempts: int = 6

    def delay(self, failures, hint=None):
        """Seconds to wait after ``failures`` failures in a row (1 or more); ``hint`` is the server's."""
        ceiling = min(self.maximum, self.initial * 2 ** max(0, failures - 1))
        wait = ceiling / 2 + random.random() * ceiling / 2
        if hint is not None:
            wait = max(wait, min(float(hint), MAX_HINT_SECONDS))
        return wait


def room_path(room, tail):
    """``/rooms/<room>/<tail>`` with the room percent-encoded as UTF-8 (any script, any character)."""
    return "/rooms/%s/%s" % (urllib.parse.quote(room, safe=""), tail)


def message_path(room, message_id):
    """``/rooms/<room>/messages/<id>`` (both percent-encoded)."""
    return room_path(room, "messages/" + urllib.parse.quote(str(message_id), safe=""))


def headers(token):
    return {"Authorization": "Bearer " + token} if token else {}


def publish_request(text, user, idempotency_key, reply_to):
    """(json body, headers, key) for a publish; a fresh key unless the caller gave one."""
    key = idempotency_key or uuid.uuid4().hex
    body = {"text": text}
    if user is not None:
        body["user"] = user
    if reply_to is not None:
        body["reply_to"] = reply_to
    return body, {"Idempotency-Key": key}, key


def edit_request(text, base_edited_ts):
    """The JSON body of an edit: ``base_edited_ts`` only when given (without it the last edit wins)."""
    body = {"text": text}
    if base_edited_ts is not None:
        body["base_edited_ts"] = base_edited_ts
    return body


def history_params(before, after, around, limit):
    given = {"before": before, "after": after, "around": around, "limit": limit}
    return {name: str(value) for name, value in given.items() if value is not None}


def retryable(status):
    """Tell whether a request answered ``status`` may be sent again as it was (with its key)."""
    return status == 408 or status >= 500


@dataclass(frozen=True)
class Page:
    """A page of history, oldest first; ``more_before``/``more_after``: older/newer ones exist."""

    room: str
    messages: list
    more_before: bool
    more_after: bool

    @property
    def more(self):
        return self.more_before

    @classmethod
    def from_json(cls, data):
        return cls(data["room"], [events.Message.from_json(m) for m in data["messages"]],
                   bool(data.get("more_before", data.get("more"))), bool(data.get("more_after", False)))


def _id(text):
    match = _STREAM_ID.fullmatch(text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


class StreamState:
    """One subscription's memory across its connections: the cursor, the server's retry,
    failures in a row, and the newest message and direct ids delivered (never deliver one twice).
    """

    def __init__(self, cursor, backoff):
        self.cursor = cursor
        self.backoff = backoff
        self.retry = None          # seconds, from the server's last ``retry:``
        self.failures = 0          # connections in a row that did not reach ``ready``
        self.hint = None           # seconds the server asked us to wait (busy, Retry-After)
        self.skipped = 0           # events not delivered because they were seen before
        self._newest = {}          # "message"/"direct" -> newest id delivered, as (ms, seq)
        self.ended = False         # a removed or room-deleted event came: follow no more

    def request_headers(self, token):
        found = {"Accept": "text/event-stream", **headers(token)}
        if self.cursor:
            found["Last-Event-ID"] = self.cursor
        return found

    def refused(self, status, response_headers, body):
        """A connection answered with something other than a stream: the error to raise now
        (a 4xx that retrying cannot mend), or None to wait and try again."""
        error = errors.from_response(status, response_headers, body)
        if status in (408, 429) or status >= 500:
            self.failures += 1
            self.hint = error.retry_after
            return None
        return error

    def failed(self):
        """No answer (refused, reset, silent for too long): try again after a backoff."""
        self.failures += 1

    def feed(self, sse):
        """The typed event for one httpx-sse event, or None when there is nothing to hand on."""
        if sse.retry is not None:
            self.retry = sse.retry / 1000
        if sse.id:
            self.cursor = sse.id
        name = sse.event or "message"
        if name == "ping" or not sse.data:
            # A keep-alive, or a bare retry: heard, nothing to hand on (EventSource, too,
            # dispatches no event without data).
            return None
        event = events.parse(name, sse.data, sse.id or None)
        if isinstance(event, events.FINAL):
            self.ended = True
        elif isinstance(event, events.Ready):
            self.failures, self.hint = 0, None
        elif isinstance(event, events.Busy):
            self.failures += 1
            self.hint = max(event.retry_after, self.retry or 0)
        elif isinstance(event, (events.Message, events.Direct)):
            seen, new = self._newest.get(name), _id(event.id)
            if seen is not None and new is not None and new <= seen:
                self.skipped += 1
                return None
            self._newest[name] = new
        return event

    def wait(self):
        """Seconds to wait before the next connection: the server's retry after a stream that
        ended well, a growing backoff after failures, never less than what the server asked."""
        hint = max(self.hint or 0, self.retry or 0) or None
        if not self.failures:
            return hint if hint is not None else self.backoff.initial
        self.hint = None
        return self.backoff.delay(self.failures, hint)
