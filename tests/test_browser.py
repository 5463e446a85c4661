"""Ripple in a real browser: Debian's Chromium, driven by Playwright, against the real Gunicorn.

Every test opens a fresh room (the ``room`` fixture) in its own browser contexts, so each page
has its own cookies, storage and connections, like a separate person. Display names are claimed
in Redis for half an hour, so every test signs in with names of its own (``unique``).
"""
import re
import time
import uuid

import pytest
from playwright.sync_api import expect

# The fixtures (browser, dialogs, open_room) live in tests/browser.py, shared with other modules;
# importing them here is how pytest finds them.
from .browser import (  # noqa: F401
    DIRECT,
    LIVE_MS,
    ONLINE,
    PRESENCE_MS,
    RECONNECT_MS,
    SCREENSHOTS,
    SEND,
    STATUS,
    TEXTS,
    XSS,
    browser,
    choose_name,
    dialogs,
    expect_texts,
    history,
    id_key,
    message_ids,
    open_room,
    publish,
    send,
    sign_in_over_http,
    unique,
    wait_for_script,
)
from .relays import Relay

pytestmark = pytest.mark.browser


def test_a_message_typed_in_one_page_appears_live_in_another(open_room):
    ann, bob = open_room(), open_room()  # two contexts: two separate connections
    choose_name(ann, unique("ann"))
    sent = ["first", "second, right after", "third: the order holds"]
    for number, text in enumerate(sent, 1):
        ann.fill("#text", text)
        ann.press("#text", "Enter")
        expect(bob.locator(TEXTS)).to_have_count(number, timeout=LIVE_MS)
        expect(ann.locator("#text")).to_have_value("")
    expect_texts(bob, sent)
    expect_texts(ann, sent)
    assert message_ids(bob) == message_ids(ann)
    assert message_ids(bob) == sorted(set(message_ids(bob)), key=id_key)


def test_the_form_posts_without_javascript(open_room, room):
    page = open_room(java_script_enabled=False)
    name = unique("noscript")
    choose_name(page, name, js=False)
    page.fill("#text", "posted by a plain form")
    with page.expect_response(lambda r: r.request.method == "POST" and not r.url.endswith("/typing")) as posted:
        page.click(SEND)
    assert posted.value.status == 303
    page.wait_for_load_state()
    assert re.search(r"/rooms/%s#latest$" % room, page.url)  # at the log's end (helper-86)
    expect_texts(page, ["posted by a plain form"])
    expect(page.locator("li.msg .who")).to_have_text([name])
    expect(page.locator("[data-error]")).to_be_hidden()
    expect(page.locator("[data-whoami]")).to_have_text(name)  # still signed in: the session


@pytest.mark.parametrize("typed, error", [
    ("   ", "Message text is empty."),
    # Starts with a line break: the HTML parser drops one right after <textarea>.
    ("\n" + "far too long " * 160, re.compile(r"Message is too long: \d+ characters, the limit is 2000\.")),
], ids=["blank", "too-long"])
def test_a_rejected_form_post_shows_the_error_and_keeps_the_text(open_room, typed, error):
    page = open_room(java_script_enabled=False)
    name = unique("noscript")
    choose_name(page, name, js=False)
    # maxlength stops typing at 2000 characters; a browser or paste that ignores it must not lose text.
    page.locator("#text").evaluate("el => el.removeAttribute('maxlength')")
    page.fill("#text", typed)
    with page.expect_response(lambda r: r.request.method == "POST" and not r.url.endswith("/typing")) as posted:
        page.click(SEND)
    assert posted.value.status == 422
    page.wait_for_load_state()
    expect(page.locator("[data-error]")).to_be_visible()
    expect(page.locator("[data-error]")).to_have_text(error)
    assert page.input_value("#text") == typed
    expect(page.locator("[data-whoami]")).to_have_text(name)
    expect(page.locator("li.msg")).to_have_count(0)


