"""The page as people use it (issue 11, items 10-16): real Chromium, real Gunicorn, real Redis.

Forms that fail answer with a page and a sentence, never raw JSON; direct messages, the online
list and older history work without JavaScript; direct messages have their own place; a phone's
Enter adds a line; "Load older messages" behaves; a long paste is refused, not cut; the log groups
messages by author and day and collapses join/leave lines, the same live as after a reload.
"""
import json
import re
import time
import uuid

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from app.ops import cli
from app.rooms import keys, messages

from .browser import (  # noqa: F401 (browser, dialogs, open_room: fixtures)
    LIVE_MS,
    ONLINE,
    PRESENCE_MS,
    SCREENSHOTS,
    SEND,
    STATUS,
    TEXTS,
    browser,
    choose_name,
    dialogs,
    expect_texts,
    history,
    open_room,
    publish,
    send,
    sign_in_over_http,
    unique,
)
from .relays import Relay
from .servers import Gunicorn, wait_until
from .support import SERVER_ENV, post
from .web import Browser

pytestmark = pytest.mark.browser

DM_TEXT = "#dm-text"
DM_SEND = "[data-conversation] button[type=submit]"
ROOM_SEND = "main.room " + SEND
INBOX = "[data-inbox] li"
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}


def no_js_page(open_room, name=None):
    """A room page with JavaScript off, signed in as ``name`` through its own sign-in form."""
    page = open_room(java_script_enabled=False)
    if name:
        choose_name(page, name, js=False)
    return page


def submit(page, button):
    """Click a form's submit button; return the answer to its POST once the page has loaded."""
    with page.expect_response(lambda r: r.request.method == "POST" and not r.url.endswith("/typing")) as answer:
        page.click(button)
    page.wait_for_load_state()
    return answer.value


# -- 10. Every form's failure is a page with a sentence and the typed text ---------------------

@pytest.fixture(scope="module")
def limited_gunicorn(redis_url, tmp_path_factory):
    """A Gunicorn whose sign-in and posting limits are tiny, with limit counters of its own."""
    prefix = "ripple:test-limit:" + uuid.uuid4().hex
    server = Gunicorn(tmp_path_factory.mktemp("limited"), redis_url=redis_url, workers=2, env={
        **SERVER_ENV, "RIPPLE_SESSION_RATE_IP": "2 per minute", "RIPPLE_POST_RATE_SESSION": "2 per minute",
        "RIPPLE_RATELIMIT_KEY_PREFIX": prefix})
    server.start()
    yield server, prefix
    server.halt()


@pytest.fixture
def limited_server(limited_gunicorn, redis_client):
    """limited_gunicorn with none of its limits spent: each test starts with every counter at
    zero, as on a server of its own (one server for the module saves a start per test)."""
    server, prefix = limited_gunicorn
    for key in redis_client.scan_iter(match="*%s*" % prefix, count=1000):  # limits adds "LIMITS:"
        redis_client.delete(key)
    return server


def wait_in(answer):
    """The Retry-After of a 429 answer, which every sentence about the wait must repeat."""
    assert answer.status == 429, answer.status
    seconds = int(answer.headers["retry-after"])
    assert 0 < seconds <= 60
    return seconds


def test_a_rate_limited_sign_in_form_answers_a_page_with_the_real_wait_and_the_typed_name(
        open_room, limited_server):
    page = open_room(base_url=limited_server.url, java_script_enabled=False)
    taken = unique("ann")
    open_room(name=taken, base_url=limited_server.url)  # that name's one attempt (JSON, counted)
    page.fill("#name", taken)
    assert submit(page, "form.signin button").status == 409  # the second: refused by name
    name = unique("ann")
    page.fill("#name", name)
    answer = submit(page, "form.signin button")  # the third within a minute: rate limited
    seconds = wait_in(answer)
    assert "text/html" in answer.headers["content-type"]
    expect(page.locator("#name-error")).to_have_text(
        "Too many sign-in attempts from your network; try again in %d s." % seconds)
    expect(page.locator("#name")).to_have_value(name)
    assert "{" not in page.locator("body").inner_text()  # no raw JSON anywhere


def test_a_rate_limited_message_form_keeps_the_text_and_says_the_wait(open_room, limited_server):
    page = open_room(base_url=limited_server.url, java_script_enabled=False)
    choose_name(page, unique("ann"), js=False)
    for text in ("one", "two"):
        page.fill("#text", text)
        assert submit(page, ROOM_SEND).status == 303
    page.fill("#text", "three, too fast")
    answer = submit(page, ROOM_SEND)
    seconds = wait_in(answer)
    expect(page.locator("main.room [data-error]")).to_have_text(
        "You are sending messages too fast; try again in %d s." % seconds)
    expect(page.locator("#text")).to_have_value("three, too fast")


def test_a_rate_limited_send_with_javascript_says_the_wait_once(open_room, limited_server):
    page = open_room(name=unique("ann"), base_url=limited_server.url)
    send(page, "one")
    send(page, "two")
    page.fill("#text", "three, too fast")
    with page.expect_response(lambda r: r.request.method == "POST" and not r.url.endswith("/typing")) as answer:
        page.press("#text", "Enter")
    seconds = wait_in(answer.value)
    expect(page.locator("main.room [data-error]")).to_have_text(
        "You are sending messages too fast; try again in %d s." % seconds)
    expect(page.locator("#text")).to_have_value("three, too fast")


