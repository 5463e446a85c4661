"""Rooms that belong to someone in real Chromium (issue 15): a person banned or removed sees it
happen live and the page stops streaming; the owner's actions all work with JavaScript off
(creating a private room in the lobby, the management page's forms)."""
import contextlib
import re
from urllib.parse import quote

import pytest

from app import create_app
from app.ops.services import services

from .browser import (  # noqa: F401
    RECONNECT_MS,
    STATUS,
    TEXTS,
    browser,
    close_context,
    dialogs,
    expect,
    open_room,
    sign_in_over_http,
    unique,
)
from .test_accounts import PASSWORD, account_holder
from .test_admin_reads import admin_browser
from .test_browser import relay  # noqa: F401 (fixture)
from .test_rooms import answer, create, invite, path_of
from .web import Browser


@pytest.fixture
def owner(server):
    return account_holder(server, "own")


@pytest.mark.parametrize("action", ["ban", "remove", "leave", "delete"])
def test_a_person_shut_out_of_a_room_sees_why_live_and_the_page_stops_streaming(open_room, server, room, owner,
                                                                                 action):
    assert create(owner, room, "private")[0] == 201
    link = invite(owner, room)["url"]
    name = unique("gus")

    def join(page):  # a stranger first: the private room's page is a 404 until they join
        page.goto("/rooms/%s" % room)
        expect(page.locator("h1")).to_have_text("404")
        page.goto(path_of(link))
        page.get_by_role("button", name=re.compile("Join #")).click()
        expect(page).to_have_url(re.compile("/rooms/%s$" % room))

    page = open_room(name, before_load=join)
    if action == "ban":
        assert answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": name})[0] == 201
        said = "You were banned from #%s." % room
    elif action == "remove":
        assert owner.request("DELETE", "/rooms/%s/members/%s" % (room, name))[0] == 204
        said = "You were removed from #%s." % room
    elif action == "leave":  # by themselves, in another tab or through the API
        token = page.context.request.get("/session").json()["csrf_token"]
        assert page.context.request.delete("/rooms/%s/members/%s" % (room, name),
                                           headers={"X-CSRF-Token": token}).status == 204
        said = "You left #%s." % room
    else:
        assert owner.request("DELETE", "/rooms/%s" % room)[0] == 204
        said = "#%s was deleted by its owner or an administrator." % room
    expect(page.locator("[data-notice]")).to_have_text(said)
    expect(page.locator(STATUS)).to_have_text("closed")
    expect(page.locator("form[data-form]")).to_be_hidden()
    # It stays closed: no reconnect loop against the refusal.
    page.wait_for_timeout(3000)
    expect(page.locator(STATUS)).to_have_text("closed")


def joining_by_invitation(owner, room):
    """A ``before_load`` for open_room: the page joins ``room`` through an invitation link of ``owner``'s."""
    link = invite(owner, room)["url"]

    def join(page):
        page.goto(path_of(link))
        page.get_by_role("button", name=re.compile("Join #")).click()
        expect(page).to_have_url(re.compile("/rooms/%s$" % room))
    return join


def test_a_draft_for_a_deleted_room_does_not_come_back_in_a_room_of_the_same_name(open_room, server, room,
                                                                                   owner):
    # Posting to an unknown room makes a public one: a private room's draft must not wait,
    # one Enter away, in the public room a reload opens after its deletion.
    assert create(owner, room, "private")[0] == 201
    join = joining_by_invitation(owner, room)
    page = open_room(unique("gus"), before_load=join)
    page.fill("textarea[name=text]", "only for the members")
    assert owner.request("DELETE", "/rooms/%s" % room)[0] == 204
    expect(page.locator("[data-notice]")).to_have_text("#%s was deleted by its owner or an administrator." % room)
    page.reload()  # the deleted room's page (410), no composer: a new room of the name is made on purpose
    expect(page.locator("[role=alert]")).to_have_text("#%s was deleted by its owner or an administrator." % room)
    page.get_by_role("link", name="Create a new #%s" % room).click()
    expect(page.locator("#create-name")).to_have_value(room)
    page.get_by_role("button", name="Create").click()
    expect(page).to_have_url(re.compile("/rooms/%s$" % room))
    expect(page.locator("form[data-form]")).to_be_visible()
    expect(page.locator("textarea[name=text]")).to_have_value("")


