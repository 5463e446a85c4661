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

from .browser import (  # noqa: F401 (browser, dialogs, open_room: fixtures)
    SCREENSHOTS,
    SEND,
    STATUS,
    browser,
    dialogs,
    history,
    open_room,
    publish,
    unique,
    wait_for_script,
)
from .test_browser import relay  # noqa: F401 (fixture)

DOCS_IMG = SCREENSHOTS.parent.parent / "docs" / "img"
PHONE = {"viewport": {"width": 390, "height": 844}, "locale": "zh-CN", "has_touch": True,
         "is_mobile": True}


@pytest.fixture
def phone(open_room):
    """Open the test's room on a phone in Chinese: ``phone(name)`` -> a connected page."""
    def open_phone(name=None, **options):
        page = open_room(name, **PHONE, **options)
        if options.get("java_script_enabled", True):
            expect(page.locator(STATUS)).to_have_text("已连接")
        return page
    return open_phone


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


def sign_out_in_another_tab(page, asked=False):
    """Open a second tab of the same browser (same cookies) and press 退出 there (``asked``:
    ``page`` has something waiting, so it asks first; then 仍然退出)."""
    other = page.context.new_page()
    other.goto(page.url)
    expect(other.locator("html")).to_have_attribute("data-other-tabs", "1")  # it asks ``page``
    other.get_by_role("button", name="退出").click()
    if asked:
        expect(other.locator("[data-signout-warning]")).to_contain_text("其中 1 条在此浏览器的其他标签页中。")
        other.get_by_role("button", name="仍然退出").click()
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


KEPT = "Object.keys(sessionStorage).filter(k => /^ripple-(draft|pending):/.test(k))"


def test_signing_out_in_another_tab_clears_this_tabs_draft_and_pending_posts(phone):
    page = phone(unique("小明"))
    page.route("**/rooms/*/messages", lambda route: route.abort("connectionrefused")
               if route.request.method == "POST" else route.fallback())
    page.fill("#text", "没发出去的消息")
    page.locator(SEND).click()
    expect(page.locator("main.room [data-pending] li")).to_have_count(1)
    page.fill("#text", "写给自己的草稿")
    assert len(page.evaluate(KEPT)) == 2  # both kept in the tab, for a reload
    sign_out_in_another_tab(page, asked=True)  # the post waits
    # A shared computer: nothing of them stays in the tab for the next person to read.
    assert page.evaluate(KEPT) == []
    expect(page.locator("main.room [data-pending] li")).to_have_count(0)
    page.fill("#name", unique("小红"))  # the next person at the same computer, in this tab
    page.get_by_role("button", name="开始聊天").click()
    expect(page.locator(STATUS)).to_have_text("已连接")
    expect(page.locator("#text")).to_have_value("")
    assert "写给自己的草稿" not in page.content() and "没发出去的消息" not in page.content()


def test_signing_out_in_this_tab_clears_its_draft(phone, room):
    me = unique("小明")
    page = phone(me)
    page.fill("#text", "写给自己的草稿")
    assert len(page.evaluate(KEPT)) == 1
    page.get_by_role("button", name="退出").click()
    expect(page.locator("#name")).to_be_visible()  # the lobby, signed out
    wait_for_script(page, KEPT + ".length === 0")  # its script forgets, after it shows
    page.goto("/rooms/%s" % room)
    page.fill("#name", me)
    page.get_by_role("button", name="开始聊天").click()
    expect(page.locator(STATUS)).to_have_text("已连接")
    expect(page.locator("#text")).to_have_value("")  # the writer signed out: it was not kept


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
    # The same browser signs out in another tab: the tab's form post, through the context's
    # request API (its cookie jar), which has a timeout where opening and closing a second page
    # do not (a run of the suite once hung here).
    leave = page.locator("form.whoami")
    left = page.context.request.post(urllib.parse.urljoin(page.url, leave.get_attribute("action")),
                                     form={"csrf_token": leave.locator("[name=csrf_token]").get_attribute("value")},
                                     max_redirects=0)
    assert left.status == 303
    page.fill("#text", "退出以后才写完的话")
    page.locator(SEND).click()
    expect(page.locator("main.room [data-error]")).to_contain_text("没有发出")
    expect(page.locator("textarea[data-kept]")).to_have_value("退出以后才写完的话")
    expect(page.locator("#name-error")).to_have_count(0)  # not said under the name field


# Every control a finger can reach, and its size; [] when all are at least 44 x 44 px (WCAG 2.5.5).
SMALL_CONTROLS = """() => [...document.querySelectorAll('button, a[href], summary, input:not([type=hidden]), textarea')]
    .filter(el => el.getClientRects().length && getComputedStyle(el).visibility !== 'hidden')
    .map(el => [el.textContent.trim() || el.placeholder || el.getAttribute('aria-label') || el.tagName,
                el.getBoundingClientRect()])
    .filter(([, r]) => r.width < 43.5 || r.height < 43.5)
    .map(([name, r]) => `${name} ${Math.round(r.width)}x${Math.round(r.height)}`)"""


def small_controls(page):
    """The controls of ``page`` under 44 px, measured once its stylesheets are in (the page's
    load event): measured before, every control has the browser's own small size (a CI run
    caught the delete question that way, right after its redirect)."""
    page.wait_for_load_state("load")
    return page.evaluate(SMALL_CONTROLS)