def test_a_sign_in_form_from_a_stale_page_answers_a_fresh_page_that_works(open_room):
    page = no_js_page(open_room)
    page.context.clear_cookies()  # the session the page's CSRF token belonged to is gone
    name = unique("ann")
    page.fill("#name", name)
    # An error answer to a POST sets no cookie, so the form comes back on a page that can (a GET).
    assert submit(page, "form.signin button").status == 303
    expect(page.locator("#name-error")).to_contain_text("You are not signed in yet")
    assert '"error"' not in page.locator("body").inner_text()
    expect(page.locator("#name")).to_have_value(name)
    assert submit(page, "form.signin button").status == 303  # the page's new token works
    expect(page.locator("[data-whoami]")).to_have_text(name)


def test_a_message_form_from_a_stale_page_keeps_the_text_and_sends_on_the_next_try(open_room, server,
                                                                                  room):
    page = no_js_page(open_room, unique("ann"))
    # As after signing in or out in another tab: the page's token no longer matches the session.
    page.locator("main.room input[name=csrf_token]").evaluate("el => el.value = 'stale' + el.value")
    page.fill("#text", "typed on an old page")
    answer = submit(page, ROOM_SEND)
    assert answer.status == 400
    expect(page.locator("main.room [data-error]")).to_contain_text("Nothing was sent")
    expect(page.locator("#text")).to_have_value("typed on an old page")
    assert submit(page, ROOM_SEND).status == 303
    assert [m["text"] for m in history(server, room)] == ["typed on an old page"]


def test_a_leave_form_from_a_stale_page_answers_the_lobby_with_a_sentence(open_room):
    name = unique("ann")
    page = no_js_page(open_room, name)
    page.locator("form.whoami input[name=csrf_token]").evaluate("el => el.value = 'stale' + el.value")
    answer = submit(page, "form.whoami button")
    assert answer.status == 400 and "text/html" in answer.headers["content-type"]
    expect(page.get_by_role("alert")).to_contain_text("You are still signed in")
    expect(page.locator("[data-whoami]")).to_have_text(name)
    assert submit(page, "form.whoami button").status == 303  # the lobby's own Sign out works
    expect(page.locator("[data-whoami]")).to_have_count(0)


@pytest.mark.parametrize("js", [True, False])
def test_signing_out_says_so_once_on_the_lobby(open_room, js):
    page = open_room(unique("ann"), java_script_enabled=js, locale="zh-CN")
    page.locator("form.whoami button").click()
    expect(page).to_have_url(re.compile("/$"))
    expect(page.get_by_role("status")).to_have_text("你已退出登录。")
    page.reload()  # said once: not again on the next visit
    expect(page.locator(".flashes")).to_have_count(0)


def test_a_send_from_a_page_with_a_stale_token_takes_a_fresh_one_and_goes_once(open_room, server, room):
    page = open_room(name=unique("ann"))
    page.locator("main.room input[name=csrf_token]").evaluate("el => el.value = 'stale' + el.value")
    statuses = []
    page.on("response", lambda r: statuses.append(r.status)
            if r.request.method == "POST" and r.url.endswith("/messages") else None)  # typing aside
    send(page, "sent after all")
    assert statuses == [400, 201]  # refused (nothing stored), then sent with the fresh token
    expect(page.locator("main.room [data-error]")).to_be_hidden()
    assert [m["text"] for m in history(server, room)] == ["sent after all"]


@pytest.mark.parametrize("path, lands", [
    ("/session", r"/session$"),                 # a failed sign-in's page, reopened
    ("/session/leave", r"/$"),                  # the Sign out form's address
    ("/rooms/{room}/messages", r"/rooms/{room}$"),  # a failed post's page, reopened
    ("/users/nobody/messages?room={room}", r"/rooms/{room}\?with=nobody$"),
    ("/go?room=Not+A+Room", r"/go\?room="),     # the lobby's form, with a bad name
])
def test_opening_a_forms_address_in_the_browser_shows_a_page_not_json(open_room, room, path, lands):
    page = open_room(java_script_enabled=False)
    answer = page.goto(path.format(room=room))
    assert "text/html" in answer.headers["content-type"], answer.headers
    assert re.search(lands.format(room=room), page.url), page.url
    body = page.locator("body").inner_text()
    assert not body.lstrip().startswith("{") and '"error"' not in body


def test_a_failed_direct_message_form_keeps_the_text_in_the_conversation(open_room, room):
    page = no_js_page(open_room, unique("ann"))
    gone = unique("gone")
    page.goto("/rooms/%s?with=%s" % (room, gone))
    page.fill(DM_TEXT, "are you there?")
    answer = submit(page, DM_SEND)
    assert answer.status == 404
    expect(page.locator("[data-conversation] [data-error]")).to_have_text(
        "No one called “%s” is here right now." % gone)
    expect(page.locator(DM_TEXT)).to_have_value("are you there?")
    expect(page.locator("[data-conversation] h2")).to_have_text("Direct messages with " + gone)