def test_markup_in_messages_and_names_renders_as_text(open_room, dialogs):
    ann, bob = open_room(), open_room()
    name = "<img src=x onerror=alert(2)>" + uuid.uuid4().hex[:4]  # 32 characters: the limit
    choose_name(ann, name)  # the header shows it as text
    for page in (ann, bob):  # so do the online list and the "joined" line, live
        expect(page.locator(ONLINE)).to_have_text([name], timeout=LIVE_MS)
    expect(bob.locator("li.presence")).to_have_text(["%s joined" % name])
    for text in XSS:
        send(ann, text)
    expect_texts(bob, XSS)  # rendered live, from the stream
    bob.reload()
    expect_texts(bob, XSS)  # rendered by the server
    for page in (ann, bob):
        expect(page.locator("li.msg .who")).to_have_text([name, name])
        assert page.locator("[data-messages] img, [data-messages] script, .people img, "
                            ".people script, header img, header script").count() == 0
    assert dialogs == []


def test_enter_while_an_ime_is_composing_does_not_send(open_room, server, room):
    page = open_room()
    choose_name(page, unique("ann"))
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and not r.url.endswith("/typing") else None)
    box = page.locator("#text")
    box.focus()
    # A real composition (as with pinyin): Chromium itself then marks the Enter keydown isComposing.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.imeSetComposition", {"text": "nihao", "selectionStart": 5, "selectionEnd": 5})
    page.keyboard.press("Enter")
    assert page.input_value("#text").startswith("nihao")
    cdp.send("Input.insertText", {"text": "你好"})  # the candidate is picked: composition ends
    box.fill("你好")
    # Safari reports the Enter that ends a composition as keyCode 229 with isComposing false.
    not_cancelled = box.evaluate("""el => el.dispatchEvent(new KeyboardEvent('keydown',
        {key: 'Enter', keyCode: 229, bubbles: true, cancelable: true}))""")
    assert not_cancelled, "the form took an IME Enter as 'send'"
    box.press("End")
    box.press("Shift+Enter")
    box.press_sequentially("second line")
    expect(box).to_have_value("你好\nsecond line")  # Shift+Enter adds a line, sends nothing
    box.fill("sent with a plain Enter")
    box.press("Enter")  # the only Enter that sends
    expect_texts(page, ["sent with a plain Enter"])
    assert [m["text"] for m in history(server, room)] == ["sent with a plain Enter"]
    assert len([url for url in posts if url.endswith("/messages")]) == 1  # (typing signals aside)


def test_a_message_with_line_breaks_that_fits_the_textarea_is_stored_as_typed(open_room, server,
                                                                               room):
    # A form body carries line breaks as CRLF (the HTML spec's encoding); the server stores LF,
    # so a break costs one of the 2000 characters, as through the JSON API.
    page = open_room()
    choose_name(page, unique("ann"))
    # 2000 characters, ending in text: trailing blank lines are trimmed on store (issue 11 #16).
    typed = "".join("line %03d of a long paste\n" % n for n in range(100))[:1999] + "."
    page.fill("#text", typed)
    assert page.input_value("#text") == typed  # the textarea took it all
    with page.expect_response(lambda r: r.request.method == "POST" and not r.url.endswith("/typing")) as posted:
        page.press("#text", "Enter")
    assert posted.value.status == 201, posted.value.text()
    assert [m["text"] for m in history(server, room)] == [typed]


PENDING = "main.room [data-pending] li"  # posts whose outcome is unknown (static/js/pending.js)
WAITING = "Not sent yet — will retry."


def test_a_send_refused_by_an_unavailable_store_keeps_the_text_and_shows_an_error(open_room):
    page = open_room()
    choose_name(page, unique("ann"))

    def fail(route):  # a 503 is refused before anything is stored: the text stays in the composer
        if route.request.method != "POST":
            return route.fallback()
        return route.fulfill(status=503, headers={"Retry-After": "7"}, json={
            "error": "The message store is unavailable right now. Please try again shortly."})

    page.route("**/rooms/*/messages", fail)
    key = page.input_value("input[name=idempotency_key]")
    page.fill("#text", "please do not lose me")
    page.press("#text", "Enter")
    error = page.locator("[data-error]")
    expect(error).to_have_text(
        "The message store is unavailable right now. Please try again shortly. Try again in 7 s.")
    expect(page.locator("#text")).to_have_value("please do not lose me")
    expect(page.locator(SEND)).to_be_enabled()
    assert page.input_value("input[name=idempotency_key]") == key  # a retry cannot double it
    expect(page.locator("li.msg")).to_have_count(0)
    expect(page.locator(PENDING)).to_have_count(0)

    page.unroute("**/rooms/*/messages")
    page.click(SEND)  # the retry goes through
    expect_texts(page, ["please do not lose me"])
    expect(error).to_be_hidden()
    expect(page.locator("#text")).to_have_value("")


