""""Don't send" on a post whose attempt got no answer withdraws it (static/js/pending.js,
api.withdraw_post): the attempt a stalled network still holds is refused when it arrives, and
one that arrived first shows once, with a sentence saying so. Chromium through Playwright
against the real Gunicorn; the test plays the network that delivers a held attempt late.
"""
from playwright.sync_api import expect

from .browser import SEND, TEXTS, browser, dialogs, history, open_room, publish, send, unique  # noqa: F401 (fixtures)
from .test_browser import DIRECT, ONLINE, PRESENCE_MS, open_conversation
from .test_conversation_browser import menu

PENDING = "main.room [data-pending] li"
NOTE = "main.room form[data-form] [data-note]"
STATUS_OF = "[data-pending-status]"
WITHDRAWALS = "**/rooms/*/withdrawals"
CHECKING_LATER = "Not sending it — will check again shortly that it was not sent."
ALREADY_SENT = ("It had already been sent before you chose not to send it: it is in the room above, "
                "where you can delete it.")


def held_by_the_network(page, pattern, method):
    """From now on the network keeps ``page``'s ``method`` requests to ``pattern`` and answers
    none. Returns the attempts it holds (Playwright requests), to deliver late with ``arrives``."""
    held = []

    def held_on_the_way(route):
        if route.request.method != method:
            return route.fallback()
        held.append(route.request)
        route.abort("connectionreset")

    page.route(pattern, held_on_the_way)
    return held


def an_attempt_held_by_the_network(page, text):
    """Post ``text`` from ``page``; the network keeps its attempts and answers none (held_by_the_network)."""
    held = held_by_the_network(page, "**/rooms/*/messages", "POST")
    page.fill("#text", text)
    page.locator(SEND).click()
    expect(page.locator(PENDING).locator(STATUS_OF)).to_have_text("Not sent yet — will retry.")
    return held


def arrives(page, attempt):
    """The network delivers the held ``attempt`` after all: the server's answer (status, JSON)."""
    answer = page.request.fetch(attempt.url, method=attempt.method, headers=attempt.headers,
                                data=attempt.post_data_buffer)
    return answer.status, answer.json()


def withdrawn_while_the_network_is_down(page, text):
    """Post ``text``, whose attempt the network holds, then "Don't send" it while withdrawals
    cannot get through either: (the held attempts, the post's line), the line checking later."""
    held = an_attempt_held_by_the_network(page, text)
    page.route(WITHDRAWALS, lambda route: route.abort("connectionrefused"))
    pending = page.locator(PENDING)
    pending.get_by_role("button", name="Don't send").click()
    expect(pending.locator(STATUS_OF)).to_have_text(CHECKING_LATER)
    # Not "Retry now": it sends nothing, it asks the server again.
    expect(pending.get_by_role("button", name="Check now")).to_be_visible()
    return held, pending


def back_online(page):
    """The browser says it is online again: what waits is tried at once (retries.js). Not a
    click on "Check now": the backing-off timer may have checked, and the line gone, first."""
    page.evaluate("dispatchEvent(new Event('online'))")


def test_a_post_withdrawn_by_dont_send_is_not_stored_when_its_attempt_arrives_late(open_room, server, room):
    page = open_room(unique("ann"))
    held = an_attempt_held_by_the_network(page, "meant for another room")
    page.locator(PENDING).get_by_role("button", name="Don't send").click()
    expect(page.locator(PENDING)).to_have_count(0)  # withdrawn: the server will store none of it
    expect(page.locator(NOTE)).to_have_text("“meant for another room” was not sent. Put it back to edit")
    expect(page.locator(NOTE).locator("bdi")).to_have_text("meant for another room")  # isolated: RTL words too
    # The keyboard's focus on its line in the note, not in the text box (a phone's keyboard).
    expect(page.locator(NOTE).locator("[data-withdrawn]")).to_be_focused()
    for attempt in held:
        status, answer = arrives(page, attempt)
        assert (status, answer["code"]) == (409, "withdrawn")
    page.unroute("**/rooms/*/messages")
    send(page, "the next one")
    expect(page.locator(TEXTS)).to_have_text(["the next one"])
    assert [m["text"] for m in history(server, room)] == ["the next one"]


