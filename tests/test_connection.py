"""The page's connection in a real browser: silent drops, many tabs, signing out in another tab.

Chromium against the real Gunicorn, with a TCP relay (tests/relays.py) between them where the
network has to fail. The fixtures and helpers are test_browser's.
"""
import re
import time
import uuid

from playwright.sync_api import expect

from .browser import answer_leave, close_context
from .servers import wait_until
from .support import TEST_HEARTBEAT
from .test_browser import (  # noqa: F401 (browser, dialogs, open_room, relay: fixtures)
    LIVE_MS,
    SEND,
    STATUS,
    TEXTS,
    browser,
    dialogs,
    expect_texts,
    history,
    message_ids,
    open_room,
    publish,
    relay,
    send,
    sign_in_over_http,
    unique,
)
from .web import Browser

# A page counts a stream dead after 2.5 heartbeats of silence (never under 3 s: late timers).
DEAD_MS = int(max(3.0, 2.5 * TEST_HEARTBEAT) * 1000)
POST_TIMEOUT_MS = 12_000  # RIPPLE_POST_TIMEOUT_SECONDS' default
NOT_CONNECTED = re.compile(r"^(reconnecting…|offline)$")
KEY = "input[name=idempotency_key]"
INBOX = "[data-inbox] li .snippet"  # the newest direct message with each person
ERROR = "[data-error]"
ROOM_TEXTS = "li.msg:not(.direct) .text"


def test_a_silent_drop_shows_reconnecting_and_what_was_posted_meanwhile_arrives_once(
        open_room, relay, server, room):
    page = open_room(name=unique("ann"), base_url=relay.url)  # through the relay only
    publish(server, room, "before the drop")
    expect_texts(page, ["before the drop"], timeout=LIVE_MS)

    relay.blackhole()  # no reset, no close: the page is told nothing
    key = page.input_value(KEY)
    page.fill("#text", "typed during the drop")
    page.press("#text", "Enter")
    # The page notices the silence itself, without any error from the network.
    expect(page.locator(STATUS)).to_have_text(NOT_CONNECTED, timeout=DEAD_MS + LIVE_MS)
    missed = ["missed %d" % n for n in range(1, 4)]
    for text in missed:
        publish(server, room, text)  # straight to Gunicorn
    # The send gives up: the post waits in the log with its idempotency key, the composer is free.
    pending = page.locator("main.room [data-pending] li")
    expect(pending.locator("[data-pending-status]")).to_have_text(
        "Not sent yet — will retry.", timeout=POST_TIMEOUT_MS + LIVE_MS)
    expect(pending).to_have_attribute("data-key", key)
    expect(page.locator("#text")).to_have_value("")
    expect(page.locator(SEND)).to_be_enabled()
    assert page.input_value(KEY) != key
    expect(page.locator(STATUS)).to_have_text(NOT_CONNECTED)  # reconnects hang too: still down
    assert page.locator(TEXTS).all_text_contents() == ["before the drop"]

    relay.resume()  # the path works again: within a few heartbeats the page has caught up
    expect(page.locator(STATUS)).to_have_text("connected", timeout=DEAD_MS + LIVE_MS)
    expect(page.locator(TEXTS).filter(has_text="missed 3")).to_have_count(1, timeout=LIVE_MS)
    # Sent again by itself, with the same key: the first try may have been stored; not twice.
    expect(pending).to_have_count(0, timeout=DEAD_MS + LIVE_MS)
    expect(page.locator(ERROR)).to_be_hidden()
    stored = [m["text"] for m in history(server, room)]
    assert stored.count("typed during the drop") == 1
    expect_texts(page, stored, timeout=LIVE_MS)
    assert message_ids(page) == [m["id"] for m in history(server, room)]  # each once, in order


def test_coming_back_online_checks_the_stream_instead_of_trusting_it(open_room, relay):
    page = open_room(base_url=relay.url)
    relay.blackhole()
    page.context.set_offline(True)
    expect(page.locator(STATUS)).to_have_text("offline")
    page.context.set_offline(False)  # the stream may or may not have survived: it must prove it
    expect(page.locator(STATUS)).to_have_text("reconnecting…")
    relay.resume()
    expect(page.locator(STATUS)).to_have_text("connected", timeout=DEAD_MS + LIVE_MS)


def _open_tabs(context, rooms, count):
    """Open ``count`` tabs in one browser, round-robin over ``rooms``; each shows connected."""
    tabs = []
    for n in range(count):
        page = context.new_page()
        page.goto("/rooms/%s" % rooms[n % len(rooms)])
        expect(page.locator(STATUS)).to_have_text("connected")
        tabs.append(page)
    return tabs


