"""What the page says once its connection is back: a failure's sentence must not outlive the
failure (it said "could not reach the server" until the next send, long after the stream was
connected again). Chromium through the TCP relay (tests/relays.py).
"""
import json
import urllib.request

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from .browser import (  # noqa: F401 (browser, dialogs, open_room: fixtures)
    RECONNECT_MS,
    SEND,
    STATUS,
    browser,
    dialogs,
    history,
    open_room,
    publish,
    send,
    sign_in_over_http,
    unique,
    wait_for_script,
)
from .relays import LaggingRelay
from .test_admin_reads import admin_browser
from .test_browser import relay  # noqa: F401 (fixture)
from .test_outage import own_redis, own_server  # noqa: F401 (fixtures)

ERROR = "main.room form[data-form] [data-error]"
NOTE = "main.room form[data-form] [data-note]"
PENDING = "main.room [data-pending] li"


def test_a_post_made_while_cut_off_waits_in_the_log_and_goes_when_the_stream_is_back(
        open_room, relay, server, room):
    page = open_room(unique("ann"), base_url=relay.url)  # the page reaches Gunicorn only through the relay
    relay.cut()
    expect(page.locator(STATUS)).to_have_text("reconnecting…")
    page.fill("#text", "typed while cut off")
    page.locator(SEND).click()
    pending = page.locator(PENDING)
    expect(pending.locator("[data-pending-status]")).to_have_text("Not sent yet — will retry.")
    expect(page.locator("#text")).to_have_value("")
    expect(page.locator(ERROR)).to_be_hidden()

    relay.restore()  # nothing typed, nothing pressed: the stream comes back, and the post goes
    expect(page.locator(STATUS)).to_have_text("connected", timeout=RECONNECT_MS)
    expect(page.locator("main.room li.msg .text")).to_have_text(["typed while cut off"], timeout=RECONNECT_MS)
    expect(pending).to_have_count(0)
    expect(page.locator(ERROR)).to_be_hidden()
    assert [m["text"] for m in history(server, room)] == ["typed while cut off"]


# A production heartbeat (15 s) and a short post timeout on the page: the page then trusts a
# silent stream for 2.5 heartbeats (37 s); the server still pings every test heartbeat.
SLOW_HEARTBEAT = """new MutationObserver((changes, observer) => {
  const room = document.querySelector('main.room');
  if (!room) return;
  room.dataset.heartbeatMs = '15000';
  room.dataset.postTimeoutMs = '2000';
  observer.disconnect();
}).observe(document, { childList: true, subtree: true });"""


def test_a_post_that_gets_no_answer_makes_the_stream_prove_itself_at_once(open_room, relay, server, room):
    page = open_room(unique("ann"), base_url=relay.url,
                     before_load=lambda page: page.add_init_script(SLOW_HEARTBEAT))
    relay.blackhole()  # a dead radio: the stream is silent, the post hangs
    page.fill("#text", "into the silence")
    page.locator(SEND).click()
    expect(page.locator(PENDING).locator("[data-pending-status]")).to_have_text(
        "Not sent yet — will retry.", timeout=2_000 + 2_000)
    # It said "connected" for half a minute beside a post the server never answered.
    expect(page.locator(STATUS)).to_have_text("reconnecting…", timeout=1_000)
    relay.resume()
    expect(page.locator(STATUS)).to_have_text("connected", timeout=RECONNECT_MS)
    expect(page.locator("main.room li.msg .text")).to_have_text(["into the silence"], timeout=RECONNECT_MS)
    assert [m["text"] for m in history(server, room)] == ["into the silence"]


# The production heartbeat (15 s) and post timeout (12 s).
PRODUCTION_HEARTBEAT = SLOW_HEARTBEAT.replace("  room.dataset.postTimeoutMs = '2000';\n", "")


def test_a_post_still_unanswered_after_a_second_has_the_header_stop_saying_connected(open_room, relay, server, room):
    page = open_room(unique("ann"), base_url=relay.url,
                     before_load=lambda page: page.add_init_script(PRODUCTION_HEARTBEAT))
    relay.blackhole()  # a stalled network: the post hangs, the stream is silent
    page.fill("#text", "into the stall")
    page.locator(SEND).click()
    expect(page.locator(PENDING).locator("[data-pending-status]")).to_have_text("Sending…", timeout=2_000)
    # It said "connected" above "Sending…" for the whole post timeout (12 s), then "Not sent yet".
    expect(page.locator(STATUS)).to_have_text("checking connection…", timeout=2_000)
    expect(page.locator(PENDING).locator("[data-pending-status]")).to_have_text("Sending…")  # not timed out
    relay.resume()
    expect(page.locator(STATUS)).to_have_text("connected", timeout=RECONNECT_MS)
    expect(page.locator("main.room li.msg .text")).to_have_text(["into the stall"], timeout=RECONNECT_MS)
    assert [m["text"] for m in history(server, room)] == ["into the stall"]