def test_a_send_that_could_not_reach_the_server_waits_in_the_log_and_goes_by_itself(open_room, server, room):
    page = open_room(unique("ann"))
    page.route("**/rooms/*/messages", lambda route: route.abort("connectionrefused")
               if route.request.method == "POST" else route.fallback())
    page.fill("#text", "please do not lose me")
    page.press("#text", "Enter")
    # Out of the composer (free for new text) and into the log, saying what happens to it.
    pending = page.locator(PENDING)
    expect(pending).to_have_count(1)
    expect(pending.locator(".text")).to_have_text("please do not lose me")
    expect(pending.locator("[data-pending-status]")).to_have_text(WAITING)
    expect(pending.get_by_role("button", name="Don't send")).to_be_visible()
    expect(page.locator("#text")).to_have_value("")
    expect(page.locator("[data-error]")).to_be_hidden()
    expect(page.locator("li.msg")).to_have_count(0)

    page.unroute("**/rooms/*/messages")  # nothing pressed: it is sent again, and shows once
    expect_texts(page, ["please do not lose me"], timeout=RECONNECT_MS)
    expect(pending).to_have_count(0)
    assert [m["text"] for m in history(server, room)] == ["please do not lose me"]


def lose_the_answer(route):
    """Let a post reach the server (it is stored), then cut the connection before the answer."""
    if route.request.method != "POST":
        return route.fallback()
    route.fetch()
    route.abort("connectionreset")


def test_a_post_stored_but_unanswered_clears_when_its_message_comes_on_the_stream(open_room, server, room):
    page = open_room()
    choose_name(page, unique("ann"))
    page.route("**/rooms/*/messages", lose_the_answer, times=1)
    page.fill("#text", "stored, answer lost")
    page.press("#text", "Enter")
    expect_texts(page, ["stored, answer lost"], timeout=LIVE_MS)
    expect(page.locator("#text")).to_have_value("")  # not offered again to send
    expect(page.locator("[data-error]")).to_be_hidden()
    expect(page.locator(PENDING)).to_have_count(0, timeout=RECONNECT_MS)  # confirmed, not sent again
    expect_texts(page, ["stored, answer lost"])
    assert [m["text"] for m in history(server, room)] == ["stored, answer lost"]


def lost(route, response):
    route.abort("connectionreset")


def unconfirmed(route, response):
    route.fulfill(status=504, json={"code": "unconfirmed", "error": "Not confirmed."})


def first_answer_lost(page, relay, server, first_answer):
    """Route the page's posts past the (blackholed) relay; the first one's answer is not had."""
    answers = []

    def past_the_relay(route):
        if route.request.method != "POST":
            return route.fallback()
        response = route.fetch(url=route.request.url.replace(relay.url, server.url))
        answers.append(response.status)
        if len(answers) == 1:
            return first_answer(route, response)
        route.fulfill(response=response)

    page.route("**/rooms/*/messages", past_the_relay)
    return answers


# The first post is stored either way; its answer is lost, or a 504 "unconfirmed". It stayed in the
# composer, "it will not be posted twice": the person fixed a typo and pressed Send, and the
# corrected text (a new message, a new key) was posted beside the first. Now it waits in the log
# and the composer is free: what is typed there is another message, posted after it.
@pytest.mark.parametrize("first_answer", [lost, unconfirmed], ids=["unanswered", "unconfirmed"])
def test_an_unsettled_post_waits_in_the_log_and_is_never_posted_twice(open_room, relay, server, room, first_answer):
    page = open_room(unique("ann"), base_url=relay.url)
    relay.blackhole()  # the stream goes silent: the first post's message does not come back
    answers = first_answer_lost(page, relay, server, first_answer)
    page.fill("#text", "meet at 5pm")
    page.press("#text", "Enter")
    pending = page.locator(PENDING)
    expect(pending.locator(".text")).to_have_text(["meet at 5pm"])
    expect(page.locator("#text")).to_have_value("")  # not there to be corrected into a second copy
    expect(page.locator("[data-error]")).to_be_hidden()
    page.fill("#text", "and bring the slides")
    page.click(SEND)  # behind the first, in order
    expect(page.locator("#text")).to_have_value("")

    relay.resume()
    expect_texts(page, ["meet at 5pm", "and bring the slides"], timeout=RECONNECT_MS)
    expect(pending).to_have_count(0)
    assert [m["text"] for m in history(server, room)] == ["meet at 5pm", "and bring the slides"]
    assert answers[0] == 201 and answers.count(201) == 2  # the first again: 200, the original


