"""Shared browser fixtures and helpers: Debian's Chromium driven by Playwright against the real
Gunicorn. Test modules import the fixtures they use (``from .browser import browser, open_room``).
"""
import json
import os
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from .support import post

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed: apt-get install chromium", allow_module_level=True)

from playwright.sync_api import Error as PlaywrightError  # noqa: E402
from playwright.sync_api import expect  # noqa: E402

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LIVE_MS = 2_000      # a message typed in one page shows in another within this
# Another person's join or leave shows within this: in a busy room it may wait one presence
# batch (RIPPLE_PRESENCE_BATCH_MS, 1 s) before it is announced at all.
PRESENCE_MS = LIVE_MS + 2_000
RECONNECT_MS = 10_000  # the EventSource retries every 2 s (the server's retry:), 3-5 s after a 503
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-output" / "screenshots"

STATUS = "[data-status]"
TEXTS = "main.room li.msg .text"  # the room's log; a conversation has its own
SEND = "form[data-form] button[type=submit]"  # the composer's; the header's Sign out is one too
DIRECT = "li.msg.direct"
ONLINE = "[data-online] li"
XSS = ["<img src=x onerror=alert(1)>", "<script>alert(1)</script>"]


class LiveBrowser:
    """The test process's Chromium as a Playwright Browser, launched again when it died: each
    attribute is the live one's (ChromiumProcess.get). The hung-test watchdog (tests/conftest.py)
    ends Chromium; a file's later tests held the dead Browser and all failed after one hang."""

    def __init__(self, process):
        self._process = process

    def __getattr__(self, name):
        return getattr(self._process.get(), name)


@pytest.fixture(scope="module")
def browser(chromium_process):
    """The test process's Chromium (tests/conftest.py; LiveBrowser); what this file's tests left
    open of it closes with the file, as when each file launched a browser of its own."""
    browser = LiveBrowser(chromium_process)
    yield browser
    if browser.is_connected():
        for context in browser.contexts:
            close_context(context)


@pytest.fixture
def dialogs():
    """Every alert/confirm/prompt any page of the test opened (there must be none), by its text,
    and "beforeunload" for each time the browser asked before leaving a page (leaving.js)."""
    return []


def answer_leave(context):
    """``context`` (a BrowserContext), whose pages' every "Leave site?" is accepted and any other
    dialog dismissed, as open_room answers them: left to Playwright, a "Leave site?" is dismissed,
    the page stays half closed, and a CI run hung closing such a context."""
    context.on("dialog", lambda dialog: dialog.accept() if dialog.type == "beforeunload" else dialog.dismiss())
    return context


def close_context(context):
    """Close ``context`` (a BrowserContext), its pages first taken to about:blank.

    Chromium never answered Playwright's Target.disposeBrowserContext (and close() has no
    timeout) when one of the context's pages was starting a navigation of its own as it closed:
    tabs reloading because another tab signed in, in test_connection (two CI runs hung there,
    reproduced about once in 16 runs under load). On about:blank no script of ours runs to start
    one. A page that will not leave (a "Leave site?" nobody accepts) gives up after 5 s."""
    for page in context.pages:
        try:
            page.goto("about:blank", timeout=5_000)
        except PlaywrightError:
            pass
    context.close()


def answer_dialog(dialogs, dialog):
    """Note ``dialog`` and answer it: an alert/confirm/prompt is dismissed; the browser's "Leave
    site?" is accepted, as Playwright does unasked, so the page goes. Dismissed, it left the page
    half closed, and Chromium died closing its context after the test (a CI run)."""
    if dialog.type == "beforeunload":
        dialogs.append(dialog.type)
        dialog.accept()
    else:
        dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture
def open_room(browser, server, room, dialogs):
    """Open the test's room in a new browser context; JS errors on any page fail the test."""
    contexts, errors = [], []

    def open_room(name=None, base_url=server.url, before_load=None, **context_options):
        context = browser.new_context(base_url=base_url, **context_options)  # a live one: LiveBrowser
        context.set_default_timeout(10_000)
        # Every page of the context, its other tabs too: one of them left unanswered dismissed a
        # "Leave site?" and stayed half closed (a context that may then not close).
        context.on("dialog", lambda dialog: answer_dialog(dialogs, dialog))
        contexts.append(context)
        if name:  # signed in before the first load: the page renders the composer for ``name``
            sign_in_over_http(context, name)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(error))
        if before_load:
            before_load(page)
        page.goto("/rooms/%s" % room)
        if context_options.get("java_script_enabled", True):  # in any language ("已连接" too)
            expect(page.locator(STATUS)).to_have_attribute("data-state", "connected")
        return page

    yield open_room
    during_the_test = list(errors)  # not those of close_context's own navigation away
    for context in contexts:
        close_context(context)
    assert not during_the_test, "JavaScript errors on the page: %r" % during_the_test


def wait_for_script(page, expression, timeout_ms=5_000):
    """Wait until ``expression`` (a JavaScript expression) is truthy in ``page``; its value.

    Not Playwright's wait_for_function: when its first look is false it polls by evaluating
    the string inside the page, which the page's CSP (no 'unsafe-eval') refuses, and the test
    failed whenever the page was a moment slow (a CI run). page.evaluate goes through the
    DevTools protocol, which the CSP does not govern."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("still false after %d ms: %s" % (timeout_ms, expression))
        page.wait_for_timeout(50)


def unique(name):
    """A display name no other test (or earlier run against the same Redis) holds."""
    return "%s-%s" % (name, uuid.uuid4().hex[:6])


def sign_in_over_http(context, name):
    """Sign ``context`` in as ``name`` the way the page's script could: GET a CSRF token, POST.

    The context's request API shares its cookie jar, so its pages are then signed in.
    """
    token = context.request.get("/session").json()["csrf_token"]
    response = context.request.post("/session", data={"name": name},
                                     headers={"X-CSRF-Token": token})
    assert response.status == 200, (response.status, response.text())


def choose_name(page, name, js=True):
    """Sign in as ``name`` through the sign-in form on the room page, as a person would.

    It is a plain form (JavaScript on or off): a 303 brings the page back with the composer.
    """
    page.fill("#name", name)
    with page.expect_response(lambda r: r.request.method == "POST" and not r.url.endswith("/typing")) as signed_in:
        page.get_by_role("button", name="Start chatting").click()
    assert signed_in.value.status == 303, "sign-in answered %d" % signed_in.value.status
    expect(page.locator("#text")).to_be_visible()
    expect(page.locator("[data-whoami]")).to_have_text(name)
    if js:  # the reloaded page's own stream, now a signed-in one
        expect(page.locator(STATUS)).to_have_text("connected")


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
