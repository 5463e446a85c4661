"""What the page says once its connection is back: a failure's sentence must not outlive the
failure (it said "could not reach the server" until the next send, long after the stream was
connected again). Chromium through the TCP relay (tests/relays.py).
"""
import pytest
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
    unique,
)
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


def test_a_menus_could_not_reach_the_server_goes_when_the_stream_is_back(open_room, relay, server, room):
    publish(server, room, "react to me")
    page = open_room(unique("ann"), base_url=relay.url)
    li = page.locator("main.room li.msg").first
    li.locator("[data-actions] > summary").click()
    relay.cut()
    expect(page.locator(STATUS)).to_have_text("reconnecting…")
    li.get_by_role("button", name="👍").click()
    error = li.locator("[data-action-error]")
    expect(error).to_have_text("Could not reach the server. Try again.")
    relay.restore()
    expect(page.locator(STATUS)).to_have_text("connected", timeout=RECONNECT_MS)
    expect(error).to_be_hidden()



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