def test_dont_send_on_a_post_that_had_arrived_shows_it_once_and_says_so(open_room, relay, server, room):
    page = open_room(unique("ann"), base_url=relay.url)
    relay.blackhole()
    first_answer_lost(page, relay, server, lost)
    page.fill("#text", "stored after all")
    page.press("#text", "Enter")
    pending = page.locator(PENDING)
    pending.get_by_role("button", name="Don't send").click()
    # Its line said nothing and went: the message then came, one the person had asked not to send.
    expect(pending.locator("[data-pending-status]")).to_have_text("Not sending it — checking it was not sent…")
    relay.resume()  # it had arrived: its message comes on the stream, once, and its line says so
    expect_texts(page, ["stored after all"], timeout=RECONNECT_MS)
    expect(pending.locator("[data-pending-status]")).to_contain_text("It had already been sent", timeout=RECONNECT_MS)
    expect_texts(page, ["stored after all"])
    assert [m["text"] for m in history(server, room)] == ["stored after all"]


def test_a_pending_post_survives_a_reload_and_is_not_posted_twice(open_room, server, room):
    page = open_room(unique("ann"))
    tries = []

    def stored_then_unreachable(route):  # stored, its answer lost; every retry fails
        if route.request.method != "POST":
            return route.fallback()
        tries.append(route.request.post_data_buffer)
        if len(tries) == 1:
            return lose_the_answer(route)
        route.abort("connectionrefused")

    page.route("**/rooms/*/messages", stored_then_unreachable)
    page.fill("#text", "sent before the reload")
    page.press("#text", "Enter")
    expect(page.locator("#text")).to_have_value("")
    wait_for_script(page, "Object.keys(sessionStorage).some(k => k.startsWith('ripple-pending:'))")
    page.unroute("**/rooms/*/messages")
    page.reload()  # the tab kept it, with its key: sent again, answered with the original
    expect(page.locator(STATUS)).to_have_text("connected")
    expect(page.locator(PENDING)).to_have_count(0, timeout=RECONNECT_MS)
    expect_texts(page, ["sent before the reload"])
    expect(page.locator("#text")).to_have_value("")  # not a draft to send again either
    assert [m["text"] for m in history(server, room)] == ["sent before the reload"]
    assert not page.evaluate("Object.keys(sessionStorage).filter(k => k.startsWith('ripple-pending:'))")


def test_text_typed_while_a_message_is_sending_is_kept(open_room):
    page = open_room()
    choose_name(page, unique("ann"))

    def type_while_in_flight(route):
        page.locator("#text").press_sequentially("next one")  # the send has not answered yet
        route.continue_()

    page.route("**/rooms/*/messages", type_while_in_flight, times=1)
    page.fill("#text", "first")
    page.press("#text", "Enter")
    expect_texts(page, ["first"])
    expect(page.locator("#text")).to_have_value("next one")


@pytest.fixture
def relay(server):
    relay = Relay(server.port)
    yield relay
    relay.close()


