"""What a subscription yields: one dataclass per event the server sends, and a generic one.

Every event keeps the server's JSON as ``data`` (fields a newer server adds are there too) and,
when the event carried one, its ``cursor`` (the SSE ``id``: resume from it).
"""
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """An event this client has no type for (one a newer server adds): passed on."""

    name: str
    text: str  # the event's data as sent
    cursor: str | None = None

    def json(self):
        """The data decoded as JSON (raises ValueError if it is not)."""
        return json.loads(self.text)


@dataclass(frozen=True)
class Message:
    """A message in a room (``event: message``, and each message of a history page)."""

    id: str
    ts: int  # server time, ms since the epoch
    room: str
    user: str
    text: str
    bot: bool = False  # sent by a program (a publish token, the CLI), not a signed-in person
    cursor: str | None = None  # None in history pages
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data, cursor=None):
        return cls(data["id"], data["ts"], data["room"], data["user"], data["text"],
                   bool(data.get("bot")), cursor, data)


@dataclass(frozen=True)
class Direct:
    """A direct message to or from the session's person (``event: direct``)."""

    id: str
    ts: int
    sender: str  # "from" on the wire
    to: str
    text: str
    bot: bool = False
    cursor: str | None = None
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data, cursor=None):
        return cls(data["id"], data["ts"], data["from"], data["to"], data["text"],
                   bool(data.get("bot")), cursor, data)


@dataclass(frozen=True)
class Presence:
    """Who is in the room: ``action`` is "here" (once after connecting), "join" or "leave".

    ``online_count``: how many are online (None from a server before it). ``complete``: whether
    ``online`` is the whole list. Above the server's RIPPLE_PRESENCE_LIST_MAX names online a join
    or leave carries the change alone (``online`` empty: apply ``name``), and the first "here"
    lists only that many names.
    """

    room: str
    action: str
    online: list[str]
    name: str | None = None
    data: dict[str, Any] = field(default_factory=dict, repr=False)
    online_count: int | None = None
    complete: bool = True

    @classmethod
    def from_json(cls, data, cursor=None):
        online = list(data.get("online", []))
        count = data.get("online_count")
        complete = "online" in data and (count is None or count <= len(online))
        return cls(data["room"], data["action"], online, data.get("name"), data, count, complete)


@dataclass(frozen=True)
class Ready:
    """The stream caught up with everything it owed; live messages follow."""

    room: str
    cursor: str | None = None
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data, cursor=None):
        return cls(data.get("room", ""), cursor, data)


@dataclass(frozen=True)
class Notice:
    """A word about the connection: ``message`` is a sentence a person can read."""

    room: str
    message: str
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data, cursor=None):
        return cls(data.get("room", ""), data.get("message") or data.get("error") or "", data)


class Dropped(Notice):
    """Messages after the cursor were trimmed before they could be sent (the rest follow)."""


class Unavailable(Notice):
    """The server lost Redis: this connection ends and the client reconnects by itself."""


class Replaced(Notice):
    """A newer stream of the same session took this one's place (browser sessions)."""


class SignedOut(Notice):
    """The session ended; the client goes on anonymously."""


class Removed(Notice):
    """This person may no longer follow the room (``event: removed``); the subscription ends
    after it (a reconnect would be refused)."""

    @property
    def reason(self):
        """"removed", "left", "banned" or "private" (the room was made private)."""
        return self.data.get("reason", "")

    @property
    def until(self):
        """When a ban for a time lapses (ms since the epoch), else None."""
        return int(self.data["until"]) if self.data.get("until") else None


class RoomDeleted(Notice):
    """The room was deleted (``event: room-deleted``); the subscription ends after it (its
    reconnect would be refused: 410 ``room_deleted``)."""


FINAL = (Removed, RoomDeleted)  # the events after which a subscription ends


@dataclass(frozen=True)
class Busy:
    """The server refused the stream for now (a limit, or Redis unreachable); it will retry."""

    error: str
    status: int
    retry_after: float
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data, cursor=None):
        return cls(data.get("error", ""), int(data.get("status", 503)), float(data.get("retry_after", 1)), data)


@dataclass(frozen=True)
class Edit:
    """A message's text changed (``event: edit``): show ``text`` for ``message_id``, "(edited)"."""

    id: str  # the event's own id in the room
    message_id: str
    text: str
    edited_ts: int
    cursor: str | None = None
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data, cursor=None):
        return cls(data["id"], data["message_id"], data["text"], int(data["edited_ts"]), cursor, data)


@dataclass(frozen=True)
class Delete:
    """A message was deleted (``event: delete``): forget its text, show "message deleted"."""

    id: str
    message_id: str
    by: str  # who deleted it: its author, or a moderator
    reason: str | None = None
    cursor: str | None = None
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data, cursor=None):
        return cls(data["id"], data["message_id"], data.get("by", ""), data.get("reason"), cursor, data)


@dataclass(frozen=True)
class Reaction:
    """A message's reactions changed (``event: reaction``): ``reactions`` is its whole set now,
    ``{"<emoji>": {"count": n, "users": [names]}}``; ``user`` added (``on``) or took back ``emoji``."""

    id: str
    message_id: str
    emoji: str
    user: str
    on: bool
    reactions: dict[str, Any]
    cursor: str | None = None
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data, cursor=None):
        return cls(data["id"], data["message_id"], data["emoji"], data["user"], bool(data["on"]),
                   data.get("reactions") or {}, cursor, data)


TYPES = {"message": Message, "direct": Direct, "presence": Presence, "ready": Ready, "dropped": Dropped,
         "unavailable": Unavailable, "replaced": Replaced, "signed-out": SignedOut, "busy": Busy,
         "edit": Edit, "delete": Delete, "reaction": Reaction, "removed": Removed, "room-deleted": RoomDeleted}


def parse(name, text, cursor=None):
    """The typed event for one server-sent event; ``Event`` for an unknown name or odd data."""
    kind = TYPES.get(name)
    if kind is not None:
        try:
            data = json.loads(text)
            if isinstance(data, dict):
                return kind.from_json(data, cursor)
        except (ValueError, KeyError, TypeError):
            pass  # not what this client expects: hand it over as it came
    return Event(name, text, cursor)
