"""The shape of a chat message and the checks a posted one must pass."""
import hashlib
import json
import unicodedata

MAX_NAME_CHARS = 32
MAX_IDEMPOTENCY_KEY_CHARS = 128

# Text may hold newlines and tabs; other C0/C1 controls are noise or terminal tricks.
_ALLOWED_CONTROLS = {"\n", "\t", "\r"}


class Invalid(ValueError):
    """A posted message that cannot be stored; ``status`` is the HTTP answer."""

    def __init__(self, message, status=422):
        super().__init__(message)
        self.status = status


def check_text(text, max_chars):
    """Return the text to store, or raise Invalid with a sentence for the person."""
    if not isinstance(text, str):
        raise Invalid("Message text must be a string.", 400)
    if not text.strip():
        raise Invalid("Message text is empty.")
    if len(text) > max_chars:
        raise Invalid("Message is too long: %d characters, the limit is %d." % (len(text), max_chars))
    if not _encodable(text):
        raise Invalid("Message text is not valid Unicode.", 400)
    if any(_is_control(ch) and ch not in _ALLOWED_CONTROLS for ch in text):
        raise Invalid("Message text contains control characters.")
    return text


def check_name(name):
    """Return a trimmed display name (1-32 characters, any script, no controls), or raise Invalid."""
    if not isinstance(name, str):
        raise Invalid("Name must be a string.", 400)
    name = name.strip()
    if not name:
        raise Invalid("Name is empty.")
    if len(name) > MAX_NAME_CHARS:
        raise Invalid("Name is too long: the limit is %d characters." % MAX_NAME_CHARS)
    if not _encodable(name) or any(_is_control(ch) or _is_bidi_control(ch) for ch in name):
        raise Invalid("Name contains control characters.")
    return name


def check_idempotency_key(key):
    """Return a usable idempotency key or None; reject keys that are not printable ASCII."""
    if key is None or key == "":
        return None
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS or not key.isascii() or not key.isprintable():
        raise Invalid("Idempotency key must be 1-%d printable ASCII characters." % MAX_IDEMPOTENCY_KEY_CHARS, 400)
    return key


def idempotency_digest(user, key):
    """Scope a client's key to its sender, so two people's keys never collide."""
    return hashlib.sha256(("%s\0%s" % (user, key)).encode()).hexdigest()[:32]


def body(room, user, text):
    """The stored part of a message: JSON without its leading brace.

    The store prepends ``{"id":"<id>","ts":<ms>,`` once Redis has assigned the id, so the
    published frame and every history read are built the same way, without decoding.
    """
    return json.dumps({"room": room, "user": user, "text": text},
                      ensure_ascii=False, separators=(",", ":"))[1:]


def direct_body(sender, recipient, text):
    """The stored part of a direct message (see ``body``)."""
    return json.dumps({"from": sender, "to": recipient, "text": text},
                      ensure_ascii=False, separators=(",", ":"))[1:]


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


def _is_bidi_control(ch):
    # Overrides and isolates could make a name render as someone else's.
    return ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
