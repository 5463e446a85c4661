"""Where a form may send a person afterwards: the one check of every ``next`` target.

A redirect target that came from a request must stay on this site, or a link could send people
anywhere after they sign in (an open redirect). Prefix checks are not enough: browsers drop
tabs and newlines inside URLs and read ``\\`` as ``/``, so ``/\\t/evil.example`` becomes
``//evil.example`` (another host). The target is parsed instead, and only a plain local path
(with an optional query and fragment) of printable characters passes.
"""
from urllib.parse import urljoin, urlsplit

from werkzeug.urls import iri_to_uri

MAX_CHARS = 2048
_ORIGIN = "http://ripple.invalid"  # a stand-in origin to resolve against


def local(target, default):
    """Return ``target`` if it is a path on this site, else ``default`` (never raises).

    Refused: anything not a string, longer than MAX_CHARS, not starting with exactly one "/",
    holding a backslash, a control, format or separator character, or whitespace, or carrying
    a scheme or host once parsed. Non-ASCII characters come back percent-encoded.
    """
    if not isinstance(target, str) or not 0 < len(target) <= MAX_CHARS:
        return default
    if target[0] != "/" or target[1:2] == "/" or "\\" in target:
        return default
    if not all(ch.isprintable() and not ch.isspace() for ch in target):
        return default  # a browser would drop or mend these, and may read another URL
    try:
        parts = urlsplit(target)
        uri = iri_to_uri(target)
        resolved = urlsplit(urljoin(_ORIGIN + "/", uri))
    except ValueError:
        return default
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return default
    if resolved.scheme + "://" + resolved.netloc != _ORIGIN or not uri.startswith("/") or uri.startswith("//"):
        return default
    return uri
