"""The page scripts' side of the translations: their strings, and their JSON catalogues.

``extract`` is pybabel's extraction method for static/js (babel.cfg): the calls of t() and tn()
(static/js/i18n.js), and nothing else (the Python extractor would take ``t["name"]`` for a call).

Run as a script, it writes static/i18n/<lang>.json from translations/*/messages.po.

Each holds the translations of the messages static/js asks for with t() / tn() (found the way
pybabel finds them), and which gettext plural form each of the language's CLDR plural
categories uses (what Intl.PluralRules names in the page). Output is stable: sorted, one message
a line, so an unchanged catalogue rewrites the same bytes.

    python scripts/i18n_js.py            # write them
    python scripts/i18n_js.py --check    # exit 1 if one is missing or out of date
"""
import gettext
import json
import sys
from pathlib import Path

from babel import Locale
from babel.messages.extract import extract_from_dir, extract_javascript
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "translations"
OUT = ROOT / "static" / "i18n"
KEYWORDS = {"t": None, "tn": (1, 2)}


def extract(fileobj, keywords, comment_tags, options):
    """pybabel's method for static/js: t('...') and tn('...', '...', n), whatever -k says.

    They are reported as gettext / ngettext calls: pybabel reads the arguments' meaning from its
    own keyword table, and those two are in it by default.
    """
    for lineno, funcname, messages, comments in extract_javascript(fileobj, KEYWORDS, comment_tags, options):
        yield lineno, {"t": "gettext", "tn": "ngettext"}[funcname], messages, comments


def js_messages():
    """The msgids the page's scripts use: {singular: plural or None}."""
    found = {}
    for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / "static" / "js", [("**.js", extract)], keywords={"gettext": None, "ngettext": (1, 2)}):
        if isinstance(message, tuple):
            found[message[0]] = message[1]
        else:
            found[message] = None
    return found


def plural_indexes(locale_name, plural_expr):
    """{CLDR category: gettext form index} for a language, by asking both rules of 0..1000."""
    category = Locale.parse(locale_name).plural_form
    index = gettext.c2py(plural_expr)
    return {category(n): index(n) for n in range(1001)}


def build(po_path):
    with open(po_path, "rb") as f:
        catalog = read_po(f)
    locale_name = po_path.parent.parent.name
    messages = {}
    for msgid, plural in sorted(js_messages().items()):
        key = msgid if plural is None else (msgid, plural)
        entry = catalog.get(key if plural is None else msgid)
        if entry is None or entry.fuzzy:
            continue
        if plural is None and isinstance(entry.string, str) and entry.string:
            messages[msgid] = entry.string
        elif plural is not None and isinstance(entry.string, (list, tuple)) and all(entry.string):
            messages[msgid] = list(entry.string)
    body = {"lang": locale_name.replace("_", "-"),
            "plurals": dict(sorted(plural_indexes(locale_name, catalog.plural_expr).items())),
            "messages": messages}
    return locale_name.replace("_", "-"), json.dumps(body, ensure_ascii=False, indent=0, sort_keys=False) + "\n"


def main(argv):
    check = "--check" in argv
    stale = []
    OUT.mkdir(parents=True, exist_ok=True)
    for po_path in sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po")):
        lang, text = build(po_path)
        target = OUT / ("%s.json" % lang)
        if target.exists() and target.read_text(encoding="utf-8") == text:
            continue
        if check:
            stale.append(str(target.relative_to(ROOT)))
        else:
            target.write_text(text, encoding="utf-8")
    if stale:
        print("out of date (run `make translations`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