def test_a_page_away_when_its_room_was_deleted_says_so_when_it_comes_back(open_room, relay, server, room, owner):
    # h55 finding 2: a page that missed the room-deleted event meets 410 room_deleted on its
    # reconnect; it says what the event would have said (not "reconnecting" for ever), and the
    # room leaves its sidebar as it has on the server.
    assert create(owner, room, "private")[0] == 201
    join = joining_by_invitation(owner, room)
    page = open_room(unique("gus"), base_url=relay.url, before_load=join)
    assert owner.post(room, "before")[0] == 201
    expect(page.locator(TEXTS)).to_have_text(["before"])  # the page's cursor is in the history
    entry = page.locator("[data-sidebar-rooms] li[data-room='%s']" % room)
    expect(entry).to_have_count(1)
    relay.cut()
    assert owner.request("DELETE", "/rooms/%s" % room)[0] == 204
    relay.restore()
    expect(page.locator("[data-notice]")).to_have_text("#%s was deleted by its owner or an administrator." % room,
                                                       timeout=RECONNECT_MS * 2)
    expect(page.locator(STATUS)).to_have_text("closed")
    expect(page.locator("form[data-form]")).to_be_hidden()
    expect(entry).to_have_count(0)


def test_a_timed_ban_shows_when_it_lapses_and_the_page_comes_back_then(open_room, server, room, owner):
    assert create(owner, room, "public")[0] == 201
    name = unique("gus")
    page = open_room(name)
    page.fill("textarea[name=text]", "said after the ban")
    assert answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": name, "seconds": 2})[0] == 201
    expect(page.locator("[data-notice]")).to_contain_text("You are banned from #%s until " % room)
    expect(page.locator("form[data-form]")).to_be_hidden()
    # Two seconds on, the page reloads by itself: live again, the draft back in the composer.
    expect(page.locator("form[data-form]")).to_be_visible(timeout=15000)
    expect(page.locator(STATUS)).to_have_text("connected", timeout=15000)
    expect(page.locator("textarea[name=text]")).to_have_value("said after the ban")


def register(page, name):
    page.goto("/register")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Register and sign in").click()
    expect(page.locator("[data-whoami]")).to_have_text(name)


def test_the_owner_runs_a_private_room_without_javascript(browser, server, room):  # noqa: F811
    context = browser.new_context(base_url=server.url, java_script_enabled=False)
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        register(page, unique("own"))
        page.goto("/")
        page.fill("#create-name", room)
        page.fill("#create-topic", "Quarterly plans")
        page.get_by_label("Private: members only (invite them)").check()
        page.get_by_role("button", name="Create").click()
        expect(page).to_have_url(re.compile("/rooms/%s$" % room))
        expect(page.locator("[data-topic]")).to_contain_text("Quarterly plans")
        page.get_by_role("link", name="Manage").click()
        page.fill("#max-uses", "1")
        page.get_by_role("button", name="Make an invitation link").click()
        link = page.locator("[data-invite-link]").input_value()
        assert "/invite/" in link
        page.fill("#slow", "10")
        page.get_by_role("button", name="Save").click()
        expect(page.locator("#slow")).to_have_value("10")
        page.fill("#ban-address", "192.0.2.7")
        page.fill("#ban-seconds", "600")
        page.locator("form:has(#ban-address)").get_by_role("button", name="Ban").click()
        unban = page.locator("tr", has_text="192.0.2.7").get_by_role("button", name="Unban")
        expect(unban).to_have_count(1)
        unban.click()
        expect(page.get_by_text("Nobody is banned.")).to_be_visible()
        page.get_by_role("button", name="Delete #%s and its history" % room).click()
        expect(page).to_have_url(re.compile("/rooms/%s/delete$" % room))  # asked first: nothing gone yet
        page.get_by_role("link", name="Cancel").click()
        expect(page).to_have_url(re.compile("/rooms/%s/manage$" % room))
        page.get_by_role("button", name="Delete #%s and its history" % room).click()
        page.get_by_role("button", name="Yes, delete #%s" % room).click()
        expect(page).to_have_url(re.compile("/$"))
        expect(page.get_by_role("status")).to_have_text("#%s was deleted." % room)
        expect(page.locator("[data-sidebar] li[data-room='%s']" % room)).to_have_count(0)
    finally:
        close_context(context)


