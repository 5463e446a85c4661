"""docs/api.md's table of error codes names every code the service answers with: programs read
the ``code``, so one missing from the table is a contract nobody wrote down."""
import re

from .servers import ROOT

# Where a code is given in app/: code="x"; a status then a code, (422, "x") or Refused(403, "x");
# a refusal whose last argument is its code, on one line.
PATTERNS = [re.compile(r'code="([a-z_]+)"'), re.compile(r'\b[1-5]\d\d,\s*"([a-z_]+)"'),
            re.compile(r'(?:Refused|Invalid)\([^\n]*,\s*"([a-z_]+)"\)')]


def codes_in_the_app():
    found = set()
    for path in (ROOT / "app").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for pattern in PATTERNS:
            found.update(pattern.findall(text))
    return found


def test_every_error_code_the_app_answers_with_is_in_the_api_docs_table():
    codes = codes_in_the_app()
    assert {"idempotency_key_reused", "text_empty", "owner", "method"} <= codes  # the patterns see them
    table = (ROOT / "docs" / "api.md").read_text(encoding="utf-8").split("## Error codes", 1)[1].split("\n## ")[0]
    assert sorted(code for code in codes if "`%s`" % code not in table) == []