# -- 11 and 12. Without JavaScript; and direct messages in a place of their own -----------------

def test_without_javascript_the_online_list_shows_oneself(open_room):
    name = unique("ann")
    page = no_js_page(open_room, name)
    expect(page.locator(ONLINE)).to_have_text([name])
    expect(page.locator(ONLINE + ".me")).to_have_count(1)


def test_without_javascript_a_signed_in_reader_is_online_for_the_others(open_room):
    bob_name, ann_name = unique("bob"), unique("ann")
    bob = open_room(name=bob_name)
    ann = no_js_page(open_room, ann_name)  # no stream: the page itself says she is here
    expect(bob.locator(ONLINE)).to_have_text([ann_name, bob_name], timeout=PRESENCE_MS)
    expect(bob.locator("li.presence")).to_have_text(["%s joined" % ann_name])
    expect(ann.locator(ONLINE)).to_have_text([ann_name, bob_name])


def test_without_javascript_direct_messages_go_both_ways(open_room, room):
    ann_name, bob_name = unique("ann"), unique("bob")
    bob = open_room(name=bob_name)  # online, with JavaScript: his page updates live
    ann = no_js_page(open_room, ann_name)
    # Ann opens the conversation from the online list: a plain link.
    ann.locator(".people [data-online]").get_by_role("link", name=bob_name).click()
    expect(ann.locator("[data-conversation] h2")).to_have_text("Direct messages with " + bob_name)
    ann.fill(DM_TEXT, "hello bob, from a page without scripts")
    assert submit(ann, DM_SEND).status == 303
    expect(ann.locator("[data-conversation] li.msg .text")).to_have_text(
        ["hello bob, from a page without scripts"])
    expect(ann.locator(TEXTS)).to_have_count(0)  # never in the room's log

    expect(bob.locator(INBOX)).to_contain_text("hello bob, from a page without scripts", timeout=LIVE_MS)
    bob.locator(INBOX).get_by_role("link", name=ann_name).click()
    expect(bob.locator(STATUS)).to_have_text("connected")
    bob.fill(DM_TEXT, "hi ann, got it")
    bob.press(DM_TEXT, "Enter")
    expect(bob.locator(DM_TEXT)).to_have_value("")

    # Ann's page has no stream: a received message shows on the next page she loads.
    ann.goto("/rooms/%s" % room)
    expect(ann.locator(INBOX)).to_have_count(1)
    expect(ann.locator(INBOX + " .snippet")).to_have_text("hi ann, got it")
    ann.locator(INBOX).get_by_role("link", name=bob_name).click()
    expect(ann.locator("[data-conversation] li.msg .text")).to_have_text(
        ["hello bob, from a page without scripts", "hi ann, got it"])


def test_without_javascript_load_older_is_a_link_to_the_older_page_and_back(open_room, server, room):
    for n in range(1, 61):
        publish(server, room, "message %d" % n)
    page = no_js_page(open_room)
    expect(page.locator(TEXTS)).to_have_count(50)
    expect(page.locator(TEXTS).first).to_have_text("message 11")
    page.get_by_role("link", name="Load older messages").click()
    assert re.search(r"\?before=\d+-\d+$", page.url), page.url
    expect_texts(page, ["message %d" % n for n in range(1, 11)])
    expect(page.get_by_role("link", name="Load older messages")).to_have_count(0)  # no more
    page.get_by_role("link", name="Back to the latest messages").click()
    expect(page.locator(TEXTS).last).to_have_text("message 60")


def test_a_conversation_is_separate_from_the_room_and_its_composer(open_room, server, room):
    ann_name, bob_name = unique("ann"), unique("bob")
    ann, bob = open_room(name=ann_name), open_room(name=bob_name)
    ann.locator(".people [data-online]").get_by_role("link", name=bob_name).click()
    expect(ann.locator(STATUS)).to_have_text("connected")
    expect(ann.locator("[data-conversation] h2")).to_have_text("Direct messages with " + bob_name)
    expect(ann.locator(DM_TEXT)).to_have_attribute("placeholder", "Message %s privately" % bob_name)
    expect(ann.locator("#text")).to_have_attribute("placeholder", "Message #" + room)
    for text in ("private one", "private two"):  # sending does not change where the next goes
        ann.fill(DM_TEXT, text)
        ann.press(DM_TEXT, "Enter")
        expect(ann.locator(DM_TEXT)).to_have_value("")
    send(ann, "public")
    expect_texts(bob, ["public"], timeout=LIVE_MS)
    assert [m["text"] for m in history(server, room)] == ["public"]
    expect(ann.locator("[data-conversation] li.msg .text")).to_have_text(["private one", "private two"])


# -- 13. A phone's Enter adds a line ---------------------------------------------------------

def test_on_a_phone_enter_adds_a_line_and_send_sends(open_room, server, room):
    page = open_room(name=unique("ann"), **PHONE)
    assert page.evaluate("matchMedia('(pointer: coarse)').matches")
    expect(page.locator("#text-hint")).to_have_text("Enter adds a line · tap Send to send")
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and not r.url.endswith("/typing") else None)
    page.locator("#text").tap()
    page.keyboard.type("first line")
    page.keyboard.press("Enter")
    page.keyboard.type("second line")
    expect(page.locator("#text")).to_have_value("first line\nsecond line")
    assert posts == []
    page.locator(ROOM_SEND).tap()
    expect(page.locator("#text")).to_have_value("")
    assert [m["text"] for m in history(server, room)] == ["first line\nsecond line"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "page-phone-composer.png")


