"""Room names, Redis key names and the opaque stream cursor.

Every key and channel of a room carries the same hash tag ``{r:<room>}`` so a Redis Cluster keeps
them in one slot: the store-and-publish script then runs on a single node.
"""
import re

ROOM_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_STREAM_ID_RE = re.compile(r"(\d{1,20})-(\d{1,20})")

ROOMS_INDEX = "ripple:rooms"  # sorted set: room -> last activity (ms); a lobby index only


def valid_room(name):
    """Tell whether a room name is 1-64 chars of a-z 0-9 _ -, starting with a letter or digit."""
    return isinstance(name, str) and ROOM_RE.fullmatch(name) is not None


class RoomKeys:
    """The Redis names one room uses, all in one cluster hash slot."""

    __slots__ = ("room", "log", "channel", "meta", "tag")

    def __init__(self, room):
        self.room = room
        self.tag = "ripple:{r:%s}" % room
        self.log = self.tag + ":log"          # Stream: the room's history
        self.channel = self.tag + ":live"     # pub/sub: stored messages, "<id>\n<json>"
        self.meta = self.tag + ":meta"        # hash: trimmed (newest dropped id), count, last

    def idempotency(self, digest):
        return self.tag + ":idem:" + digest


def parse_stream_id(text):
    """Return a Redis stream id as an (ms, seq) tuple, or None if it is not one."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    match = _STREAM_ID_RE.fullmatch(text or "")
    if match is None:
        return None
    ms, seq = int(match.group(1)), int(match.group(2))
    if ms >= 2**64 or seq >= 2**64:
        return None
    return ms, seq


def format_stream_id(pair):
    return "%d-%d" % pair


def parse_cursor(text):
    """Read a stream cursor; None for anything that is not one (callers treat that as "now").

    A cursor is opaque to clients. Today it is the id of the newest room message the client
    has, e.g. ``1732371730000-0``.
    """
    if not text or len(text) > 64:
        return None
    return parse_stream_id(text.strip())
