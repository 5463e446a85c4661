"""Knowing what is new (issue 17) in real Chromium against the 2-worker Gunicorn: the sidebar's
live counts (cleared when the person reads elsewhere), the line before the first unread message
and the page starting there, a mention of a Chinese name highlighted and notified while the tab
is hidden, and the sidebar without JavaScript."""
import uuid

import pytest
from playwright.sync_api import expect

from .browser import STATUS, browser, close_context, dialogs, open_room, publish, sign_in_over_http, unique  # noqa: F401
from .servers import wait_until

# Records notifications instead of showing them, and lets a test hide the tab: the page must
# still ask the browser's real permission (granted to the context, or not).
FAKE_NOTIFICATIONS = """
window.__notes = [];
const Real = window.Notification;
class FakeNotification {
  constructor(title, options) { window.__notes.push({ title, body: (options || {}).body }); }
  static get permission() { return Real ? Real.permission : 'denied'; }
  static requestPermission() { return Real.requestPermission(); }
}
window.Notification = FakeNotification;
Object.defineProperty(document, 'hidden', { get: () => !!window.__hidden, configurable: true });
"""


def other_room():
    return "t-" + uuid.uuid4().hex[:12]


def signed_in_context(browser, server, name, **options):
    context = browser.new_context(base_url=server.url, **options)
    context.set_default_timeout(10_000)
    sign_in_over_http(context, name)
    return context


def open_page(context, room, errors):
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(error))
    page.goto("/rooms/%s" % room)
    expect(page.locator(STATUS)).to_have_text("connected")
    return page


def unread_of(context, room):
    entries = context.request.get("/me/rooms").json()
    return next((e["unread"] for e in entries if e["room"] == room), None)


def test_the_sidebar_counts_live_and_clears_when_read_in_another_tab(browser, server, room):
    elsewhere = other_room()
    publish(server, elsewhere, "before")
    errors = []
    context = signed_in_context(browser, server, unique("ann"))
    try:
        open_page(context, elsewhere, errors).close()  # the room joins her sidebar
        page = open_page(context, room, errors)
        item = page.locator('[data-sidebar] li[data-room="%s"]' % elsewhere)
        expect(item).to_be_visible()
        expect(item.locator("[data-badge]")).to_be_hidden()
        publish(server, elsewhere, "one")
        publish(server, elsewhere, "two")
        expect(item.locator("[data-badge]")).to_have_text("2")
        # She reads it in another tab (its page reports what is on screen): this tab clears.
        reader = open_page(context, elsewhere, errors)
        reader.bring_to_front()
        wait_until(lambda: unread_of(context, elsewhere) == 0, timeout=10, message="read reported")
        expect(item.locator("[data-badge]")).to_be_hidden()
        assert not errors, errors
    finally:
        close_context(context)


def test_the_page_starts_at_a_line_before_the_first_unread(browser, server, room):
    publish(server, room, "seen before leaving")
    errors = []
    context = signed_in_context(browser, server, unique("ann"))
    try:
        open_page(context, room, errors).close()
        first = publish(server, room, "first since you left")["id"]
        for i in range(40):
            publish(server, room, "later %d" % i)
        page = open_page(context, room, errors)
        line = page.locator("li.msg.first-unread")
        expect(line).to_have_attribute("data-id", first)
        expect(line).to_be_in_viewport()  # the page starts there, not at the bottom
        assert page.locator("li.msg").last.evaluate(
            "li => li.getBoundingClientRect().top > li.closest('[data-log]').getBoundingClientRect().bottom")
        expect(page.get_by_role("link", name="Jump to first unread")).to_be_visible()
        divider = line.evaluate("li => getComputedStyle(li, '::before').content")
        assert "New since you left" in divider
        assert not errors, errors
    finally:
        close_context(context)


def test_a_mention_of_a_chinese_name_is_highlighted_and_notified_when_hidden(browser, server, room):
    name = "小明" + uuid.uuid4().hex[:4]
    errors = []
    context = signed_in_context(browser, server, name, permissions=["notifications"])
    context.add_init_script(FAKE_NOTIFICATIONS)
    try:
        page = open_page(context, room, errors)
        page.evaluate("window.__hidden = true")
        publish(server, room, "@%s 你好，请看一下部署" % name, user="bob")
        mention = page.locator("li.msg.mentions-me")
        expect(mention).to_have_count(1)
        expect(mention.locator(".text")).to_have_text("@%s 你好，请看一下部署" % name)
        wait_until(lambda: page.evaluate("window.__notes.length") == 1, timeout=5, message="a notification")
        note = page.evaluate("window.__notes[0]")
        assert note["title"] == "#%s · bob" % room and note["body"] == "@%s 你好，请看一下部署" % name
        publish(server, room, "no mention here", user="bob")
        expect(page.locator("li.msg")).to_have_count(2)
        assert page.evaluate("window.__notes.length") == 1
        assert not errors, errors
    finally:
        close_context(context)