def test_ten_tabs_over_three_rooms_share_one_stream_per_room(browser, server):
    context = answer_leave(browser.new_context(base_url=server.url))
    context.set_default_timeout(10_000)
    errors = []
    context.on("weberror", lambda error: errors.append(error.error))
    streams = {}  # room -> the tabs that opened a stream on it
    context.on("request", lambda r: streams.setdefault(r.url.split("/")[4], set()).add(r.frame.page)
               if "/events" in r.url else None)
    try:
        sign_in_over_http(context, unique("ann"))
        rooms = ["t-" + uuid.uuid4().hex[:16] for _ in range(3)]
        tabs = _open_tabs(context, rooms, 10)
        assert {room: len(pages) for room, pages in streams.items()} == {room: 1 for room in rooms}

        for room in rooms:
            publish(server, room, "hello " + room)
        for n, page in enumerate(tabs):  # every tab has its own room's message, and only that
            expect_texts(page, ["hello " + rooms[n % 3]], timeout=LIVE_MS)

        started = time.monotonic()
        send(tabs[9], "from the tenth tab")  # a post never waits behind the streams
        assert time.monotonic() - started < 5.0  # with a stream per tab it would never leave
        for page in tabs[0::3]:
            expect_texts(page, ["hello " + rooms[0], "from the tenth tab"], timeout=LIVE_MS)

        # The leader of the first room closes; another tab takes its stream over, from the last
        # cursor it saw: what is posted around the handover arrives, each once, in order.
        leader = next(iter(streams[rooms[0]]))
        others = [page for page in tabs[0::3] if page is not leader]
        publish(server, rooms[0], "just before the leader closes")
        expect_texts(others[0], ["hello " + rooms[0], "from the tenth tab",
                                 "just before the leader closes"], timeout=LIVE_MS)
        leader.close()
        publish(server, rooms[0], "during the handover")
        publish(server, rooms[0], "after it")
        expected = [m["text"] for m in history(server, rooms[0])]
        assert len(expected) == 5
        for page in others:
            expect_texts(page, expected, timeout=DEAD_MS + LIVE_MS)
            expect(page.locator(STATUS)).to_have_text("connected")
            assert message_ids(page) == [m["id"] for m in history(server, rooms[0])]
        assert len(streams[rooms[0]]) == 2  # one more tab took the stream, not all of them
    finally:
        close_context(context)
    assert not errors, "JavaScript errors on the pages: %r" % errors


def test_signing_out_in_one_tab_signs_out_the_others_at_once(browser, server, room):
    context = answer_leave(browser.new_context(base_url=server.url))
    context.set_default_timeout(10_000)
    try:
        name = unique("ann")
        sign_in_over_http(context, name)
        first, second = _open_tabs(context, [room], 2)
        second.fill("#text", "a draft, not sent yet")
        lobby = context.new_page()
        lobby.goto("/")
        expect(lobby.locator("[data-whoami]")).to_have_text(name)
        first.get_by_role("button", name="Sign out").click()
        first.wait_for_url(re.compile(r"/$"))
        # The lobby too: its sign-in form instead of the name.
        expect(lobby.locator("#name")).to_be_visible()
        expect(lobby.locator("[data-whoami]")).to_have_count(0)
        # The other tab shows the truth without a reload: no name, no composer, not connected.
        expect(second.locator("#name")).to_be_visible()
        expect(second.locator("#text")).to_have_count(0)
        expect(second.locator("[data-whoami]")).to_have_count(0)
        expect(second.locator(STATUS)).to_have_text("signed out")
        expect(second.locator("[data-inbox]")).to_have_count(0)  # nothing private stays
        expect(second.locator(".composer")).to_contain_text("You signed out in another tab")
        # Its sign-in form works: a fresh CSRF token, back to the room with a composer. The
        # draft went with the sign-out (a shared computer: test_ux_walkthrough).
        again = name
        second.fill("#name", again)
        second.get_by_role("button", name="Start chatting").click()
        expect(second.locator("[data-whoami]")).to_have_text(again)
        expect(second.locator(STATUS)).to_have_text("connected")
        expect(second.locator("#text")).to_have_value("")
        # The other tabs follow the sign-in too (they reload by themselves: the context closes
        # only once they have, close_context).
        expect(first.locator("[data-whoami]")).to_have_text(again)
        expect(lobby.locator("[data-whoami]")).to_have_text(again)
    finally:
        close_context(context)


