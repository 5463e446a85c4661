"""Links in message text: http(s) URLs become links, nothing else becomes markup.

The one rule, here and in static/js/links.js (keep them in step): a link starts with
``http://`` or ``https://`` and runs to the next whitespace, ``<``, ``>`` or quote; trailing
punctuation (``.,;:!?`` and a closing bracket with no opening one inside) stays text. Any other
scheme (``javascript:``, ``data:``) is never a link. Everything is escaped; a link opens in a new
tab with ``rel="noopener noreferrer nofollow ugc"`` (no referrer, no ranking credit to spam).
"""
import re

from markupsafe import Markup, escape

URL = re.compile(r"""https?://[^\s<>"'`]+""", re.IGNORECASE)
_TRAILING = ".,;:!?*'\""
_PAIRS = {")": "(", "]": "[", "}": "{"}
REL = "noopener noreferrer nofollow ugc"


def _trim(url):
    """Drop trailing punctuation that ends a sentence rather than the URL."""
    while url:
        last = url[-1]
        if last in _TRAILING:
            url = url[:-1]
        elif last in _PAIRS and url.count(_PAIRS[last]) < url.count(last):
            url = url[:-1]
        else:
            break
    return url


def linkify(text):
    """Return ``text`` as safe HTML (Markup) with its http(s) URLs as links."""
    out, at = [], 0
    for match in URL.finditer(text or ""):
        url = _trim(match.group(0))
        if len(url) <= len("https://") or "://" not in url[:8]:
            continue
        start, end = match.start(), match.start() + len(url)
        out.append(escape(text[at:start]))
        out.append(Markup('<a href="%s" rel="%s" target="_blank">%s</a>') % (url, REL, url))
        at = end
    out.append(escape((text or "")[at:]))
    return Markup("").join(out)


def init_app(app):
    """Give templates the ``linkify`` filter."""
    app.add_template_filter(linkify)
