"""A deleted room's name, for a while after: it says the room was deleted.

For GONE_SECONDS after a room is deleted (app/rooms/moderation.py ``delete``),
``ripple:{r:<room>}:deleted-at`` holds when (ms). While it stands and the name is unused (no
record, no history), the name is no fresh public room: its page says "#room was deleted" and
offers to create a new room of that name on purpose (``POST /rooms``, the lobby's form), and a
post that would create the room by posting is refused (410 "room_deleted"). A former member
talking on from an old page, a bookmark or a program would otherwise be talking in a new public
room unawares. Creating the room on purpose uses the name, and the notice stands aside.

Nothing here knows about Flask.
"""
from . import keys
from .records import now_ms


def key(room):
    """The key holding when ``room`` was deleted (ms), in the room's slot."""
    return keys.RoomKeys(room).tag + ":deleted-at"


def mark(client, room, seconds):
    """Remember for ``seconds`` that ``room`` was deleted now (after its keys went)."""
    client.set(key(room), now_ms(), ex=int(seconds))


def deleted_at(client, room):
    """When ``room`` was deleted (ms) if that is recent, else None: ask only about an unused
    name (a room created since under the name is that room, not the deleted one)."""
    found = client.get(key(room))
    return int(found) if found and found.isdigit() else None