def test_a_withdrawn_post_can_be_put_back_in_the_composer_with_what_it_answered(open_room, server, room):
    # "Don't send" is often pressed to correct a post: its text was gone (helper-81).
    question = publish(server, room, "Where do we meet?")
    page = open_room(unique("ann"))
    menu(page, "Where do we meet?").get_by_role("link", name="Reply").click()
    held = an_attempt_held_by_the_network(page, "At the statoin")
    # The waiting post shows what it answers, as a sent reply does (on a wide screen).
    expect(page.locator(PENDING).locator(".quote")).to_have_text("bob Where do we meet?")
    page.locator(PENDING).get_by_role("button", name="Don't send").click()
    page.locator(NOTE).get_by_role("button", name="Put it back to edit").click()
    expect(page.locator(NOTE)).to_be_hidden()
    expect(page.locator("#text")).to_have_value("At the statoin")
    expect(page.locator("#text")).to_be_focused()
    expect(page.locator("[data-replying]")).to_contain_text("Replying to bob")
    page.unroute("**/rooms/*/messages")
    send(page, "At the station")
    assert [(m["text"], m["reply_to"]["id"]) for m in history(server, room)[1:]] == [
        ("At the station", question["id"])]
    assert arrives(page, held[0])[1]["code"] == "withdrawn"  # the first words never land


def test_a_post_never_tried_goes_at_once_and_can_be_put_back_after_what_was_typed_since(open_room, server, room):
    page = open_room(unique("ann"))
    an_attempt_held_by_the_network(page, "the first")
    page.fill("#text", "the second")
    page.locator(SEND).click()  # waits behind the first, never tried
    second = page.locator(PENDING).filter(has_text="the second")
    expect(second.locator(STATUS_OF)).to_have_text("Waiting to send…")
    second.get_by_role("button", name="Don't send").click()
    expect(second).to_have_count(0)
    expect(page.locator(NOTE)).to_contain_text("“the second” was not sent.")
    page.fill("#text", "typed since")
    page.locator(NOTE).get_by_role("button", name="Put it back to edit").click()
    expect(page.locator("#text")).to_have_value("typed since\nthe second")


def test_two_posts_not_sent_can_each_be_put_back(open_room, room):
    # The second "was not sent" replaced the first, whose text could then not be put back (helper-83).
    page = open_room(unique("ann"))
    an_attempt_held_by_the_network(page, "the first")
    page.fill("#text", "the second")
    page.locator(SEND).click()
    page.locator(PENDING).filter(has_text="the second").get_by_role("button", name="Don't send").click()
    page.locator(PENDING).filter(has_text="the first").get_by_role("button", name="Don't send").click()
    note = page.locator(NOTE)
    expect(note.locator("[data-withdrawn]")).to_have_text([
        "“the second” was not sent. Put it back to edit", "“the first” was not sent. Put it back to edit"])
    note.locator("[data-withdrawn]", has_text="the first").get_by_role("button").click()
    expect(page.locator("#text")).to_have_value("the first")
    expect(note.locator("[data-withdrawn]")).to_have_count(1)
    note.get_by_role("button", name="Put it back to edit").click()
    expect(page.locator("#text")).to_have_value("the first\nthe second")
    expect(note).to_be_hidden()


def test_a_post_put_back_keeps_the_reply_being_written(open_room, server, room):
    publish(server, room, "target one")
    publish(server, room, "target two")
    page = open_room(unique("ann"))
    menu(page, "target one").get_by_role("link", name="Reply").click()
    an_attempt_held_by_the_network(page, "my answer to one")
    page.locator(PENDING).get_by_role("button", name="Don't send").click()
    menu(page, "target two").get_by_role("link", name="Reply").click()
    page.fill("#text", "half typed")
    page.locator(NOTE).get_by_role("button", name="Put it back to edit").click()
    expect(page.locator("#text")).to_have_value("half typed\nmy answer to one")
    expect(page.locator("[data-replying]")).to_contain_text("target two")  # not moved to one unsaid


def test_a_post_put_back_answers_a_message_no_longer_on_the_page(open_room, server, room):
    question = publish(server, room, "the question")
    page = open_room(unique("ann"))
    menu(page, "the question").get_by_role("link", name="Reply").click()
    an_attempt_held_by_the_network(page, "the answer")
    for n in range(55):  # more than a room page shows (RIPPLE_ROOM_PAGE_MESSAGES, 50)
        publish(server, room, "filler %d" % n)
    page.reload()  # the question is no longer on the page; the post still waits
    expect(page.locator("main.room li.msg", has_text="the question")).to_have_count(0)
    page.locator(PENDING).get_by_role("button", name="Don't send").click()
    page.locator(NOTE).get_by_role("button", name="Put it back to edit").click()
    expect(page.locator("[data-replying]")).to_contain_text("Replying to bob")
    expect(page.locator("[data-replying-id]")).to_have_value(question["id"])