def test_after_a_network_cut_every_missed_message_shows_once_in_order(open_room, relay, server,
                                                                      room):
    page = open_room(base_url=relay.url)  # the page reaches Gunicorn only through the relay
    publish(server, room, "before the cut", user="bob")
    expect_texts(page, ["before the cut"], timeout=LIVE_MS)

    relay.cut()
    expect(page.locator(STATUS)).to_have_text("reconnecting…")
    missed = ["missed %d" % n for n in range(1, 6)]
    for text in missed:
        publish(server, room, text, user="bob")  # straight to Gunicorn
    assert page.locator("li.msg").count() == 1  # the page really is cut off

    relay.restore()
    expect(page.locator(STATUS)).to_have_text("connected", timeout=RECONNECT_MS)
    expect_texts(page, ["before the cut"] + missed, timeout=RECONNECT_MS)
    publish(server, room, "live again", user="bob")
    expect_texts(page, ["before the cut"] + missed + ["live again"], timeout=LIVE_MS)
    ids = message_ids(page)
    assert ids == [m["id"] for m in history(server, room)]  # each once, in the stored order
    assert len(set(ids)) == len(ids)


def test_the_status_recovers_after_a_short_offline_spell(open_room):
    page = open_room()
    page.context.set_offline(True)
    expect(page.locator(STATUS)).to_have_text("offline")
    page.context.set_offline(False)  # the open stream survived: it is connected again
    expect(page.locator(STATUS)).to_have_text("connected", timeout=RECONNECT_MS)


def test_a_message_posted_before_the_stream_opens_is_not_lost(open_room, server, room):
    def post_first(route):
        # The page is rendered (an empty room) and its stream is about to open: post now.
        publish(server, room, "posted in between", user="bob")
        route.continue_()

    page = open_room(before_load=lambda p: p.route("**/rooms/*/events*", post_first, times=1))
    expect_texts(page, ["posted in between"], timeout=LIVE_MS)


def test_chinese_emoji_and_right_to_left_text_display_as_posted(open_room, server, room):
    viewer, writer = open_room(), open_room()
    writer_name = unique("李雷")
    choose_name(writer, writer_name)
    sent = [
        (writer_name, "你好，世界！今天的会议改到下午三点。"),
        ("Zoë", "Family 👨‍👩‍👧‍👦, thumbs 👍🏽, flag 🇯🇵, keycap 1️⃣"),
        ("דנה", "שלום עולם, הפגישה נדחתה למחר"),
        ("ليلى", "مرحبا بالعالم 123"),
    ]
    send(writer, sent[0][1])
    for user, text in sent[1:]:
        publish(server, room, text, user=user)
    texts = [text for _, text in sent]
    users = [user for user, _ in sent]
    for page in (viewer, writer):
        expect_texts(page, texts, timeout=LIVE_MS)  # live
    viewer.reload()
    expect_texts(viewer, texts)  # server-rendered
    for page in (viewer, writer):
        assert page.locator("li.msg .who").evaluate_all("els => els.map(e => e.textContent)") == users
        directions = page.locator(TEXTS).evaluate_all(
            "els => els.map(e => getComputedStyle(e).direction)")
        assert directions == ["ltr", "ltr", "rtl", "rtl"]  # dir=auto follows the text