def test_without_web_locks_each_tab_keeps_its_own_stream(browser, server, room):
    # An insecure origin (plain HTTP, not localhost) has no navigator.locks: no election then,
    # every tab holds its own EventSource, as before.
    context = answer_leave(browser.new_context(base_url=server.url))
    context.set_default_timeout(10_000)
    context.add_init_script("delete Navigator.prototype.locks")
    streams = []
    context.on("request", lambda r: streams.append(r.frame.page) if "/events" in r.url else None)
    try:
        tabs = _open_tabs(context, [room], 2)
        assert len(set(streams)) == 2
        publish(server, room, "to both")
        for page in tabs:
            expect_texts(page, ["to both"], timeout=LIVE_MS)
    finally:
        close_context(context)


def test_a_tab_that_joins_late_catches_up_from_the_leader(browser, server, room):
    ann = unique("ann")
    context = answer_leave(browser.new_context(base_url=server.url))
    context.set_default_timeout(10_000)
    streams = []
    context.on("request", lambda r: streams.append(r.frame.page) if "/events" in r.url else None)
    try:
        sign_in_over_http(context, ann)
        # A page rendered before anything was posted, shown later (a slow or restored tab).
        stale = context.request.get("/rooms/%s" % room).text()
        bob = Browser(server.url)
        assert bob.sign_in(unique("bob")) == 200
        assert bob.direct(ann, "a direct message before the tabs")[0] == 201
        publish(server, room, "one")
        (first,) = _open_tabs(context, [room], 1)  # the leader: its stream starts after "one"
        publish(server, room, "two")
        expect(first.locator(ROOM_TEXTS)).to_have_text(["one", "two"], timeout=LIVE_MS)
        # Direct messages show in the "Direct messages" list beside the room (issue 11 #12).
        expect(first.locator(INBOX)).to_have_text(["a direct message before the tabs"])

        second = context.new_page()
        second.route("**/rooms/%s" % room, lambda route: route.fulfill(
            body=stale, content_type="text/html; charset=utf-8"))
        second.goto("/rooms/%s" % room)
        expect(second.locator(STATUS)).to_have_text("connected")
        # (older than the leader's stream: they come from the catch-up)
        expect(second.locator(ROOM_TEXTS)).to_have_text(["one", "two"], timeout=LIVE_MS)
        expect(second.locator(INBOX)).to_have_text(["a direct message before the tabs"])
        publish(server, room, "three")
        for page in (first, second):
            expect(page.locator(ROOM_TEXTS)).to_have_text(["one", "two", "three"], timeout=LIVE_MS)
        assert set(streams) == {first}  # the leader's stream rewound; no second stream
    finally:
        close_context(context)


def test_a_tab_showing_a_name_the_session_no_longer_has_shows_the_new_one(browser, server, room):
    context = answer_leave(browser.new_context(base_url=server.url))
    context.set_default_timeout(10_000)
    try:
        ann, bob = unique("ann"), unique("bob")
        sign_in_over_http(context, ann)
        (first,) = _open_tabs(context, [room], 1)
        sign_in_over_http(context, bob)  # another name, in this browser: its posts would be bob's
        _open_tabs(context, [room], 1)  # a page that loads now says so to the others
        expect(first.locator("[data-whoami]")).to_have_text(bob)
        expect(first.locator(STATUS)).to_have_text("connected")
    finally:
        close_context(context)


def test_a_session_signed_out_elsewhere_ends_its_stream_and_the_page_shows_it(browser, server,
                                                                             room):
    # Signed out by another client of the same session (here the JSON API): no page of this
    # browser announces it, the server's 'signed-out' event on the stream does.
    context = answer_leave(browser.new_context(base_url=server.url))
    context.set_default_timeout(10_000)
    try:
        sign_in_over_http(context, unique("ann"))
        (page,) = _open_tabs(context, [room], 1)
        token = context.request.get("/session").json()["csrf_token"]
        response = context.request.delete("/session", headers={"X-CSRF-Token": token})
        assert response.status == 204, response.text()
        expect(page.locator("#name")).to_be_visible()
        expect(page.locator("#text")).to_have_count(0)
        expect(page.locator("[data-whoami]")).to_have_count(0)
        expect(page.locator(STATUS)).to_have_text("signed out")
    finally:
        close_context(context)


