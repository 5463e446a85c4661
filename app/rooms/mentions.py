"""@mentions: which known names a message's text calls, resolved once, when it is stored.

The known names of a room are the people who opened or posted in it while signed in (its
``people`` hash: folded name -> {"name", "reader"}, app/people/reading.py ``visit``; the most
recently seen RIPPLE_ROOM_MENTION_NAMES_MAX of them, so a room's crowd cannot grow it without
end). After each
``@`` (or a full-width ``＠``) the longest run of text that folds (app/names.py ``fold``: case-,
width- and look-alike-insensitive, as name claims compare) to a known name is a mention, if it
ends where a word ends: at a space, punctuation or the end, or anywhere next to a CJK character
(Chinese and Japanese are written without spaces: "@小明你好" mentions 小明). The stored message
carries the names as they are known (``"mentions": ["小明"]``); the people mentioned get the
mention counted (app/people/reading.py ``mentioned``).

One round trip per message that has an ``@``: every candidate is asked for in one HMGET.
"""
import json
import logging
import unicodedata

from ..people import names
from . import keys

logger = logging.getLogger(__name__)

MAX_ATS = 10  # "@"s looked at per message: a wall of them costs no more than this
AT_SIGNS = "@＠"


def candidates(text):
    """Yield (position of the "@", folded candidate, its length) for each possible mention, the
    longest candidates first for each "@"."""
    seen = 0
    for i, ch in enumerate(text):
        if ch not in AT_SIGNS:
            continue
        if i and _wordy(text[i - 1]) and not _wide(text[i - 1]):
            continue  # ann@example.com is an address, not a mention
        seen += 1
        if seen > MAX_ATS:
            return
        segment = text[i + 1:i + 1 + names.MAX_CHARS].split("\n", 1)[0]
        for end in range(len(segment), 0, -1):
            if segment[end - 1].isspace() or not _ends_word(segment, end):
                continue
            yield i, names.fold(segment[:end]), end


def _ends_word(segment, end):
    if end == len(segment):
        return True
    after = segment[end]
    return not _wordy(after) or _wide(after) or _wide(segment[end - 1])


def _wordy(ch):
    return unicodedata.category(ch)[0] in "LNM"


def _wide(ch):
    return unicodedata.east_asian_width(ch) in ("W", "F")


class Mentions:
    """Resolves mentions against a room's known names; hands them to ``record`` once stored."""

    def __init__(self, client, record, forget=None):
        self.redis = client
        self._record = record  # (room, message id, [reader ids]) -> None
        self._forget = forget  # the same, when the message is deleted

    def resolve(self, room, text, author):
        """The people ``text`` mentions, in order of first mention: [{"name", "reader"}]. The
        author mentioning themselves is left out. Raises redis.RedisError."""
        if not any(at in text for at in AT_SIGNS):
            return []
        found = list(candidates(text))
        if not found:
            return []
        wanted = list(dict.fromkeys(folded for _, folded, _ in found))
        known = dict(zip(wanted, self.redis.hmget(keys.RoomKeys(room).people, wanted)))
        me = names.fold(author)
        out, taken, skip_to = [], set(), -1
        for at, folded, length in found:  # per "@", longest first: the first known one wins
            if at <= skip_to or known.get(folded) is None:
                continue
            skip_to = at + length  # an "@" inside this mention is part of it
            if folded == me or folded in taken:
                continue
            try:
                person = json.loads(known[folded])
            except ValueError:
                continue
            taken.add(folded)
            out.append({"name": person["name"], "reader": person["reader"]})
        return out

    def record(self, room, mid, mentioned):
        """Count a stored message's mentions for the people it mentions (best effort: the
        message is stored and published already)."""
        try:
            self._record(room, mid, [person["reader"] for person in mentioned])
        except Exception:  # noqa: BLE001 - a lost count must not fail a stored post; logged
            logger.warning("could not record mentions room=%s id=%s", room, mid, exc_info=True)

    def forget(self, room, mid, names_mentioned):
        """A deleted message mentions no one any more: its mentions stop counting and leave the
        Mentions pages (best effort, like ``record``)."""
        if self._forget is None or not names_mentioned:
            return
        try:
            folded = [names.fold(name) for name in names_mentioned]
            found = self.redis.hmget(keys.RoomKeys(room).people, folded)
            readers = [json.loads(raw)["reader"] for raw in found if raw]
            if readers:
                self._forget(room, mid, readers)
        except Exception:  # noqa: BLE001 - the deletion is done; a stale count is logged
            logger.warning("could not forget mentions room=%s id=%s", room, mid, exc_info=True)
