"""Room names, Redis key names and the opaque stream cursor.

Every key and channel of a room carries the same hash tag ``{r:<room>}`` so a Redis Cluster keeps
them in one slot: the store-and-publish script then runs on a single node.
"""
import functools
import re
import unicodedata

from ..people.names import _ignorable as _invisible

MAX_ROOM_CHARS = 64
# Marks a sentence for the catalogue (`make messages`); the web layer answers in the reader's
# language (app/web/i18n.py: translate). This package imports nothing from Flask.
N_ = str
# The one sentence for the rule, wherever a room name is refused.
ROOM_RULE = N_("Room names are 1-64 letters or digits of any script (技术交流, café-2, ...), with - and _ "
               "after the first; no spaces, punctuation or invisible characters.")
_STREAM_ID_RE = re.compile(r"(\d{1,20})-(\d{1,20})", re.ASCII)  # not ١-٢ or １-２: Redis refuses them

ROOMS_INDEX = "ripple:rooms"  # sorted set: room -> last activity (ms); a lobby index only


def canonical_room(name):
    """Return the canonical form of room name ``name`` (str), or None if it breaks the rule.

    The rule: 1-64 characters after NFKC normalisation and case folding (so "Lobby", "ＬＯＢＢＹ"
    and "lobby" are one room); the first a letter or digit (Unicode categories L*, N*) of any
    script, the rest letters, digits, combining marks (M*: scripts such as Devanagari need
    them), "-" or "_". Spaces, punctuation, controls, bidi controls and invisible characters
    (Default_Ignorable_Code_Point, app/people/names.py) are refused: a room's name is part of URLs and
    Redis keys, and must look like what it is.
    """
    if not isinstance(name, str) or not name or len(name) > 4 * MAX_ROOM_CHARS:
        return None
    return _canonical(name)


# A worker meets the same few room names on every open and post (a reload storm: 10,000 opens of
# ten rooms), and the rule's two normalisations and per-character look-ups were ~2 % of a new
# worker's CPU then (py-spy, docs/performance.md "Session 20"). A name here is at most 256
# characters, so the memo holds ~5 MB at worst and a few KB for a site's real rooms.
@functools.lru_cache(maxsize=4096)
def _canonical(name):
    canon = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    if not 1 <= len(canon) <= MAX_ROOM_CHARS or unicodedata.category(canon[0])[0] not in "LN":
        return None
    for ch in canon:
        if _invisible(ch) or (ch not in "-_" and unicodedata.category(ch)[0] not in "LNM"):
            return None
    return canon


def valid_room(name):
    """Tell whether ``name`` is a room name in its canonical form (see canonical_room)."""
    return canonical_room(name) == name


class RoomKeys:
    """The Redis names one room uses, all in one cluster hash slot."""

    __slots__ = ("room", "log", "channel", "meta", "tag", "online", "online_names", "online_guests", "changed",
                 "activity", "deleted", "people", "seen", "presence_batch", "presence_hold", "gone")

    def __init__(self, room):
        self.room = room
        self.tag = "ripple:{r:%s}" % room
        self.log = self.tag + ":log"          # Stream: the room's history
        self.channel = self.tag + ":live"     # pub/sub: "<id>\n<json>" messages, "!<event>\n<json>"
        self.meta = self.tag + ":meta"        # hash: trimmed (newest dropped id), count
        self.online = self.tag + ":online"    # sorted set: "<name>\n<connection>" -> expiry (ms)
        # The names announced present and not yet announced gone (sorted set, all scores 0: read
        # in byte order), and the guests among them (set): a join reads these, not every
        # connection (app/people/presence.py).
        self.online_names = self.tag + ":online:names"
        self.online_guests = self.tag + ":online:guests"
        # List: a big room's presence announcements waiting to go out together (app/people/presence.py).
        self.presence_batch = self.tag + ":presence-batch"
        self.presence_hold = self.tag + ":presence-hold"  # set for an interval after one went out
        # Sorted set (all scores 0, read by lex): "<padded id>|<message json>", the current
        # version of every message edited, deleted or reacted to (app/rooms/conversation.py).
        self.changed = self.tag + ":changed"
        # Read positions and mentions (app/people/reading.py, app/rooms/mentions.py):
        self.activity = self.tag + ":activity"  # pub/sub: "!activity\n<json>" per message, for sidebars
        self.deleted = self.tag + ":deleted"  # sorted set: deleted message id -> its id score (reading.score)
        self.people = self.tag + ":people"    # hash: folded name -> {"name", "reader"} (who was here)
        self.seen = self.tag + ":people:seen"  # sorted set: folded name -> ms last here (caps ``people``)
        # string: the last id a deleted room of this name gave (app/rooms/records.py RecordKeys.gone,
        # the same key): a new log of the name starts past it (app/rooms/store.py _PUBLISH_LUA).
        self.gone = self.tag + ":gone"

    def idempotency(self, digest):
        return self.tag + ":idem:" + digest

    def typing(self, who):
        """The throttle key of one person's typing signals (expires after the interval)."""
        return self.tag + ":typing:" + who