def test_more_rooms_than_http1_connections_never_lock_the_site(browser, server):
    # Over HTTP/1.1 (Gunicorn here) a browser has six connections to a host. Four rooms stream;
    # the others wait, paused and saying so, while their tabs still load and post; when a
    # streaming room closes, a waiting one goes live with everything it missed.
    context = answer_leave(browser.new_context(base_url=server.url))
    context.set_default_timeout(10_000)
    try:
        sign_in_over_http(context, unique("ann"))
        rooms = ["t-" + uuid.uuid4().hex[:16] for _ in range(7)]
        tabs = _open_tabs(context, rooms[:4], 4)
        waiting = []
        for room in rooms[4:]:  # a seventh room used to never load
            page = context.new_page()
            page.goto("/rooms/%s" % room)
            expect(page.locator(STATUS)).to_have_text("paused")
            expect(page.locator("[data-notice]")).to_contain_text("too many rooms open")
            waiting.append(page)
        started = time.monotonic()
        send(waiting[-1], "posted from a paused room")
        assert time.monotonic() - started < 5.0
        publish(server, rooms[0], "live in the first room")
        expect_texts(tabs[0], ["live in the first room"], timeout=LIVE_MS)
        publish(server, rooms[4], "missed while paused")

        tabs[1].close()  # a slot frees: one waiting room goes live and catches up
        (live,) = wait_until(lambda: [page for page in waiting
                                      if page.locator(STATUS).text_content() == "connected"],
                             message="a waiting room to go live")
        for page in waiting:
            if page is not live:
                expect(page.locator(STATUS)).to_have_text("paused")  # one slot, one room
        expect(live.locator("[data-notice]")).to_be_hidden()
        room = rooms[4 + waiting.index(live)]
        publish(server, room, "and now live")
        expected = ["missed while paused", "and now live"] if room == rooms[4] else ["and now live"]
        if live is waiting[-1]:
            expected = ["posted from a paused room"] + expected
        expect_texts(live, expected, timeout=LIVE_MS)
    finally:
        close_context(context)


def test_a_paused_room_claims_nothing_about_now_and_catches_up_in_order_when_it_goes_live(browser, server,
                                                                                          person):
    # h62 finding 6: a paused room's page kept saying "No messages yet" and "1 online" while
    # people joined and posted; its own post showed without the message it answered.
    context = answer_leave(browser.new_context(base_url=server.url))
    context.set_default_timeout(10_000)
    try:
        sign_in_over_http(context, unique("ann"))
        rooms = ["t-" + uuid.uuid4().hex[:16] for _ in range(5)]
        tabs = _open_tabs(context, rooms[:4], 4)
        paused = context.new_page()
        paused.goto("/rooms/%s" % rooms[4])
        expect(paused.locator(STATUS)).to_have_text("paused")
        expect(paused.locator("[data-notice]")).to_contain_text("too many rooms open")
        expect(paused.locator("[data-empty-log]")).to_be_hidden()  # not known while paused
        expect(paused.locator("[data-online]")).to_have_attribute("data-stale", "")
        bob = person("bob")
        assert bob.post(rooms[4], "anyone here?")[0] == 201
        send(paused, "yes, me")
        expect_texts(paused, ["yes, me"])  # its own post; the question it answers not yet

        tabs[0].close()  # a slot frees: the paused room goes live from its page's cursor
        expect(paused.locator(STATUS)).to_have_text("connected")
        expect_texts(paused, ["anyone here?", "yes, me"], timeout=LIVE_MS)
        expect(paused.locator("[data-notice]")).to_be_hidden()
        expect(paused.locator("[data-online]")).not_to_have_attribute("data-stale", "")
    finally:
        close_context(context)


def test_a_hung_leader_tab_loses_the_stream_to_a_visible_one(browser, server, room):
    # A background tab may be frozen by the browser, or hang: it keeps its locks and runs
    # nothing. The other tabs of the room must not starve behind it. (Headless pages cannot be
    # hidden, so frozen is played by the debugger pausing the leader's script.)
    context = answer_leave(browser.new_context(base_url=server.url))
    context.set_default_timeout(10_000)
    streams = []
    context.on("request", lambda r: streams.append(r.frame.page) if "/events" in r.url else None)
    try:
        leader, follower = _open_tabs(context, [room], 2)
        cdp = context.new_cdp_session(leader)
        cdp.send("Debugger.enable")
        cdp.send("Debugger.pause")  # takes hold at the leader's next timer tick
        publish(server, room, "while the leader hangs")
        expect_texts(follower, ["while the leader hangs"], timeout=3 * DEAD_MS + LIVE_MS)
        expect(follower.locator(STATUS)).to_have_text("connected")
        assert follower in streams  # it took the stream over

        cdp.send("Debugger.resume")  # back: the old leader follows now
        cdp.send("Debugger.disable")
        publish(server, room, "after it")
        for page in (leader, follower):
            expect_texts(page, ["while the leader hangs", "after it"], timeout=LIVE_MS)
        assert streams[-1] is follower  # and it opened no stream again
    finally:
        close_context(context)
