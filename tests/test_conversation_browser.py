"""Edits and deletions on the room page, live and on reload, with JavaScript on and off (issue 16)."""
from playwright.sync_api import expect

from .browser import LIVE_MS, STATUS, browser, dialogs, open_room, send, unique  # noqa: F401 - fixtures

OWN = "main.room li.msg.own"


def menu(page, text):
    """Open the actions menu of the message that says ``text``; return the message's locator."""
    li = page.locator("main.room li.msg", has_text=text).last
    li.hover()
    li.locator("[data-actions] > summary").click()
    return li


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


def test_a_deletion_shows_live_and_the_text_never_comes_back(open_room):
    ann, bob = unique("ann"), unique("bob")
    page_ann = open_room(ann)
    page_bob = open_room(bob)
    send(page_ann, "oops, a secret")
    expect(page_bob.locator("main.room li.msg .text")).to_have_text(["oops, a secret"], timeout=LIVE_MS)
    li = menu(page_ann, "oops, a secret")
    li.get_by_role("button", name="Delete message").click()
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
    menu(page_ann, "to be deleted").get_by_role("button", name="Delete message").click()
    expect(page_ann.locator("main.room li.msg .text").last).to_have_text("message deleted")
    page_bob.context.set_offline(False)
    expect(page_bob.locator("main.room li.msg .text")).to_have_text(["final text", "message deleted"],
                                                                     timeout=15_000)


def test_edit_and_delete_work_without_javascript(open_room, server, room):
    from .browser import sign_in_over_http
    name = unique("ann")
    page = open_room(java_script_enabled=False)
    sign_in_over_http(page.context, name)
    page.goto("/rooms/%s" % room)
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
    expect(page.locator("main.room li.msg .text")).to_have_text(["message deleted"])


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


def test_reactions_work_without_javascript(open_room, room):
    from .browser import sign_in_over_http
    page = open_room(java_script_enabled=False)
    sign_in_over_http(page.context, unique("ann"))
    page.goto("/rooms/%s" % room)
    page.fill("#text", "react to me")
    page.get_by_role("button", name="Send").click()
    menu(page, "react to me").get_by_role("button", name="🎉").click()
    expect(chip(page, "🎉")).to_have_attribute("aria-pressed", "true")
    chip(page, "🎉").click()
    expect(page.locator("main.room li.msg [data-reactions] .chip")).to_have_count(0)
