"""Ripple in a real browser: Debian's Chromium, driven by Playwright, against the real Gunicorn.

Every test opens a fresh room (the ``room`` fixture) in its own browser contexts, so each page
has its own cookies, storage and connections, like a separate person.
"""
import json
import os
import re
import socket
import struct
import threading
import urllib.request
from pathlib import Path

import pytest

from .conftest import post

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed: apt-get install chromium", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LIVE_MS = 2_000      # a message typed in one page shows in another within this
RECONNECT_MS = 10_000  # the EventSource retries every 2 s (the server's retry:), 3-5 s after a 503
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-output" / "screenshots"

STATUS = "[data-status]"
TEXTS = "li.msg .text"
XSS = ["<img src=x onerror=alert(1)>", "<script>alert(1)</script>"]


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def dialogs():
    """Every alert/confirm/prompt any page of the test opened (there must be none)."""
    return []


@pytest.fixture
def open_room(browser, server, room, dialogs):
    """Open the test's room in a new browser context; JS errors on any page fail the test."""
    contexts, errors = [], []

    def open_room(name=None, base_url=server.url, before_load=None, **context_options):
        context = browser.new_context(base_url=base_url, **context_options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        if name:  # the name cookie a form post leaves behind: the page renders it
            context.add_cookies([{"name": "ripple_name", "value": name, "url": base_url}])
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(error))
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        if before_load:
            before_load(page)
        page.goto("/rooms/%s" % room)
        if context_options.get("java_script_enabled", True):
            expect(page.locator(STATUS)).to_have_text("connected")
        return page

    yield open_room
    for context in contexts:
        context.close()
    assert not errors, "JavaScript errors on the page: %r" % errors


def choose_name(page, name):
    """Pick the display name this page sends as."""
    page.fill("#user", name)


def publish(server, room, text, user="bob"):
    """Post a message over HTTP, straight to Gunicorn (another person, another device)."""
    status, body = post(server.url, room, text, user=user)
    assert status == 201, (status, body)
    return body


def send(page, text):
    """Type a message and press Enter, as a person would; wait until the server stored it."""
    page.fill("#text", text)
    page.press("#text", "Enter")
    expect(page.locator("#text")).to_have_value("")  # cleared only once stored


def expect_texts(page, texts, timeout=5_000):
    """Wait for exactly these message texts, in order; then compare them character for character."""
    expect(page.locator(TEXTS)).to_have_text(texts, timeout=timeout)  # whitespace-normalised
    assert page.locator(TEXTS).evaluate_all("els => els.map(e => e.textContent)") == texts


def message_ids(page):
    return page.locator("li.msg").evaluate_all("els => els.map(e => e.dataset.id)")


def id_key(message_id):
    ms, seq = message_id.split("-")
    return int(ms), int(seq)


def history(server, room):
    with urllib.request.urlopen("%s/rooms/%s/messages" % (server.url, room), timeout=10) as r:
        return json.loads(r.read())["messages"]


def test_a_message_typed_in_one_page_appears_live_in_another(open_room):
    ann, bob = open_room(), open_room()  # two contexts: two separate connections
    choose_name(ann, "ann")
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
    choose_name(page, "noscript")
    page.fill("#text", "posted by a plain form")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("button[type=submit]")
    assert posted.value.status == 303
    page.wait_for_load_state()
    assert re.search(r"/rooms/%s$" % room, page.url)
    expect_texts(page, ["posted by a plain form"])
    expect(page.locator("[data-error]")).to_be_hidden()
    expect(page.locator("#user")).to_have_value("noscript")  # remembered in a cookie