def test_a_private_room_in_the_lobby_form_keeps_what_was_typed_when_refused(browser, server, owner):  # noqa: F811
    taken = unique("taken")
    assert create(owner, taken)[0] == 201
    context = browser.new_context(base_url=server.url, java_script_enabled=False)
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        register(page, unique("own"))
        page.goto("/")
        page.fill("#create-name", taken)
        page.fill("#create-topic", "my topic")
        page.get_by_role("button", name="Create").click()
        expect(page.locator("form.create [role=alert]")).to_contain_text("already a room called")
        expect(page.locator("#create-topic")).to_have_value("my topic")
    finally:
        close_context(context)


def test_a_moderator_deletes_someone_elses_message_from_the_page(open_room, server, room, owner):
    assert create(owner, room)[0] == 201
    writer = Browser(server.url)
    assert writer.sign_in(unique("wri")) == 200
    status, rude = writer.post(room, "rude words")
    assert status == 201
    page = open_room(before_load=lambda page: page.context.add_cookies(  # the owner's session
        [{"name": c.name, "value": c.value, "url": server.url} for c in owner.jar]))
    message = page.locator("li.msg[data-id='%s']" % rude["id"])
    message.locator("summary").click()
    message.get_by_role("button", name="Delete message").click()
    message.get_by_role("button", name="Yes, delete it").click()  # asked first: a mis-tap deletes nothing
    expect(message.locator("[data-gone]")).to_be_visible()


def test_the_admin_page_works_without_javascript(browser, server, redis_url, owner):  # noqa: F811
    name = unique("adm")
    app = create_app({"TESTING": True, "REDIS_URL": redis_url, "SECRET_KEY": "test-secret"})
    with app.app_context():
        services(app).accounts.create(name, PASSWORD, admin=True)
    doomed = unique("doomed")
    assert create(owner, doomed, "private", "to be deleted")[0] == 201
    context = browser.new_context(base_url=server.url, java_script_enabled=False)
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        page.goto("/admin")
        page.fill("#name", name)
        page.fill("#password", PASSWORD)
        page.get_by_role("button", name="Start chatting").click()
        expect(page).to_have_url(re.compile("/admin$"))
        row = page.locator("[data-rooms] tr", has_text="#" + doomed)
        expect(row).to_contain_text("private")
        row.get_by_role("button", name="Delete").click()
        page.get_by_role("button", name="Yes, delete #%s" % doomed).click()  # asked first
        expect(page).to_have_url(re.compile("/admin$"))
        expect(page.get_by_role("status")).to_have_text("#%s was deleted." % doomed)
        expect(page.locator("[data-rooms] tr", has_text="#" + doomed)).to_have_count(0)
        expect(page.locator("[data-actions] tr", has_text="#" + doomed).first).to_contain_text("delete-room")
    finally:
        close_context(context)



def test_a_page_opened_after_a_ban_says_so_instead_of_reconnecting(browser, server, room, owner):  # noqa: F811
    assert create(owner, room)[0] == 201
    name = unique("ban")
    context = browser.new_context(base_url=server.url)
    context.set_default_timeout(10_000)
    try:
        sign_in_over_http(context, name)
        assert answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": name})[0] == 201
        page = context.new_page()
        streams = []
        page.on("request", lambda r: streams.append(r) if "/events" in r.url and r.method == "GET" else None)
        page.goto("/rooms/%s" % room)  # a public room: the page itself is readable
        expect(page.locator("[data-notice]")).to_have_text("You were banned from #%s." % room)
        expect(page.locator(STATUS)).to_have_text("closed")
        page.wait_for_timeout(4000)
        assert len(streams) == 1  # asked once, told why, never again
    finally:
        close_context(context)


