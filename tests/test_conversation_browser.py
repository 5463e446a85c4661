"""Edits and deletions on the room page, live and on reload, with JavaScript on and off (issue 16)."""
import re

from playwright.sync_api import expect

from .browser import LIVE_MS, STATUS, browser, dialogs, history, open_room, send, unique  # noqa: F401 - fixtures

OWN = "main.room li.msg.own"


def menu(page, text):
    """Open the actions menu of the message that says ``text``; return the message's locator."""
    li = page.locator("main.room li.msg", has=page.locator("p.text", has_text=text)).last
    li.hover()
    li.locator("[data-actions] > summary").click()
    return li


def delete(li):
    """Press "Delete message" in an open menu, then answer its question "Yes, delete it"."""
    li.get_by_role("button", name="Delete message").click()
    li.get_by_role("button", name="Yes, delete it").click()


def test_an_edit_shows_live_on_every_page_and_after_a_reload(open_room):
    ann, bob = unique("ann"), unique("bob")
    page_ann = open_room(ann)
    page_bob = open_room(bob)
    send(page_ann, "see you at 5")
    li = menu(page_ann, "see you at 5")
    li.locator("form[data-edit] textarea").fill("see you at 6")
    li.get_by_role("button", name="Save edit").click()
    for page in (page_ann, page_bob):
        theirs = page.locator("main.room li.msg").last
        expect(theirs.locator(".text")).to_have_text("see you at 6", timeout=LIVE_MS)
        expect(theirs.locator("[data-edited]")).to_have_text("(edited)")
    page_bob.reload()
    expect(page_bob.locator(STATUS)).to_have_text("connected")
    expect(page_bob.locator("main.room li.msg .text")).to_have_text(["see you at 6"])
    expect(page_bob.locator("main.room li.msg [data-edited]")).to_have_count(1)


def test_an_edit_that_mends_a_mention_highlights_the_message_for_its_person(open_room):
    ann, bob = unique("ann"), unique("bob")
    page_ann = open_room(ann)
    page_bob = open_room(bob)
    page_ann.evaluate("""window.heard = [];
        document.addEventListener('chat:edit-mentions-me', (e) => window.heard.push(e.detail.user))""")
    send(page_bob, "@%sx can you look?" % ann)  # a typo: nobody
    theirs = page_ann.locator("main.room li.msg").last
    expect(theirs.locator(".text")).to_have_text("@%sx can you look?" % ann, timeout=LIVE_MS)
    expect(theirs).not_to_have_class(re.compile(r"\bmentions-me\b"))
    li = menu(page_bob, "can you look?")
    li.locator("form[data-edit] textarea").fill("@%s can you look?" % ann)
    li.get_by_role("button", name="Save edit").click()
    expect(theirs).to_have_class(re.compile(r"\bmentions-me\b"), timeout=LIVE_MS)
    assert page_ann.evaluate("window.heard") == [bob]  # as a new mention: notified if allowed
    page_ann.reload()
    expect(page_ann.locator(STATUS)).to_have_text("connected")
    expect(page_ann.locator("main.room li.msg.mentions-me")).to_have_count(1)


def test_a_deletion_shows_live_and_the_text_never_comes_back(open_room):
    ann, bob = unique("ann"), unique("bob")
    page_ann = open_room(ann)
    page_bob = open_room(bob)
    send(page_ann, "oops, a secret")
    expect(page_bob.locator("main.room li.msg .text")).to_have_text(["oops, a secret"], timeout=LIVE_MS)
    delete(menu(page_ann, "oops, a secret"))
    for page in (page_ann, page_bob):
        expect(page.locator("main.room li.msg .text")).to_have_text(["message deleted"], timeout=LIVE_MS)
        assert "oops, a secret" not in page.content()
    page_bob.reload()
    expect(page_bob.locator(STATUS)).to_have_text("connected")
    expect(page_bob.locator("main.room li.msg .text")).to_have_text(["message deleted"])
    assert "oops, a secret" not in page_bob.content()