def test_on_a_desktop_enter_sends_and_the_hint_says_so(open_room, server, room):
    page = open_room(name=unique("ann"), **DESKTOP)
    expect(page.locator("#text-hint")).to_have_text("Enter sends · Shift+Enter adds a line")
    send(page, "sent with Enter")
    assert [m["text"] for m in history(server, room)] == ["sent with Enter"]


def test_without_javascript_the_hint_says_enter_adds_a_line(open_room):
    page = no_js_page(open_room, unique("ann"))
    expect(page.locator("#text-hint")).to_have_text("Enter adds a line; press Send to send.")


# -- 14. "Load older messages" ----------------------------------------------------------------

def test_load_older_disappears_once_all_history_is_shown(open_room, server, room):
    for n in range(1, 61):
        publish(server, room, "message %d" % n)
    page = open_room(name=unique("ann"))
    older = page.get_by_role("link", name="Load older messages")
    expect(older).to_be_visible()
    older.click()
    expect(page.locator(TEXTS)).to_have_count(60)
    expect(page.locator(TEXTS).first).to_have_text("message 1")
    expect(older).to_be_hidden()


def test_focusing_load_older_by_keyboard_leaves_the_log_where_it_was(open_room, server, room):
    for n in range(1, 61):
        publish(server, room, "message %d" % n)
    page = open_room(name=unique("ann"), viewport={"width": 1024, "height": 600})
    log = page.locator("main.room [data-log]")
    expect(page.locator("li.msg").last).to_be_in_viewport()
    at_bottom = "el => el.scrollHeight - el.scrollTop - el.clientHeight < 2"
    assert log.evaluate(at_bottom)
    log.focus()
    page.keyboard.press("Shift+Tab")  # the control before the log
    expect(page.get_by_role("link", name="Load older messages")).to_be_focused()
    assert log.evaluate(at_bottom), "focusing it scrolled the log"
    expect(page.locator("li.msg").last).to_be_in_viewport()


# -- 15. A paste over the limit ----------------------------------------------------------------

def test_a_paste_over_the_limit_is_kept_whole_counted_and_refused_with_a_sentence(open_room, server,
                                                                                    room):
    page = open_room(name=unique("ann"))
    counter = page.locator("#text-count")
    page.fill("#text", "x" * 1000)
    expect(counter).to_be_hidden()  # far from the limit: no counter
    page.fill("#text", "y" * 1900)
    expect(counter).to_have_text("1,900 / 2,000")
    pasted = "z" * 2100
    page.fill("#text", "")
    page.keyboard.insert_text(pasted)  # what the browser inserts for a paste
    expect(page.locator("#text")).to_have_value(pasted)  # not cut at 2,000
    expect(counter).to_have_text("2,100 / 2,000 — 100 too many")
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and not r.url.endswith("/typing") else None)
    page.press("#text", "Enter")
    expect(page.locator("main.room [data-error]")).to_have_text(
        "Your message is 2,100 characters; the limit is 2,000. Shorten it by 100 to send it.")
    expect(page.locator("#text")).to_have_value(pasted)
    assert posts == [] and history(server, room) == []
    page.press("#text", "End")
    for _ in range(100):
        page.keyboard.press("Backspace")
    expect(page.locator("main.room [data-error]")).to_be_hidden()
    page.press("#text", "Enter")
    expect(page.locator("#text")).to_have_value("")
    assert [len(m["text"]) for m in history(server, room)] == [2000]


def test_without_javascript_a_paste_too_large_to_carry_says_so(open_room, server, room):
    page = no_js_page(open_room, unique("ann"))
    page.fill("#text", "w" * 70_000)  # past the 64 KB body cap: the server cannot even read it
    assert submit(page, ROOM_SEND).status == 413
    expect(page.locator("main.room [data-error]")).to_have_text(
        "Nothing was sent: the message was far too long to send (over 64 KB), so it could not be "
        "kept here either. A message may hold up to 2000 characters.")
    assert history(server, room) == []


# -- 16. Blank lines, runs, days and join/leave lines -----------------------------------------

PADDED = "\n \n  indented first line\n\n\tinner blank line kept\n\n \n"
TRIMMED = "  indented first line\n\n\tinner blank line kept"


def test_blank_lines_around_a_message_are_trimmed_on_every_entry_point(server, redis_url, room):
    ann, bob = Browser(server.url), Browser(server.url)
    assert ann.sign_in(unique("ann")) == 200 and bob.sign_in(unique("bob")) == 200
    status, sent = ann.post(room, PADDED)  # a browser's JSON post
    assert status == 201 and sent["text"] == TRIMMED
    status, _, body = ann.request("POST", "/rooms/%s/messages" % room, form={"text": PADDED},
                                  headers={"Accept": "application/json"})  # a form post
    assert status == 201 and json.loads(body)["text"] == TRIMMED
    status, sent = post(server.url, room, PADDED, user="bot")  # server to server (the fast path)
    assert status == 201 and sent["text"] == TRIMMED
    assert json.loads(cli.publish(room, PADDED, "cli", redis_url=redis_url))["text"] == TRIMMED
    status, sent = ann.direct(bob.name, PADDED)
    assert status == 201 and sent["text"] == TRIMMED
    assert [m["text"] for m in history(server, room)] == [TRIMMED] * 4
    assert messages.check_text("only\u00a0\n\u3000\n", 10) == "only"  # any Unicode blank