@contextlib.contextmanager
def owners_context(browser, server, owner):  # noqa: F811
    """A browser context of its own, signed in as ``owner`` (their session cookie)."""
    context = browser.new_context(base_url=server.url)
    context.set_default_timeout(10_000)
    try:
        context.add_cookies([{"name": c.name, "value": c.value, "url": server.url} for c in owner.jar])
        yield context
    finally:
        close_context(context)


@contextlib.contextmanager
def owners_private_room_page(browser, server, room, owner, live=True):  # noqa: F811
    """A page of the owner's private ``room`` showing one secret message, in a context of their
    own signed in as the owner; ``live`` False: its stream never opens (a frozen page)."""
    assert create(owner, room, "private", "our plans")[0] == 201
    assert owner.post(room, "the secret plan")[0] == 201
    with owners_context(browser, server, owner) as context:
        page = context.new_page()
        if not live:
            page.route("**/events*", lambda route: route.abort())
        page.goto("/rooms/%s" % room)
        if live:
            expect(page.locator(STATUS)).to_have_text("connected")
        expect(page.locator("[data-messages] li.msg .text")).to_have_text(["the secret plan"])
        yield context, page


def sign_out(context):
    token = context.request.get("/session").json()["csrf_token"]
    assert context.request.delete("/session", headers={"X-CSRF-Token": token}).status == 204


def test_signing_out_clears_a_private_rooms_page(browser, server, room, owner):  # noqa: F811
    # A shared computer: signed out (here through the JSON API, as another tab would), the page
    # of a members-only room keeps none of it on screen; a reload would be a 404 anyway.
    with owners_private_room_page(browser, server, room, owner) as (context, page):
        sign_out(context)
        expect(page.locator(STATUS)).to_have_text("signed out")
        expect(page.locator("[data-private-hidden]")).to_have_text(
            "#%s is private: sign in again to read it." % room)
        expect(page.locator("[data-messages] li")).to_have_count(0)
        expect(page.locator("[data-topic], [data-online] li, a.manage")).to_have_count(0)
        assert "secret plan" not in page.content() and "our plans" not in page.content()


def test_a_private_rooms_page_shown_again_from_the_back_forward_cache_checks_the_session(
        browser, server, room, owner):  # noqa: F811
    # Back after signing out may show the page as the browser kept it, stream and all frozen:
    # shown again, it asks who is signed in before showing anything more of the room.
    with owners_private_room_page(browser, server, room, owner, live=False) as (context, page):
        sign_out(context)
        page.evaluate("window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))")
        expect(page.locator("[data-private-hidden]")).to_have_text(
            "#%s is private: sign in again to read it." % room)
        expect(page.locator("[data-messages] li")).to_have_count(0)


@pytest.mark.parametrize("locale, prefix, topic", [("en-US", "", "Weekly plans"), ("zh-CN", "技术交流", "每周计划")])
def test_a_rooms_name_stays_readable_beside_its_topic_on_a_phone(browser, server, room, owner, locale, prefix,
                                                                 topic):  # noqa: F811
    # A short topic and the status took the header's line and squeezed the name to "#" or "#..".
    room = prefix + room
    assert create(owner, room, "public", topic)[0] == 201
    context = browser.new_context(base_url=server.url, locale=locale, viewport={"width": 390, "height": 844},
                                  has_touch=True, is_mobile=True)
    context.set_default_timeout(10_000)
    try:
        sign_in_over_http(context, unique("ann"))
        page = context.new_page()
        page.goto("/rooms/%s" % quote(room))
        expect(page.locator("[data-topic]")).to_be_visible()
        name = page.locator("h1.room-name")
        expect(name).to_have_text("#" + room)
        assert name.evaluate("el => el.scrollWidth <= el.clientWidth"), name.evaluate(
            "el => [el.scrollWidth, el.clientWidth]")
    finally:
        close_context(context)


