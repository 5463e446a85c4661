"""The interface language in real Chromium (issue 18): a zh-CN browser reads Chinese, an en-US one
English, in the page and in what its scripts write; the switch works with and without JavaScript.
Screenshots of both languages, light and dark, phone and desktop: test-output/screenshots/."""
import re
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from .browser import SCREENSHOTS, STATUS, browser, publish, sign_in_over_http, unique  # noqa: F401

DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
CONNECTED = {"zh-CN": "已连接", "en-US": "connected"}

# Words a Chinese page may show in Latin letters: the product's name, a key's name, and what
# the page's own data put there (room and people names are removed before the check).
LATIN_ALLOWED = {"Ripple", "Shift", "UTC", "café"}
# Text and attributes a person reads (buttons' values are not shown).
READABLE = """(() => {
  const out = [];
  // Not what the page says but what people named: links to rooms ("#name"), people's names.
  const named = (el) => { const a = el.closest('a'); return a && /^[#@]/.test(a.textContent.trim()); };
  const skip = (el) => el.closest('script, style, template, noscript, [lang]:not(html), .who, [data-name]')
    || named(el);
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (!skip(node.parentElement) && node.parentElement.checkVisibility() && node.textContent.trim()) {
      out.push(node.textContent.trim());
    }
  }
  for (const el of document.querySelectorAll('[placeholder], [title], [aria-label], [alt]')) {
    if (skip(el)) continue;
    for (const name of ['placeholder', 'title', 'aria-label', 'alt']) {
      if (el.hasAttribute(name)) out.push(el.getAttribute(name));
    }
  }
  out.push(document.title);
  return out;
})()"""


@pytest.fixture
def contexts(browser):  # noqa: F811
    made = []

    def context(server, locale, **options):
        ctx = browser.new_context(base_url=server.url, locale=locale, **options)
        ctx.set_default_timeout(10_000)
        made.append(ctx)
        return ctx

    yield context
    for ctx in made:
        ctx.close()


def watched(ctx, errors):
    page = ctx.new_page()
    page.on("pageerror", lambda error: errors.append(error))
    return page


def english_left(page, known=()):
    """Latin-letter words on the page a Chinese reader would meet, after removing ``known`` data."""
    words = []
    for text in page.evaluate(READABLE):
        for value in sorted(known, key=len, reverse=True):
            text = text.replace(value, "")
        words += [w for w in re.findall(r"[A-Za-zÀ-ɏ][A-Za-zÀ-ɏ'’]+", text) if w not in LATIN_ALLOWED]
    return words


@pytest.mark.parametrize("locale, lang", [("zh-CN", "zh-Hans"), ("en-US", "en")])
def test_the_room_page_and_its_scripts_speak_the_browsers_language(contexts, server, room, locale, lang):
    errors = []
    ctx = contexts(server, locale)
    me = unique("ann")
    sign_in_over_http(ctx, me)
    page = watched(ctx, errors)
    page.goto("/rooms/%s" % room)
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page.locator(STATUS)).to_have_text(CONNECTED[locale])  # static/js/status.js via t()
    hint = page.locator("#text-hint")
    expect(hint).to_have_text("回车发送 · Shift+回车换行" if lang == "zh-Hans"
                              else "Enter sends · Shift+Enter adds a line")
    assert page.evaluate("Intl.DateTimeFormat().resolvedOptions().locale").startswith(locale[:2])
    assert not errors, errors


def test_no_english_is_left_on_the_chinese_pages(contexts, server, room):
    errors = []
    ctx = contexts(server, "zh-CN")
    me, bob = unique("ann"), unique("bob")
    publish(server, room, "你好", user=bob)
    guest = watched(ctx, errors)
    for path in ("/", "/rooms/%s" % room, "/session", "/register", "/account", "/rooms/a%20b"):
        guest.goto(path)
        expect(guest.locator("html")).to_have_attribute("lang", "zh-Hans")
        if path.startswith("/rooms/t-"):
            expect(guest.locator(STATUS)).to_have_text("已连接")
        assert english_left(guest, known=(room, bob, "bot")) == [], path
    sign_in_over_http(ctx, me)
    page = watched(ctx, errors)
    page.goto("/rooms/%s?with=%s" % (room, bob))
    expect(page.locator(STATUS)).to_have_text("已连接")
    publish(server, room, "再见", user=bob)
    expect(page.locator("main.room li.msg .text").last).to_have_text("再见")
    assert english_left(page, known=(room, me, bob)) == []
    page.goto("/account")
    assert english_left(page, known=(me,)) == []
    assert not errors, errors


def test_no_english_on_the_owners_pages(contexts, server, room):
    errors = []
    ctx = contexts(server, "zh-CN")
    me, name = unique("ann"), "技术交流" + room[-6:]
    sign_in_over_http(ctx, me)
    page = watched(ctx, errors)
    page.goto("/")
    assert english_left(page, known=(me,)) == []
    page.locator("#create-name").fill(name)  # the lobby's form, as a person would
    page.locator("#create-topic").fill("周会")
    page.get_by_role("button", name="创建", exact=True).click()
    expect(page.locator("h1.room-name")).to_contain_text(name)
    page.goto("/rooms/%s/manage" % quote(name))
    expect(page.get_by_role("heading", level=1)).to_have_text("管理 #%s" % name)
    assert english_left(page, known=(me, name)) == []
    page.goto("/me/mentions")
    assert english_left(page, known=(me,)) == []
    assert not errors, errors