def layout(page):
    """The log's shape: ("day", "YYYY-MM-DD") separators and ("msg", author, continues?) entries."""
    return page.locator("main.room [data-messages] > li").evaluate_all("""els => els.map(li =>
        li.dataset.kind === 'day' ? ['day', li.dataset.day]
        : li.classList.contains('msg') ? ['msg', li.dataset.user, li.classList.contains('cont')]
        : ['other', li.textContent])""")


def day_labels(page):
    return page.locator("main.room li.day").all_inner_texts()


def store_at(redis_client, room, when_ms, user, text):
    """A message from the past, stored as the publish script stores one (ids are times)."""
    redis_client.xadd(keys.RoomKeys(room).log, {"m": messages.body(room, user, text)}, id="%d-0" % when_ms)


def test_the_log_groups_runs_and_days_the_same_live_and_after_a_reload(open_room, server, room,
                                                                        redis_client):
    day = 24 * 3600 * 1000
    # "Today" and "Yesterday" are UTC days on the server and in this browser: a midnight passing
    # between the live page and the reload would move every label. Start on a day with time left.
    wait_until(lambda: day - time.time() * 1000 % day > 120_000, timeout=150,
               message="the UTC day to have two minutes left")
    now = int(time.time() * 1000)
    store_at(redis_client, room, now - 3 * day, "bob", "three days ago")
    store_at(redis_client, room, now - 3 * day + 60_000, "bob", "a minute later: same run")
    store_at(redis_client, room, now - day, "bob", "yesterday")
    store_at(redis_client, room, now - day + 10 * 60_000, "bob", "ten minutes later: a new run")
    page = open_room(name=unique("ann"), timezone_id="UTC")
    for user, text in (("bob", "today"), ("bob", "right after"), ("cat", "someone else"),
                       ("bob", "bob again")):
        publish(server, room, text, user=user)  # live, rendered by the page's script
    expect(page.locator(TEXTS)).to_have_count(8, timeout=LIVE_MS)
    live = layout(page)
    shape = [(entry[0], entry[2]) if entry[0] == "msg" else (entry[0],) for entry in live]
    assert shape == [("day",), ("msg", False), ("msg", True), ("day",), ("msg", False), ("msg", False),
                     ("day",), ("msg", False), ("msg", True), ("msg", False), ("msg", False)], live
    assert day_labels(page)[1:] == ["Yesterday", "Today"]
    # The server lays out the same log the same way (in UTC, as this browser's clock is).
    server_page = open_room(java_script_enabled=False, timezone_id="UTC")
    assert layout(server_page) == live
    assert day_labels(server_page)[1:] == ["Yesterday", "Today"]
    page.reload()
    expect(page.locator(STATUS)).to_have_text("connected")
    assert layout(page) == live


def test_consecutive_joins_and_leaves_share_one_line(open_room, server, room):
    ann = open_room(name=unique("ann"))
    bob_name, cat_name = unique("bob"), unique("cat")
    bob = open_room(name=bob_name)
    cat = open_room(name=cat_name)
    expect(ann.locator(ONLINE)).to_have_count(3, timeout=PRESENCE_MS)
    lines = ann.locator("li.presence")
    expect(lines).to_have_count(1)
    expect(lines).to_have_text(re.compile(r"^(%s, %s|%s, %s) joined$" % (bob_name, cat_name, cat_name, bob_name)))
    publish(server, room, "between", user="dan")
    expect_texts(ann, ["between"], timeout=LIVE_MS)
    bob.close()
    cat.close()
    expect(lines).to_have_count(2, timeout=6_000)  # after the grace window, in a line of its own
    expect(lines.last).to_have_text(re.compile(r"^(%s, %s|%s, %s) left$" % (bob_name, cat_name, cat_name, bob_name)),
                                    timeout=6_000)


def test_a_line_of_many_comings_names_the_latest_five_and_counts_the_rest(open_room, server, room):
    ann = open_room(name=unique("ann"))
    streams = []
    try:
        for i in range(7):
            person = Browser(server.url)
            assert person.sign_in(unique("p%d" % i)) == 200
            streams.append(person.stream(room))
            streams[-1].until("ready")
        line = ann.locator("li.presence")
        expect(line).to_have_text(re.compile(r"^([^,]+, ){4}[^,]+ and 2 others joined$"), timeout=PRESENCE_MS)
        assert "p6-" in line.text_content() and "p0-" not in line.text_content()
    finally:
        for stream in streams:
            stream.close()


# -- Screenshots: phone and desktop ------------------------------------------------------------