@pytest.fixture
def lagging_relay(server):
    relay = LaggingRelay(server.port)
    yield relay
    relay.close()


def test_posts_a_slow_server_answers_late_do_not_make_the_page_reopen_its_stream(
        open_room, lagging_relay, server, room):
    page = open_room(unique("ann"), base_url=lagging_relay.url,
                     before_load=lambda page: page.add_init_script(PRODUCTION_HEARTBEAT))
    expect(page.locator(STATUS)).to_have_text("connected")
    lagging_relay.lag = 1.5  # slow, not stalled: every answer (and the stream) comes 1.5 s late
    since = len(lagging_relay.requests)
    for n in range(1, 4):
        page.fill("#text", "slow %d" % n)
        page.locator(SEND).click()
    expect(page.locator("main.room li.msg .text")).to_have_text(["slow 1", "slow 2", "slow 3"], timeout=15_000)
    expect(page.locator(STATUS)).to_have_text("connected")
    # Reopened once per unanswered second, each new stream cut before it was heard: 7-8 streams
    # for 6 posts, no live events for ~10 s, "reconnecting…" throughout (helper-72).
    assert [line for _, line in lagging_relay.requests[since:] if "/events" in line] == []
    assert [m["text"] for m in history(server, room)] == ["slow 1", "slow 2", "slow 3"]


def test_a_reaction_made_while_cut_off_waits_on_its_message_and_is_saved_when_the_stream_is_back(
        open_room, relay, server, room):
    publish(server, room, "react to me")
    page = open_room(unique("ann"), base_url=relay.url)
    li = page.locator("main.room li.msg").first
    li.locator("[data-actions] > summary").click()
    relay.cut()
    expect(page.locator(STATUS)).to_have_text("reconnecting…")
    li.get_by_role("button", name="👍").click()
    # It said "could not reach the server", then erased that once connected, and never retried.
    expect(li.locator(UNSAVED).locator("[data-pending-status]")).to_have_text(
        "Your reaction 👍 is not saved yet — will retry.")
    relay.restore()
    expect(page.locator(STATUS)).to_have_text("connected", timeout=RECONNECT_MS)
    expect(li.locator("[data-reactions] .chip.mine")).to_have_text("👍 1", timeout=RECONNECT_MS)
    expect(li.locator(UNSAVED)).to_have_count(0)
    assert list(history(server, room)[0]["reactions"]) == ["👍"]


UNSAVED = "[data-pending-change]"  # an edit, deletion or reaction waiting on its message (unsaved.js)


def edit(li, text):
    """Open the message's menu, type ``text`` into its edit box, press Save edit."""
    li.locator("[data-actions] > summary").click()
    li.locator("form[data-edit] textarea").fill(text)
    li.get_by_role("button", name="Save edit").click()


def test_an_edit_saved_while_cut_off_waits_on_its_message_and_is_saved_when_the_stream_is_back(
        open_room, relay, server, room):
    page = open_room(unique("ann"), base_url=relay.url)
    send(page, "first thoughts")
    li = page.locator("main.room li.msg").first
    relay.cut()
    expect(page.locator(STATUS)).to_have_text("reconnecting…")
    edit(li, "second thoughts")
    waiting = li.locator(UNSAVED)
    expect(waiting.locator("[data-pending-status]")).to_have_text("Edit not saved yet — will retry.")
    expect(waiting.locator(".pending-text")).to_have_text("second thoughts")
    expect(waiting.get_by_role("button", name="Don't save")).to_be_visible()

    relay.restore()  # nothing pressed: it is saved once the stream is back
    expect(page.locator(STATUS)).to_have_text("connected", timeout=RECONNECT_MS)
    expect(li.locator(".text")).to_have_text("second thoughts", timeout=RECONNECT_MS)
    expect(waiting).to_have_count(0)
    assert [m["text"] for m in history(server, room)] == ["second thoughts"]


def the_same_person_elsewhere(page, server, room):
    """A second page of the person signed in on ``page`` (their laptop beside their phone),
    reaching the server directly (not through the page's relay)."""
    laptop = page.context.new_page()
    laptop.goto("%s/rooms/%s" % (server.url, room))
    expect(laptop.locator(STATUS)).to_have_attribute("data-state", "connected")
    return laptop


CHANGED_ELSEWHERE = ("This message was changed elsewhere since you started editing it; your text is kept "
                     "here: look at the message as it is now, then edit again.")


