"""The interface language: which one a request gets, the switch between them, and their catalogues.

Catalogues are gettext files under translations/<locale>/LC_MESSAGES/ (Flask-Babel); a language
is offered as soon as its directory is there (no code names one). The page's scripts read the
same messages from static/i18n/<lang>.json, written from the .po files by
``scripts/i18n_js.py`` (``make translations``).

The choice, first that applies: the switch on every page (a cookie, set by ``POST /language``,
a plain form), else the browser's Accept-Language, else English. Locale identifiers are
gettext's (``zh_Hans``) inside, BCP 47 (``zh-Hans``) in HTML, the cookie and file names.
"""
import hashlib
import re
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlencode

from babel import Locale, UnknownLocaleError
from flask import Blueprint, has_request_context, redirect, request, url_for
from flask_babel import Babel, format_datetime, format_time, get_locale, get_translations, gettext
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import BadRequest

from ..ops.services import services
from . import targets

bp = Blueprint("i18n", __name__)

COOKIE = "ripple_lang"
COOKIE_MAX_AGE = 365 * 24 * 3600  # a year: a language choice is not a session
DEFAULT = "en"
ROOT = Path(__file__).resolve().parent.parent.parent  # translations/ and static/ sit beside app/
TRANSLATIONS = ROOT / "translations"
JS_CATALOGUES = ROOT / "static" / "i18n"

# Each language names itself, in itself, on the switch (never translated: a reader who cannot
# read the current language must still find theirs). A language without an entry shows Babel's
# own name for it.
NATIVE_NAMES = {"en": "English", "zh_Hans": "简体中文"}

UNKNOWN_LANGUAGE = _l("That language is not available here.")


def init_app(app):
    """Wire Flask-Babel to Ripple's locale choice and give templates the language helpers."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(app, locale_selector=select_locale)
    services(app).languages = Languages(TRANSLATIONS, JS_CATALOGUES)
    app.context_processor(_template_helpers)
    app.add_template_filter(translate)
    app.add_template_filter(ms_datetime)
    app.add_template_filter(clock)
    app.after_request(_vary)  # and the scripts' catalogues cached for good
    app.register_blueprint(bp)


class Languages:
    """The languages there are catalogues for (gettext identifiers, English first)."""

    def __init__(self, translations, js_dir):
        found = sorted(p.name for p in Path(translations).iterdir()
                       if (p / "LC_MESSAGES" / "messages.po").is_file()) if Path(translations).is_dir() else []
        self.available = [DEFAULT] + [name for name in found if name != DEFAULT]
        self.js_dir = Path(js_dir)
        self._versions = {}

    def match(self, tags):
        """The first available language for BCP 47 / POSIX ``tags`` in preference order, or None.

        A tag matches its own language exactly, else one of the same language and script (Babel
        adds the likely script: zh-CN is zh-Hans, zh-TW zh-Hant), else the same language in any
        script (a zh-TW reader gets Simplified Chinese rather than English while there is no
        Traditional catalogue).
        """
        parsed = [(name, Locale.parse(name)) for name in self.available]
        for tag in tags:
            try:
                wanted = Locale.parse(str(tag).replace("-", "_"))
            except (ValueError, TypeError, UnknownLocaleError):
                continue
            for test in (_same, _same_script, _same_language):
                for name, locale in parsed:
                    if test(wanted, locale):
                        return name
        return None

    def js_url(self, name):
        """The URL of a language's JSON catalogue, versioned by its content (safe to cache)."""
        lang = bcp47(name)
        if lang not in self._versions:
            path = self.js_dir / ("%s.json" % lang)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.is_file() else "0"
            self._versions[lang] = digest
        return url_for("static", filename="i18n/%s.json" % lang, v=self._versions[lang])


def _same(wanted, locale):
    return str(wanted) == str(locale)


def _same_script(wanted, locale):
    return wanted.language == locale.language and (wanted.script or None) == (locale.script or None)


def _same_language(wanted, locale):
    return wanted.language == locale.language


def bcp47(name):
    """``zh_Hans`` -> ``zh-Hans`` (what HTML's lang, the cookie and the JS file use)."""
    return str(name).replace("_", "-")


def select_locale():
    """This request's language: the cookie's, else the best of Accept-Language, else English."""
    if not has_request_context():  # a CLI command, a stream's generator: English
        return DEFAULT
    languages = services().languages
    chosen = request.cookies.get(COOKIE)
    if chosen:
        found = languages.match([chosen])
        if found:
            return found
    ranked = [tag for tag, quality in request.accept_languages if quality > 0]
    return languages.match(ranked) or DEFAULT


def current():
    """The current request's language as BCP 47 (``en``, ``zh-Hans``)."""
    return bcp47(get_locale() or DEFAULT)


def native_name(name):
    """A language's name in that language."""
    if name in NATIVE_NAMES:
        return NATIVE_NAMES[name]
    locale = Locale.parse(name)
    return locale.get_display_name(locale) or name