@pytest.mark.parametrize("device", ["desktop", "phone"])
@pytest.mark.parametrize("js", [True, False])
def test_direct_messages_with_no_conversation_yet_show_the_hint_not_a_bare_heading(open_room, device, js):
    page = open_room(unique("ann"), java_script_enabled=js, locale="zh-CN", **(PHONE if device == "phone" else DESKTOP))
    expect(page.locator("#inbox-heading")).to_be_visible()
    hint = page.locator("[data-inbox-empty]")
    expect(hint).to_have_text("暂无私信。点“在线”下的名字即可私聊。")
    expect(hint).to_be_visible()
    assert hint.evaluate("el => el.getBoundingClientRect().right <= innerWidth")


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_screenshots_of_a_conversation(open_room, server, room, device):
    me, friend = unique("ann"), unique("李雷")
    for user, text in (("bob", "Morning all — deploy at 09:00."), ("bob", "Dashboards look calm."),
                       (me, "Thanks!\nI will watch the logs.")):
        publish(server, room, text, user=user)
    other = open_room(name=friend)
    page = open_room(name=me, **(PHONE if device == "phone" else DESKTOP))
    other.locator(".people [data-online]").get_by_role("link", name=me).click()
    expect(other.locator(STATUS)).to_have_text("connected")
    other.fill(DM_TEXT, "Got a minute after standup? 想和你聊聊周五的计划 ☕")
    other.press(DM_TEXT, "Enter")
    expect(page.locator(INBOX + " .badge")).to_have_text("new", timeout=LIVE_MS)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / ("page-room-%s.png" % device), full_page=True)
    page.locator(INBOX).get_by_role("link", name=friend).click()
    expect(page.locator(STATUS)).to_have_text("connected")
    expect(page.locator("[data-conversation] li.msg .text")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    if device == "phone":
        expect(page.locator("main.room")).to_be_hidden()  # the conversation takes the room's place
    page.screenshot(path=SCREENSHOTS / ("page-conversation-%s.png" % device), full_page=True)


@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
def test_an_empty_room_says_so_until_its_first_message(open_room, js):
    page = open_room(name=unique("ann"), java_script_enabled=js)
    expect(page.locator("[data-empty-log]")).to_have_text("No messages yet. Say hello!")
    page.fill("#text", "hello")
    if js:
        page.press("#text", "Enter")
    else:
        page.get_by_role("button", name="Send").click()  # a plain form: the page comes back
    expect(page.locator("li.msg .text")).to_have_text(["hello"])
    expect(page.locator("[data-empty-log]")).to_be_hidden()


def test_without_javascript_show_new_messages_brings_what_was_posted_since_and_scrolls_to_it(open_room, server,
                                                                                               room):
    # h55 finding 5: a no-JS reader had no way but the browser's reload to learn of new messages.
    for n in range(40):  # more than the log shows at once
        publish(server, room, "earlier %d" % n)
    page = no_js_page(open_room, unique("ann"))
    show = page.get_by_role("link", name="Show new messages")
    expect(show).to_be_visible()
    for text in ("hello from bob", "and again"):
        publish(server, room, text)
        expect(page.locator(TEXTS).filter(has_text=text)).to_have_count(0)  # nothing comes by itself
        with page.expect_navigation():  # a new page every time, never just a scroll to #latest
            show.click()
        expect(page.locator(TEXTS).last).to_have_text(text)
        expect(page.locator(TEXTS).last).to_be_in_viewport()
    page.set_extra_http_headers({"Accept-Language": "zh-CN"})
    page.reload()
    expect(page.get_by_role("link", name="显示新消息")).to_be_visible()


def test_with_javascript_there_is_no_show_new_messages_link(open_room):
    page = open_room(unique("ann"))
    expect(page.locator("[data-latest]")).to_have_count(0)  # inside <noscript>: not in the page's tree
    expect(page.get_by_role("link", name="Show new messages")).to_have_count(0)


# -- h62 finding 4: Back after a post without JavaScript ------------------------------------------

def test_without_javascript_send_after_back_asks_before_sending_the_same_text_twice(open_room, server, room):
    # Back brings the page before, fetched again (a new idempotency key), and the browser puts
    # the typed text back: a second Send of it is asked about, not stored.
    page = no_js_page(open_room, unique("ann"))
    page.fill("#text", "sent once")
    assert submit(page, ROOM_SEND).status == 303
    page.go_back()
    page.fill("#text", "sent once")  # what the browser puts back (Chromium does; set it to be sure)
    assert submit(page, ROOM_SEND).status == 409
    expect(page.locator("main.room [data-note]")).to_contain_text("You sent this message a moment ago")
    expect(page.locator("main.room [data-error]")).to_be_hidden()  # a question, not an error
    expect(page.locator("#text")).to_have_value("sent once")
    assert [m["text"] for m in history(server, room)] == ["sent once"]


def test_without_javascript_send_again_after_being_asked_sends_the_text_once_more(open_room, server, room):
    page = no_js_page(open_room, unique("ann"))
    page.fill("#text", "ok")
    assert submit(page, ROOM_SEND).status == 303
    page.go_back()
    page.fill("#text", "ok")
    assert submit(page, ROOM_SEND).status == 409
    assert submit(page, ROOM_SEND).status == 303  # the person meant it
    assert [m["text"] for m in history(server, room)] == ["ok", "ok"]


def test_without_javascript_a_direct_message_sent_again_after_back_is_asked_first(open_room, room):
    bob_name = unique("bob")
    open_room(name=bob_name)  # online: the conversation delivers at once
    ann = no_js_page(open_room, unique("ann"))
    ann.goto("/rooms/%s?with=%s" % (room, bob_name))
    ann.fill(DM_TEXT, "only once, bob")
    assert submit(ann, DM_SEND).status == 303
    ann.go_back()
    ann.fill(DM_TEXT, "only once, bob")  # what the browser puts back
    assert submit(ann, DM_SEND).status == 409
    expect(ann.locator("[data-conversation] [data-note]")).to_contain_text("You sent this message a moment ago")
    expect(ann.locator("[data-conversation] [data-error]")).to_be_hidden()
    expect(ann.locator(DM_TEXT)).to_have_value("only once, bob")
    expect(ann.locator("[data-conversation] li.msg .text")).to_have_text(["only once, bob"])
    assert submit(ann, DM_SEND).status == 303  # meant: sent once more
    expect(ann.locator("[data-conversation] li.msg .text")).to_have_text(["only once, bob", "only once, bob"])


def _went_back(page):
    """Press Back; False while the page is still between renderers (the error page's swap)."""
    try:
        page.go_back()
    except PlaywrightError as exc:
        if "Not attached to an active page" not in str(exc):
            raise
        return False
    return True


def test_without_javascript_a_post_the_network_refused_comes_back_on_back_and_sends_once(
        open_room, server, room):
    relay = Relay(server.port)
    try:
        page = no_js_page(lambda **kw: open_room(base_url=relay.url, **kw), unique("ann"))
        page.fill("#text", "not lost")
        relay.cut()
        with page.expect_event("framenavigated", lambda frame: frame.url.startswith("chrome-error")):
            page.click(ROOM_SEND, no_wait_after=True)  # Chromium's own "can't reach" page
        page.wait_for_load_state()
        relay.restore()
        wait_until(lambda: _went_back(page), 10)
        expect(page.locator("#text")).to_have_value("not lost")
        assert submit(page, ROOM_SEND).status == 303
        assert [m["text"] for m in history(server, room)] == ["not lost"]
    finally:
        relay.close()



# -- A permalink (?at=) whose message the room does not have --------------------------------------

NOT_IN_ROOM = "The message this link points to is not in this room (it may have been deleted)."


@pytest.mark.parametrize("script", [True, False], ids=["javascript", "no-javascript"])
def test_a_permalink_to_a_message_not_in_the_room_says_so(open_room, server, room, script):
    elsewhere = publish(server, room + "-other", "said in another room")["id"]
    publish(server, room, "said here")
    page = open_room(unique("ann"), java_script_enabled=script)
    answer = page.goto("/rooms/%s?at=%s" % (room, elsewhere))
    assert answer.status == 404
    expect(page.get_by_role("alert").filter(has_text=NOT_IN_ROOM)).to_be_visible()
    expect(page.locator(TEXTS)).to_have_text(["said here"])  # the room, around where it would be
    if script:  # the page goes on working: its stream connects
        expect(page.locator(STATUS)).to_have_attribute("data-state", "connected")


# -- helper-86: without JavaScript nothing scrolls a log: a form's page lands where it acted --------

def sent_on_a_phone_without_javascript(open_room, server, room, text):
    """A phone's page without JavaScript, signed in, that sent ``text`` under 40 older messages."""
    for n in range(40):
        publish(server, room, "earlier %d" % n)
    page = open_room(java_script_enabled=False, **PHONE)
    choose_name(page, unique("ann"), js=False)
    page.fill("#text", text)
    assert submit(page, ROOM_SEND).status == 303
    return page


def test_without_javascript_a_sent_message_is_in_view_at_the_log_end(open_room, server, room):
    # The 303 after a post opened the page at the log's oldest message: on a phone the one just
    # sent was 40 messages below, out of sight.
    page = sent_on_a_phone_without_javascript(open_room, server, room, "just sent")
    assert page.url.endswith("#latest")
    expect(page.locator(TEXTS).last).to_have_text("just sent")
    expect(page.locator(TEXTS).last).to_be_in_viewport()


def test_without_javascript_a_sent_direct_message_is_in_view_at_the_conversation_end(open_room, room):
    bob_name = unique("bob")
    open_room(name=bob_name)
    ann = open_room(java_script_enabled=False, **PHONE)
    choose_name(ann, unique("ann"), js=False)
    ann.locator(".people [data-online]").get_by_role("link", name=bob_name).click()
    for n in range(12):  # more than a phone shows at once
        ann.fill(DM_TEXT, "direct %d" % n)
        assert submit(ann, DM_SEND).status == 303
    assert ann.url.endswith("#dm-latest")
    last = ann.locator("[data-conversation] li.msg .text").last
    expect(last).to_have_text("direct 11")
    expect(last).to_be_in_viewport()


def test_without_javascript_a_refused_edit_keeps_its_text_in_view_and_focused(open_room, server, room):
    page = sent_on_a_phone_without_javascript(open_room, server, room, "to be edited")
    mine = page.locator("main.room li.msg.own").last
    mine.locator("summary").click()
    too_long = "x" * 2001  # RIPPLE_MAX_MESSAGE_CHARS: 2000
    mine.locator("form[data-edit] textarea").fill(too_long)
    assert submit(page, "main.room li.msg.own form[data-edit] button[type=submit]").status == 422
    kept = page.locator("main.room li.msg.own form[data-edit] textarea")
    expect(kept).to_have_value(too_long)
    expect(kept).to_be_focused()
    expect(kept).to_be_in_viewport()


@pytest.mark.parametrize("device", ["phone", "desktop"])
def test_without_javascript_an_open_conversation_has_a_show_new_messages_link(open_room, room, device):
    # helper-86: on a phone the conversation takes the room's place, and the room's "Show new
    # messages" was hidden with it: a reply came only with the browser's reload.
    bob_name, ann_name = unique("bob"), unique("ann")
    bob = open_room(name=bob_name)
    ann = open_room(java_script_enabled=False, **(PHONE if device == "phone" else DESKTOP))
    choose_name(ann, ann_name, js=False)
    ann.locator(".people [data-online]").get_by_role("link", name=bob_name).click()
    ann.fill(DM_TEXT, "are you there?")
    assert submit(ann, DM_SEND).status == 303
    expect(bob.locator(INBOX)).to_contain_text("are you there?", timeout=LIVE_MS)
    bob.locator(INBOX).get_by_role("link", name=ann_name).click()
    expect(bob.locator(STATUS)).to_have_text("connected")
    bob.fill(DM_TEXT, "yes, here")
    bob.press(DM_TEXT, "Enter")
    expect(bob.locator(DM_TEXT)).to_have_value("")
    show = ann.get_by_role("link", name="Show new messages")
    expect(show).to_have_count(1)  # one to see: the conversation's on a phone, the room's beside it
    with ann.expect_navigation():
        show.click()
    last = ann.locator("[data-conversation] li.msg .text").last
    expect(last).to_have_text("yes, here")
    expect(last).to_be_in_viewport()


@pytest.mark.parametrize("signed_in", [True, False], ids=["signed-in", "signed-out"])
def test_without_javascript_a_room_opens_at_its_newest_message(open_room, server, room, signed_in):
    # helper-86: nothing scrolls a log without JavaScript: a room opened at the oldest of the 50
    # messages it shows, the newest 40 below, out of sight on a phone.
    for n in range(60):
        publish(server, room, "message %d" % n)
    page = open_room(name=unique("ann") if signed_in else None, java_script_enabled=False, **PHONE)
    expect(page.locator(TEXTS).last).to_have_text("message 59")
    expect(page.locator(TEXTS).last).to_be_in_viewport()
    expect(page.locator(TEXTS).first).not_to_be_in_viewport()
    page.get_by_role("link", name="Load older messages").click()  # older pages read from their top
    expect(page.locator(TEXTS).first).to_be_in_viewport()


def test_without_javascript_a_room_with_unread_messages_opens_at_the_first_unread(open_room, server, room):
    publish(server, room, "seen before leaving")
    page = open_room(name=unique("ann"), java_script_enabled=False, **PHONE)  # reads up to here
    expect(page.locator(TEXTS)).to_have_text(["seen before leaving"])
    page.goto("/")
    first = publish(server, room, "first since you left")["id"]
    for n in range(40):
        publish(server, room, "later %d" % n)
    page.goto("/rooms/%s" % room)
    line = page.locator("li.msg.first-unread")
    expect(line).to_have_attribute("data-id", first)
    expect(line).to_be_in_viewport()
    expect(page.locator(TEXTS).last).not_to_be_in_viewport()


def test_without_javascript_a_permalink_opens_at_its_message(open_room, server, room):
    ids = [publish(server, room, "message %d" % n)["id"] for n in range(50)]
    page = open_room(java_script_enabled=False, **PHONE)
    page.goto("/rooms/%s?at=%s#m-%s" % (room, ids[5], ids[5]))
    expect(page.locator("li.msg.target")).to_be_in_viewport()


def test_without_javascript_a_refused_reaction_comes_back_in_its_open_menu_as_typed(open_room, server, room):
    # helper-86: "any emoji" refused (a letter, two emoji) came back with the menu shut, the
    # field empty and focus nowhere: only the sentence at the page's top.
    for n in range(40):
        publish(server, room, "earlier %d" % n)
    page = open_room(java_script_enabled=False, **PHONE)
    choose_name(page, unique("ann"), js=False)
    page.fill("#text", "react to me")
    assert submit(page, ROOM_SEND).status == 303
    mine = page.locator("main.room li.msg.own").last
    mine.locator("summary").click()
    mine.locator("form.react-any input[name=emoji]").fill("好")
    assert submit(page, "main.room li.msg.own form.react-any button[type=submit]").status == 422
    expect(page.get_by_role("alert").filter(has_text="A reaction must be one emoji")).to_be_visible()
    field = page.locator("main.room li.msg.own form.react-any input[name=emoji]")
    expect(field).to_have_value("好")
    expect(field).to_be_focused()
    expect(field).to_be_in_viewport()
    expect(page.locator("main.room li.msg details[open]")).to_have_count(1)  # that message's menu alone