@contextlib.contextmanager
def no_js_lobby(browser, server, name):  # noqa: F811
    """The lobby with JavaScript off, signed in as the guest ``name``."""
    context = browser.new_context(base_url=server.url, java_script_enabled=False)
    context.set_default_timeout(10_000)
    try:
        sign_in_over_http(context, name)
        page = context.new_page()
        page.goto("/")
        yield context, page
    finally:
        close_context(context)


@pytest.mark.parametrize("then", ["nothing", "a page loaded"])
def test_a_create_form_signed_out_in_another_tab_says_so_and_keeps_what_was_typed(browser, server, room,
                                                                                   then):  # noqa: F811
    # It answered "Nothing was sent... Your text is kept" and lost the name. Signed out with no
    # page loaded since, the session has no CSRF secret at all; a page loaded makes a new one.
    name = unique("ann")
    with no_js_lobby(browser, server, name) as (context, page):
        page.fill("#create-name", room)
        page.fill("#create-topic", "our plans")
        page.get_by_label("Private: members only (invite them)").check()
        sign_out(context)
        if then == "a page loaded":
            assert context.request.get("/").ok
        page.get_by_role("button", name="Create").click()
        expect(page.get_by_role("alert")).to_have_text(
            "No room was created: you are signed out (perhaps in another tab or window). "
            "Sign in, then press Create again.")
        page.fill("#name", name)
        page.get_by_role("button", name="Start chatting").click()
        expect(page.locator("#create-name")).to_have_value(room)
        expect(page.locator("#create-topic")).to_have_value("our plans")
        expect(page.get_by_label("Private: members only (invite them)")).to_be_checked()
        page.get_by_role("button", name="Create").click()
        expect(page).to_have_url(re.compile("/rooms/%s$" % room))


def test_a_create_form_from_before_signing_in_again_keeps_what_was_typed(browser, server, room):  # noqa: F811
    name = unique("ann")
    with no_js_lobby(browser, server, name) as (context, page):
        page.fill("#create-name", room)
        sign_out(context)
        sign_in_over_http(context, name)  # in another tab: a new session, a new CSRF token
        page.get_by_role("button", name="Create").click()
        expect(page.locator("form.create [role=alert]")).to_contain_text(
            "No room was created: this page was out of date")
        expect(page.locator("#create-name")).to_have_value(room)
        page.get_by_role("button", name="Create").click()
        expect(page).to_have_url(re.compile("/rooms/%s$" % room))


def test_signing_out_in_another_tab_takes_the_private_rooms_off_the_lobby(browser, server, room, owner):  # noqa: F811
    public = unique("pub")
    assert create(owner, room, "private")[0] == 201
    assert create(owner, public)[0] == 201
    for each in (room, public):
        assert owner.post(each, "hello")[0] == 201
    with owners_context(browser, server, owner) as context:
        page = context.new_page()
        page.goto("/")
        rooms = page.locator("ul.rooms")
        expect(rooms).to_contain_text("#" + room)
        sign_out(context)
        context.new_page().goto("/")  # the other tab, signed out, tells this one
        expect(page.locator("#name")).to_be_visible()
        expect(rooms).to_contain_text("#" + public)
        expect(rooms).not_to_contain_text("#" + room)
        expect(page.locator("form.create")).to_have_count(0)


@pytest.mark.parametrize("width", [390, 1100])
def test_the_record_of_actions_keeps_each_action_on_one_line_in_chinese(browser, server, room, owner, width):  # noqa: F811
    # The action column was squeezed to one character: "创建了邀请" read as a vertical stack.
    assert create(owner, room, "private", "只给受邀的人")[0] == 201
    assert answer(owner, "PATCH", "/rooms/%s" % room, body={"slow_mode_seconds": 20})[0] == 200
    invite(owner, room)
    with owners_context(browser, server, owner) as context:
        page = context.new_page()
        page.set_viewport_size({"width": width, "height": 900})
        page.set_extra_http_headers({"Accept-Language": "zh-CN"})
        page.goto("/rooms/%s/manage" % room)
        cells = page.locator("[data-audit] td.what")
        expect(cells).to_have_text(["创建了邀请", "修改了房间", "创建了房间"])
        lines = cells.evaluate_all("""cells => cells.map(c => {  // the text's lines: its boxes' distinct tops
            const range = document.createRange(); range.selectNodeContents(c);
            return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size; })""")
        assert lines == [1, 1, 1], lines
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")  # no sideways scroll


