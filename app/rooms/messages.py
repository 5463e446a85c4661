"""The shape of a chat message and the checks a posted one must pass."""
import hashlib
import json
import re
import unicodedata

from ..people import names

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

MAX_NAME_CHARS = names.MAX_CHARS
MAX_IDEMPOTENCY_KEY_CHARS = 128

# Text may hold newlines and tabs; other C0/C1 controls are noise or terminal tricks.
_ALLOWED_CONTROLS = {"\n", "\t", "\r"}
# Whitespace-only lines before the first line with text ("\s" is Unicode-aware: NBSP, ideographic).
_LEADING_BLANK_LINES = re.compile(r"\A(?:[^\S\n]*\n)+")


class Invalid(ValueError):
    """A posted message that cannot be stored; ``status`` is the HTTP answer, ``code`` a stable
    name for it where one is given."""

    def __init__(self, message, status=422, code=None):
        super().__init__(message)
        self.status, self.code = status, code


def check_text(text, max_chars):
    """Return the text to store, or raise Invalid with a sentence for the person.

    Whitespace-only lines before and after the text are dropped (and trailing spaces), so a
    paste's stray blank lines never store as empty space; indentation and blank lines inside the
    text are kept as typed. The limit applies to what is stored.
    """
    if text is None:  # no "text" at all (an empty body, {}): say so, not that it is no string
        raise Invalid(N_("Message text is missing: send it as \"text\"."), 400, "text_missing")
    if not isinstance(text, str):
        raise Invalid(N_("Message text must be a string."), 400, "text_type")
    if _blank(text):
        raise Invalid(N_("Message text is empty."), code="text_empty")
    if not _encodable(text):
        raise Invalid(N_("Message text is not valid Unicode."), 400, "text_unicode")
    # Checked before trimming: some controls (\x1c-\x1f) count as whitespace.
    if any(_is_control(ch) and ch not in _ALLOWED_CONTROLS for ch in text):
        raise Invalid(N_("Message text contains control characters."), code="text_control")
    text = trim_blank_lines(text)
    if len(text) > max_chars:
        raise Invalid(N_("Message is too long: %d characters, the limit is %d.") % (len(text), max_chars),
                      code="text_too_long")
    return text


def _blank(text):
    """Whether ``text`` shows nothing: only whitespace and invisible characters (zero-width
    spaces and joiners, variation selectors, fillers: Default_Ignorable_Code_Point)."""
    shown = text.strip()
    # A message that shows something almost always starts with it: one look, not a scan.
    return not shown or (names._ignorable(shown[0]) and all(ch.isspace() or names._ignorable(ch) for ch in shown))


def trim_blank_lines(text):
    """Drop whitespace-only lines at the start and all whitespace at the end; keep the rest."""
    return _LEADING_BLANK_LINES.sub("", text).rstrip()


def check_name(name):
    """Return a trimmed display name (1-32 characters, any script), or raise Invalid.

    The one name rule (app/people/names.py ``problem``): nothing invisible, no separators, controls,
    private-use or unassigned characters, something visible. Every entry point calls this.
    """
    if not isinstance(name, str):
        raise Invalid(names.SENTENCES["type"], 400, "bad_name")
    name = name.strip()
    error = names.problem(name)
    if error:
        raise Invalid(error, code="bad_name")
    return name


def check_idempotency_key(key):
    """Return a usable idempotency key or None; reject keys that are not printable ASCII."""
    if key is None or key == "":
        return None
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS or not key.isascii() or not key.isprintable():
        raise Invalid(N_("Idempotency key must be 1-%d printable ASCII characters.") % MAX_IDEMPOTENCY_KEY_CHARS,
                      400, "bad_idempotency_key")
    return key


GLOBAL_UID = "token:global"  # RIPPLE_PUBLISH_TOKEN's messages' uid: the operator's, for any name


def idempotency_scope(user, uid=None):
    """Who a client's idempotency key belongs to: the sender's stable id (``uid``: a person's
    account or guest id, "jwt:<sub>", a scoped token's "token:<id>"), so two senders of one
    display name (two bots posting as "ci", a bot and the operator) never share keys. A sender
    without a stable id of its own (the global publish token, which posts as any name; the CLI)
    is scoped by the name it posts as: "name:<user>"."""
    return uid if uid and uid != GLOBAL_UID else "name:" + user


KEYS_DIFFER = N_("The Idempotency-Key header and the body's \"idempotency_key\" differ: send one of them, "
                 "or the same key in both.")


def body_idempotency_key(field, header):
    """The idempotency key of a JSON post: its body's ``"idempotency_key"`` (``field``) or the
    ``Idempotency-Key`` header (``header``), twins (an empty one counts as none); raises Invalid
    (400 "idempotency_key_conflict") when both are given and differ, or the field is no string."""
    if field is not None and not isinstance(field, str):
        raise Invalid(N_("idempotency_key must be a string of 1-%d printable ASCII characters.")
                      % MAX_IDEMPOTENCY_KEY_CHARS, 400, "bad_idempotency_key")
    field, header = field or None, header or None
    if field is not None and header is not None and field != header:
        raise Invalid(KEYS_DIFFER, 400, "idempotency_key_conflict")
    return field if field is not None else header


