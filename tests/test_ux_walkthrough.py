"""A new person's walk through Ripple on a phone, in Chinese (the UX walkthrough of session 4).

Each test is one problem that walk found: real Chromium at phone size (390x844, zh-CN, touch)
or plain HTTP, against the real 2-worker Gunicorn.
"""
import re
import shutil
import urllib.parse
import urllib.request

import pytest
from playwright.sync_api import expect

from .browser import (  # noqa: F401 (browser: fixture)
    SCREENSHOTS,
    SEND,
    STATUS,
    browser,
    sign_in_over_http,
    unique,
)

DOCS_IMG = SCREENSHOTS.parent.parent / "docs" / "img"
PHONE = {"viewport": {"width": 390, "height": 844}, "locale": "zh-CN", "has_touch": True,
         "is_mobile": True}


@pytest.fixture
def phone(browser, server, room):
    """Open the test's room on a phone in Chinese: ``phone(name)`` -> a connected page."""
    contexts, errors = [], []

    def open_phone(name=None, **options):
        context = browser.new_context(base_url=server.url, **PHONE, **options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        if name:
            sign_in_over_http(context, name)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(error))
        page.goto("/rooms/%s" % room)
        if options.get("java_script_enabled", True):
            expect(page.locator(STATUS)).to_have_text("已连接")
        return page

    yield open_phone
    for context in contexts:
        context.close()
    assert not errors, "JavaScript errors on the page: %r" % errors


def send_by_button(page, text):
    """Type and tap Send (on a phone Enter adds a line); wait until the server stored it."""
    page.fill("#text", text)
    page.locator(SEND).click()
    expect(page.locator("#text")).to_have_value("")


def contrast(page, selector):
    """The WCAG contrast ratio of an element's text colour against its background colour."""
    return page.locator(selector).evaluate("""el => {
        const rgb = c => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
        const lum = c => { const [r, g, b] = rgb(c).map(v => { v /= 255;
            return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
            return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
        const s = getComputedStyle(el), a = lum(s.color), b = lum(s.backgroundColor);
        return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    }""")


def test_a_bad_room_name_is_said_once_under_the_room_field_not_under_the_name_field(server):
    url = server.url + "/go?" + urllib.parse.urlencode({"room": "技术 交流!"})
    request = urllib.request.Request(url, headers={"Accept-Language": "zh-CN"})
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("a bad room name must answer 400")
    except urllib.error.HTTPError as error:
        assert error.code == 400
        page = error.read().decode()
    alerts = re.findall(r'<p[^>]*role="alert"[^>]*>', page)
    assert alerts == ['<p id="room-error" class="error" role="alert">'], alerts
    assert 'aria-describedby="name-error"' not in page  # the display-name field has no error


def test_the_delete_button_on_a_phone_is_readable(phone):
    page = phone(unique("小明"))
    send_by_button(page, "要删掉的消息")
    page.locator("main.room li.msg details.actions summary").first.click()
    delete = "main.room li.msg form[data-delete] button[data-delete-ask]"
    expect(page.locator(delete)).to_have_text("删除消息")
    page.screenshot(path=str(SCREENSHOTS / "ux-actions-zh.png"))
    assert contrast(page, delete) >= 4.5  # WCAG AA: it was dark red on the blue of buttons


def sign_out_in_another_tab(page):
    """Open a second tab of the same browser (same cookies) and press 退出 there."""
    other = page.context.new_page()
    other.goto(page.url)
    other.get_by_role("button", name="退出").click()
    expect(other.locator("#name")).to_be_visible()
    other.close()
    expect(page.locator(STATUS)).to_have_text("已退出")


def test_signing_out_on_a_shared_computer_leaves_nothing_of_the_person_in_other_tabs(phone):
    me = unique("小明")
    page = phone(me)
    send_by_button(page, "公开的消息")
    expect(page.locator("[data-sidebar]")).to_have_count(1)
    page.locator("main.room li.msg details.actions summary").click()
    page.locator("main.room li.msg form[data-edit] textarea").fill("没保存的修改：我的银行卡密码")
    sign_out_in_another_tab(page)
    # Their rooms, their half-written edit and its menu, "(我)" in the online list: all gone.
    expect(page.locator("[data-sidebar]")).to_have_count(0)
    expect(page.locator("[data-actions]")).to_have_count(0)
    expect(page.locator("[data-online] li.me, [data-online] li[data-you]")).to_have_count(0)
    typed = page.evaluate("[...document.querySelectorAll('textarea, input')].map(e => e.value)")
    assert not [value for value in typed if "银行卡" in value]
    assert "银行卡" not in page.content()


