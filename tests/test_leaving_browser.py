"""Leaving while posts wait: "Sign out" names the rooms where other tabs keep this person's
unsent posts (signout.js), and closing a tab that keeps some asks first (leaving.js): its
sessionStorage goes with it. Chromium through Playwright, against the real Gunicorn.
"""
from playwright.sync_api import expect

from .browser import SEND, STATUS, browser, dialogs, open_room, send, unique  # noqa: F401 (fixtures)

PENDING = "main.room [data-pending] li"
WARNING = "[data-signout-warning]"


def posts_waiting(page, *texts):
    """Post ``texts`` from ``page`` while its posts cannot get through: they wait in its log."""
    page.route("**/rooms/*/messages", lambda route: route.abort("connectionrefused")
               if route.request.method == "POST" else route.fallback())
    for text in texts:
        page.fill("#text", text)
        page.locator(SEND).click()
        expect(page.locator("#text")).to_have_value("")
    expect(page.locator(PENDING)).to_have_count(len(texts))


def open_tab(page, path):
    """Another tab of ``page``'s browser (its own sessionStorage), at ``path``."""
    tab = page.context.new_page()
    tab.goto(path)
    return tab


def sign_out_elsewhere(page, path, others, button="Sign out"):
    """Press Sign out in a new tab at ``path``, once it knows of the ``others`` tabs; its warning."""
    tab = open_tab(page, path)
    expect(tab.locator("html")).to_have_attribute("data-other-tabs", str(others))
    tab.get_by_role("button", name=button, exact=True).click()
    return tab.locator(WARNING)


def test_signing_out_names_the_rooms_where_the_other_tabs_keep_posts(open_room, room):
    first = open_room(unique("ann"))
    posts_waiting(first, "one", "two")
    second = open_tab(first, "/rooms/技术交流-%s" % room)
    expect(second.locator(STATUS)).to_have_attribute("data-state", "connected")
    posts_waiting(second, "three")
    second.goto("/")  # kept in that tab for its room's page, named by its path
    warning = sign_out_elsewhere(first, "/", 2)
    # It said "3 of them are in other tabs": nothing to say which tabs to look in.
    expect(warning).to_contain_text("3 of them are in other tabs of this browser. "
                                    "2 are in #%s and 1 is in #技术交流-%s." % (room, room))


def test_in_chinese_the_list_of_rooms_is_short(open_room, room):
    page = open_room(unique("ann"), locale="zh-CN")
    for suffix in "abcd":  # one post waiting for each of four rooms, kept in this one tab
        page.goto("/rooms/%s-%s" % (room, suffix))
        expect(page.locator(STATUS)).to_have_attribute("data-state", "connected")
        posts_waiting(page, "帖子 %s" % suffix)
    warning = sign_out_elsewhere(page, "/", 1, button="退出")
    expect(warning).to_contain_text("其中 4 条在此浏览器的其他标签页中。"
                                    "#%s-a 有 1 条、#%s-b 有 1 条和其余在另外 2 个房间。" % (room, room))


def test_closing_a_tab_that_keeps_posts_asks_first(open_room, dialogs):
    page = open_room(unique("ann"))
    posts_waiting(page, "not sent yet")
    # A reload keeps them; closing the tab threw them away without a word.
    page.goto("/")  # leaving the room's page asks too (it cannot be told from closing the tab)
    page.get_by_role("heading", name="Rooms").click()  # Chromium asks only after a gesture on the page
    with page.expect_event("close"):  # accepted (tests/browser.py): closed before the context is
        page.close(run_before_unload=True)
    assert dialogs == ["beforeunload", "beforeunload"]  # the lobby asks for the room's post too


def test_nothing_waiting_or_signing_out_anyway_leaves_without_a_question(open_room, dialogs):
    page = open_room(unique("ann"))
    send(page, "stored")  # typed and sent: the page may ask (Chromium wants a gesture first)
    page.reload()
    expect(page.locator(STATUS)).to_have_attribute("data-state", "connected")
    posts_waiting(page, "thrown away on purpose")
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.get_by_role("button", name="Sign out anyway").click()  # asked once already
    expect(page.locator("[data-whoami]")).to_have_count(0)
    with page.expect_event("close"):
        page.close(run_before_unload=True)
    assert dialogs == []


def test_following_a_link_to_another_of_its_pages_keeps_them_without_a_question(open_room, dialogs):
    # Its storage goes along: a "Leave site?" on every move between rooms read like a loss.
    page = open_room(unique("ann"))
    posts_waiting(page, "kept for its room")
    page.locator("header").get_by_role("link", name="Ripple").click()
    # The lobby's scripts ran (its sidebar counts the kept post): its LeaveGuard is listening.
    # The heading alone showed before them, and a close then went unasked (a CI run).
    expect(page.locator("[data-sidebar] summary [data-total-unsent]")).to_have_text("1 unsent")
    assert dialogs == []
    assert page.evaluate("Object.keys(sessionStorage).filter(k => k.startsWith('ripple-pending:')).length") == 1
    page.get_by_role("heading", name="Rooms").click()  # Chromium asks only after a gesture on the page
    with page.expect_event("close"):  # closing this tab would lose it: that still asks
        page.close(run_before_unload=True)
    assert dialogs == ["beforeunload"]