@pytest.mark.parametrize("typed, error", [
    ("   ", "Message text is empty."),
    # Starts with a line break: the HTML parser drops one right after <textarea>.
    ("\n" + "far too long " * 160, re.compile(r"Message is too long: \d+ characters, the limit is 2000\.")),
], ids=["blank", "too-long"])
def test_a_rejected_form_post_shows_the_error_and_keeps_the_text(open_room, typed, error):
    page = open_room(java_script_enabled=False)
    choose_name(page, "noscript")
    # maxlength stops typing at 2000 characters; a browser or paste that ignores it must not lose text.
    page.locator("#text").evaluate("el => el.removeAttribute('maxlength')")
    page.fill("#text", typed)
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("button[type=submit]")
    assert posted.value.status == 422
    page.wait_for_load_state()
    expect(page.locator("[data-error]")).to_be_visible()
    expect(page.locator("[data-error]")).to_have_text(error)
    assert page.input_value("#text") == typed
    expect(page.locator("#user")).to_have_value("noscript")
    expect(page.locator("li.msg")).to_have_count(0)


def test_markup_in_messages_and_names_renders_as_text(open_room, dialogs):
    ann, bob = open_room(), open_room()
    name = "<img src=x onerror=alert(2)>"
    choose_name(ann, name)
    for text in XSS:
        send(ann, text)
    expect_texts(bob, XSS)  # rendered live, from the stream
    bob.reload()
    expect_texts(bob, XSS)  # rendered by the server
    for page in (ann, bob):
        expect(page.locator("li.msg .who")).to_have_text([name, name])
        assert page.locator("[data-messages] img, [data-messages] script").count() == 0
    assert dialogs == []


def test_enter_while_an_ime_is_composing_does_not_send(open_room, server, room):
    page = open_room()
    choose_name(page, "ann")
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
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
    assert len(posts) == 1


@pytest.mark.xfail(strict=True, reason=(
    "server bug: a form body carries line breaks as CRLF (the HTML spec's encoding) and "
    "app/api.py stores them as sent, so every line break costs 2 of the 2000 characters and "
    "browser messages differ from API ones; fix: normalise CRLF to LF before check_text"))
def test_a_message_with_line_breaks_that_fits_the_textarea_is_stored_as_typed(open_room, server,
                                                                               room):
    page = open_room()
    choose_name(page, "ann")
    typed = "".join("line %03d of a long paste\n" % n for n in range(100))[:2000]
    page.fill("#text", typed)
    assert page.input_value("#text") == typed  # within maxlength: the textarea took it all
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.press("#text", "Enter")
    assert posted.value.status == 201, posted.value.text()
    assert [m["text"] for m in history(server, room)] == [typed]


@pytest.mark.parametrize("failure", ["503", "network"])
def test_a_failed_send_keeps_the_text_and_shows_an_error(open_room, failure):
    page = open_room()
    choose_name(page, "ann")

    def fail(route):
        if route.request.method != "POST":
            return route.fallback()
        if failure == "network":
            return route.abort("connectionrefused")
        return route.fulfill(status=503, headers={"Retry-After": "7"}, json={
            "error": "The message store is unavailable right now. Please try again shortly."})

    page.route("**/rooms/*/messages", fail)
    key = page.input_value("input[name=idempotency_key]")
    page.fill("#text", "please do not lose me")
    page.press("#text", "Enter")
    error = page.locator("[data-error]")
    expect(error).to_be_visible()
    expect(error).to_have_text({
        "503": "The message store is unavailable right now. Please try again shortly. "
               "Try again in 7 s.",
        "network": "Could not reach the server. Your message is kept; press Send to retry.",
    }[failure])
    expect(page.locator("#text")).to_have_value("please do not lose me")
    expect(page.locator("button[type=submit]")).to_be_enabled()
    assert page.input_value("input[name=idempotency_key]") == key  # a retry cannot double it
    expect(page.locator("li.msg")).to_have_count(0)

    page.unroute("**/rooms/*/messages")
    page.click("button[type=submit]")  # the retry goes through
    expect_texts(page, ["please do not lose me"])
    expect(error).to_be_hidden()
    expect(page.locator("#text")).to_have_value("")


def test_text_typed_while_a_message_is_sending_is_kept(open_room):
    page = open_room()
    choose_name(page, "ann")

    def type_while_in_flight(route):
        page.locator("#text").press_sequentially("next one")  # the send has not answered yet
        route.continue_()

    page.route("**/rooms/*/messages", type_while_in_flight, times=1)
    page.fill("#text", "first")
    page.press("#text", "Enter")
    expect_texts(page, ["first"])
    expect(page.locator("#text")).to_have_value("next one")