def test_a_new_invitation_link_fits_a_phone_without_javascript(browser, server, room, owner):  # noqa: F811
    # helper-86: the link's box (size="60") widened a 390 px page to 561 px: it scrolled sideways.
    assert create(owner, room, "private")[0] == 201
    context = browser.new_context(base_url=server.url, java_script_enabled=False, is_mobile=True, has_touch=True,
                                  viewport={"width": 390, "height": 844})
    context.set_default_timeout(10_000)
    try:
        context.add_cookies([{"name": c.name, "value": c.value, "url": server.url} for c in owner.jar])
        page = context.new_page()
        page.goto("/rooms/%s/manage" % room)
        page.get_by_role("button", name="Make an invitation link").click()
        link = page.locator("[data-invite-link]")
        assert "/invite/" in link.input_value()
        expect(link).to_be_in_viewport()
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")  # no sideways scroll
        # Shown once, never in the address: as ?invite= the browser's history kept the way in for
        # the next person at a shared computer.
        assert "invite" not in page.url and page.url.endswith("/rooms/%s/manage" % room)
        page.reload()
        expect(page.locator("[data-invite-link]")).to_have_count(0)
    finally:
        close_context(context)


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_a_refused_manage_form_comes_back_on_the_manage_page_with_what_was_typed(browser, server, room, owner,  # noqa: F811
                                                                                 lang):
    # helper-86: a refused ban (a name nobody has, a duration too long) answered a bare error page
    # whose one link went to the lobby; the typed name and duration were gone, and in Chinese the
    # sentence named the API's field ("seconds 必须是…").
    assert create(owner, room, "private")[0] == 201
    context = browser.new_context(base_url=server.url, java_script_enabled=False, is_mobile=True, has_touch=True,
                                  viewport={"width": 390, "height": 844}, locale=lang,
                                  extra_http_headers={"Accept-Language": lang})
    context.set_default_timeout(10_000)
    try:
        context.add_cookies([{"name": c.name, "value": c.value, "url": server.url} for c in owner.jar])
        page = context.new_page()
        page.goto("/rooms/%s/manage" % room)
        page.fill("#ban-user", "nobody-" + room)
        page.fill("#ban-seconds", "999999999999")
        with page.expect_response(lambda r: r.request.method == "POST") as answer:
            page.locator("form:has(#ban-user) button[type=submit]").click()
        assert answer.value.status == 400
        said = page.locator("form:has(#ban-user) [data-form-error]")
        expect(said).to_have_text("封禁时长必须是 1 到 315360000 之间的整数秒，留空表示永久。" if lang == "zh-CN"
                                  else "seconds must be a whole number from 1 to 315360000, or left out for good.")
        expect(page.locator("#ban-user")).to_have_value("nobody-" + room)
        expect(page.locator("#ban-seconds")).to_have_value("999999999999")
        expect(page.locator("#ban-user")).to_be_focused()
        expect(page.locator("#ban-user")).to_have_attribute("aria-describedby", "ban-error")
        page.fill("#ban-seconds", "600")  # now the name
        with page.expect_response(lambda r: r.request.method == "POST") as answer:
            page.locator("form:has(#ban-user) button[type=submit]").click()
        assert answer.value.status == 404
        expect(said).to_contain_text("nobody-" + room)
        expect(page.locator("#ban-seconds")).to_have_value("600")
        expect(page.locator("[data-form-error]")).to_have_count(1)  # in that form only
        page.fill("#add-name", "nobody-" + room)
        page.locator("form:has(#add-name) button[type=submit]").click()
        expect(page.locator("form:has(#add-name) [data-form-error]")).to_be_visible()
        expect(page.locator("#add-name")).to_have_value("nobody-" + room)
        expect(page.locator("#ban-user")).to_have_value("")  # another form's refusal: this one fresh
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    finally:
        close_context(context)


