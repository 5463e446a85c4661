"""A post whose outcome is unknown waits at the end of the log (static/js/pending.js, retries.js):
what its line offers and says must be true, and usable on a phone (a user walkthrough's M1, L2
and L4). Chromium through the TCP relay (tests/relays.py) where the network must stall.
"""
import pytest
from playwright.sync_api import expect

from .browser import (  # noqa: F401 (browser, dialogs, open_room: fixtures)
    RECONNECT_MS,
    SEND,
    TEXTS,
    browser,
    dialogs,
    history,
    open_room,
    send,
    unique,
)
from .test_browser import relay  # noqa: F401 (fixture)
from .test_reconnect_browser import LONG, PENDING, PHONE, SLOW_HEARTBEAT, UNSAVED, a_post_waiting, edit, refuse

STATUS_OF = "[data-pending-status]"


def a_post_on_its_way(page, relay):
    relay.blackhole()  # a stalled network: it holds the request and delivers it when it is back
    page.fill("#text", "on its way")
    page.locator(SEND).click()
    return page.locator(PENDING), "Sending…", "Not sent yet — will retry.", ["on its way"]


def an_edit_on_its_way(page, relay):
    send(page, "before the stall")
    relay.blackhole()
    li = page.locator("main.room li.msg").first
    edit(li, "on its way")
    return li.locator(UNSAVED), "Saving your edit…", "Edit not saved yet — will retry.", ["on its way"]


@pytest.mark.parametrize("make", [a_post_on_its_way, an_edit_on_its_way], ids=["post", "edit"])
def test_nothing_on_its_way_is_offered_to_be_called_back_until_that_attempt_has_failed(
        open_room, relay, server, room, make):
    page = open_room(unique("ann"), base_url=relay.url,  # a 2 s post timeout
                     before_load=lambda page: page.add_init_script(SLOW_HEARTBEAT))
    line, sending, failed, stored = make(page, relay)
    expect(line.locator(STATUS_OF)).to_have_text(sending, timeout=2_000)
    # "Don't send" hid the line, and the post the network held was stored once it was back.
    expect(line.locator("[data-discard]")).to_be_hidden()
    expect(line.locator(STATUS_OF)).to_have_text(failed, timeout=2_000 + 1_000)
    expect(line.locator("[data-discard]")).to_be_visible()  # now it can stop the next attempt
    relay.resume()
    expect(page.locator(TEXTS)).to_have_text(stored, timeout=RECONNECT_MS)
    assert [m["text"] for m in history(server, room)] == stored


def posts_one_behind_another(page):
    a_post_waiting(page, "first, refused by the network")
    page.fill("#text", "second, behind it")
    page.locator(SEND).click()
    lines = page.locator(PENDING)
    return lines, "Waiting to send…", "Don't send", ["first, refused by the network"], "**/rooms/*/messages"


def edits_one_behind_another(page):
    send(page, "first")
    send(page, "second")
    first, second = page.locator("main.room li.msg").all()
    refuse(page, "PATCH")
    edit(first, "first, refused by the network")
    expect(first.locator(UNSAVED)).to_have_count(1)
    edit(second, "second, behind it")
    lines = page.locator("main.room li.msg").locator(UNSAVED)
    return (lines, "Edit waiting to be saved…", "Don't save", ["first, refused by the network", "second"],
            "**/messages/**")


@pytest.mark.parametrize("make", [posts_one_behind_another, edits_one_behind_another], ids=["posts", "edits"])
def test_one_behind_a_waiting_one_says_it_waits_until_it_has_been_tried(open_room, server, room, make):
    page = open_room(unique("ann"))
    lines, queued, discard, stored, refused = make(page)
    # It said "Not sent yet — will retry." before it was ever tried.
    expect(lines.nth(1).locator(STATUS_OF)).to_have_text(queued)
    expect(lines.nth(1).locator("[data-retry]")).to_be_hidden()  # it goes right after the one before it
    lines.nth(1).get_by_role("button", name=discard).click()  # never sent: truly not sent
    page.unroute(refused)  # the network is back
    lines.first.get_by_role("button", name="Retry now").click()
    expect(page.locator(TEXTS)).to_have_text(stored, timeout=RECONNECT_MS)
    expect(lines).to_have_count(0)
    assert [m["text"] for m in history(server, room)] == stored


def test_on_a_phone_a_waiting_posts_buttons_are_44_px_targets_apart_on_a_short_line(open_room):
    page = open_room(unique("ann"), **PHONE)
    a_post_waiting(page, LONG)
    pending = page.locator(PENDING)
    retry = pending.get_by_role("button", name="Retry now").bounding_box()
    discard = pending.get_by_role("button", name="Don't send").bounding_box()
    # They touched (0.8 px apart), each about 28 px tall: a tap meant for one hit the other.
    assert retry["height"] >= 44 and discard["height"] >= 44
    assert discard["x"] - (retry["x"] + retry["width"]) >= 8
    assert pending.bounding_box()["height"] < 64  # still one short line


def test_on_a_phone_a_waiting_posts_cut_text_opens_whole_on_a_tap_or_a_key(open_room):
    page = open_room(unique("ann"), **PHONE)
    a_post_waiting(page, LONG)
    pending = page.locator(PENDING)
    text = pending.locator(".text")
    one_line = text.bounding_box()["height"]
    expect(text).to_have_attribute("aria-expanded", "false")  # cut to one line, and no way to read the rest
    text.tap()
    expect(text).to_have_attribute("aria-expanded", "true")
    assert text.bounding_box()["height"] > 3 * one_line  # whole
    expect(pending.locator(STATUS_OF)).to_have_text("Not sent yet — will retry.")  # a tap on it discards nothing
    expect(text).to_have_attribute("tabindex", "0")
    text.press("Enter")
    expect(text).to_have_attribute("aria-expanded", "false")