def test_a_draft_kept_at_sign_out_goes_back_to_its_writer_not_to_the_next_person(phone):
    page = phone(unique("小明"))
    page.fill("#text", "写给自己的草稿")
    sign_out_in_another_tab(page)
    page.fill("#name", unique("小红"))  # the next person at the same computer, in this tab
    page.get_by_role("button", name="开始聊天").click()
    expect(page.locator(STATUS)).to_have_text("已连接")
    expect(page.locator("#text")).to_have_value("")
    assert "写给自己的草稿" not in page.content()


def test_a_draft_kept_at_sign_out_comes_back_when_its_writer_signs_in_again(phone):
    me = unique("小明")
    page = phone(me)
    page.fill("#text", "写给自己的草稿")
    sign_out_in_another_tab(page)
    page.fill("#name", me)
    page.get_by_role("button", name="开始聊天").click()
    expect(page.locator(STATUS)).to_have_text("已连接")
    expect(page.locator("#text")).to_have_value("写给自己的草稿")


def test_the_room_log_on_the_manage_page_names_its_columns_apart_in_chinese(person, room):
    owner = person("小明")
    status, _, body = owner.request("POST", "/rooms", body={"name": room})
    assert status == 201, body
    status, _, page = owner.request("GET", "/rooms/%s/manage" % room, headers={"Accept-Language": "zh-CN"})
    assert status == 200
    heads = re.findall(r"<tr><th>(.*?)</tr>", page.decode())
    for head in heads:  # "Who" and "To" were both 对象 in the log: who did it, to whom
        cells = [cell for cell in re.findall(r"<th>([^<]*)</th>", "<th>" + head) if cell]
        assert len(cells) == len(set(cells)), cells


def test_the_sidebar_on_a_phone_counts_unread_messages_and_mentions_in_another_room(phone, person, room):
    """Not the person's own message, though they left right after sending it (it counted)."""
    me = unique("小明")
    page = phone(me)
    first, other = "技术交流" + room[2:8], "闲聊" + room[2:8]
    page.goto("/rooms/%s" % urllib.parse.quote(first))
    expect(page.locator(STATUS)).to_have_text("已连接")
    send_by_button(page, "我先在这里")
    friend = person("小红")
    assert friend.post(urllib.parse.quote(other), "大家好")[0] == 201
    page.goto("/rooms/%s" % urllib.parse.quote(other))  # reading the other room now
    expect(page.locator(STATUS)).to_have_text("已连接")
    for text in ("还在吗？", "@%s 看一下这个" % me):
        assert friend.post(urllib.parse.quote(first), text)[0] == 201
    sidebar = page.locator("[data-sidebar]")
    sidebar.locator("summary").click()  # folded on a phone
    entry = sidebar.locator("li", has_text="#" + first)
    expect(entry.locator("[data-badge]")).to_have_text("2")
    expect(entry.locator("[data-mention]")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")  # no sideways scroll
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "sidebar-zh-hans-phone.png"
    page.screenshot(path=str(shot))
    if not (DOCS_IMG / shot.name).exists():
        shutil.copy(shot, DOCS_IMG / shot.name)  # README.md shows it (delete it to take a new one)


def test_a_refused_edit_without_javascript_keeps_what_was_typed_in_its_open_menu(phone):
    page = phone(unique("小明"), java_script_enabled=False)
    page.fill("#text", "原文")
    page.locator(SEND).click()
    message = page.locator("main.room li.msg").first
    message.locator("details.actions summary").click()
    typed = "改" * 2500  # over the 2000-character limit
    message.locator("form[data-edit] textarea").fill(typed)
    message.locator("form[data-edit] button").click()
    expect(page.locator("[data-page-error]")).to_contain_text("消息太长")
    message = page.locator("main.room li.msg").first
    expect(message.locator("details.actions")).to_have_attribute("open", "")
    assert message.locator("form[data-edit] textarea").input_value() == typed
    expect(message.locator(".text")).to_have_text("原文")  # the stored text is unchanged


def test_a_post_from_a_page_signed_out_elsewhere_without_javascript_shows_the_text_to_copy(phone):
    page = phone(unique("小明"), java_script_enabled=False)
    other = page.context.new_page()  # the same browser: sign out in another tab
    other.goto(page.url)
    other.get_by_role("button", name="退出").click()
    other.close()
    page.fill("#text", "退出以后才写完的话")
    page.locator(SEND).click()
    expect(page.locator("main.room [data-error]")).to_contain_text("没有发出")
    expect(page.locator("textarea[data-kept]")).to_have_value("退出以后才写完的话")
    expect(page.locator("#name-error")).to_have_count(0)  # not said under the name field