def test_a_post_that_got_through_before_its_withdrawal_shows_once_and_says_so(open_room, server, room):
    page = open_room(unique("ann"))
    held, pending = withdrawn_while_the_network_is_down(page, "too late to stop")
    expect(pending.get_by_role("button", name="Don't send")).to_be_hidden()
    assert arrives(page, held[0])[0] == 201  # it got there before the withdrawal
    expect(page.locator(TEXTS)).to_have_text(["too late to stop"])  # on the stream
    page.unroute(WITHDRAWALS)
    back_online(page)
    expect(pending.locator(STATUS_OF)).to_have_text(ALREADY_SENT)
    expect(page.locator(TEXTS)).to_have_text(["too late to stop"])  # once
    pending.get_by_role("button", name="OK").click()
    expect(pending).to_have_count(0)
    assert [m["text"] for m in history(server, room)] == ["too late to stop"]


def test_a_reload_goes_on_withdrawing_and_never_sends_it(open_room, server, room):
    page = open_room(unique("ann"))
    held, _ = withdrawn_while_the_network_is_down(page, "not after a reload either")
    attempts = len(held)
    page.reload()  # its storage kept it, as one being withdrawn
    expect(page.locator(PENDING).locator(STATUS_OF)).to_have_text(CHECKING_LATER)
    assert len(held) == attempts  # not posted again
    page.unroute(WITHDRAWALS)
    back_online(page)
    expect(page.locator(PENDING)).to_have_count(0)
    assert arrives(page, held[0])[1]["code"] == "withdrawn"
    assert history(server, room) == []


def test_a_late_answer_leaves_the_keyboard_where_the_person_types(open_room, room):
    # The answer came while she typed her next message: "OK" took the focus, and her next
    # space pressed it, the note gone unread and the key lost (helper-79).
    page = open_room(unique("ann"))
    held, pending = withdrawn_while_the_network_is_down(page, "too late to stop")
    assert arrives(page, held[0])[0] == 201
    page.unroute(WITHDRAWALS)
    page.focus("#text")
    page.keyboard.type("typing the next message")
    back_online(page)  # the page asks now
    expect(pending.locator(STATUS_OF)).to_have_text(ALREADY_SENT)
    page.keyboard.type(" x")
    expect(page.locator("#text")).to_have_value("typing the next message x")
    expect(pending).to_have_count(1)  # the sentence stays to be read


def test_a_deletion_called_off_by_dont_save_is_not_done_when_it_arrives_late(open_room, server, room):
    # "Don't save" on a waiting deletion, then the network delivered it: the message was gone.
    page = open_room(unique("ann"))
    send(page, "keep me after all")
    held = held_by_the_network(page, "**/messages/**", "DELETE")
    li = page.locator("main.room li.msg").first
    li.locator("[data-actions] > summary").click()
    li.get_by_role("button", name="Delete message").click()
    li.get_by_role("button", name="Yes, delete it").click()
    waiting = li.locator("[data-pending-change]")
    expect(waiting.locator(STATUS_OF)).to_have_text("Not deleted yet — will retry.")
    waiting.get_by_role("button", name="Don't save").click()
    expect(waiting).to_have_count(0)  # withdrawn: the server will do none of it
    expect(page.locator(NOTE)).to_have_text("The message was not deleted.")
    assert [arrives(page, attempt)[1]["code"] for attempt in held] == ["withdrawn"] * len(held)
    expect(li.locator(".text")).to_have_text("keep me after all")
    assert [m["text"] for m in history(server, room)] == ["keep me after all"]


