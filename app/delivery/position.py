"""Where one stream is in its logs, and the rules that move it: order, dedupe, gap detection.

A stream follows one room's log and, for a signed-in person, that person's direct-message log.
Its position is the newest id it has sent from each, as the bytes Redis formats them
(``b"1732371730000-0"``); the SSE cursor is ``<room id>`` or ``<room id>.<direct id>``.

Every published payload names the id before it in the same log (see app/rooms/store.py):

    b"<id> <previous id>\\n<message json>"     a room message
    b"@<id> <previous id>\\n<message json>"    a direct message
    b"~<id> <previous id> <event name>\\n<json>"  a room's change event (edit, delete,
                                              reaction): numbered like a message
    b"!<event name>\\n<json>"                  an unnumbered event (presence): no id, no cursor
    b"!#<verb>\\n<argument>"                   a control payload for the streams themselves
                                              (never relayed): see ``controls``

So on the live path one bytes comparison proves continuity: the payload's previous id is the id
this stream sent last. Anything else is either old (already sent from history: dropped) or a gap
(pub/sub lost something, or a message was stored without being published): the position stops
taking that log's messages from the batch and flags it, and the stream reads the missing range
from Redis (``fill``) before it goes on. Nothing here does I/O or knows about Flask.
"""
from . import sse

UNNUMBERED = 0x21  # "!": an event without an id (presence)
CONTROL = 0x23     # "!#": a control payload, kept for the stream (after "!", off the hot path)
DIRECT = 0x40      # "@": a direct message
CHANGE = 0x7E      # "~": a room's change event (app/rooms/conversation.py)


def id_pair(mid):
    """Return a stream id (bytes or str, ``"<ms>-<seq>"``) as an ``(ms, seq)`` tuple of ints."""
    ms, _, seq = mid.partition(b"-" if isinstance(mid, bytes) else "-")
    return int(ms), int(seq)


class Position:
    """The newest room and direct ids a stream has sent, and what it owes after a gap.

    ``room_id``/``direct_id`` are bytes ids (``direct_id`` is None for a stream without a
    person). After ``take``, ``room_gap``/``direct_gap`` tell that a log has a gap the caller
    must fill from storage (``fill``) before the next ``take``; ``newest_ms`` is the ms part of
    the newest message taken (bytes, for latency sampling), or b"". ``controls`` collects the
    control payloads taken (``(verb, argument)`` bytes pairs) for the caller to act on and clear.
    """

    __slots__ = ("room_id", "direct_id", "tail", "room_gap", "direct_gap", "newest_ms", "controls")

    def __init__(self, room_id, direct_id=None):
        self.room_id = room_id
        self.direct_id = direct_id
        self.tail = b"" if direct_id is None else b"." + direct_id  # the cursor's direct part
        self.room_gap = self.direct_gap = False
        self.newest_ms = b""
        self.controls = []

    def cursor(self):
        """The SSE id of the position: ``b"<room id>"`` or ``b"<room id>.<direct id>"``."""
        return self.room_id + self.tail

    def take(self, batch):
        """Frame the payloads of one wake-up (a list of bytes) that continue the logs.

        Returns the SSE frames (bytes) in order. Payloads already sent are skipped; the first
        payload that does not follow a log's position flags that log's gap, and the rest of that
        log's payloads in the batch are left to ``fill`` (they are stored: a payload is
        published only after it is stored).
        """
        frames = []
        newest = b""
        message_frame, direct_frame = sse.MESSAGE_FRAME, sse.DIRECT_FRAME
        for data in batch:  # the hot path: split the header, compare bytes, frame as they are
            nl = data.find(b"\n")
            kind = data[0]
            if kind == UNNUMBERED:
                if data[1] == CONTROL:
                    self.controls.append((data[2:nl], data[nl + 1:]))
                else:
                    frames.append(sse.UNNUMBERED_FRAME % (data[1:nl], data[nl + 1:]))
                continue
            if kind == DIRECT:
                if self.direct_id is None or self.direct_gap:
                    continue
                mid, _, prev = data[1:nl].partition(b" ")
                if prev != self.direct_id and not self._direct_follows(mid):
                    continue
                self.direct_id, self.tail = mid, b"." + mid
                frames.append(direct_frame % (self.room_id, self.tail, data[nl + 1:]))
            elif kind == CHANGE:
                if self.room_gap:
                    continue
                mid, prev, name = data[1:nl].split(b" ", 2)
                if prev != self.room_id and not self._room_follows(mid):
                    continue
                self.room_id = mid
                frames.append(sse.EVENT_FRAME % (name, mid, self.tail, data[nl + 1:]))
            else:
                if self.room_gap:
                    continue
                mid, _, prev = data[:nl].partition(b" ")
                if prev != self.room_id and not self._room_follows(mid):
                    continue
                self.room_id = mid
                frames.append(message_frame % (mid, self.tail, data[nl + 1:]))
            newest = mid
        if newest:
            self.newest_ms = newest.partition(b"-")[0]
        return frames

    def _room_follows(self, mid):
        # Off the hot path: the payload did not chain on. Old news, or a gap?
        if id_pair(mid) > id_pair(self.room_id):
            self.room_gap = True
        return False

    def _direct_follows(self, mid):
        if id_pair(mid) > id_pair(self.direct_id):
            self.direct_gap = True
        return False

    def fill_room(self, entries):
        """Frame stored room messages ``[(id str, json str), ...]`` oldest first, and change
        events ``(id, json, event name)`` among them; those at or before the position are
        skipped. Clears the room gap."""
        self.room_gap = False
        frames = []
        current = id_pair(self.room_id)
        for entry in entries:
            mid, body = entry[0], entry[1]
            pair = id_pair(mid)
            if pair <= current:
                continue
            current, self.room_id = pair, mid.encode()
            if len(entry) > 2:
                frames.append(sse.EVENT_FRAME % (entry[2].encode(), self.room_id, self.tail, body.encode()))
            else:
                frames.append(sse.MESSAGE_FRAME % (self.room_id, self.tail, body.encode()))
        return frames

    def fill_direct(self, entries):
        """The same for stored direct messages; clears the direct gap."""
        self.direct_gap = False
        frames = []
        current = id_pair(self.direct_id) if self.direct_id is not None else (0, 0)
        for mid, body, *_ in entries:
            pair = id_pair(mid)
            if pair <= current:
                continue
            current, self.direct_id = pair, mid.encode()
            self.tail = b"." + self.direct_id
            frames.append(sse.DIRECT_FRAME % (self.room_id, self.tail, body.encode()))
        return frames

    def catch_up(self, room_head, direct_head=None):
        """Move to the logs' newest ids (bytes) once a replay has sent everything before them."""
        self.room_id = room_head
        if direct_head is not None:
            self.direct_id, self.tail = direct_head, b"." + direct_head

    def room_behind(self, head):
        """Tell whether the room log's newest id ``head`` (bytes) is past the position."""
        return id_pair(head) > id_pair(self.room_id)

    def direct_behind(self, head):
        """Tell whether the direct log's newest id ``head`` (bytes) is past the position."""
        return self.direct_id is not None and id_pair(head) > id_pair(self.direct_id)