def test_only_ones_own_messages_offer_edit_and_delete(open_room):
    ann, bob = unique("ann"), unique("bob")
    page_ann = open_room(ann)
    page_bob = open_room(bob)
    send(page_ann, "ann speaking")
    send(page_bob, "bob speaking")
    expect(page_ann.locator("main.room li.msg")).to_have_count(2, timeout=LIVE_MS)
    offered = page_ann.locator("main.room li.msg:has(form[data-delete]:not([hidden])) .text")
    expect(offered).to_have_text(["ann speaking"])


def test_a_page_that_was_offline_catches_up_on_edits_and_deletions(open_room):
    ann, bob = unique("ann"), unique("bob")
    page_ann = open_room(ann)
    page_bob = open_room(bob)
    send(page_ann, "first draft")
    send(page_ann, "to be deleted")
    expect(page_bob.locator("main.room li.msg")).to_have_count(2, timeout=LIVE_MS)
    page_bob.context.set_offline(True)
    menu(page_ann, "first draft").locator("form[data-edit] textarea").fill("final text")
    page_ann.get_by_role("button", name="Save edit").first.click()
    expect(page_ann.locator("main.room li.msg .text").first).to_have_text("final text")
    delete(menu(page_ann, "to be deleted"))
    expect(page_ann.locator("main.room li.msg .text").last).to_have_text("message deleted")
    page_bob.context.set_offline(False)
    expect(page_bob.locator("main.room li.msg .text")).to_have_text(["final text", "message deleted"],
                                                                     timeout=15_000)


def test_edit_and_delete_work_without_javascript(open_room):
    page = open_room(unique("ann"), java_script_enabled=False)
    page.fill("#text", "no script here")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("main.room li.msg .text")).to_have_text(["no script here"])
    li = menu(page, "no script here")
    li.locator("form[data-edit] textarea").fill("no script, edited")
    li.get_by_role("button", name="Save edit").click()
    expect(page.locator("main.room li.msg .text")).to_have_text(["no script, edited"])
    expect(page.locator("main.room li.msg [data-edited]")).to_have_text(["(edited)"])
    li = menu(page, "no script, edited")
    li.get_by_role("button", name="Delete message").click()
    page.get_by_role("button", name="Yes, delete it").click()  # the question is a page of its own
    expect(page.locator("main.room li.msg .text")).to_have_text(["message deleted"])


def test_delete_asks_first_in_the_menu_and_cancel_keeps_the_message(open_room, server, room):
    page = open_room(unique("ann"))
    send(page, "a mis-tap must not delete me")
    li = menu(page, "a mis-tap must not delete me")
    li.get_by_role("button", name="Delete message").click()
    question = li.get_by_role("group", name="Delete this message?")
    expect(question).to_be_visible()
    expect(li.get_by_role("button", name="Cancel")).to_be_focused()  # the safe answer first
    expect(li.get_by_role("button", name="Delete message")).to_be_hidden()
    assert [m["text"] for m in history(server, room)] == ["a mis-tap must not delete me"]
    li.get_by_role("button", name="Cancel").click()
    expect(question).to_be_hidden()
    expect(li.get_by_role("button", name="Delete message")).to_be_focused()
    expect(li.locator(".text")).to_have_text("a mis-tap must not delete me")
    delete(li)  # asked again, and answered yes
    expect(page.locator("main.room li.msg .text")).to_have_text(["message deleted"])
    assert [m.get("deleted") for m in history(server, room)] == [True]


def test_escape_answers_the_delete_question_no(open_room, server, room):
    page = open_room(unique("ann"))
    send(page, "escape keeps me")
    li = menu(page, "escape keeps me")
    li.get_by_role("button", name="Delete message").click()
    page.keyboard.press("Escape")
    expect(li.get_by_role("group", name="Delete this message?")).to_be_hidden()
    expect(li.get_by_role("button", name="Delete message")).to_be_focused()
    assert [m["text"] for m in history(server, room)] == ["escape keeps me"]