@functools.lru_cache(maxsize=1024)
def room_keys(room):
    """The RoomKeys of canonical ``room``, one shared by every caller (never change it): what
    holds a room's keys for a stream's life takes these. 10,000 streams of ten rooms kept
    10,000 copies of the same sixteen names, ~1.1 KB a stream (tracemalloc,
    docs/performance.md "Session 20")."""
    return RoomKeys(room)


class PersonKeys:
    """The Redis names of one signed-in session's direct messages, all in one slot.

    Keyed by session id, not by name: a name freed and claimed by someone else later must not
    inherit the previous holder's messages.
    """

    __slots__ = ("tag", "log", "channel", "meta", "streams", "session", "changed", "gone")

    def __init__(self, sid):
        self.tag = "ripple:{u:%s}" % sid
        self.log = self.tag + ":dm"            # Stream: direct messages to and from this person
        self.channel = self.tag + ":live"      # pub/sub: "@<id>\n<json>", "!signed-out\n<json>"
        self.meta = self.tag + ":meta"         # hash: trimmed
        self.streams = self.tag + ":streams"   # sorted set: connection -> expiry (ms)
        self.session = self.tag + ":session"   # string: {"name"} while the session stands
        self.changed = self.tag + ":changed"   # never written: direct messages are not changed
        self.gone = self.tag + ":gone"         # never written: a person's log is no deleted room's

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


def id_score(mid):
    """A stream id (str) as a sorted-set score that keeps id order: ms * 1024 + seq (seq capped
    at 1023: a double holds it exactly until the year 2248). Read positions, mentions and
    deleted messages are counted by it (app/people/reading.py)."""
    ms, _, seq = mid.partition("-")
    return int(ms) * 1024 + min(int(seq or 0), 1023)


def unpadded(text):
    """The stream id (str) of ``padded``'s fixed-width text."""
    ms, _, seq = text.partition("-")
    return "%d-%d" % (int(ms), int(seq))


def padded(mid):
    """A stream id (str) as fixed-width text that sorts like the id (a changed message's key)."""
    ms, _, seq = mid.partition("-")
    return "%s-%s" % (ms.rjust(20, "0"), seq.rjust(20, "0"))


def parse_cursor(text):
    """Read a stream cursor as (room id, direct id or None); None if it is not one.

    A cursor is opaque to clients: ``<room id>`` for a stream without a person, or
    ``<room id>.<direct id>`` where it also carries the person's direct messages.
    Callers treat None as "now".
    """
    if not text or len(text) > 100:
        return None
    room_part, dot, direct_part = text.strip().partition(".")
    room_id = parse_stream_id(room_part)
    if room_id is None:
        return None
    if not dot:
        return room_id, None
    direct_id = parse_stream_id(direct_part)
    return None if direct_id is None else (room_id, direct_id)