def test_every_control_on_the_room_page_is_big_enough_for_a_finger(phone, server, room):
    publish(server, room, "别人的消息")
    page = phone(unique("小明"))
    send_by_button(page, "我的消息")
    assert small_controls(page) == []
    mine = page.locator("main.room li.msg.own")
    mine.locator("details.actions summary").click()  # "⋯" was 27 x 23 px: mis-taps
    mine.get_by_role("button", name="删除消息").click()
    assert small_controls(page) == []
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")  # no sideways scroll


def test_every_control_of_the_sign_in_form_is_big_enough_for_a_finger(phone):
    page = phone(java_script_enabled=False)
    assert small_controls(page) == []


def test_deleting_on_a_phone_asks_first_in_chinese_and_keeps_focus_on_the_message(phone, server, room):
    page = phone(unique("小明"))
    for n in range(8):  # the log is full: the last message's menu opens at its bottom edge
        send_by_button(page, "第%d条" % n)
    last = page.locator("main.room li.msg.own").last
    last.locator("details.actions summary").click()
    last.get_by_role("button", name="删除消息").click()
    question = last.get_by_role("group", name="删除这条消息？")
    expect(question).to_be_visible()
    expect(last.get_by_role("button", name="取消")).to_be_focused()
    log = page.locator("main.room [data-log]").bounding_box()
    box = question.bounding_box()
    assert box["y"] + box["height"] <= log["y"] + log["height"] + 1  # in sight, not below the log's edge
    assert len(history(server, room)) == 8 and not any(m.get("deleted") for m in history(server, room))
    last.get_by_role("button", name="确定删除").click()
    deleted = page.locator("main.room li.msg.deleted")
    expect(deleted.locator(".text")).to_have_text("消息已删除")
    expect(deleted).to_be_focused()  # not the top of the page: the button it was on is gone


def test_the_delete_question_without_javascript_fits_a_phone_in_chinese(phone, room):
    page = phone(unique("小明"), java_script_enabled=False)
    send_by_button(page, "没有脚本也要先问")
    page.locator("main.room li.msg details.actions summary").click()
    page.get_by_role("button", name="删除消息").click()
    expect(page.get_by_role("heading", name="删除这条消息？")).to_be_visible()
    expect(page.get_by_role("button", name="确定删除")).to_be_visible()
    assert small_controls(page) == []
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    page.get_by_role("button", name="确定删除").click()
    expect(page.locator("main.room li.msg .text")).to_have_text(["消息已删除"])


def test_a_draft_survives_a_reload_and_the_language_switch(phone):
    page = phone(unique("小明"))
    page.fill("#text", "写了一半的话")
    page.reload()  # or a phone discarding the background tab
    expect(page.locator(STATUS)).to_have_text("已连接")
    expect(page.locator("#text")).to_have_value("写了一半的话")
    page.get_by_role("button", name="English").click()  # a plain form post: the page comes back
    expect(page.locator(STATUS)).to_have_text("connected")
    expect(page.locator("#text")).to_have_value("写了一半的话")
    page.locator(SEND).click()
    expect(page.locator("#text")).to_have_value("")
    page.reload()  # sent: nothing comes back
    expect(page.locator(STATUS)).to_have_text("connected")
    expect(page.locator("#text")).to_have_value("")


def test_a_server_error_without_a_sentence_still_says_what_to_do(phone):
    page = phone(unique("小明"))
    page.route("**/rooms/*/messages", lambda route: route.fulfill(
        status=503, content_type="text/html", body="<html><body>Service Unavailable</body></html>"), times=1)
    page.fill("#text", "网关坏了也别丢")
    page.locator(SEND).click()
    expect(page.locator("main.room [data-error]")).to_have_text(
        "服务器暂时无法接收你的消息（503）。消息已为你保留，点“发送”重试。")
    expect(page.locator("#text")).to_have_value("网关坏了也别丢")


def test_a_stalled_network_on_a_phone_is_said_in_chinese_and_the_post_goes_when_it_is_back(phone, relay, server, room):
    page = phone(unique("小明"), base_url=relay.url)
    relay.blackhole()  # a dead radio: nothing is reset, nothing arrives
    page.fill("#text", "信号不好时写的")
    page.locator(SEND).click()
    expect(page.locator(STATUS)).to_have_text("正在重新连接…", timeout=15_000)
    pending = page.locator("main.room [data-pending] li")
    expect(pending.locator("[data-pending-status]")).to_have_text("尚未发出，会自动重试。", timeout=20_000)
    expect(pending.get_by_role("button", name="取消发送")).to_be_visible()
    expect(page.locator("#text")).to_have_value("")
    page.screenshot(path=str(SCREENSHOTS / "ux-pending-zh.png"))
    relay.resume()
    expect(page.locator(STATUS)).to_have_text("已连接", timeout=20_000)
    expect(page.locator("main.room li.msg .text")).to_have_text(["信号不好时写的"], timeout=20_000)
    expect(pending).to_have_count(0)
    expect(page.locator("main.room [data-error]")).to_be_hidden()
    assert [m["text"] for m in history(server, room)] == ["信号不好时写的"]