def test_a_live_message_asks_before_deleting_too(open_room):
    """A message the page's script drew gets its menu from the page's template."""
    page = open_room(unique("mod"))
    send(page, "drawn live")  # the answer and the stream draw it: not server-rendered
    li = menu(page, "drawn live")
    li.get_by_role("button", name="Delete message").click()
    question = li.get_by_role("group", name="Delete this message?")
    expect(question).to_be_visible()
    assert "__ID__" not in question.get_attribute("aria-labelledby")
    li.get_by_role("button", name="Yes, delete it").click()
    expect(page.locator("main.room li.msg .text")).to_have_text(["message deleted"])


def test_without_javascript_delete_asks_on_a_page_and_cancel_goes_back(open_room, server, room):
    page = open_room(unique("ann"), java_script_enabled=False)
    page.fill("#text", "no script, no mis-tap")
    page.get_by_role("button", name="Send").click()
    menu(page, "no script, no mis-tap").get_by_role("button", name="Delete message").click()
    expect(page.get_by_role("heading", name="Delete this message?")).to_be_visible()
    expect(page.locator(".doomed .text")).to_have_text("no script, no mis-tap")
    assert [m["text"] for m in history(server, room)] == ["no script, no mis-tap"]
    page.get_by_role("link", name="Cancel").click()
    expect(page.locator("main.room li.msg .text")).to_have_text(["no script, no mis-tap"])
    assert page.url.endswith("/rooms/%s#m-%s" % (room, history(server, room)[0]["id"]))


def chip(page, emoji):
    return page.locator("main.room li.msg [data-reactions] .chip", has_text=emoji)


def test_reactions_show_live_with_counts_and_who_reacted(open_room):
    ann, bob = unique("ann"), unique("bob")
    page_ann = open_room(ann)
    page_bob = open_room(bob)
    send(page_bob, "pizza tonight?")
    expect(page_ann.locator("main.room li.msg")).to_have_count(1, timeout=LIVE_MS)
    menu(page_ann, "pizza tonight?").get_by_role("button", name="👍").click()
    for page in (page_ann, page_bob):
        expect(chip(page, "👍").locator(".count")).to_have_text("1", timeout=LIVE_MS)
    expect(chip(page_ann, "👍")).to_have_attribute("aria-pressed", "true")
    expect(chip(page_bob, "👍")).to_have_attribute("aria-pressed", "false")
    chip(page_bob, "👍").click()  # bob joins in
    for page in (page_ann, page_bob):
        expect(chip(page, "👍").locator(".count")).to_have_text("2", timeout=LIVE_MS)
    expect(chip(page_bob, "👍")).to_have_attribute("aria-pressed", "true")
    chip(page_ann, "👍").click()  # ann takes hers back
    for page in (page_ann, page_bob):
        expect(chip(page, "👍").locator(".count")).to_have_text("1", timeout=LIVE_MS)
    expect(chip(page_ann, "👍")).to_have_attribute("aria-pressed", "false")
    page_ann.reload()
    expect(chip(page_ann, "👍")).to_have_attribute("title", bob)


def test_any_emoji_can_be_typed_as_a_reaction(open_room):
    ann = unique("ann")
    page = open_room(ann)
    send(page, "flags")
    li = menu(page, "flags")
    li.get_by_placeholder("any emoji").fill("🇫🇷")
    li.get_by_role("button", name="React", exact=True).click()
    expect(chip(page, "🇫🇷").locator(".count")).to_have_text("1")
    li = menu(page, "flags")
    li.get_by_placeholder("any emoji").fill("abc")
    li.get_by_role("button", name="React", exact=True).click()
    expect(li.locator("[data-action-error]")).to_have_text("A reaction must be one emoji, such as 👍.")


