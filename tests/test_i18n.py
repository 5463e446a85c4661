"""The interface language (issue 18): which language a request gets, the switch, JSON error codes,
and catalogues that are complete and compiled. Browser tests: tests/test_i18n_browser.py."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from app.web import i18n

from .support import TOKEN

ROOT = Path(__file__).resolve().parent.parent
CHINESE = "zh-CN,zh;q=0.9,en;q=0.8"


def html_lang(response):
    return re.search(r'<html lang="([^"]+)"', response.get_data(as_text=True)).group(1)


def heading(response):
    return re.search(r"<h1[^>]*>([^<]*)", response.get_data(as_text=True)).group(1)


@pytest.mark.parametrize("accept, lang", [
    ("zh-CN,zh;q=0.9", "zh-Hans"), ("zh", "zh-Hans"), ("zh-Hans-SG", "zh-Hans"),
    ("zh-TW", "zh-Hans"),  # no Traditional catalogue yet: the same language beats English
    ("en-US,en;q=0.9", "en"), ("fr-FR,zh-CN;q=0.5", "zh-Hans"), ("fr-FR", "en"), ("", "en"),
    ("*", "en"), ("zh-CN;q=0,en;q=0.5", "en"), ("x-\u0000;q=oops", "en"),
])
def test_the_page_language_follows_accept_language(client, accept, lang):
    response = client.get("/", headers={"Accept-Language": accept})
    assert response.status_code == 200
    assert html_lang(response) == lang
    assert "Accept-Language" in response.headers["Vary"]


def test_a_chinese_browser_reads_the_lobby_in_chinese(client):
    response = client.get("/", headers={"Accept-Language": CHINESE})
    assert heading(response) == "房间"
    assert 'aria-label="语言"' in response.get_data(as_text=True)


def test_the_switch_is_a_plain_form_naming_each_other_language_in_itself(client):
    page = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    switch = re.search(r'<form class="langs" method="post" action="/language".*?</form>', page, re.S).group(0)
    assert 'name="lang" value="zh-Hans" lang="zh-Hans">简体中文</button>' in switch
    assert 'value="en"' not in switch  # the current language is not offered
    assert 'name="next" value="/"' in switch


def test_the_switch_on_a_room_page_comes_back_to_the_same_view(client, room):
    page = client.get("/rooms/%s?with=bob" % room).get_data(as_text=True)  # a conversation open
    assert 'name="next" value="/rooms/%s?with=bob"' % room in page


def test_the_switch_does_not_bring_back_a_one_shot_sentence(client, room):
    # "Sent. bob is away..." follows a form's 303 once (?delivery=waiting): not every language switch.
    page = client.get("/rooms/%s?with=bob&delivery=waiting&changed=1&expired=1&invite=x" % room).get_data(as_text=True)
    assert 'name="next" value="/rooms/%s?with=bob"' % room in page


def test_the_switch_remembers_the_choice_over_accept_language(client):
    response = client.post("/language", data={"lang": "zh-Hans", "next": "/rooms/abc?with=bob"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/rooms/abc?with=bob"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("%s=zh-Hans;" % i18n.COOKIE) and "Max-Age=31536000" in cookie
    assert "SameSite=Lax" in cookie and "HttpOnly" in cookie
    assert html_lang(client.get("/", headers={"Accept-Language": "en-US"})) == "zh-Hans"
    client.post("/language", data={"lang": "en"})
    assert html_lang(client.get("/", headers={"Accept-Language": CHINESE})) == "en"


def test_the_switch_goes_back_only_to_this_site(client):
    for target in ("https://evil.example/", "//evil.example", "/\\evil.example", ""):
        response = client.post("/language", data={"lang": "zh-Hans", "next": target})
        assert response.headers["Location"] == "/", target


def test_an_unknown_cookie_falls_back_to_accept_language(client):
    client.set_cookie(i18n.COOKIE, "tlh")
    assert html_lang(client.get("/", headers={"Accept-Language": CHINESE})) == "zh-Hans"


def test_an_unknown_language_is_a_400_with_a_code_and_a_sentence_in_the_current_language(client):
    response = client.post("/language", data={"lang": "tlh"},
                           headers={"Accept": "application/json", "Accept-Language": CHINESE})
    assert response.status_code == 400
    assert response.get_json() == {"code": "unknown_language", "error": "暂不支持该语言。"}


def test_json_errors_carry_a_stable_code_beside_a_sentence_in_the_negotiated_language(client):
    english = client.get("/rooms/a%20b/messages", headers={"Accept-Language": "en"})
    chinese = client.get("/rooms/a%20b/messages", headers={"Accept-Language": CHINESE})
    assert english.status_code == chinese.status_code == 400
    assert english.get_json()["code"] == chinese.get_json()["code"] == "bad_room"
    assert english.get_json()["error"].startswith("Room names are")
    assert re.search(r"[\u4e00-\u9fff]", chinese.get_json()["error"])


def test_a_filled_in_sentence_is_answered_in_the_readers_language(client):
    response = client.get("/rooms/abc/messages?limit=0", headers={"Accept-Language": CHINESE})
    assert response.status_code == 400
    assert response.get_json() == {"code": "bad_request", "error": "limit 必须是 1 到 200 之间的整数。"}


@pytest.mark.parametrize("typed", ["a b", "a\u200bb", "\u202elobby", "lobby\u2066"])  # space, zero-width, bidi
def test_a_bad_room_name_is_refused_with_the_rule_in_chinese(client, typed):
    response = client.get("/go", query_string={"room": typed}, headers={"Accept-Language": CHINESE})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "”不是有效的房间名称。房间名称为 1–64 个" in page  # one sentence filled with another


def test_an_empty_room_name_is_refused_in_chinese_too(client):
    response = client.get("/go", query_string={"room": "   "}, headers={"Accept-Language": CHINESE})
    assert response.status_code == 400
    assert "“”不是有效的房间名称。房间名称为 1–64 个" in response.get_data(as_text=True)


@pytest.mark.parametrize("typed", ["admin", "Send", "Online"])  # words the catalogue also holds
def test_what_someone_typed_is_quoted_as_typed_not_translated(client, typed):
    response = client.post("/users/%s/messages" % typed, json={"text": "hi", "user": "ci-bot"},
                           headers={"Accept-Language": CHINESE, "Authorization": "Bearer " + TOKEN})
    error = response.get_json()["error"]
    assert response.status_code == 404 and "“%s”" % typed in error, error


def test_a_message_too_long_says_so_in_chinese_with_its_code(client, room):
    token = client.get("/session", headers={"Accept": "application/json"}).get_json()["csrf_token"]
    client.post("/session", json={"name": "i18n-" + room[-6:]}, headers={"X-CSRF-Token": token})
    token = client.get("/session", headers={"Accept": "application/json"}).get_json()["csrf_token"]
    response = client.post("/rooms/%s/messages" % room, json={"text": "字" * 2001},
                           headers={"X-CSRF-Token": token, "Accept-Language": CHINESE})
    assert response.status_code == 422
    assert response.get_json() == {"code": "text_too_long", "error": "消息太长：共 2001 个字符，上限是 2000。"}


def test_a_page_without_javascript_has_its_day_separators_in_the_readers_language(client, room):
    answer = client.post("/rooms/%s/messages" % room, json={"text": "你好", "user": "bob"},
                         headers={"Authorization": "Bearer " + TOKEN})
    assert answer.status_code == 201
    page = client.get("/rooms/%s" % room, headers={"Accept-Language": CHINESE}).get_data(as_text=True)
    # (today; yesterday only if the page was rendered just after midnight UTC)
    assert re.search(r'<li class="day" data-kind="day" data-day="[0-9-]+"><span>(今天|昨天)</span></li>', page)


def test_a_page_without_javascript_says_its_times_are_utc_the_readers_languages_way(client, room):
    # The server knows no reader's time zone: it names UTC, and writes the time as the page's
    # script writes it in the reader's zone (Intl's short time: "10:38 AM", "10:38").
    answer = client.post("/rooms/%s/messages" % room, json={"text": "hi", "user": "bob"},
                         headers={"Authorization": "Bearer " + TOKEN})
    assert answer.status_code == 201
    english = client.get("/rooms/%s" % room).get_data(as_text=True)
    assert re.search(r'data-ts="\d+" title="[^"]+ UTC">\d{1,2}:\d\d\s[AP]M UTC</time>', english)
    chinese = client.get("/rooms/%s" % room, headers={"Accept-Language": CHINESE}).get_data(as_text=True)
    # a 24-hour clock after the zone, as Chinese writes "UTC+8" or "北京时间 18:38"; the full
    # date and time (2026年12月2日 10:38:00 UTC) on hover
    assert re.search(r'data-ts="\d+" title="\d{4}年\d{1,2}月\d{1,2}日 [0-9:]+ UTC">UTC \d\d:\d\d</time>', chinese)


def test_an_error_page_is_in_the_readers_language(client):
    response = client.get("/rooms/a%20b", headers={"Accept-Language": CHINESE, "Accept": "text/html"})
    assert response.status_code == 404
    assert html_lang(response) == "zh-Hans"
    assert "返回大厅" in response.get_data(as_text=True)


def test_the_page_links_its_languages_javascript_catalogue_by_version(client):
    page = client.get("/", headers={"Accept-Language": CHINESE}).get_data(as_text=True)
    url = re.search(r'<link rel="preload" href="([^"]+)" as="fetch" crossorigin="anonymous" data-catalogue>',
                    page).group(1)
    assert re.fullmatch(r"/static/i18n/zh-Hans\.json\?v=[0-9a-f]{12}", url)
    with client.get(url) as response:
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        catalogue = json.loads(response.get_data(as_text=True))
    assert catalogue["lang"] == "zh-Hans"
    assert catalogue["messages"]["{name} is typing…"] == "{name} 正在输入…"


# --- the catalogues: complete, compiled, and in step with the code -----------------------------

def _catalogue(lang):
    with open(ROOT / "translations" / lang / "LC_MESSAGES" / "messages.po", "rb") as f:
        return read_po(f)


def _extracted():
    """Every msgid in the code, found the way `make messages` finds them (babel.cfg)."""
    from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg
    sys.path.insert(0, str(ROOT))  # babel.cfg names scripts/i18n_js.py's extractor
    try:
        with open(ROOT / "babel.cfg") as f:
            method_map, options_map = parse_mapping_cfg(f)
        keywords = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None, "lazy_ngettext": (1, 2)}
        return {message[0] if isinstance(message, tuple) else message
                for _f, _l, message, _c, _ctx in extract_from_dir(ROOT, method_map, options_map, keywords)}
    finally:
        sys.path.remove(str(ROOT))


def test_the_extractor_finds_every_t_call_in_the_scripts():
    """What the extractor misses is never translated: babel's JavaScript lexer skips a t() inside
    a template literal's ${...}, which once left "Try again in {seconds} s." English on Chinese
    pages. Every t('...') / tn('...') written in a script must be among the extracted msgids."""
    extracted = _extracted()
    called = set()
    for path in sorted((ROOT / "static" / "js").glob("*.js")):
        called |= set(re.findall(r"\btn?\(\s*'((?:[^'\\]|\\.)+)'", path.read_text()))
    missed = sorted(msgid for msgid in called if msgid.replace("\\'", "'") not in extracted)
    assert not missed, "t() calls the extractor does not see (keep them out of template literals): %r" % missed


def test_every_string_in_the_code_has_a_chinese_translation():
    zh = _catalogue("zh_Hans")
    untranslated = []
    for msgid in sorted(_extracted()):
        entry = zh.get(msgid)
        string = entry.string if entry is not None else ""
        done = all(string) if isinstance(string, (list, tuple)) else bool(string)
        if entry is None or entry.fuzzy or not done:
            untranslated.append(msgid)
    assert not untranslated, ("strings without a zh_Hans translation (run `make messages`, translate "
                              "them in translations/zh_Hans/LC_MESSAGES/messages.po, then "
                              "`make translations`):\n" + "\n".join(untranslated))


@pytest.mark.parametrize("lang", ["zh_Hans", "en"])
def test_the_compiled_catalogue_matches_its_po(lang):
    po = _catalogue(lang)
    with open(ROOT / "translations" / lang / "LC_MESSAGES" / "messages.mo", "rb") as f:
        mo = read_mo(f)
    def translated(catalog):
        plain = lambda value: tuple(value) if isinstance(value, (list, tuple)) else value  # noqa: E731
        return {plain(m.id): plain(m.string) for m in catalog if m.id and m.string and not m.fuzzy
                and (all(m.string) if isinstance(m.string, (list, tuple)) else True)}
    compiled, written = translated(mo), translated(po)
    stale = {msgid for msgid, string in written.items() if compiled.get(msgid) != string}
    assert not stale, "messages.mo is out of date (run `make translations`): %r" % sorted(stale)


def test_the_javascript_catalogues_match_the_po_files():
    check = subprocess.run([sys.executable, str(ROOT / "scripts" / "i18n_js.py"), "--check"],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr


def test_translations_keep_their_placeholders():
    zh = _catalogue("zh_Hans")
    for message in zh:
        if not message.id or not message.string:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(re.findall(r"%\(\w+\)s|\{\w+\}", ids[-1])) - {"{n}", "%(num)s"}
        positional = re.findall(r"%[sd]", ids[0])
        for string in strings:
            assert wanted <= set(re.findall(r"%\(\w+\)s|\{\w+\}", string)), (message.id, string)
            # Positional values arrive in the English order: a translation keeps it.
            assert re.findall(r"%[sd]", string) == positional, (message.id, string)