class CuttableRelay:
    """A loopback TCP relay in front of Gunicorn that a test can cut like a failing network.

    Why not something simpler: ``context.set_offline(True)`` only fails *new* requests, and
    ``page.route`` only sees requests as they start; neither touches a stream that is already
    open (Chromium keeps reading it: messages go on arriving while "offline"). Resetting the
    TCP connections under the page is what really ends the open EventSource, and refusing new
    ones keeps its automatic reconnects (Last-Event-ID and all) failing until ``restore()``.
    """

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.sockets = set()
        self.is_cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self.lock:
                if self.is_cut:
                    _reset(client)
                    _reset(upstream)
                    continue
                self.sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def cut(self):
        """Reset every relayed connection (the page sees a network error) and refuse new ones."""
        with self.lock:
            self.is_cut = True
            cut, self.sockets = self.sockets, set()
        for sock in cut:
            _reset(sock)

    def restore(self):
        with self.lock:
            self.is_cut = False

    def close(self):
        self.listener.close()
        self.cut()


def _reset(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
        sock.shutdown(socket.SHUT_RD)  # wakes a thread blocked in recv() on it
    except OSError:
        pass
    sock.close()


@pytest.fixture
def relay(server):
    relay = CuttableRelay(server.port)
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
    choose_name(writer, "李雷")
    sent = [
        ("李雷", "你好，世界！今天的会议改到下午三点。"),
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
    page = open_room(name="ann")
    base = "#%s · Ripple" % room
    expect(page).to_have_title(base)
    # Headless tabs are never hidden: stand in for the browser the way it reports a hidden tab.
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
        Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    publish(server, room, "one", user="bob")
    publish(server, room, "mine, from my phone", user="ann")  # one's own message is not unread
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
    # Phone-sized: once connected, the status and the room name wrap and the header grows.
    page = open_room(name="ann", viewport={"width": 390, "height": 640})
    newest = page.locator("li.msg").last
    expect(newest).to_be_in_viewport(ratio=1)
    page.route("**/rooms/*/messages", lambda route: route.fulfill(status=503, json={
        "error": "The message store is unavailable right now. Please try again shortly."}))
    page.fill("#text", "this fails")
    page.press("#text", "Enter")
    expect(page.locator("[data-error]")).to_be_visible()  # the composer grew by a line
    expect(newest).to_be_in_viewport(ratio=1)


SCREENSHOT_MESSAGES = [
    ("ann", "Morning all — the deploy went out at 09:00 and the dashboards look calm."),
    ("李雷", "早上好！今天的部署很顺利，大家辛苦了。周五下午三点开会讨论下一步的计划。"),
    ("bob", "Logs are here: https://example.com/ripple/deploys/2024-11-23/" + "segment-" * 14 + "end"),
    ("דנה", "שלום לכולם, הפגישה נדחתה למחר בבוקר."),
    ("bob", "Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaft"),
    ("ann", "Checklist:\n1. migrate\n2. deploy\n3. verify 👍"),
]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots_of_a_room(open_room, server, room, scheme):
    for user, text in SCREENSHOT_MESSAGES:
        publish(server, room, text, user=user)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width, height, label in ((1024, 720, "desktop"), (390, 844, "mobile")):
        page = open_room(name="ann", color_scheme=scheme, viewport={"width": width, "height": height})
        page.fill("#text", "A draft that is not sent yet")
        expect(page.locator("li.msg")).to_have_count(len(SCREENSHOT_MESSAGES))
        page.evaluate("document.fonts.ready")
        # Long words wrap: nothing is wider than the screen.
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        assert page.locator("[data-log]").evaluate("el => el.scrollWidth <= el.clientWidth")
        page.screenshot(path=SCREENSHOTS / ("room-%s-%s.png" % (label, scheme)), full_page=True)