def ms_datetime(ms):
    """A time in ms since the epoch as the reader's language writes a date and time ("30 Nov 2026,
    21:40:00 UTC", "2026年11月30日 21:40:00 UTC"): in UTC, the one zone a server can name (a page's
    script may rewrite it in the reader's own); anything else comes back as it was."""
    try:
        when = datetime.fromtimestamp(int(ms) / 1000, timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return ms
    return format_datetime(when, "medium") + " UTC"


def clock(ms):
    """A message's time of day for a page without JavaScript ("10:38 AM UTC", "UTC 10:38"): the
    reader's language's short time, as the page's script writes it (Intl's timeStyle "short"),
    in UTC, named so in the reader's words; the server knows no reader's zone, and a zone guessed
    from the language would be wrong for many (the day separators are UTC days too)."""
    when = datetime.fromtimestamp(int(ms) / 1000, timezone.utc)
    return gettext("%(time)s UTC", time=format_time(when, "short"))


def _template_helpers():
    languages = services().languages
    here = str(get_locale() or DEFAULT)
    return {
        "page_lang": bcp47(here),
        "js_catalogue_url": languages.js_url(here),
        "other_languages": [{"code": bcp47(name), "label": native_name(name)}
                            for name in languages.available if name != here],
        "switch_next": _switch_next,
    }


# Query parameters that say something once, after a form's 303: "delivered when they are back"
# (delivery), "password changed" (changed), "your sign-in form was stale" (expired), a new
# invitation's link (invite): the page the language switch goes back to must not say it again.
_ONE_SHOT = frozenset(("delivery", "changed", "expired", "invite"))


def _switch_next():
    """Where the language switch goes back to: this page as asked (path and query) when it was a
    GET, without the one-shot parameters; else the lobby (a page for a failed POST sets its own
    ``lang_next``)."""
    if request.method != "GET":
        return url_for("pages.lobby")
    kept = [(k, v) for k, v in request.args.items(multi=True) if k not in _ONE_SHOT]
    return request.script_root + request.path + ("?" + urlencode(kept) if kept else "")


def _vary(response):
    # The same URL answers in another language for another Accept-Language or cookie.
    if request.endpoint != "static":
        response.vary.add("Accept-Language")
        response.vary.add("Cookie")
    elif request.path.startswith("/static/i18n/") and request.args.get("v") and response.status_code == 200:
        # A scripts' catalogue named by its content's version never changes: keep it for a year.
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


@bp.post("/language")
def switch():
    """Remember the chosen language (form field ``lang``, BCP 47) and go back (303 to ``next``).

    A plain form on every page, so it works without JavaScript; no CSRF token (app/guard.py
    lets it pass): the worst a forged post can do is show someone another language.
    An unknown language is a 400 with a sentence (code ``unknown_language``).
    """
    lang = request.form.get("lang", "")
    languages = services().languages
    name = next((n for n in languages.available if bcp47(n).lower() == lang.strip().lower()), None)
    if name is None:
        refused = BadRequest(str(UNKNOWN_LANGUAGE))
        refused.error_code = "unknown_language"  # app/web/replies.py: refuse()
        raise refused
    response = redirect(targets.local(request.form.get("next"), url_for("pages.lobby")), 303)
    response.set_cookie(COOKIE, bcp47(name), max_age=COOKIE_MAX_AGE, samesite="Lax", httponly=True,
                        secure=request.is_secure)
    return response


# --- sentences made in English, answered in the reader's language -------------------------------
#
# The layers below the web (rooms, people, delivery) make their sentences in English, marked
# N_("...") for the catalogue, and often fill them in ("Message is too long: %d characters, the
# limit is %d."). ``translate`` turns such a finished sentence into the request's language where
# the web layer answers (json_error, error pages, form errors): the sentence itself if it is a
# msgid, else the msgid it was filled in from (its placeholders read back from the sentence, each
# translated in turn: "try again in %s." filled with "40 s"). One rule at the boundary instead of
# a translation call at every raise, and programs never see anything but the English code.

_PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?[-#0 +]*\d*(?:\.\d+)?[sdifr]")
_OPENING_QUOTES, _CLOSING_QUOTES = ("“", '"', "'", "‘", "「", "#"), ("”", '"', "'", "’", "」")


def translate(sentence):
    """``sentence`` (English, possibly filled in) in the current request's language."""
    if not sentence or not isinstance(sentence, str):
        return sentence
    translations = get_translations()
    catalog = getattr(translations, "_catalog", None)
    if not catalog:  # English, or no catalogue
        return sentence
    found = catalog.get(sentence)
    if isinstance(found, str) and found:
        return found
    for pattern, msgid, names, verbatim in _patterns(id(catalog), tuple(k for k in catalog if isinstance(k, str))):
        match = pattern.fullmatch(sentence)
        if match is None:
            continue
        # A value that is itself one of our sentences is translated too ("“x” is not a room
        # name. <the rule>", "try again in <a moment>"); a quoted one ("“admin”", "#room") is
        # what someone typed and stays as typed, even when the catalogue holds the same word.
        values = [value if typed else translate(value) for value, typed in zip(match.groups(), verbatim)]
        template = _PLACEHOLDER.sub(lambda m: "%%(%s)s" % m.group(1) if m.group(1) else "%s", catalog[msgid])
        try:
            return template % (dict(zip(names, values)) if names and all(names) else tuple(values))
        except (TypeError, ValueError, KeyError):
            return sentence
    return sentence


@lru_cache(maxsize=8)
def _patterns(_catalog_id, msgids):
    """(regex, msgid, placeholder names, which placeholders are quoted: typed words) for each
    msgid with placeholders, most literal first."""
    found = []
    for msgid in msgids:
        parts = _PLACEHOLDER.split(msgid)
        if len(parts) == 1 or "%%" in msgid:
            continue
        literals, names = parts[0::2], parts[1::2]
        regex = "(.*?)".join(re.escape(text) for text in literals)  # a value may be empty: “”
        verbatim = tuple(before.endswith(_OPENING_QUOTES) or after.startswith(_CLOSING_QUOTES)
                         for before, after in zip(literals, literals[1:]))
        found.append((re.compile(regex, re.S), msgid, tuple(names), verbatim))
    found.sort(key=lambda entry: -len(_PLACEHOLDER.sub("", entry[1])))
    return tuple(found)