def test_an_edit_waiting_while_the_same_message_is_edited_elsewhere_is_refused_not_stored_over_it(
        open_room, relay, server, room):
    phone = open_room(unique("ann"), base_url=relay.url)
    send(phone, "first draft")
    laptop = the_same_person_elsewhere(phone, server, room)
    relay.cut()
    expect(phone.locator(STATUS)).to_have_text("reconnecting…")
    on_phone = phone.locator("main.room li.msg").first
    edit(on_phone, "the phone's text")
    waiting = on_phone.locator(UNSAVED)
    expect(waiting.locator("[data-pending-status]")).to_have_text("Edit not saved yet — will retry.")
    on_laptop = laptop.locator("main.room li.msg").first
    edit(on_laptop, "the laptop's newer text")
    expect(on_laptop.locator(".text")).to_have_text("the laptop's newer text")

    relay.restore()  # the phone's edit goes again, and is refused: it started from the first draft
    expect(waiting.locator("[data-pending-status]")).to_have_text(CHANGED_ELSEWHERE, timeout=RECONNECT_MS)
    expect(waiting).to_have_attribute("data-state", "refused")
    expect(waiting.locator(".pending-text")).to_have_text("the phone's text")  # kept, to copy
    expect(waiting.get_by_role("button", name="Retry now")).to_be_hidden()
    expect(on_phone.locator(".text")).to_have_text("the laptop's newer text", timeout=RECONNECT_MS)
    assert [m["text"] for m in history(server, room)] == ["the laptop's newer text"]
    waiting.get_by_role("button", name="Dismiss").click()
    expect(waiting).to_have_count(0)


def test_an_edit_after_one_made_elsewhere_arrived_is_stored(open_room, server, room):
    phone = open_room(unique("ann"))
    send(phone, "first draft")
    laptop = the_same_person_elsewhere(phone, server, room)
    edit(laptop.locator("main.room li.msg").first, "the laptop's text")
    on_phone = phone.locator("main.room li.msg").first
    expect(on_phone.locator(".text")).to_have_text("the laptop's text")  # live: the version it starts from
    edit(on_phone, "the phone's text, after reading it")
    expect(on_phone.locator(".text")).to_have_text("the phone's text, after reading it")
    expect(on_phone.locator("[data-action-error]")).to_be_hidden()
    assert [m["text"] for m in history(server, room)] == ["the phone's text, after reading it"]


def test_a_failed_edit_closes_its_menu_and_keeps_the_typed_text(open_room, room):
    page = open_room(unique("ann"))
    send(page, "mine")
    send(page, "the one below")
    page.route("**/messages/*", lambda route: route.abort("connectionrefused")
               if route.request.method == "PATCH" else route.fallback())
    first, below = page.locator("main.room li.msg").all()
    edit(first, "mine, corrected")
    expect(first.locator(UNSAVED).locator(".pending-text")).to_have_text("mine, corrected")
    # The open menu covered the messages below it (and their pending posts' buttons).
    expect(first.locator("[data-actions]")).not_to_have_attribute("open", "")
    below.locator("[data-actions] > summary").click()  # not intercepted by the first one's menu
    expect(below.locator("[data-actions]")).to_have_attribute("open", "")
    expect(first.locator("form[data-edit] textarea")).to_have_value("mine, corrected")


def test_a_deletion_made_while_cut_off_waits_and_is_done_when_the_stream_is_back(open_room, relay, server, room):
    page = open_room(unique("ann"), base_url=relay.url)
    send(page, "delete me")
    li = page.locator("main.room li.msg").first
    li.locator("[data-actions] > summary").click()
    relay.cut()
    expect(page.locator(STATUS)).to_have_text("reconnecting…")
    li.get_by_role("button", name="Delete message").click()
    li.get_by_role("button", name="Yes, delete it").click()
    expect(li.locator(UNSAVED).locator("[data-pending-status]")).to_have_text("Not deleted yet — will retry.")
    relay.restore()
    expect(li.locator(".text")).to_have_text("message deleted", timeout=RECONNECT_MS)
    expect(li.locator(UNSAVED)).to_have_count(0)
    assert history(server, room)[0].get("deleted") is True


