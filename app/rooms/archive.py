"""A room's history as NDJSON, out and back in: ``flask --app app rooms export ROOM`` and
``rooms import ROOM``.

Export writes one message per line, oldest first, as history pages show it: its id, its
author's name and stable id (``uid``), edits applied, deleted messages as
``{"deleted": true, "text": ""}``, the log's change events left out. Import restores such a file
into a room with no history, keeping every id, so a cursor a client holds stays valid: it
resumes exactly after the message it saw last (even when the room was deleted in between: the
import lifts the deleted room's refusal of its cursors).
"""
import json

from . import keys, records

PAGE = 200


class NotEmpty(Exception):
    """Import refused: the room has history already."""


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
    ids kept, in order. Returns how many. Raises NotEmpty, or BadLine before storing anything."""
    k = keys.RoomKeys(room)
    if client.exists(k.log):
        raise NotEmpty(room)
    entries, last = [], (0, 0)
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
        message.pop("id")
        message.pop("ts", None)
        message["room"] = room
        body = json.dumps(message, ensure_ascii=False, separators=(",", ":"))[1:]
        entries.append((keys.format_stream_id(mid), body))
    with client.pipeline(transaction=True) as pipe:  # one slot: all or nothing
        for mid, body in entries:
            pipe.xadd(k.log, {"m": body}, id=mid)
        pipe.hset(k.meta, "count", len(entries))
        # A room deleted before (its export's round trip): its history is back, so are its cursors.
        pipe.delete(records.RecordKeys(room).gone)
        pipe.execute()
    return len(entries)