def test_no_notification_without_the_permission_and_the_ask_waits_for_a_click(browser, server, room):
    name = unique("ann")
    errors = []
    context = signed_in_context(browser, server, name)
    context.add_init_script(FAKE_NOTIFICATIONS)
    try:
        page = open_page(context, room, errors)
        ask = page.locator("[data-notify]")
        expect(ask).to_be_visible()  # offered, not asked: the browser asks only after the click
        page.evaluate("window.__hidden = true")
        publish(server, room, "hey @%s" % name, user="bob")
        expect(page.locator("li.msg.mentions-me")).to_have_count(1)
        assert page.evaluate("window.__notes.length") == 0
        assert not errors, errors
    finally:
        close_context(context)


def test_the_sidebar_without_javascript(browser, server, room):
    elsewhere = other_room()
    publish(server, elsewhere, "seen")
    context = signed_in_context(browser, server, unique("ann"), java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/rooms/%s" % elsewhere)
        for i in range(3):
            publish(server, elsewhere, "new %d" % i)
        page.goto("/rooms/%s" % room)
        item = page.locator('[data-sidebar] li[data-room="%s"]' % elsewhere)
        expect(item.locator("[data-badge]")).to_have_text("3")
        item.get_by_role("button", name="Hide #%s" % elsewhere).click()
        expect(page).to_have_url(server.url + "/rooms/%s" % room)
        expect(page.locator('[data-sidebar] li[data-room="%s"]' % elsewhere)).to_have_count(0)
    finally:
        close_context(context)



# Every control of the page: where a finger must land on a phone.
OFF_SCREEN = """() => Array.from(document.querySelectorAll('a, button, summary, input:not([type=hidden]), textarea'))
  .filter((el) => el.getClientRects().length && !el.closest('[hidden]'))
  .map((el) => [el.getBoundingClientRect(), el])
  .filter(([r]) => r.left < 0 || r.right > document.documentElement.clientWidth + 0.5)
  .map(([r, el]) => `${el.tagName} ${(el.getAttribute('aria-label') || el.textContent).trim().slice(0, 40)}`
    + ` ${Math.round(r.right)}`)"""


@pytest.mark.parametrize("js", [False, True])
def test_a_long_room_name_in_the_sidebar_keeps_every_control_on_a_phones_screen(browser, server, js):
    # h62 finding 8: without JavaScript the list is open on a phone, and a 64-character name
    # pushed its hide button (×) to x = 475 on a 390 px screen.
    room = "很长的房间名字用来测试手机布局会不会溢出" + uuid.uuid4().hex[:12] + "x" * 32
    context = signed_in_context(browser, server, unique("ann"), java_script_enabled=js, locale="zh-CN",
                                viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    try:
        page = context.new_page()
        page.goto("/rooms/%s" % room)
        item = page.locator('[data-sidebar] li[data-room="%s"]' % room)
        if js:  # folded away on a phone: open it as a person would
            expect(page.locator(STATUS)).to_have_attribute("data-state", "connected")
            page.locator("[data-sidebar] summary").tap()
        hide = item.get_by_role("button", name="隐藏 #%s" % room)
        expect(hide).to_be_visible()
        assert page.evaluate(OFF_SCREEN) == []
        assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        hide.tap()
        expect(item).to_have_count(0)
    finally:
        close_context(context)


def test_an_at_in_the_composer_suggests_people_in_the_room(open_room, room):
    ann_name = unique("ann")
    open_room(name=ann_name)
    bob = open_room(name=unique("bob"))
    expect(bob.locator("[data-online] li", has_text=ann_name)).to_have_count(1)
    bob.locator("#text").press_sequentially("hi @" + ann_name[:4].upper())
    options = bob.locator(".suggest [role=option]")
    expect(options).to_have_text([ann_name])
    bob.locator("#text").press("Enter")  # picks the name: it does not send
    expect(bob.locator("#text")).to_have_value("hi @%s " % ann_name)
    expect(bob.locator(".suggest")).to_be_hidden()
    bob.locator("#text").press_sequentially("@nobody-here")
    expect(bob.locator(".suggest")).to_be_hidden()


def test_the_sidebars_mention_marker_follows_an_edit_in_another_room(browser, server, room):
    elsewhere = other_room()
    publish(server, elsewhere, "before")
    ann, errors = unique("ann"), []
    context = signed_in_context(browser, server, ann)
    bob = signed_in_context(browser, server, unique("bob"))
    try:
        open_page(context, elsewhere, errors).close()  # the room joins her sidebar, her name known
        page = open_page(context, room, errors)
        item = page.locator('[data-sidebar] li[data-room="%s"]' % elsewhere)
        token = bob.request.get("/session").json()["csrf_token"]
        posted = bob.request.post("/rooms/%s/messages" % elsewhere, data={"text": "@%sx look" % ann},
                                  headers={"X-CSRF-Token": token}).json()  # a typo: nobody
        expect(item.locator("[data-badge]")).to_have_text("1")
        expect(item.locator("[data-mention]")).to_be_hidden()
        path = "/rooms/%s/messages/%s" % (elsewhere, posted["id"])
        assert bob.request.patch(path, data={"text": "@%s look" % ann}, headers={"X-CSRF-Token": token}).ok
        expect(item.locator("[data-mention]")).to_be_visible()
        summary_mention = page.locator("[data-sidebar] summary [data-total-mention]")  # a phone's folded view
        expect(summary_mention).to_be_visible()
        assert bob.request.patch(path, data={"text": "never mind"}, headers={"X-CSRF-Token": token}).ok
        expect(item.locator("[data-mention]")).to_be_hidden()
        expect(summary_mention).to_be_hidden()
        assert not errors, errors
    finally:
        bob.close()
        close_context(context)


def test_a_deleted_unread_message_in_another_room_stops_counting(browser, server, room):
    elsewhere = other_room()
    publish(server, elsewhere, "before")
    errors = []
    context = signed_in_context(browser, server, unique("ann"))
    bob = signed_in_context(browser, server, unique("bob"))
    try:
        open_page(context, elsewhere, errors).close()  # the room joins her sidebar
        page = open_page(context, room, errors)
        item = page.locator('[data-sidebar] li[data-room="%s"]' % elsewhere)
        token = bob.request.get("/session").json()["csrf_token"]
        posted = [bob.request.post("/rooms/%s/messages" % elsewhere, data={"text": text},
                                   headers={"X-CSRF-Token": token}).json() for text in ("spam", "real")]
        expect(item.locator("[data-badge]")).to_have_text("2")
        path = "/rooms/%s/messages/%s" % (elsewhere, posted[0]["id"])
        assert bob.request.delete(path, headers={"X-CSRF-Token": token}).ok
        expect(item.locator("[data-badge]")).to_have_text("1")
        assert unread_of(context, elsewhere) == 1  # what the server counts, the page shows
        assert not errors, errors
    finally:
        bob.close()
        close_context(context)


def test_the_mentions_page_shown_again_from_the_back_forward_cache_is_asked_for_again(browser, server, room):
    context = signed_in_context(browser, server, unique("ann"))
    try:
        page = context.new_page()
        page.goto("/me/mentions")
        expect(page.locator("main")).to_be_visible()
        token = context.request.get("/session").json()["csrf_token"]
        assert context.request.delete("/session", headers={"X-CSRF-Token": token}).status == 204
        page.evaluate("window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))")
        page.wait_for_url(server.url + "/")  # signed out: the lobby, nothing of hers kept on screen
    finally:
        close_context(context)


def test_a_post_kept_for_another_room_shows_on_that_room_in_the_sidebar_until_its_page_sends_it(
        browser, server, room):
    elsewhere = other_room()
    errors = []
    context = signed_in_context(browser, server, unique("ann"))
    try:
        page = open_page(context, elsewhere, errors)
        refuse_posts = lambda route: route.abort() if route.request.method == "POST" else route.continue_()  # noqa: E731
        page.route("**/rooms/%s/messages" % elsewhere, refuse_posts)  # the network fails her post
        page.fill("#text", "kept for later")
        page.locator("main.room form[data-form] button[type=submit]").click()
        expect(page.locator("main.room [data-pending] li [data-pending-status]")).to_have_text(
            "Not sent yet — will retry.")
        page.goto("/rooms/%s" % room)  # the post waits in this tab for its own room's page
        expect(page.locator(STATUS)).to_have_text("connected")
        mark = page.locator('[data-sidebar] li[data-room="%s"] [data-unsent]' % elsewhere)
        expect(mark).to_have_text("1 unsent")
        expect(mark).to_have_attribute("title", "Not sent yet: open #%s to send." % elsewhere)
        # and on the sidebar's summary, for a phone's folded sidebar
        expect(page.locator("[data-sidebar] summary [data-total-unsent]")).to_have_text("1 unsent")
        page.unroute("**/rooms/%s/messages" % elsewhere)
        page.goto("/rooms/%s" % elsewhere)  # its page sends it
        expect(page.locator("main.room li.msg .text")).to_have_text(["kept for later"])
        expect(page.locator('[data-sidebar] [data-unsent]')).to_have_count(0)  # here it is a line of the log
        page.goto("/rooms/%s" % room)
        expect(page.locator(STATUS)).to_have_text("connected")
        expect(page.locator('[data-sidebar] li[data-room="%s"]' % elsewhere)).to_be_visible()
        expect(page.locator('[data-sidebar] [data-unsent]')).to_have_count(0)
        expect(page.locator("[data-sidebar] summary [data-total-unsent]")).to_be_hidden()
        assert errors == []
    finally:
        close_context(context)