def idempotency_digest(scope, key):
    """Scope a client's key to its sender (``idempotency_scope``), so two senders' keys never
    collide: a name-scoped sender's too (the global token, the CLI), or a bot posting as its
    name would find the operator's message under the old by-name form that everyone reads for
    a day after an upgrade (legacy_idempotency_digest)."""
    return hashlib.sha256(("v2\0%s\0%s" % (scope, key)).encode()).hexdigest()[:32]


def legacy_idempotency_digest(user, key):
    """The key's digest as the release before scoped keys by display name alone (``user``): a
    retry that reaches an upgraded host still finds the original an older one stored, within the
    idempotency TTL (app/rooms/store.py _PUBLISH_LUA). Read, never written: once the
    previous release's keys expire (24 hours after the upgrade) nothing is found under it, and
    the next release stops reading it (docs/deployment.md)."""
    return hashlib.sha256(("%s\0%s" % (user, key)).encode()).hexdigest()[:32]


# The IETF's Idempotency-Key draft (draft-ietf-httpapi-idempotency-key-header, 2.7): a key
# reused with a different payload is answered 422, not with the first request's result.
KEY_REUSED = N_("This idempotency key was already used for a different message. "
                "Send a new message with a new key.")


def request_digest(*parts):
    """A digest (16 hex characters, str) of what a post asks to store: its text, and what it
    answers or whom it is for (str parts). Kept beside the idempotency key's stored id, so the
    key reused for another message is refused (KeyReused) instead of answered with the first."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def form_key(key, text, reply_to=None):
    """The idempotency key of a post from the plain HTML form (no JavaScript): the page's key
    with the text and what it answers. The same form sent twice (a retry, a double click) stores
    once; the text changed after a failed send is a new message, as the scripted composer
    decides (static/js/form.js), and is held by slow mode like any new post."""
    return "form-" + hashlib.sha256(("%s\0%s\0%s" % (key, text, reply_to or "")).encode()).hexdigest()[:32]


class KeyReused(Invalid):
    """The idempotency key already stored a different message (422, ``idempotency_key_reused``)."""

    def __init__(self):
        super().__init__(KEY_REUSED, 422, "idempotency_key_reused")


WITHDRAWN = N_("This message was withdrawn before it was stored, so it was not sent. "
              "To send it after all, send it again as a new message.")

NO_WITHDRAWING = N_("This server keeps no idempotency keys (RIPPLE_IDEMPOTENCY_SECONDS=0), so a post "
                    "cannot be withdrawn: it may have been sent.")


WITHDRAW_IN_FLIGHT = N_("This message is being sent at this moment; ask again shortly whether it was.")
WITHDRAW_UNKNOWN = N_("An attempt to send this message failed on its way: it may have reached them, so it "
                      "cannot be withdrawn.")


class Withdrawn(Invalid):
    """The idempotency key was withdrawn before anything was stored under it (409,
    ``withdrawn``): the post is never stored (app/rooms/store.py Store.withdraw)."""

    def __init__(self):
        super().__init__(WITHDRAWN, 409, "withdrawn")


QUOTE_CHARS = 120  # characters of a reply's quote: the first line of what it answers


def quote(message):
    """A reply's quote of ``message`` (a dict): {"id", "user", "text": its first line, cut to
    QUOTE_CHARS}, or {"id", "user", "text": "", "deleted": true} once it is deleted."""
    if message.get("deleted"):
        return {"id": message["id"], "user": message.get("user", ""), "text": "", "deleted": True}
    line = message.get("text", "").split("\n", 1)[0]
    if len(line) > QUOTE_CHARS:
        line = line[:QUOTE_CHARS - 1] + "…"
    return {"id": message["id"], "user": message.get("user", ""), "text": line}


def body(room, user, text, bot=False, uid=None, reply_to=None, mentions=None):
    """The stored part of a message: JSON without its leading brace.

    The store prepends ``{"id":"<id>","ts":<ms>,`` once Redis has assigned the id, so the
    published frame and every history read are built the same way, without decoding.
    ``bot``: sent by the service or another program (the publish token, the CLI), not by a
    signed-in person; stored as ``"bot":true`` and shown marked. ``uid``: the signed-in
    author's stable id (an account id, or "guest:<hash of the session>"), stored as ``"uid"``
    so a name that later passes to someone else can be told apart in history. ``reply_to``: the
    quote (``quote``) of the message this one answers. ``mentions``: the
    names the text mentions (app/rooms/mentions.py), stored as ``"mentions"`` when there are any.
    """
    fields = {"room": room, "user": user, "text": text}
    if bot:
        fields["bot"] = True
    if uid:
        fields["uid"] = uid
    if reply_to:
        fields["reply_to"] = reply_to
    if mentions:
        fields["mentions"] = list(mentions)
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))[1:]


def direct_body(sender, recipient, text, bot=False, uid=None):
    """The stored part of a direct message (see ``body``; ``uid``: the sender's stable id)."""
    fields = {"from": sender, "to": recipient, "text": text}
    if bot:
        fields["bot"] = True
    if uid:
        fields["uid"] = uid
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))[1:]


def assemble(stream_id, stored_body):
    """Rebuild the full message JSON from a stream id and its stored body."""
    return '{"id":"%s","ts":%s,%s' % (stream_id, stream_id.split("-", 1)[0], stored_body)


def _encodable(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from JSON "\ud800" escapes
        return False
    return True


def _is_control(ch):
    return unicodedata.category(ch) == "Cc"