def test_unread_count_shows_in_the_title_while_the_tab_is_hidden(open_room, server, room):
    ann = unique("ann")
    page = open_room(name=ann)
    base = "#%s · Ripple" % room
    expect(page).to_have_title(base)
    # Headless tabs are never hidden: stand in for the browser the way it reports a hidden tab.
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
        Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    publish(server, room, "one", user="bob")
    publish(server, room, "mine, from my phone", user=ann)  # one's own message is not unread
    publish(server, room, "two", user="bob")
    expect_texts(page, ["one", "mine, from my phone", "two"], timeout=LIVE_MS)
    expect(page).to_have_title("(2) " + base)
    page.evaluate("""() => {
        delete document.hidden;
        delete document.visibilityState;
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    expect(page).to_have_title(base)


def test_the_newest_message_stays_in_view_when_the_page_around_the_log_grows(open_room, server,
                                                                            room):
    for n in range(12):
        publish(server, room, "message %d, enough of them to scroll a phone screen" % n, user="bob")
    # Phone-sized: the header takes two lines, the online list sits above the log, and once
    # connected the status takes room from the room name.
    page = open_room(name=unique("ann"), viewport={"width": 390, "height": 640})
    newest = page.locator("li.msg").last
    expect(newest).to_be_in_viewport(ratio=1)
    page.route("**/rooms/*/messages", lambda route: route.fulfill(status=503, json={
        "error": "The message store is unavailable right now. Please try again shortly."}))
    page.fill("#text", "this fails")
    page.press("#text", "Enter")
    expect(page.locator("[data-error]")).to_be_visible()  # the composer grew by a line
    expect(newest).to_be_in_viewport(ratio=1)


@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
def test_signing_in_on_the_room_page_brings_the_composer(open_room, room, js):
    page = open_room(java_script_enabled=js)
    expect(page.locator("#name")).to_be_visible()  # signed out: the sign-in form, no composer
    expect(page.locator("#text")).to_have_count(0)
    expect(page.locator("[data-whoami]")).to_have_count(0)
    name = unique("ann")
    choose_name(page, name, js=js)  # the plain form: 303 back to the room
    assert re.search(r"/rooms/%s$" % room, page.url)
    expect(page.locator("#name")).to_have_count(0)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.locator(".top")).to_contain_text("Signed in as " + name)
    if js:  # the page's stream now counts as this person being online
        expect(page.locator(ONLINE)).to_have_text([name], timeout=LIVE_MS)
        expect(page.locator("[data-online-count]")).to_have_text("1")
        send(page, "signed in and talking")
        expect_texts(page, ["signed in and talking"])
        expect(page.locator("li.msg.own .who")).to_have_text([name])


def test_a_taken_name_shows_the_error_and_keeps_the_typed_name(open_room, room):
    taken = unique("ann")
    open_room(name=taken)  # someone else, online with that name
    page = open_room()
    page.fill("#name", taken)
    with page.expect_response(lambda r: r.request.method == "POST" and not r.url.endswith("/typing")) as posted:
        page.get_by_role("button", name="Start chatting").click()
    assert posted.value.status == 409
    error = page.locator("#name-error")
    # Issue 11.9: the sentence says what is true (they have a stream open: here right now).
    expect(error).to_have_text("“%s” is taken: it is in use by someone else right now. Pick another name." % taken)
    expect(page.locator("#name")).to_have_value(taken)
    expect(page.locator("#name")).to_have_attribute("aria-describedby", "name-error")
    expect(page.locator("#text")).to_have_count(0)
    other = unique("ann")
    page.fill("#name", other)  # another name goes through, back to the room it started from
    page.get_by_role("button", name="Start chatting").click()
    expect(page.locator("[data-whoami]")).to_have_text(other)
    assert re.search(r"/rooms/%s$" % room, page.url)


def test_someone_joining_shows_in_the_online_list_and_as_a_joined_line(open_room):
    ann_name, bob_name = unique("ann"), unique("bob")
    ann = open_room(name=ann_name)
    expect(ann.locator(ONLINE)).to_have_text([ann_name])
    open_room(name=bob_name)
    expect(ann.locator(ONLINE)).to_have_text([ann_name, bob_name], timeout=PRESENCE_MS)
    expect(ann.locator("[data-online-count]")).to_have_text("2")
    expect(ann.locator("li.presence")).to_have_text(["%s joined" % bob_name], timeout=PRESENCE_MS)
    # Others' names offer a direct message; one's own does not.
    expect(ann.locator(".people").get_by_role("link", name=bob_name, exact=True)).to_be_visible()
    expect(ann.locator(".people").get_by_role("link", name=ann_name, exact=True)).to_have_count(0)


def test_closing_the_page_shows_a_left_line_after_the_grace_window(open_room):
    ann_name, bob_name = unique("ann"), unique("bob")
    ann = open_room(name=ann_name)
    bob = open_room(name=bob_name)
    expect(ann.locator(ONLINE)).to_have_text([ann_name, bob_name], timeout=PRESENCE_MS)
    closed_at = time.monotonic()
    bob.close()
    left = ann.locator("li.presence", has_text="%s left" % bob_name)
    expect(left).to_have_count(1, timeout=6_000)  # grace 1 s, after the server notices (0.5 s)
    assert time.monotonic() - closed_at >= 1.0, "left before the grace window was over"
    expect(ann.locator(ONLINE)).to_have_text([ann_name])
    expect(ann.locator("[data-online-count]")).to_have_text("1")
    # Consecutive comings and goings share one line, each name with what it did last.
    expect(ann.locator("li.presence")).to_have_text(["%s left" % bob_name])


RECORD_ADDED_TEXT = """() => {
    window.addedText = [];
    new MutationObserver((records) => {
        for (const r of records) for (const n of r.addedNodes) window.addedText.push(n.textContent);
    }).observe(document.body, {childList: true, subtree: true, characterData: true});
}"""


def open_conversation(page, name):
    """Open the conversation with ``name`` from the online list, as a person would (a link)."""
    page.locator(".people [data-online]").get_by_role("link", name=name, exact=True).click()
    expect(page.locator("[data-conversation] h2")).to_have_text("Direct messages with " + name)
    expect(page.locator(STATUS)).to_have_text("connected")


def send_direct(page, text):
    page.fill("#dm-text", text)
    page.press("#dm-text", "Enter")
    expect(page.locator("#dm-text")).to_have_value("")  # cleared only once stored


def test_a_direct_message_reaches_only_its_recipient_and_the_reply_comes_back(open_room, server,
                                                                              room):
    # Direct messages have their own place: a conversation panel with its own log and composer,
    # never the room's log (issue 11 item 12 replaced the room composer's "direct mode").
    ann_name, bob_name, cat_name = unique("ann"), unique("bob"), unique("cat")
    ann, bob, cat = open_room(name=ann_name), open_room(name=bob_name), open_room(name=cat_name)
    cat.evaluate(RECORD_ADDED_TEXT)  # everything that ever shows on cat's page
    expect(ann.locator(ONLINE)).to_have_text(sorted([ann_name, bob_name, cat_name]), timeout=PRESENCE_MS)

    open_conversation(ann, bob_name)
    expect(ann.locator("#dm-text")).to_have_attribute("placeholder", "Message %s privately" % bob_name)
    secret = "psst, only for you " + uuid.uuid4().hex[:6]
    send_direct(ann, secret)
    expect(ann.locator(DIRECT + " .text")).to_have_text([secret])
    # Bob's page lists the conversation, marked new, and opens it.
    inbox = bob.locator("[data-inbox] li", has_text=ann_name)
    expect(inbox).to_contain_text(secret, timeout=LIVE_MS)
    expect(inbox.locator(".badge")).to_have_text("new")
    inbox.get_by_role("link", name=ann_name).click()
    expect(bob.locator(STATUS)).to_have_text("connected")  # the new page's script is running
    expect(bob.locator(DIRECT + " .text")).to_have_text([secret])
    expect(bob.locator(DIRECT + " .who")).to_have_text([ann_name])
    reply = "got it " + uuid.uuid4().hex[:6]
    send_direct(bob, reply)
    for page in (ann, bob):
        expect(page.locator(DIRECT + " .text")).to_have_text([secret, reply], timeout=LIVE_MS)
    expect(ann.locator(DIRECT + " .who").last).to_have_text(bob_name)

    publish(server, room, "a public message, after both", user="dan")
    for page in (ann, bob, cat):
        expect_texts(page, ["a public message, after both"], timeout=LIVE_MS)  # the room's log
    expect(cat.locator(DIRECT)).to_have_count(0)
    seen = "\n".join(cat.evaluate("window.addedText")) + cat.locator("body").inner_text()
    assert secret not in seen and reply not in seen
    assert [m["text"] for m in history(server, room)] == ["a public message, after both"]


def test_after_a_direct_message_the_room_composer_still_posts_to_the_room(open_room, server, room):
    ann_name, bob_name = unique("ann"), unique("bob")
    ann, bob = open_room(name=ann_name), open_room(name=bob_name)
    open_conversation(ann, bob_name)
    send_direct(ann, "just for bob")
    send(ann, "for everyone")  # the room's own composer, beside the conversation
    expect_texts(bob, ["for everyone"], timeout=LIVE_MS)
    expect(bob.locator(DIRECT)).to_have_count(0)
    assert [m["text"] for m in history(server, room)] == ["for everyone"]
    ann.get_by_role("link", name="Back to #" + room).click()
    expect(ann.locator("[data-conversation]")).to_have_count(0)
    expect(ann.locator(STATUS)).to_have_text("connected")
    send(ann, "and again")
    expect_texts(bob, ["for everyone", "and again"], timeout=LIVE_MS)


def test_a_signed_out_page_cannot_post(open_room, server, room):
    page = open_room()
    expect(page.locator("#name")).to_be_visible()
    expect(page.locator("form[data-form], #text")).to_have_count(0)  # no composer to post with
    url = "/rooms/%s/messages" % room
    # The page's own cookies but no CSRF token: refused before anything else.
    response = page.request.post(url, form={"text": "sneaked in"}, headers={"Accept": "application/json"})
    assert response.status == 400, response.text()
    assert "CSRF" in response.json()["error"]
    # As a plain form post (no JSON asked for): the room page with the error (and, signed
    # out, the sign-in form rather than a composer).
    response = page.request.post(url, form={"text": "sneaked in"})
    assert response.status == 400 and "CSRF" in response.text() and 'name="name"' in response.text()
    # With the token the sign-in form carries: still no one to post as.
    token = page.input_value("form.signin input[name=csrf_token]")
    response = page.request.post(url, form={"text": "sneaked in", "csrf_token": token},
                                 headers={"Accept": "application/json"})
    assert response.status == 401, response.text()
    assert response.json()["error"] == "Sign in with a display name before posting."
    assert history(server, room) == []


def test_a_post_without_the_csrf_token_is_refused_even_when_signed_in(open_room, server, room):
    page = open_room(name=unique("ann"))
    response = page.request.post("/rooms/%s/messages" % room, form={"text": "forged"})
    assert response.status == 400, response.text()  # the session cookie alone cannot post
    response = page.request.post("/users/%s/messages" % unique("bob"), form={"text": "forged"})
    assert response.status == 400, response.text()
    assert history(server, room) == []
    send(page, "the page itself can")  # its form carries the token
    assert [m["text"] for m in history(server, room)] == ["the page itself can"]


SCREENSHOT_MESSAGES = [
    (None, "Morning all — the deploy went out at 09:00 and the dashboards look calm."),  # me
    ("李雷", "早上好！今天的部署很顺利，大家辛苦了。周五下午三点开会讨论下一步的计划。🎉"),
    ("bob", "Logs are here: https://example.com/ripple/deploys/2024-11-23/" + "segment-" * 14 + "end"),
    ("דנה", "שלום לכולם, הפגישה נדחתה למחר בבוקר."),
    ("bob", "Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaft"),
    (None, "Checklist:\n1. migrate\n2. deploy\n3. verify 👍"),
]
SCREENSHOT_DIRECT = "Got a minute after standup? 想和你聊聊周五的计划 ☕"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots_of_a_room(open_room, server, room, scheme):
    me, other = unique("ann"), unique("zoë")
    for user, text in SCREENSHOT_MESSAGES:
        publish(server, room, text, user=user or me)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = open_room(name=me, color_scheme=scheme, viewport={"width": 1024, "height": 720})
    friend = open_room(name=other, color_scheme=scheme)
    expect(page.locator(ONLINE)).to_have_text([me, other], timeout=PRESENCE_MS)
    open_conversation(friend, me)
    send_direct(friend, SCREENSHOT_DIRECT)
    expect(page.locator("[data-inbox] li .snippet")).to_have_text([SCREENSHOT_DIRECT], timeout=LIVE_MS)
    expect(page.locator("li.msg")).to_have_count(len(SCREENSHOT_MESSAGES))
    page.fill("#text", "A draft that is not sent yet")
    page.evaluate("document.fonts.ready")
    for width, height, label in ((1024, 720, "desktop"), (390, 844, "mobile")):
        page.set_viewport_size({"width": width, "height": height})
        # Long words wrap: nothing is wider than the screen.
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        assert page.locator("[data-log]").evaluate("el => el.scrollWidth <= el.clientWidth")
        expect(page.locator("li.msg").last).to_be_in_viewport()  # the newest message, in view
        # A crowded phone header broke the name over two lines (and cut the room name to "#t…").
        assert page.locator("[data-whoami]").evaluate("el => el.getClientRects().length") == 1
        page.screenshot(path=SCREENSHOTS / ("room-%s-%s.png" % (label, scheme)), full_page=True)
