"""A page asks for its script and every module that script imports at once (modulepreload links
in its <head>), instead of discovering them one import level per round trip."""
import re
import uuid
from pathlib import Path

import pytest

from app.web.page_scripts import _reachable

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "static"
PRELOAD = re.compile(r'<link rel="modulepreload" href="/static/([^"]+)">')
IMPORT = re.compile(r"""from\s*['"]\./([\w.-]+\.js)['"]""")


def imported_by(path, seen=None):
    """Every static path ``path`` imports, directly or not, read the plain way (one regex)."""
    seen = set() if seen is None else seen
    for name in IMPORT.findall((STATIC / path).read_text()):
        found = "js/" + name
        if found not in seen:
            seen.add(found)
            imported_by(found, seen)
    return seen


def preloads(page_html):
    head = page_html.split("</head>", 1)[0]
    return PRELOAD.findall(head)


@pytest.mark.parametrize("url, entry", [("/", "js/lobby.js"), ("/rooms/{room}", "js/room.js"),
                                        ("/account", "js/signout_page.js")])
def test_a_page_preloads_its_script_first_and_every_module_it_imports(client, room, url, entry):
    response = client.get(url.format(room=room))
    assert response.status_code == 200
    listed = preloads(response.get_data(as_text=True))
    assert listed[0] == entry
    assert set(listed[1:]) == imported_by(entry) and len(listed) == len(set(listed))


def test_the_mentions_page_preloads_its_modules(client):
    token = client.get("/session").get_json()["csrf_token"]
    name = "p-" + uuid.uuid4().hex[:8]
    assert client.post("/session", json={"name": name}, headers={"X-CSRF-Token": token}).status_code == 200
    listed = preloads(client.get("/me/mentions", headers={"Accept": "text/html"}).get_data(as_text=True))
    assert listed[0] == "js/mentions.js" and set(listed[1:]) == imported_by("js/mentions.js")


def test_every_preloaded_module_is_served_as_javascript(client, room):
    for path in preloads(client.get("/rooms/%s" % room).get_data(as_text=True)):
        with client.get("/static/" + path) as response:
            assert response.status_code == 200 and response.mimetype == "text/javascript", path


def test_imports_are_followed_across_lines_re_exports_and_cycles_and_not_out_of_static(tmp_path):
    js = tmp_path / "js"
    js.mkdir()
    (js / "entry.js").write_text(
        "import {\n  a,\n  b,\n} from './a.js';\nexport { c } from \"./c.js\";\nimport './side.js';\n"
        "import x from '../../outside.js';\nconst s = './not-an-import.js';\n")
    (js / "a.js").write_text("import { e } from './entry.js';\nimport { d } from './sub/d.js';\n")
    (js / "sub").mkdir()
    (js / "sub" / "d.js").write_text("import { a } from '../a.js';\n")
    for name in ("c.js", "side.js"):
        (js / name).write_text("export const c = 1;\n")
    assert _reachable(str(tmp_path), "js/entry.js") == (
        "js/entry.js", "js/a.js", "js/c.js", "js/side.js", "js/sub/d.js")


def test_a_missing_module_is_left_to_the_browser(tmp_path):
    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "entry.js").write_text("import { a } from './gone.js';\n")
    assert _reachable(str(tmp_path), "js/entry.js") == ("js/entry.js", "js/gone.js")
