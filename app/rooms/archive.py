"""A room's history as NDJSON, out and back in: ``flask --app app rooms export ROOM`` and
``rooms import ROOM``.

Export writes one message per line, oldest first, as history pages show it: its id, its
author's name and stable id (``uid``), edits applied, deleted messages as
``{"deleted": true, "text": ""}``, the log's change events left out. Import restores such a file
into a room with no history, keeping every id, so a cursor a client holds stays valid: it
resumes exactly after the message it saw last (even when the room was deleted in between: the
import lifts the deleted room's refusal of its cursors).

A name deleted lately keeps its tombstone, the last id its history gave (app/rooms/moderation.py
``delete``, records.deleted_since): cursors up to it are the deleted room's. Only that room's
own export (its messages name the room) may come back at or below it, and then its cursors are
valid again and the log's next id still comes after the tombstone (as a new room's does:
app/rooms/store.py). Any other file must begin after the tombstone (Tombstoned), which then
stands: kept ids of another room there would take the deleted room's cursors for its own.
"""
import json

from . import keys

PAGE = 200


class NotEmpty(Exception):
    """Import refused: the room has history already."""


class Tombstoned(Exception):
    """Import refused: the name's room was deleted lately (``gone``: the last id it gave,
    ``seconds``: how long its tombstone stands yet), and the file, not that room's own, has ids
    at or below it."""

    def __init__(self, gone, seconds):
        super().__init__(gone)
        self.gone, self.seconds = gone, seconds


class BadLine(ValueError):
    """A line of the file that is not a message: ``line`` is its number (1-based)."""

    def __init__(self, line, why):
        super().__init__("line %d: %s" % (line, why))
        self.line = line


def export(store, room):
    """Yield the room's messages (JSON text), oldest first, page by page."""
    after = (0, 0)
    while True:
        found, _, more_after = store.window(room, after=after, limit=PAGE)
        for message in found:
            yield message
        if not found or not more_after:
            return
        after = keys.parse_stream_id(json.loads(found[-1])["id"])


def import_lines(client, room, lines):
    """Store NDJSON ``lines`` (message JSON with "id") in ``room``, which must have no history:
    ids kept, in order. Returns how many. Raises NotEmpty, Tombstoned, or BadLine, each before
    storing anything."""
    k = keys.RoomKeys(room)
    if client.exists(k.log):
        raise NotEmpty(room)
    entries, last, own = [], (0, 0), True
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except ValueError:
            raise BadLine(number, "not JSON") from None
        mid = keys.parse_stream_id(message.get("id", "") if isinstance(message, dict) else "")
        if mid is None or mid <= last or mid == (0, 0):
            raise BadLine(number, "no message id, or not after the one before")
        last = mid
        own = own and message.get("room") == room
        message.pop("id")
        message.pop("ts", None)
        message["room"] = room
        body = json.dumps(message, ensure_ascii=False, separators=(",", ":"))[1:]
        entries.append((keys.format_stream_id(mid), body))
    own = own and bool(entries)
    gone = keys.parse_stream_id(client.get(k.gone) or "")
    if gone is not None and entries and keys.parse_stream_id(entries[0][0]) <= gone and not own:
        raise Tombstoned(keys.format_stream_id(gone), max(0, client.ttl(k.gone)))
    with client.pipeline(transaction=True) as pipe:  # one slot: all or nothing
        for mid, body in entries:
            pipe.xadd(k.log, {"m": body}, id=mid)
        if gone is not None and own and last < gone:
            # The rest of the deleted history is not in the file: new posts still come after
            # every id it gave (_PUBLISH_LUA's way), whatever the clock of this master.
            pipe.xadd(k.log, {"s": ""}, id=keys.format_stream_id(gone))
            pipe.xdel(k.log, keys.format_stream_id(gone))
        pipe.hset(k.meta, "count", len(entries))
        if own:  # the deleted room's own export (a round trip): its history is back, so are its cursors
            pipe.delete(k.gone)
        pipe.execute()
    return len(entries)