def test_a_member_rows_buttons_name_the_member_to_a_screen_reader(browser, server, room, owner):  # noqa: F811
    # helper-86: each row's buttons were named by their word alone: a screen reader's list of
    # buttons read "Ban, Ban, Ban", "Remove, Remove", not whom each acts on.
    bob, cat = account_holder(server, "bob"), account_holder(server, "cat")
    assert create(owner, room, "private")[0] == 201
    for member in (bob, cat):
        assert answer(owner, "PUT", "/rooms/%s/members/%s" % (room, member.name))[0] in (200, 201)
    assert answer(owner, "POST", "/rooms/%s/bans" % room, body={"address": "192.0.2.9"})[0] == 201
    with owners_context(browser, server, owner) as context:
        page = context.new_page()
        page.goto("/rooms/%s/manage" % room)
        for member in (bob, cat):
            row = page.locator("tr", has_text=member.name)
            for word in ("Make moderator", "Remove", "Ban"):
                expect(row.get_by_role("button", name="%s %s" % (word, member.name), exact=True)).to_have_count(1)
            expect(row.get_by_role("button", name="Ban", exact=True)).to_have_count(0)
            hidden = row.get_by_role("button", name="Ban").locator(".visually-hidden")  # shown: the word alone
            expect(hidden).to_have_text(" " + member.name)
        expect(page.get_by_role("button", name="Unban 192.0.2.9", exact=True)).to_have_count(1)


def test_a_member_leaves_a_private_room_without_javascript(browser, server, room, owner):  # noqa: F811
    assert create(owner, room, "private")[0] == 201
    link = invite(owner, room)["url"]
    with no_js_lobby(browser, server, unique("gus")) as (context, page):
        page.goto(path_of(link))
        page.get_by_role("button", name=re.compile("Join #")).click()
        expect(page).to_have_url(re.compile("/rooms/%s$" % room))
        page.get_by_role("link", name="Leave").click()
        expect(page.get_by_text("only through an invitation link")).to_be_visible()
        page.get_by_role("link", name="Cancel").click()  # nothing happened: still a member
        expect(page).to_have_url(re.compile("/rooms/%s$" % room))
        page.get_by_role("link", name="Leave").click()
        page.get_by_role("button", name="Yes, leave #%s" % room).click()
        expect(page).to_have_url(re.compile("/$"))
        expect(page.get_by_role("status")).to_have_text("You left #%s." % room)
        page.goto("/rooms/%s" % room)
        expect(page.locator("h1")).to_have_text("404")


def test_an_administrator_no_member_of_a_private_room_gets_no_write_controls_on_messages_arriving_live(
        open_room, server, app, room, owner):
    # The server refuses them (403 members_only): a live message's menu and reactions are drawn
    # as the server draws them for this person (tests/test_admin_reads.py), deletion kept.
    admin = admin_browser(server, app)
    assert create(owner, room, "private")[0] == 201
    page = open_room(before_load=lambda page: page.context.add_cookies(
        [{"name": c.name, "value": c.value, "url": server.url} for c in admin.jar]))
    status, said = owner.post(room, "arrives live")
    assert status == 201
    message = page.locator("li.msg[data-id='%s']" % said["id"])
    assert answer(owner, "PUT", "/rooms/%s/messages/%s/reactions/%%F0%%9F%%91%%8D" % (room, said["id"]))[0] == 200
    expect(message.locator("[data-reactions] .chip .count")).to_have_text("1")
    expect(message.locator("[data-reactions] button")).to_have_count(0)
    message.locator("summary").click()
    expect(message.get_by_role("button", name="Delete message")).to_be_visible()
    expect(message.locator("[data-react], [data-reply], [data-edit]")).to_have_count(0)
    expect(page.locator("[data-observer]")).to_be_visible()