def test_reactions_work_without_javascript(open_room):
    page = open_room(unique("ann"), java_script_enabled=False)
    page.fill("#text", "react to me")
    page.get_by_role("button", name="Send").click()
    menu(page, "react to me").get_by_role("button", name="🎉").click()
    expect(chip(page, "🎉")).to_have_attribute("aria-pressed", "true")
    chip(page, "🎉").click()
    expect(page.locator("main.room li.msg [data-reactions] .chip")).to_have_count(0)


def test_a_reply_quotes_the_original_and_the_quote_follows_edits_and_deletion(open_room):
    ann, bob = unique("ann"), unique("bob")
    page_ann = open_room(ann)
    page_bob = open_room(bob)
    send(page_ann, "Where do we meet?")
    expect(page_bob.locator("main.room li.msg")).to_have_count(1, timeout=LIVE_MS)
    menu(page_bob, "Where do we meet?").get_by_role("link", name="Reply").click()
    expect(page_bob.locator("[data-replying]")).to_contain_text("Replying to %s" % ann)
    send(page_bob, "At the station")
    expect(page_bob.locator("[data-replying]")).to_be_hidden()
    for page in (page_ann, page_bob):
        quote = page.locator("main.room li.msg", has_text="At the station").locator("[data-quote]")
        expect(quote).to_have_text("%s Where do we meet?" % ann, timeout=LIVE_MS)
    li = menu(page_ann, "Where do we meet?")
    li.locator("form[data-edit] textarea").fill("Where do we meet tomorrow?")
    li.get_by_role("button", name="Save edit").click()
    for page in (page_ann, page_bob):
        quote = page.locator("main.room li.msg", has_text="At the station").locator("[data-quote]")
        expect(quote).to_have_text("%s Where do we meet tomorrow?" % ann, timeout=LIVE_MS)
    delete(menu(page_ann, "Where do we meet tomorrow?"))
    for page in (page_ann, page_bob):
        quote = page.locator("main.room li.msg", has_text="At the station").locator("[data-quote]")
        expect(quote).to_have_text("%s message deleted" % ann, timeout=LIVE_MS)


def test_clicking_a_quote_loads_older_history_up_to_the_original(open_room, server, room):
    from .conftest import post
    first = post(server.url, room, "the very first message", user="ann")[1]
    for i in range(130):
        post(server.url, room, "filler %d" % i, user="bob")
    status, _ = post_reply(server, room, "answering the first", first["id"])
    assert status == 201
    page = open_room(unique("cat"))
    expect(page.locator("main.room li.msg#m-%s" % first["id"])).to_have_count(0)
    page.locator("main.room li.msg", has_text="answering the first").locator("[data-quote]").click()
    original = page.locator("main.room li.msg#m-%s" % first["id"])
    expect(original).to_be_in_viewport(timeout=10_000)
    assert page.url.endswith("/rooms/%s" % room)  # it stayed on the live page


def post_reply(server, room, text, reply_to):
    import json
    import urllib.request

    from .conftest import TOKEN
    request = urllib.request.Request("%s/rooms/%s/messages" % (server.url, room), method="POST", data=json.dumps(
        {"text": text, "user": "dan", "reply_to": reply_to}).encode(), headers={
        "Content-Type": "application/json", "Authorization": "Bearer " + TOKEN})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_a_permalink_to_a_message_500_back_opens_around_it(open_room, server, room):
    from .conftest import post
    ids = [post(server.url, room, "number %d" % i, user="ann")[1]["id"] for i in range(560)]
    page = open_room(unique("dan"))
    page.goto("/rooms/%s?at=%s" % (room, ids[59]))  # 500 messages back from the newest
    target = page.locator("main.room li.msg.target")
    expect(target.locator(".text")).to_have_text("number 59")
    expect(target).to_be_in_viewport()
    expect(page.get_by_role("link", name="Load newer messages")).to_be_visible()
    page.get_by_role("link", name="Load older messages").click()  # older loads in place
    expect(page.locator("main.room li.msg .text").first).to_have_text("number 0")
    expect(target).to_have_count(1)  # still there, still marked


