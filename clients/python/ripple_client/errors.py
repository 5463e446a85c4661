"""Typed errors for what the server answers (4xx/5xx) and for a server that cannot be reached."""
import json

# Sentences a person reads, in one place.
UNREACHABLE = "Could not reach the Ripple server: %s"
NOT_JSON = "The server answered %d without a JSON error."


class RippleError(Exception):
    """An answer the client could not turn into a result.

    ``status`` is the HTTP status (None when no answer came), ``code`` the server's machine
    code when it gave one (``"unavailable"``, ``"full"``, ``"unconfirmed"``), ``message`` its
    sentence, ``retry_after`` the seconds its ``Retry-After`` asked for (or None), and
    ``idempotency_key`` the key a publish used (send it again with the same key: never twice).
    """

    def __init__(self, message, status=None, code=None, retry_after=None, idempotency_key=None):
        super().__init__(message)
        self.message, self.status, self.code = message, status, code
        self.retry_after, self.idempotency_key = retry_after, idempotency_key

    def __str__(self):
        return self.message if self.status is None else "%d: %s" % (self.status, self.message)


class BadRequest(RippleError):
    """400: a malformed request (a bad room name, two history bounds, a bad id)."""


class Unauthorized(RippleError):
    """401: no or a wrong token (or no session)."""


class Forbidden(RippleError):
    """403: the token may not do this."""


class NotFound(RippleError):
    """404: no such route, message or person."""


class Conflict(RippleError):
    """409: the state does not allow it (a name taken, an edit window passed)."""


class EditConflict(Conflict):
    """409 ``edit_conflict``: an edit with ``base_edited_ts`` of a message edited elsewhere since,
    to another text; nothing changed. ``text`` and ``edited_ts`` are the message as it is now:
    look at it, then edit again with ``base_edited_ts=edited_ts``."""

    def __init__(self, message, status=None, code=None, retry_after=None, idempotency_key=None,
                 text=None, edited_ts=None):
        super().__init__(message, status, code, retry_after, idempotency_key)
        self.text, self.edited_ts = text, edited_ts


class Unprocessable(RippleError):
    """422: the request was understood, its content refused (empty text, a bad name)."""


class RateLimited(RippleError):
    """429: too many requests; ``retry_after`` says when to try again."""


class Gone(RippleError):
    """410: what was asked for ended for good (``room_deleted``: a stream resuming a deleted
    room's history)."""


class ServerError(RippleError):
    """5xx: the server failed; retried by the client before it is raised."""


class ServiceUnavailable(ServerError):
    """503: Redis is unreachable or full: nothing was stored."""


class Unconfirmed(ServerError):
    """504 "unconfirmed": the message may or may not be stored; publish again with ``idempotency_key``."""


class ConnectionFailed(RippleError):
    """No answer at all (refused, reset, timed out): for a publish, the outcome is unknown."""


_BY_STATUS = {400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
              410: Gone, 422: Unprocessable, 429: RateLimited, 503: ServiceUnavailable, 504: Unconfirmed}


def from_response(status, headers, body, idempotency_key=None):
    """The error for an answer with ``status`` >= 400; ``body`` is its bytes (JSON or not)."""
    message, code = NOT_JSON % status, None
    try:
        data = json.loads(body or b"null")
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        message, code = data["error"], data.get("code")
    kind = _BY_STATUS.get(status) or (ServerError if status >= 500 else RippleError)
    if status == 409 and code == "edit_conflict":  # the message as it is now, beside the sentence
        return EditConflict(message, status, code, retry_after(headers), idempotency_key,
                            text=data.get("text"), edited_ts=data.get("edited_ts"))
    return kind(message, status, code, retry_after(headers), idempotency_key)


def retry_after(headers):
    """The seconds a ``Retry-After`` header asks for, or None (dates are not used by Ripple)."""
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
