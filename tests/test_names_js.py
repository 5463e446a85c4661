"""The page's script compares names exactly as the server does (static/js/fold.js beside
app/people/names.py fold): every character a name may hold, and real look-alike names, fold to the
same text in Chromium as in Python; and the script's tables are the ones scripts/fold_data.py
makes from the installed Unicode data now."""
import importlib.util
import json
import unicodedata
from pathlib import Path

import pytest

from app.people import names

from .browser import browser, close_context  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parent.parent
LOOK_ALIKES = ["Ann", "ＡＮＮ", "\u0430nn", "ANN", "straße", "STRASSE", "ΣΊΣΥΦΟΣ", "σίσυφος", "ﬁona", "fiona",
               "rn", "m", "0live", "Olive", "l1l", "Ill", "bob  smith", "bob\u3000smith", "Ꭰꭰ", "ǰ", "İstanbul",
               "a\u200db", "\U0001d400nn", "ǅemal", "dže", "%", "1%", "Zoë", "Zoe\u0308", "👩\u200d💻", "ᾳ"]


def _module(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_scripts_tables_are_current():
    made_with = (ROOT / "static" / "js" / "fold-data.js").read_text(encoding="utf-8").split(" from Unicode ")[1]
    if not made_with.startswith(unicodedata.unidata_version + " "):
        pytest.skip("the tables were made with another Unicode than this Python's %s" % unicodedata.unidata_version)
    generated = _module(ROOT / "scripts" / "fold_data.py").render()
    assert (ROOT / "static" / "js" / "fold-data.js").read_text(encoding="utf-8") == generated, \
        "run: python scripts/fold_data.py > static/js/fold-data.js"


@pytest.fixture(scope="module")
def page(browser, server):  # noqa: F811 - the fixture above
    context = browser.new_context(base_url=server.url)
    page = context.new_page()
    page.goto("/")
    yield page
    close_context(context)


def js_fold(page, texts):
    return page.evaluate("""async (texts) => {
        const { fold } = await import('/static/js/fold.js');
        return texts.map((t) => fold(t));
    }""", texts)


def test_look_alike_names_fold_alike_in_the_browser(page):
    assert js_fold(page, LOOK_ALIKES) == [names.fold(name) for name in LOOK_ALIKES]
    assert js_fold(page, ["Ann", "\u0430nn"])[0] == js_fold(page, ["\u0430nn"])[0]


@pytest.mark.parametrize("plane", [0, 1, 2])
def test_every_character_a_name_may_hold_folds_alike(page, plane):
    """Each assigned character (a name of that one character, or after a letter where a mark
    needs one) folds to the same text in the browser as on the server."""
    chars = []
    for cp in range(plane * 0x10000, (plane + 1) * 0x10000):
        ch = chr(cp)
        if 0xD800 <= cp <= 0xDFFF or unicodedata.category(ch) in ("Cn", "Co", "Cs"):
            continue
        chars.append("a" + ch if unicodedata.category(ch)[0] == "M" else ch)
    found = js_fold(page, chars)
    wrong = [(c, names.fold(c), f) for c, f in zip(chars, found) if f != names.fold(c)]
    # A browser's Unicode may be newer than Python's: a character it knows and Python does not is
    # refused in names anyway (unassigned there). Nothing else may differ.
    assert wrong == [], json.dumps(wrong[:20], ensure_ascii=False) + " (%d differ)" % len(wrong)

