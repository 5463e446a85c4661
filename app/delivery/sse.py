"""Server-sent event framing: pure functions from values to bytes."""
import re

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def retry(ms):
    """Tell the EventSource how long to wait before reconnecting."""
    return b"retry: %d\n\n" % int(ms)


def comment(text):
    """A comment line: keeps proxies from timing out and finds dead clients."""
    return b": " + _one_line(text).encode() + b"\n\n"


def event(name, data, event_id=None):
    """Frame one event; every line of ``data`` gets its own ``data:`` field."""
    parts = [b"event: " + _one_line(name).encode() + b"\n"]
    if event_id is not None:
        parts.append(b"id: " + _one_line(event_id).encode() + b"\n")
    for line in _LINE_BREAK.split(data):
        parts.append(b"data: " + line.encode() + b"\n")
    parts.append(b"\n")
    return b"".join(parts)


# Live frames are built with one %-format each (stream.relay's hot loop). Ids are cursors:
# "<room id>" + ("" or ".<direct id>"); payloads are one line of JSON (json escapes CR and LF).
MESSAGE_FRAME = b"event: message\nid: %s%s\ndata: %s\n\n"
DIRECT_FRAME = b"event: direct\nid: %s%s\ndata: %s\n\n"
UNNUMBERED_FRAME = b"event: %s\ndata: %s\n\n"
# A numbered room event that is not a message (edit, delete, reaction): it moves the cursor too.
EVENT_FRAME = b"event: %s\nid: %s%s\ndata: %s\n\n"  # presence: no id, not part of the cursor
# The keep-alive: a comment for proxies and for clients that count them, and an unnumbered
# "ping" event, because comments never reach an EventSource's script: a page can only notice a
# silent (dead) connection by what it hears. No id, so it never moves a cursor.
PING = b": keep-alive\nevent: ping\ndata:\n\n"


def message_frame(cursor, payload):
    """Frame a stored message; ``payload`` is one line of JSON bytes (json escapes CR and LF)."""
    return MESSAGE_FRAME % (cursor, b"", payload)


def direct_frame(cursor, payload):
    """Frame a stored direct message; the cursor covers the room and the person's messages."""
    return DIRECT_FRAME % (cursor, b"", payload)


def _one_line(text):
    # A field value cannot hold a line break: it would end the field and could forge another.
    return _LINE_BREAK.sub(" ", str(text)).replace("\0", "")
