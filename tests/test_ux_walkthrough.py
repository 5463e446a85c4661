"""A new person's walk through Ripple on a phone, in Chinese (the UX walkthrough of session 4).

Each test is one problem that walk found: real Chromium at phone size (390x844, zh-CN, touch)
or plain HTTP, against the real 2-worker Gunicorn.
"""
import re
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
    delete = "main.room li.msg form[data-delete] button"
    expect(page.locator(delete)).to_have_text("删除消息")
    page.screenshot(path=str(SCREENSHOTS / "ux-actions-zh.png"))
    assert contrast(page, delete) >= 4.5  # WCAG AA: it was dark red on the blue of buttons
