"""No English UI text outside the catalogue (issue 18): a template or a page script that shows a
person English words without _() / t() fails here, naming the file, the line and the words.

What counts as text a person reads, without guessing at every string: in templates, the text
between tags and the values of placeholder, title, aria-label, alt and data-label, once Jinja's
own parts ({{ }}, {% %}, {# #}, {% trans %} blocks) are taken out; in scripts, string literals
written to the page (textContent, title, placeholder, aria-label, a new Text node, a label in
append/after/before) and any literal that reads like a sentence (a capital, words, a stop).
A line that must keep its English (a name, a key's name) says so with ``i18n: keep``.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = sorted((ROOT / "templates").glob("*.html"))
SCRIPTS = sorted((ROOT / "static" / "js").glob("*.js"))
WORD = re.compile(r"[A-Za-z][A-Za-z'’]+")
# Latin words a translated page may show: the product's name and the key on every keyboard.
ALLOWED = {"Ripple", "Shift", "Enter", "UTC"}
KEEP = "i18n: keep"


def english(text):
    return [w for w in WORD.findall(text) if w not in ALLOWED]


# --- templates ----------------------------------------------------------------------------------

_JINJA = re.compile(r"\{%-?\s*trans\b.*?endtrans\s*-?%\}|\{#.*?#\}|\{\{.*?\}\}|\{%.*?%\}", re.S)
_TAG = re.compile(r"<(script|style)\b.*?</\1>|<!--.*?-->|<[^>]*>", re.S | re.I)
_READ_ATTRS = re.compile(r'\b(placeholder|title|aria-label|alt|data-label)="([^"]*)"')


def template_findings(source):
    """(line, words) of English a person would read in one template's source."""
    blanked = _JINJA.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), source)  # keeps line numbers
    findings = []
    for match in _READ_ATTRS.finditer(blanked):
        words = english(match.group(2))
        if words:
            findings.append((blanked.count("\n", 0, match.start()) + 1, words))
    text = _TAG.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), blanked)
    for number, line in enumerate(text.splitlines(), 1):
        words = english(line.replace("&nbsp;", " "))
        if words and KEEP not in source.splitlines()[number - 1]:
            findings.append((number, words))
    return findings


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_templates_show_no_english_outside_the_catalogue(path):
    assert template_findings(path.read_text(encoding="utf-8")) == [], (
        "wrap these in _() or {% trans %} (README.md, Languages)")


# --- page scripts -------------------------------------------------------------------------------

def literals(source):
    """Yield (offset, literal with its quotes) of each string literal in JavaScript ``source``,
    skipping comments and regular expression literals."""
    i, n, last = 0, len(source), ""  # last: the previous significant character
    while i < n:
        ch = source[i]
        if source.startswith("//", i):
            i = source.find("\n", i) % (n + 1)
        elif source.startswith("/*", i):
            i = source.find("*/", i) + 2 or n
        elif ch == "/" and (not last or last in "(,=:[!&|?{};+-*%<>~^"):  # a regular expression
            j, in_class = i + 1, False
            while j < n and (source[j] != "/" or in_class):
                in_class = (in_class or source[j] == "[") and source[j] != "]"
                j += 2 if source[j] == "\\" else 1
            i, last = j + 1, "/"
        elif ch in "'\"`":
            j = i + 1
            while j < n and source[j] != ch:
                j += 2 if source[j] == "\\" else 1
            yield i, source[i:j + 1]
            i, last = j + 1, ch
        else:
            if not ch.isspace():
                last = ch
            i += 1


_SHOWN = re.compile(r"(?:\.(?:textContent|innerText|title|placeholder|label|ariaLabel)\s*=|"
                    r"setAttribute\(\s*'(?:title|aria-label|placeholder|alt)'\s*,|"
                    r"createTextNode\(|\.(?:append|prepend|after|before|replaceChildren)\()\s*$")
_TRANSLATED = re.compile(r"\b(?:t|tn)\(\s*(?:'(?:[^'\\]|\\.)*'\s*,\s*)?$")
_SENTENCE = re.compile(r"^[A-Z][a-z]+(?: [A-Za-z'’,;:()….!?-]+)+$")
_PROPERTY = re.compile(r"[{,]\s*[\w'-]+\s*:\s*$")  # a value in an object literal
# A table of UI words: const STRINGS = {...} (also TEXTS, LABELS, MESSAGES; not data tables).
_TABLE = re.compile(r"\bconst (?:STRINGS|TEXTS|LABELS|MESSAGES)\s*=\s*\{(?:[^{}]|\{[^{}]*\})*\}")


def _without_substitutions(template):
    """A template literal's text without its ${...} parts (braces inside them balanced)."""
    out, depth, i = [], 0, 0
    while i < len(template):
        if depth == 0 and template.startswith("${", i):
            depth, i = 1, i + 2
            continue
        if depth:
            depth += {"{": 1, "}": -1}.get(template[i], 0)
            out.append(" " if depth == 0 else "")
        else:
            out.append(template[i])
        i += 1
    return "".join(out)


def script_findings(source):
    """(line, literal) of English a script would show a person."""
    findings = []
    lines = source.splitlines()
    tables = [m.span() for m in _TABLE.finditer(source)]
    for offset, literal in literals(source):
        body = literal[1:-1]
        if literal[0] == "`":
            body = _without_substitutions(body)
        before = source[max(0, offset - 200):offset]
        number = source.count("\n", 0, offset) + 1
        if _TRANSLATED.search(before) or KEEP in lines[number - 1] or not english(body):
            continue
        is_key = re.match(r"\s*:", source[offset + len(literal):])
        in_table = not is_key and any(start <= offset < end for start, end in tables)
        if (_SHOWN.search(before) or _SENTENCE.match(body.strip()) or in_table
                or (_PROPERTY.search(before) and " " in body.strip())):
            findings.append((number, literal))
    return findings


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_scripts_show_no_english_outside_the_catalogue(path):
    assert script_findings(path.read_text(encoding="utf-8")) == [], (
        "wrap these in t() / tn() from ./i18n.js (README.md, Languages)")


# --- the checks themselves ------------------------------------------------------------------------

def test_the_template_check_finds_english_and_spares_what_is_translated():
    source = ('<p title="Close it">{{ _("Hello") }} Send <b>{{ name }}</b></p>\n'
              '{% trans %}Only you and {{ other }}{% endtrans %} <a>Ripple</a>\n'
              '<input placeholder="{{ _(\'e.g. lobby\') }}">{# a comment in English #}')
    assert template_findings(source) == [(1, ["Close", "it"]), (1, ["Send"])]


def test_the_script_check_finds_english_and_spares_what_is_translated():
    source = "\n".join([
        "el.textContent = 'connected';",
        "el.textContent = t('connected');",
        "const x = tn('{n} person', '{n} people', n);",
        "const s = 'Could not reach the server.';",
        "el.addEventListener('chat:message', f);",  # an event name
        "document.querySelector('form[data-form] button[type=submit]');",
        "// a comment that says Hello there.",
        "const re = /^(?:[^'\\S]*)Hello there./;",
        "li.append(' ', badge);",
        "tag.textContent = 'bot';  // i18n: keep",
        "const LABELS = {",
        "  on: 'connected', off: t('offline'),",
        "};",
        "fetch(url, { method: 'POST', headers: { Accept: 'application/json' } });",
        "const note = { failed: 'That did not work. Try again.' };",
    ])
    assert script_findings(source) == [(1, "'connected'"), (4, "'Could not reach the server.'"), (12, "'connected'"),
                                       (15, "'That did not work. Try again.'")]