def test_an_older_page_of_the_room_goes_on_withdrawing_a_change_and_never_sends_it(open_room, server, room):
    # It had no composer, so no way to withdraw: it sent the deletion the person called off (helper-80).
    page = open_room(unique("ann"))
    send(page, "keep me after all")
    send(page, "a later one")
    later = history(server, room)[1]["id"]
    held = held_by_the_network(page, "**/messages/**", "DELETE")
    li = page.locator("main.room li.msg").first
    li.locator("[data-actions] > summary").click()
    li.get_by_role("button", name="Delete message").click()
    li.get_by_role("button", name="Yes, delete it").click()
    expect(li.locator("[data-pending-change]").locator(STATUS_OF)).to_have_text("Not deleted yet — will retry.")
    page.route(WITHDRAWALS, lambda route: route.abort("connectionrefused"))
    li.locator("[data-pending-change]").get_by_role("button", name="Don't save").click()
    page.unroute("**/messages/**")  # deletions would get through now
    attempts = len(held)
    page.goto("/rooms/%s?before=%s" % (room, later))  # the same room's storage, no composer
    waiting = page.locator("main.room li.msg").first.locator("[data-pending-change]")
    expect(waiting.locator(STATUS_OF)).to_have_text("Not saving it — will check again shortly that it was not saved.")
    assert len(held) == attempts and not history(server, room)[0].get("deleted")


def test_signing_out_asks_nothing_of_a_post_being_withdrawn(open_room):
    # It said "1 message of yours is not sent yet ... it may still arrive" of a post the person had
    # called off: once signed out, an attempt still on its way finds no session (helper-81).
    page = open_room(unique("ann"))
    withdrawn_while_the_network_is_down(page, "called off")
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.locator("[data-whoami]")).to_have_count(0)
    expect(page.locator("[data-signout-warning]")).to_have_count(0)


def test_a_direct_message_withdrawn_by_dont_send_reaches_no_one_when_its_attempt_arrives_late(open_room):
    ann_name, bob_name = unique("ann"), unique("bob")
    ann, bob = open_room(ann_name), open_room(bob_name)
    expect(ann.locator(ONLINE)).to_have_text(sorted([ann_name, bob_name]), timeout=PRESENCE_MS)
    open_conversation(ann, bob_name)
    held = held_by_the_network(ann, "**/users/*/messages?*", "POST")
    ann.fill("#dm-text", "not for bob after all")
    ann.press("#dm-text", "Enter")
    pending = ann.locator("[data-conversation] [data-pending] li")
    expect(pending.locator(STATUS_OF)).to_have_text("Not sent yet — will retry.")
    pending.get_by_role("button", name="Don't send").click()
    expect(pending).to_have_count(0)  # withdrawn: nothing was stored, and nothing will be
    note = ann.locator("[data-conversation] form[data-form] [data-note]")
    expect(note).to_contain_text("“not for bob after all” was not sent.")
    for attempt in held:
        status, answer = arrives(ann, attempt)
        assert (status, answer["code"]) == (409, "withdrawn")
    ann.unroute("**/users/*/messages?*")
    note.get_by_role("button", name="Put it back to edit").click()
    expect(ann.locator("#dm-text")).to_have_value("not for bob after all")
    ann.fill("#dm-text", "for bob, corrected")
    ann.press("#dm-text", "Enter")
    expect(ann.locator(DIRECT + " .text")).to_have_text(["for bob, corrected"])
    open_conversation(bob, ann_name)
    expect(bob.locator(DIRECT + " .text")).to_have_text(["for bob, corrected"])


def test_a_copy_of_the_tab_says_a_post_withdrawn_in_the_other_was_not_sent_and_can_put_it_back(open_room, room):
    first = open_room(unique("ann"))
    an_attempt_held_by_the_network(first, "sent from two copies")
    kept = first.evaluate("JSON.stringify(Object.entries(sessionStorage))")  # as "Duplicate tab" copies it
    first.locator(PENDING).get_by_role("button", name="Don't send").click()
    expect(first.locator(NOTE)).to_contain_text("“sent from two copies” was not sent.")
    copy = first.context.new_page()
    copy.goto("/rooms/%s-b" % room)
    copy.evaluate("kept => { for (const [k, v] of JSON.parse(kept)) sessionStorage.setItem(k, v); }", kept)
    copy.goto("/rooms/%s" % room)  # sends what waited: refused, withdrawn in the first copy
    expect(copy.locator(PENDING)).to_have_count(0)
    copy.locator(NOTE).get_by_role("button", name="Put it back to edit").click()
    expect(copy.locator("#text")).to_have_value("sent from two copies")


def test_a_long_unbroken_post_not_sent_does_not_widen_a_phones_page(open_room):
    page = open_room(unique("ann"), viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    an_attempt_held_by_the_network(page, "y" * 300)
    page.locator(PENDING).get_by_role("button", name="Don't send").click()
    expect(page.locator(NOTE)).to_contain_text("was not sent.")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # it had grown to 427 (helper-84)