def test_an_edit_on_a_dead_network_says_saving_times_out_and_makes_the_stream_prove_itself(
        open_room, relay, server, room):
    page = open_room(unique("ann"), base_url=relay.url,
                     before_load=lambda page: page.add_init_script(SLOW_HEARTBEAT))
    send(page, "before the silence")
    li = page.locator("main.room li.msg").first
    relay.blackhole()  # a dead radio: nothing answers, nothing is reset
    edit(li, "said into the silence")
    status = li.locator(UNSAVED).locator("[data-pending-status]")
    # It hung with Save greyed out, no word and no end, the status saying "connected" for 40 s.
    expect(status).to_have_text("Saving your edit…", timeout=1_500)
    expect(li.locator("[data-actions]")).not_to_have_attribute("open", "")
    expect(status).to_have_text("Edit not saved yet — will retry.", timeout=2_000 + 1_000)
    expect(page.locator(STATUS)).to_have_text("reconnecting…", timeout=1_000)
    relay.resume()
    expect(page.locator(STATUS)).to_have_text("connected", timeout=RECONNECT_MS)
    expect(li.locator(".text")).to_have_text("said into the silence", timeout=RECONNECT_MS)
    expect(li.locator(UNSAVED)).to_have_count(0)
    assert [m["text"] for m in history(server, room)] == ["said into the silence"]


def test_a_post_on_a_dead_network_shows_as_sending_at_once_and_frees_the_composer(open_room, relay, server, room):
    page = open_room(unique("ann"), base_url=relay.url)
    relay.blackhole()
    page.fill("#text", "first, into the silence")
    page.locator(SEND).click()
    # For the whole post timeout (12 s) the text stayed in the composer, Send disabled, no word.
    pending = page.locator(PENDING)
    expect(pending.locator("[data-pending-status]")).to_have_text(["Sending…"], timeout=2_000)
    expect(page.locator("#text")).to_have_value("")
    expect(page.locator(SEND)).to_be_enabled()
    page.fill("#text", "second, behind it")
    page.locator(SEND).click()
    expect(pending.locator(".text")).to_have_text(["first, into the silence", "second, behind it"])

    relay.resume()  # the first attempt, held by the network, arrives; nothing is stored twice
    expect(page.locator("main.room li.msg .text")).to_have_text(
        ["first, into the silence", "second, behind it"], timeout=RECONNECT_MS)
    expect(pending).to_have_count(0)
    assert [m["text"] for m in history(server, room)] == ["first, into the silence", "second, behind it"]


def a_post_waiting(page, text="not sent yet"):
    page.route("**/rooms/*/messages", lambda route: route.abort("connectionrefused")
               if route.request.method == "POST" else route.fallback())
    page.fill("#text", text)
    page.locator(SEND).click()
    expect(page.locator(PENDING).locator("[data-pending-status]")).to_have_text("Not sent yet — will retry.")


def test_signing_out_with_a_post_waiting_asks_first_and_cancel_keeps_it(open_room):
    me = unique("ann")
    page = open_room(me)
    a_post_waiting(page)
    page.get_by_role("button", name="Sign out", exact=True).click()
    warning = page.locator("[data-signout-warning]")
    expect(warning).to_contain_text("1 message or change of yours is not sent yet. "
        "Signing out stops sending it (if already on its way, it may still arrive).")
    expect(page.locator("[data-whoami]")).to_have_text(me)  # still signed in
    warning.get_by_role("button", name="Cancel").click()
    expect(warning).to_have_count(0)
    expect(page.locator(PENDING)).to_have_count(1)
    expect(page.locator("[data-whoami]")).to_have_text(me)


def test_sign_out_anyway_signs_out_and_forgets_the_waiting_post(open_room):
    page = open_room(unique("ann"))
    a_post_waiting(page)
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.get_by_role("button", name="Sign out anyway").click()
    expect(page.locator("[data-whoami]")).to_have_count(0)
    # The signed-out page's script forgets it (session.js): it runs after the page shows.
    wait_for_script(page, "!Object.keys(sessionStorage).some(k => k.startsWith('ripple-pending:'))")


def test_signing_out_with_nothing_waiting_asks_nothing(open_room):
    page = open_room(unique("ann"))
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.locator("[data-whoami]")).to_have_count(0)
    expect(page.locator("[data-signout-warning]")).to_have_count(0)


@pytest.mark.slow
def test_the_service_is_unavailable_gives_way_too_once_the_stream_is_back(open_room, own_server, own_redis):  # noqa: F811
    page = open_room(unique("ann"), base_url=own_server.url)
    own_redis.stop()
    page.fill("#text", "typed during the outage")
    page.locator(SEND).click()
    expect(page.locator(ERROR)).to_contain_text("unavailable", timeout=10_000)  # a 503's own sentence
    own_redis.start()
    expect(page.locator(STATUS)).to_have_text("connected", timeout=30_000)
    expect(page.locator(ERROR)).to_be_hidden()
    expect(page.locator(NOTE)).to_contain_text("Connected again.")
    expect(page.locator("#text")).to_have_value("typed during the outage")


def test_signing_out_in_another_room_counts_the_post_waiting_for_the_first(open_room, room):
    page = open_room(unique("ann"))
    a_post_waiting(page)
    page.goto("/rooms/%s-b" % room)  # the post waits, kept in the tab, for the first room's page
    expect(page.locator(PENDING)).to_have_count(0)
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.locator("[data-signout-warning]")).to_contain_text("1 message or change of yours is not sent yet.")


