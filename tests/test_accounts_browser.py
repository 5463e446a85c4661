"""Accounts in real Chromium, with JavaScript on and off: register on the plain form, leave,
sign in again with the password on a room page, and a wrong password keeps the typed name."""
import pytest

from .browser import STATUS, browser, expect, unique  # noqa: F401 - fixtures
from .test_accounts import PASSWORD


@pytest.fixture
def context(browser, server):  # noqa: F811 - the fixture above
    contexts = []

    def make(js):
        ctx = browser.new_context(base_url=server.url, java_script_enabled=js)
        ctx.set_default_timeout(10_000)
        contexts.append(ctx)
        return ctx
    yield make
    for ctx in contexts:
        ctx.close()


@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
def test_register_leave_and_sign_in_again_with_the_password(context, room, js):
    page = context(js).new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    name = unique("ann")
    page.goto("/register")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    with page.expect_response(lambda r: r.request.method == "POST" and not r.url.endswith("/typing")) as answer:
        page.get_by_role("button", name="Register and sign in").click()
    assert answer.value.status == 303
    expect(page.locator("[data-whoami]")).to_have_text(name)
    expect(page.locator("[data-guest]")).to_have_count(0)
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("[data-whoami]")).to_have_count(0)
    page.goto("/rooms/%s" % room)
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    with page.expect_response(lambda r: r.request.method == "POST" and not r.url.endswith("/typing")) as answer:
        page.get_by_role("button", name="Start chatting").click()
    assert answer.value.status == 303
    expect(page.locator("#text")).to_be_visible()
    expect(page.locator("[data-whoami]")).to_have_text(name)
    if js:
        expect(page.locator(STATUS)).to_have_text("connected")
    assert not errors


@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
def test_a_wrong_password_says_so_and_keeps_the_name_not_the_password(context, js):
    page = context(js).new_page()
    page.goto("/")
    name = unique("nobody")
    page.fill("#name", name)
    page.fill("#password", "not the right one")
    page.get_by_role("button", name="Start chatting").click()
    expect(page.locator("#name-error")).to_contain_text("do not match")
    expect(page.locator("#name")).to_have_value(name)
    expect(page.locator("#password")).to_have_value("")


def test_a_guest_is_marked_as_one(context):
    page = context(True).new_page()
    page.goto("/")
    page.fill("#name", unique("gus"))
    page.get_by_role("button", name="Start chatting").click()
    expect(page.locator("[data-guest]")).to_have_text("guest")


def test_a_live_message_from_a_name_that_changed_hands_is_marked(context, server, room):
    from .web import Browser
    name = unique("ann")
    first = Browser(server.url)
    assert first.sign_in(name) == 200 and first.post(room, "from the first")[0] == 201
    assert first.request("DELETE", "/session")[0] == 204
    page = context(True).new_page()
    page.goto("/rooms/%s" % room)
    expect(page.locator(STATUS)).to_have_text("connected")
    second = Browser(server.url)
    assert second.sign_in(name) == 200 and second.post(room, "from the second")[0] == 201
    expect(page.locator("li.msg[data-uid] [data-changed]")).to_have_count(1)
    expect(page.locator("li.msg", has_text="from the second").locator("[data-changed]")).to_have_count(1)


def test_the_online_list_marks_a_guest_live_and_not_an_account(context, server, room):
    from .test_accounts import account_holder
    from .web import Browser
    owner = account_holder(server)
    page = context(True).new_page()
    page.goto("/rooms/%s" % room)
    expect(page.locator(STATUS)).to_have_text("connected")
    guest = Browser(server.url)
    assert guest.sign_in(unique("gus")) == 200
    with owner.stream(room) as one, guest.stream(room) as other:
        one.until("ready")
        other.until("ready")
        online = page.locator("[data-online] li")
        expect(online).to_have_text(sorted([owner.name, guest.name]))  # each item: the name alone
        expect(page.locator('[data-online] li[data-kind="guest"]')).to_have_count(1)
        expect(page.locator('[data-online] li[data-name="%s"] .guest' % guest.name)).to_be_visible()
        expect(page.locator('[data-online] li[data-name="%s"] .guest' % owner.name)).to_have_count(0)
        page.reload()  # the server renders the same marks
        expect(page.locator('[data-online] li[data-kind="guest"]')).to_have_attribute("data-name", guest.name)


def register_in(ctx, name):
    """Register ``name`` in browser context ``ctx`` over HTTP (its pages are then signed in)."""
    csrf = ctx.request.get("/session").json()["csrf_token"]
    answer = ctx.request.post("/accounts", data={"name": name, "password": PASSWORD}, headers={"X-CSRF-Token": csrf})
    assert answer.status == 201, answer.text()


@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
def test_a_direct_message_to_an_account_that_is_away_says_it_waits(context, server, room, js):
    from .test_accounts import account_holder
    away = account_holder(server)  # registered, then gone: no stream anywhere
    ctx = context(js)
    register_in(ctx, unique("bob"))
    page = ctx.new_page()
    page.goto("/rooms/%s?with=%s" % (room, away.name))
    page.fill("#dm-text", "for when you are back")
    page.locator('form[data-kind="direct"] button[type=submit]').click()
    expect(page.locator('form[data-kind="direct"] [data-note]')).to_have_text(
        "Sent. %s is away: it is delivered when they are back." % away.name)
    expect(page.locator("#dm-text")).to_have_value("")
