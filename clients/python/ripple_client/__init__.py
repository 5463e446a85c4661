"""A Python client for Ripple: publish with safe retries, page through history, follow a room.

    from ripple_client import Client, Message

    with Client("http://127.0.0.1:8000", token="...") as ripple:
        ripple.publish("lobby", "deploy finished", user="ci-bot")
        for event in ripple.subscribe("lobby"):
            if isinstance(event, Message):
                print(event.user, event.text)

``AsyncClient`` is the same for asyncio. docs/developers.md in the repository has more.
"""
from ._core import Backoff, Page
from .aio import AsyncClient, AsyncSubscription
from .client import Client, Subscription
from .errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    EditConflict,
    Forbidden,
    Gone,
    NotFound,
    RateLimited,
    RippleError,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    Unconfirmed,
    Unprocessable,
)
from .events import (
    Busy,
    Delete,
    Direct,
    Dropped,
    Edit,
    Event,
    Message,
    Presence,
    Reaction,
    Ready,
    Removed,
    Replaced,
    RoomDeleted,
    SignedOut,
    Unavailable,
)

__all__ = [
    "AsyncClient", "AsyncSubscription", "Backoff", "BadRequest", "Busy", "Client", "Conflict",
    "ConnectionFailed", "Delete", "Direct", "Dropped", "Edit", "EditConflict", "Event", "Forbidden", "Gone",
    "Message", "NotFound",
    "Page", "Presence", "RateLimited", "Reaction", "Ready", "Removed", "Replaced", "RippleError", "RoomDeleted",
    "ServerError", "SignedOut",
    "ServiceUnavailable", "Subscription", "Unauthorized", "Unavailable", "Unconfirmed", "Unprocessable",
]