def refuse(page, method):
    """Fail every ``method`` request to a message (its outcome unknown to the page) until unrouted."""
    page.route("**/messages/**", lambda route: route.abort("connectionrefused")
               if route.request.method == method else route.fallback())


def an_edit_waiting(page, text):
    """Edit the page's first message to ``text`` while PATCHes are refused: it waits on the
    message (returned)."""
    refuse(page, "PATCH")
    li = page.locator("main.room li.msg").first
    edit(li, text)
    expect(li.locator(UNSAVED)).to_have_count(1)
    return li


def test_an_edit_waiting_survives_a_reload_and_is_saved_after_it(open_room, server, room, dialogs):
    page = open_room(unique("ann"))
    send(page, "mine")
    li = an_edit_waiting(page, "mine, corrected at length")

    page.reload()  # it was forgotten: the typed edit lost, the message as it was
    expect(page.locator(STATUS)).to_have_attribute("data-state", "connected")
    waiting = li.locator(UNSAVED)
    expect(waiting.locator(".pending-text")).to_have_text("mine, corrected at length")
    expect(waiting.locator("[data-pending-status]")).to_have_text("Edit not saved yet — will retry.")
    page.unroute("**/messages/**")  # the network is back: its next retry saves it
    expect(li.locator(".text")).to_have_text("mine, corrected at length", timeout=RECONNECT_MS)
    expect(waiting).to_have_count(0)
    assert [m["text"] for m in history(server, room)] == ["mine, corrected at length"]
    # Kept in the tab: only the browser's own "Reload site?", which a reload cannot escape while
    # something waits (leaving.js: beforeunload cannot tell it from closing the tab).
    assert dialogs == ["beforeunload"]


def a_deletion_waiting(li):
    """Delete message ``li`` from its menu while DELETEs are refused: it waits on the message."""
    li.locator("[data-actions] > summary").click()
    li.get_by_role("button", name="Delete message").click()
    li.get_by_role("button", name="Yes, delete it").click()
    expect(li.locator(UNSAVED)).to_have_count(1)


def test_a_deletion_waiting_survives_a_reload_instead_of_being_quietly_undone(open_room, server, room):
    page = open_room(unique("ann"))
    send(page, "delete me")
    refuse(page, "DELETE")
    li = page.locator("main.room li.msg").first
    a_deletion_waiting(li)

    page.reload()
    expect(li.locator(UNSAVED).locator("[data-pending-status]")).to_have_text("Not deleted yet — will retry.")
    page.unroute("**/messages/**")
    expect(li.locator(".text")).to_have_text("message deleted", timeout=RECONNECT_MS)
    assert history(server, room)[0].get("deleted") is True


def test_a_reaction_waiting_survives_a_reload_and_is_saved_after_it(open_room, server, room):
    publish(server, room, "react to me")
    page = open_room(unique("ann"))
    refuse(page, "PUT")
    li = page.locator("main.room li.msg").first
    li.locator("[data-actions] > summary").click()
    li.get_by_role("button", name="👍").click()
    expect(li.locator(UNSAVED)).to_have_count(1)

    page.reload()
    expect(li.locator(UNSAVED).locator("[data-pending-status]")).to_have_text(
        "Your reaction 👍 is not saved yet — will retry.")
    page.unroute("**/messages/**")
    expect(li.locator("[data-reactions] .chip.mine")).to_have_text("👍 1", timeout=RECONNECT_MS)
    assert list(history(server, room)[0]["reactions"]) == ["👍"]


def test_a_reaction_taken_back_while_cut_off_says_so_not_that_it_is_saved(open_room, server, room):
    publish(server, room, "react to me")
    page = open_room(unique("ann"))
    li = page.locator("main.room li.msg").first
    li.locator("[data-actions] > summary").click()
    li.get_by_role("button", name="👍").click()
    expect(li.locator("[data-reactions] .chip.mine")).to_have_text("👍 1")
    refuse(page, "DELETE")
    li.locator("[data-reactions] .chip.mine").click()  # taken back: the line names it so
    expect(li.locator(UNSAVED).locator("[data-pending-status]")).to_have_text(
        "Your reaction 👍 is not taken back yet — will retry.")
    # Calling it off keeps the reaction: said so, not "Don't save".
    expect(li.locator(UNSAVED).get_by_role("button", name="Keep it")).to_be_visible()
    page.unroute("**/messages/**")
    li.locator(UNSAVED).get_by_role("button", name="Retry now").click()
    expect(li.locator(UNSAVED)).to_have_count(0)
    assert history(server, room)[0].get("reactions", {}) == {}