def test_the_lobby_joins_a_chinese_room_and_refuses_a_bad_name_in_chinese(contexts, server, room):
    ctx = contexts(server, "zh-CN")
    page = ctx.new_page()
    page.goto("/")
    page.locator("#room-name").fill("技术 交流")
    page.get_by_role("button", name="进入").click()
    expect(page.locator("#room-error")).to_contain_text("“技术 交流”不是有效的房间名称。")
    name = "技术交流" + room[-6:]
    page.locator("#room-name").fill(name)
    page.get_by_role("button", name="进入").click()
    expect(page.locator("h1.room-name")).to_have_text("#" + name)
    expect(page.locator(STATUS)).to_have_text("已连接")


def test_the_switch_works_without_javascript_and_is_remembered(contexts, server, room):
    ctx = contexts(server, "en-US", java_script_enabled=False)
    page = ctx.new_page()
    page.goto("/rooms/%s" % room)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.get_by_role("button", name="简体中文").click()
    expect(page).to_have_url(re.compile(r"/rooms/%s$" % room))
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    expect(page.get_by_role("button", name="开始聊天")).to_be_visible()
    page.goto("/")  # remembered (a cookie), over the browser's English
    expect(page.get_by_role("heading", level=1)).to_have_text("房间")
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Rooms")


def test_the_switch_with_javascript_turns_the_scripts_strings_too(contexts, server, room):
    errors = []
    ctx = contexts(server, "en-US")
    sign_in_over_http(ctx, unique("ann"))
    page = watched(ctx, errors)
    page.goto("/rooms/%s" % room)
    expect(page.locator(STATUS)).to_have_text("connected")
    page.get_by_role("button", name="简体中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    expect(page.locator(STATUS)).to_have_text("已连接")
    page.locator("#text").fill(" ")
    page.locator("form[data-form] button[type=submit]").click()
    expect(page.locator("form[data-form] [data-error]")).to_have_text("请先输入消息。")
    assert not errors, errors


def test_a_json_error_has_its_code_and_a_sentence_in_the_pages_language(contexts, server):
    ctx = contexts(server, "zh-CN")
    page = ctx.new_page()
    page.goto("/")
    answer = page.evaluate("""fetch('/rooms/a%20b/messages', {headers: {Accept: 'application/json'}})
                              .then(async (r) => [r.status, await r.json()])""")
    status, body = answer
    assert status == 400 and body["code"] == "bad_room"
    assert body["error"].startswith("房间名称")


def test_plural_and_typing_lines_in_chinese(contexts, server, room):
    errors = []
    ctx = contexts(server, "zh-CN")
    sign_in_over_http(ctx, unique("ann"))
    page = watched(ctx, errors)
    page.goto("/rooms/%s" % room)
    expect(page.locator(STATUS)).to_have_text("已连接")
    lines = page.evaluate("""import('/static/js/i18n.js').then(({ t, tn }) => [
        t('{name} is typing…', { name: 'bob' }), tn('{n} person is typing…', '{n} people are typing…', 3),
        tn('{n} too many', '{n} too many', 1234)])""")
    assert lines == ["bob 正在输入…", "3 人正在输入…", "超出 1,234 个字符"]
    assert not errors, errors


def test_the_typing_line_and_the_new_messages_count_are_chinese(contexts, server, room):
    errors = []
    ann_ctx, bob_ctx = contexts(server, "zh-CN", **PHONE), contexts(server, "zh-CN")
    ann, bob = unique("ann"), unique("bob")
    sign_in_over_http(ann_ctx, ann)
    sign_in_over_http(bob_ctx, bob)
    for n in range(30):
        publish(server, room, "第 %d 条" % n, user="carl")
    page, other = watched(ann_ctx, errors), watched(bob_ctx, errors)
    page.goto("/rooms/%s" % room)
    other.goto("/rooms/%s" % room)
    expect(page.locator(STATUS)).to_have_text("已连接")
    expect(other.locator(STATUS)).to_have_text("已连接")
    other.locator("#text").press_sequentially("你好")  # the composer signals typing
    expect(page.locator("[data-typing]")).to_have_text("%s 正在输入…" % bob)
    page.locator("main.room [data-log]").evaluate("log => { log.scrollTop = 0; }")
    for n in range(3):
        publish(server, room, "新的 %d" % n, user="carl")
    expect(page.locator("main.room [data-jump]")).to_have_text("3 条新消息 ↓")
    assert not errors, errors


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", ["phone", "desktop"])
def test_screenshots_of_a_room_in_each_language(contexts, server, room, locale, scheme, device):
    ctx = contexts(server, locale, color_scheme=scheme, **(PHONE if device == "phone" else DESKTOP))
    me, bob = unique("ann"), unique("bob")
    sign_in_over_http(ctx, me)
    room = ("技术交流-" if locale == "zh-CN" else "launch-") + room[-6:]
    hello = "大家好！今天的发布会几点开始？" if locale == "zh-CN" else "Hello! When does the launch start?"
    publish(server, quote(room), hello, user=bob)
    page = ctx.new_page()
    page.goto("/rooms/%s" % quote(room))
    expect(page.locator(STATUS)).to_have_text(CONNECTED[locale])
    page.locator("#text").fill("下午三点，别迟到 🙂" if locale == "zh-CN" else "3 pm, don't be late 🙂")
    page.locator("#text").press("Enter" if device == "desktop" else "Control+Enter")
    if device == "phone":
        page.locator("form[data-form] button[type=submit]").click()
    expect(page.locator("main.room li.msg")).to_have_count(2)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / ("i18n-room-%s-%s-%s.png" % (locale, scheme, device))
    page.screenshot(path=shot)
    if (locale, scheme, device) == ("zh-CN", "light", "phone") and not (DOCS_IMG / "room-zh-hans-phone.png").exists():
        shutil.copy(shot, DOCS_IMG / "room-zh-hans-phone.png")  # README.md shows it (delete it to take a new one)