def test_replying_without_javascript(open_room):
    page = open_room(unique("ann"), java_script_enabled=False)
    page.fill("#text", "question without script")
    page.get_by_role("button", name="Send").click()
    menu(page, "question without script").get_by_role("link", name="Reply").click()
    expect(page.locator("[data-replying]")).to_contain_text("question without script")
    page.fill("#text", "answer without script")
    page.get_by_role("button", name="Send").click()
    quote = page.locator("main.room li.msg", has_text="answer without script").locator("[data-quote]")
    expect(quote).to_contain_text("question without script")


def test_links_in_messages_are_clickable_and_safe_live_and_on_reload(open_room, server, room, dialogs):
    from .browser import publish
    page = open_room(unique("ann"))
    publish(server, room, "read https://example.com/guide?a=1&b=2, then javascript:alert(1) "
                          "<a href=javascript:alert(2)>x</a>")
    for _ in range(2):
        li = page.locator("main.room li.msg").last
        links = li.locator(".text a")
        expect(links).to_have_count(1, timeout=LIVE_MS)
        expect(links).to_have_attribute("href", "https://example.com/guide?a=1&b=2")
        expect(links).to_have_attribute("rel", "noopener noreferrer nofollow ugc")
        expect(links).to_have_attribute("target", "_blank")
        expect(li.locator(".text")).to_have_text(
            "read https://example.com/guide?a=1&b=2, then javascript:alert(1) <a href=javascript:alert(2)>x</a>")
        page.reload()
        expect(page.locator(STATUS)).to_have_text("connected")
    assert dialogs == []


def test_an_edit_keeps_links_clickable(open_room):
    page = open_room(unique("ann"))
    send(page, "typo")
    li = menu(page, "typo")
    li.locator("form[data-edit] textarea").fill("see https://example.org/x")
    li.get_by_role("button", name="Save edit").click()
    expect(page.locator("main.room li.msg .text a")).to_have_attribute("href", "https://example.org/x")


def test_a_rooms_owner_deletes_someone_elses_message_from_the_page(open_room, server, room):
    from .browser import publish

    def create_the_room(page):  # as a new account, which then owns it
        request = page.context.request
        token = request.get("/session").json()["csrf_token"]
        created = request.post("/accounts", data={"name": unique("owner"), "password": "correct horse battery"},
                               headers={"X-CSRF-Token": token})
        assert created.status == 201, created.text()
        made = request.post("/rooms", data={"name": room}, headers={"X-CSRF-Token": created.json()["csrf_token"]})
        assert made.status == 201, made.text()
        publish(server, room, "spam spam spam", user="spammer")

    page = open_room(before_load=create_the_room)
    li = menu(page, "spam spam spam")
    expect(li.locator("form[data-edit]")).to_have_count(0)  # others' words are never editable
    delete(li)
    expect(page.locator("main.room li.msg .text")).to_have_text(["message deleted"], timeout=LIVE_MS)


def test_a_page_shown_again_from_the_back_forward_cache_takes_the_sessions_form_token(open_room):
    # Back/Forward may show a page kept from before a sign-in again under the same name: its
    # forms' token is the old session's. Shown again, the page asks the session and takes its token.
    page = open_room(unique("ann"))
    send(page, "still mine")
    page.evaluate("document.querySelectorAll('input[name=csrf_token]').forEach(f => f.value = 'stale')")
    page.evaluate("window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))")
    expect(page.locator("form[data-form] input[name=csrf_token]")).not_to_have_value("stale")
    menu(page, "still mine").get_by_role("button", name="👍").click()
    expect(chip(page, "👍").locator(".count")).to_have_text("1", timeout=LIVE_MS)