def test_an_edit_kept_by_a_reload_still_starts_from_the_version_it_started_from(open_room, server, room):
    phone = open_room(unique("ann"))
    send(phone, "first draft")
    on_phone = an_edit_waiting(phone, "the phone's text")
    laptop = the_same_person_elsewhere(phone, server, room)
    edit(laptop.locator("main.room li.msg").first, "the laptop's newer text")
    expect(laptop.locator("main.room li.msg .text")).to_have_text("the laptop's newer text")

    phone.reload()  # it now shows the laptop's version; the kept edit started from the first draft
    phone.unroute("**/messages/**")
    waiting = on_phone.locator(UNSAVED)
    expect(waiting.locator("[data-pending-status]")).to_have_text(CHANGED_ELSEWHERE, timeout=RECONNECT_MS)
    assert [m["text"] for m in history(server, room)] == ["the laptop's newer text"]


def test_a_change_kept_for_a_message_the_reloaded_page_does_not_show_is_still_done(open_room, server, room):
    page = open_room(unique("ann"))
    send(page, "further back soon")
    refuse(page, "DELETE")
    li = page.locator("main.room li.msg").first
    a_deletion_waiting(li)
    for n in range(50):  # a room page shows the last 50 (ROOM_PAGE_MESSAGES)
        publish(server, room, "later %d" % n)

    page.reload()
    away = page.locator("[data-changes-away] li")
    expect(away).to_contain_text("Your change to a message further back, not shown on this page:")
    expect(away.locator("[data-pending-status]")).to_have_text("Not deleted yet — will retry.")
    page.unroute("**/messages/**")
    expect(away).to_have_count(0, timeout=RECONNECT_MS)  # done: nothing of it is shown here to change
    with urllib.request.urlopen("%s/rooms/%s/messages?limit=60" % (server.url, room), timeout=10) as r:
        assert json.loads(r.read())["messages"][0].get("deleted") is True


def test_signing_out_forgets_the_changes_kept_in_the_tab(open_room):
    page = open_room(unique("ann"))
    send(page, "mine")
    an_edit_waiting(page, "not for the next person")
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.get_by_role("button", name="Sign out anyway").click()
    expect(page.locator("[data-whoami]")).to_have_count(0)
    assert page.evaluate("Object.keys(sessionStorage).filter(k => k.startsWith('ripple-changes:'))") == []


def test_a_change_kept_for_one_person_is_never_sent_for_another(open_room, server, room):
    page = open_room(unique("ann"))
    send(page, "ann's")
    an_edit_waiting(page, "ann's, corrected")
    bob = unique("bob")
    sign_in_over_http(page.context, bob)  # the session is bob's now; the tab kept ann's edit

    try:
        page.reload()  # asks first now (leaving.js): the page's own reload may overtake it
    except PlaywrightError as error:
        if "ERR_ABORTED" not in error.message:
            raise
    expect(page.locator("[data-whoami]")).to_have_text(bob)  # (the page may reload itself too)
    expect(page.locator(STATUS)).to_have_attribute("data-state", "connected")
    expect(page.locator(UNSAVED)).to_have_count(0)
    assert page.evaluate("Object.keys(sessionStorage).filter(k => k.startsWith('ripple-changes:'))") == []


STORAGE_OFF = "Storage.prototype.setItem = () => { throw new DOMException('full', 'QuotaExceededError'); };"


def test_leaving_the_page_with_an_edit_the_tab_could_not_keep_asks_first(open_room):
    # Kept in the page only (the tab's storage refused it): a reload would forget it.
    page = open_room(unique("ann"), before_load=lambda page: page.add_init_script(STORAGE_OFF))
    send(page, "mine")
    an_edit_waiting(page, "mine, corrected")
    with page.expect_event("close"):  # the question accepted (tests/browser.py): the page goes
        with page.expect_event("dialog") as asked:
            page.close(run_before_unload=True)
    assert asked.value.type == "beforeunload"


def test_an_edit_after_ones_own_edit_whose_answer_was_lost_is_no_conflict(open_room, relay, server, room):
    page = open_room(unique("ann"), base_url=relay.url)
    send(page, "first draft")
    # The stream stays down (its reconnects refused), so the page never sees its first edit land.
    page.route("**/events*", lambda route: route.abort("connectionrefused"))
    relay.cut()
    expect(page.locator(STATUS)).to_have_text("reconnecting…")
    relay.restore()
    lost = []

    def answer_lost(route):  # the first edit is stored; its answer never comes back
        if route.request.method != "PATCH" or lost:
            return route.fallback()
        lost.append(route.fetch().status)
        route.abort("connectionreset")

    page.route("**/messages/**", answer_lost)
    li = page.locator("main.room li.msg").first
    edit(li, "second draft")
    expect(li.locator(UNSAVED).locator("[data-pending-status]")).to_have_text("Edit not saved yet — will retry.")
    assert lost == [200]
    edit(li, "third draft")  # from the version the page shows: before its own second draft
    expect(li.locator(".text")).to_have_text("third draft", timeout=RECONNECT_MS)
    expect(li.locator(UNSAVED)).to_have_count(0)  # not "changed elsewhere": it was this page's own
    assert [m["text"] for m in history(server, room)] == ["third draft"]


def test_signing_out_from_the_lobby_counts_the_post_waiting_for_a_room(open_room):
    # The lobby's Sign out forgets the posts this tab keeps for rooms' pages too (session.js).
    page = open_room(unique("ann"))
    a_post_waiting(page)
    page.goto("/")
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.locator("[data-signout-warning]")).to_contain_text("1 message or change of yours is not sent yet.")


PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}
LONG = ("a long text that the network did not take, with words enough to fill a phone's line "
        "two and three times over\nand a line more")


def usable(button):
    """The button shows whole on the screen and a tap at its middle lands on it."""
    expect(button).to_be_visible()
    return button.evaluate("""el => { const r = el.getBoundingClientRect();
        return r.left >= 0 && r.right <= innerWidth
            && document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2) === el; }""")


def test_on_a_phone_a_waiting_post_is_a_short_line_that_keeps_its_buttons(open_room):
    page = open_room(unique("ann"), **PHONE)
    a_post_waiting(page, LONG)
    pending = page.locator(PENDING)
    # It was 176 px: the name, every line of the text, then the status and 44 px buttons wrapped.
    assert pending.bounding_box()["height"] < 64
    expect(pending.locator(".text")).to_have_text(LONG)  # cut on the screen only
    assert usable(pending.get_by_role("button", name="Retry now"))
    assert usable(pending.get_by_role("button", name="Don't send"))
    pending.get_by_role("button", name="Don't send").tap()
    expect(pending).to_have_count(0)


def test_on_a_phone_a_waiting_edit_is_a_short_line_under_its_message_that_keeps_its_buttons(open_room):
    page = open_room(unique("ann"), **PHONE)
    page.fill("#text", "mine")
    page.locator(SEND).click()  # on a phone Enter adds a line
    expect(page.locator("main.room li.msg")).to_have_count(1)
    waiting = an_edit_waiting(page, LONG).locator(UNSAVED)
    expect(waiting.locator("[data-pending-status]")).to_have_text("Edit not saved yet — will retry.")
    # It was 123 px: every line of the typed text, then the status and buttons wrapped.
    assert waiting.bounding_box()["height"] < 64
    assert usable(waiting.get_by_role("button", name="Retry now"))
    assert usable(waiting.get_by_role("button", name="Don't save"))
    waiting.get_by_role("button", name="Don't save").tap()
    expect(waiting).to_have_count(0)


def buttons_over(text):
    """The buttons a tap on ``text`` (its box, every 2 px) lands on."""
    return text.evaluate("""el => { const r = el.getBoundingClientRect(), hit = new Set();
        for (let y = r.top + 1; y < r.bottom; y += 2) for (let x = r.left + 1; x < r.right; x += 2) {
            const b = document.elementFromPoint(x, y)?.closest('button'); if (b) hit.add(b.textContent); }
        return [...hit]; }""")


def test_on_a_phone_a_tap_on_a_waiting_posts_text_is_no_tap_on_its_buttons(open_room):
    page = open_room(unique("ann"), **PHONE)
    a_post_waiting(page, LONG)
    # The buttons' tap area grew 13 px up, over the lower 11 px of the text: a tap there discarded it.
    assert buttons_over(page.locator(PENDING).locator(".text")) == []


def test_on_a_phone_a_tap_on_a_waiting_edits_text_is_no_tap_on_its_buttons(open_room):
    page = open_room(unique("ann"), **PHONE)
    page.fill("#text", "mine")
    page.locator(SEND).click()
    expect(page.locator("main.room li.msg")).to_have_count(1)
    waiting = an_edit_waiting(page, LONG).locator(UNSAVED)
    assert buttons_over(waiting.locator(".pending-text")) == []


def knows_other_tabs(page, n=1):
    """Wait until ``page`` knows of ``n`` other open tabs (they say hello when they load,
    signout.js): its Sign out asks those."""
    expect(page.locator("html")).to_have_attribute("data-other-tabs", str(n))


def test_signing_out_in_another_tab_counts_the_post_waiting_in_the_first(open_room, room):
    first = open_room(unique("ann"))
    a_post_waiting(first)
    other = first.context.new_page()  # another tab of the same browser: its own sessionStorage
    other.goto("/rooms/%s-b" % room)
    expect(other.locator(STATUS)).to_have_attribute("data-state", "connected")
    knows_other_tabs(other)
    other.get_by_role("button", name="Sign out", exact=True).click()
    # It signed out at once: the first tab's post, promised "will retry", was thrown away unasked.
    warning = other.locator("[data-signout-warning]")
    expect(warning).to_contain_text("1 message or change of yours is not sent yet. "
        "Signing out stops sending it (if already on its way, it may still arrive). "
                                    "1 of them is in another tab of this browser.")
    expect(other.locator("[data-whoami]")).to_have_count(1)  # still signed in


def test_signing_out_waits_for_a_busy_tab_that_answers_late(open_room, room):
    first = open_room(unique("ann"))
    a_post_waiting(first)
    # A busy background tab: its answer goes out 800 ms late (it was not waited for past 300 ms,
    # and the sign-out threw its post away unasked).
    first.evaluate("""() => { const post = BroadcastChannel.prototype.postMessage;
        BroadcastChannel.prototype.postMessage = function (message) {
            if (message?.type === 'answer') setTimeout(() => post.call(this, message), 800);
            else post.call(this, message); }; }""")
    other = first.context.new_page()
    other.goto("/rooms/%s-b" % room)
    knows_other_tabs(other)
    other.get_by_role("button", name="Sign out", exact=True).click()
    expect(other.locator("[data-signout-warning]")).to_contain_text("1 of them is in another tab of this browser.")
    expect(other.locator("[data-whoami]")).to_have_count(1)


def test_signing_out_with_nothing_waiting_and_no_other_tab_does_not_wait(open_room):
    page = open_room(unique("ann"))
    assert page.evaluate("document.documentElement.dataset.otherTabs") == "0"
    # Whether the form was held back (to ask other tabs) is noted where the next page can read it.
    page.evaluate("""() => addEventListener('submit', (e) =>
        sessionStorage.setItem('held', String(e.defaultPrevented)))""")
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.locator("[data-whoami]")).to_have_count(0)
    assert page.evaluate("sessionStorage.getItem('held')") == "false"  # it was held 300 ms, every time


def test_a_post_waiting_in_a_duplicated_tab_too_is_counted_once(open_room, room):
    first = open_room(unique("ann"))
    a_post_waiting(first, "in both tabs")
    copy = first.context.new_page()  # as "Duplicate tab" does: the tab's sessionStorage copied
    copy.goto("/rooms/%s-b" % room)
    kept = first.evaluate("JSON.stringify(Object.entries(sessionStorage))")
    copy.evaluate("kept => { for (const [k, v] of JSON.parse(kept)) sessionStorage.setItem(k, v); }", kept)
    a_post_waiting(copy, "in the copy only")  # its own: counted, so the copy's answer came
    knows_other_tabs(first)
    first.get_by_role("button", name="Sign out", exact=True).click()
    warning = first.locator("[data-signout-warning]")
    expect(warning).to_contain_text("2 messages or changes of yours are not sent yet. "
        "Signing out stops sending them (any already on their way may still arrive). "
                                    "1 of them is in another tab of this browser.")


def test_two_different_edits_of_one_message_waiting_in_two_tabs_count_twice(open_room, room):
    first = open_room(unique("ann"))
    send(first, "mine")
    other = first.context.new_page()
    other.goto(first.url)
    an_edit_waiting(other, "corrected in the second tab")
    an_edit_waiting(first, "corrected in the first tab")
    knows_other_tabs(first)
    first.get_by_role("button", name="Sign out", exact=True).click()
    # They were one key (the message, "edit", PATCH) without the text: counted once.
    expect(first.locator("[data-signout-warning]")).to_contain_text(
        "2 messages or changes of yours are not sent yet. "
        "Signing out stops sending them (any already on their way may still arrive). "
        "1 of them is in another tab of this browser.")


@pytest.mark.parametrize("path", ["/account", "/admin"])
def test_signing_out_from_the_account_or_admin_page_counts_the_post_waiting_for_a_room(open_room, server, app, path):
    admin = admin_browser(server, app)  # an administrator: both pages are theirs
    page = open_room(before_load=lambda page: page.context.add_cookies(
        [{"name": c.name, "value": c.value, "url": server.url} for c in admin.jar]))
    a_post_waiting(page)
    page.goto(path)
    page.get_by_role("button", name="Sign out", exact=True).click()
    # These pages loaded no script: Sign out threw the post away unasked.
    expect(page.locator("[data-signout-warning]")).to_contain_text("1 message or change of yours is not sent yet.")
    expect(page.locator("[data-whoami]")).to_have_text(admin.name)  # still signed in
