"""Replies with a quote that follows edits and deletions, and permalinks (issue 16)."""
import json
import uuid

from .conftest import TOKEN
from .web import Browser


def signed_in(server, name):
    browser = Browser(server.url)
    assert browser.sign_in("%s-%s" % (name, uuid.uuid4().hex[:6])) == 200
    return browser


def reply(browser, room, text, reply_to):
    status, _, body = browser.request("POST", "/rooms/%s/messages" % room, body={"text": text, "reply_to": reply_to})
    return status, json.loads(body or b"{}")


def history(browser, room, query=""):
    _, _, body = browser.request("GET", "/rooms/%s/messages%s" % (room, query))
    return json.loads(body)["messages"]


def test_a_reply_carries_a_quote_of_the_first_line(server, room):
    ann, bob = signed_in(server, "ann"), signed_in(server, "bob")
    _, original = ann.post(room, "Where do we meet?\nsecond line")
    status, answer = reply(bob, room, "At the station", original["id"])
    assert status == 201
    assert answer["reply_to"] == {"id": original["id"], "user": ann.name, "text": "Where do we meet?"}


def test_a_long_first_line_is_cut_in_the_quote(server, room):
    ann = signed_in(server, "ann")
    _, original = ann.post(room, "x" * 500)
    _, answer = reply(ann, room, "long", original["id"])
    assert len(answer["reply_to"]["text"]) == 120 and answer["reply_to"]["text"].endswith("…")


def test_the_quote_follows_an_edit_and_a_deletion(server, room):
    ann, bob = signed_in(server, "ann"), signed_in(server, "bob")
    _, original = ann.post(room, "meet at 5")
    _, answer = reply(bob, room, "ok", original["id"])
    ann.request("PATCH", "/rooms/%s/messages/%s" % (room, original["id"]), body={"text": "meet at 6"})
    assert history(bob, room)[-1]["reply_to"]["text"] == "meet at 6"
    _, _, page = bob.request("GET", "/rooms/%s" % room, headers={"Accept": "text/html"})
    assert page.decode().count("meet at 6") == 2 and "meet at 5" not in page.decode()
    ann.request("DELETE", "/rooms/%s/messages/%s" % (room, original["id"]))
    quote = history(bob, room)[-1]["reply_to"]
    assert quote == {"id": original["id"], "user": ann.name, "text": "", "deleted": True}


def test_replying_to_an_unknown_or_deleted_message_is_refused(server, room):
    ann = signed_in(server, "ann")
    status, body = reply(ann, room, "to nothing", "1-0")
    assert (status, body["code"]) == (404, "unknown_message")
    _, original = ann.post(room, "gone")
    ann.request("DELETE", "/rooms/%s/messages/%s" % (room, original["id"]))
    status, body = reply(ann, room, "too late", original["id"])
    assert (status, body["code"]) == (409, "deleted")
    for not_an_id in (42, "zzz", "1-", "-1-0", "1-0 "):  # not an id at all: the request is wrong, not the room
        status, body = reply(ann, room, "bad", not_an_id)
        assert (status, body["code"]) == (400, "bad_reply_to"), not_an_id


def test_a_publish_token_may_reply_too(server, room):
    ann = signed_in(server, "ann")
    _, original = ann.post(room, "deploy?")
    bot = Browser(server.url)
    status, _, body = bot.request("POST", "/rooms/%s/messages" % room, body={
        "text": "deployed", "user": "deploy", "reply_to": original["id"]}, headers={"Authorization": "Bearer " + TOKEN})
    assert status == 201 and json.loads(body)["reply_to"]["id"] == original["id"]


def test_a_reply_form_without_javascript(server, room):
    ann = signed_in(server, "ann")
    _, original = ann.post(room, "question")
    _, _, page = ann.request("GET", "/rooms/%s?reply_to=%s" % (room, original["id"]), headers={"Accept": "text/html"})
    text = page.decode()
    assert 'name="reply_to" value="%s"' % original["id"] in text and "Replying to" in text
    status, _, _ = ann.request("POST", "/rooms/%s/messages" % room, headers={"Accept": "text/html"}, form={
        "text": "answer", "reply_to": original["id"], "csrf_token": ann.token, "idempotency_key": uuid.uuid4().hex})
    assert status == 303
    assert history(ann, room)[-1]["reply_to"]["id"] == original["id"]


def test_a_permalink_opens_the_page_around_a_message_far_back(server, room, redis_client):
    ann = signed_in(server, "ann")
    ids = []
    for i in range(120):
        ids.append(ann.post(room, "message number %d" % i)[1]["id"])
    target = ids[40]
    status, _, page = ann.request("GET", "/rooms/%s?at=%s" % (room, target), headers={"Accept": "text/html"})
    text = page.decode()
    assert status == 200
    assert 'id="m-%s"' % target in text and "target" in text.split('id="m-%s"' % target)[0].rsplit("<li", 1)[1]
    assert "message number 40<" in text and "message number 119<" not in text
    assert "Load older messages" in text and "Load newer messages" in text
    assert "data-archive" in text  # newer messages exist beyond it: not live
    newer = text.split('data-newer href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    _, _, page = ann.request("GET", newer, headers={"Accept": "text/html"})
    assert "message number 70<" in page.decode()


def test_a_permalink_near_the_newest_is_a_live_page(server, room):
    ann = signed_in(server, "ann")
    ids = [ann.post(room, "m%d" % i)[1]["id"] for i in range(5)]
    _, _, page = ann.request("GET", "/rooms/%s?at=%s" % (room, ids[2]), headers={"Accept": "text/html"})
    assert "data-archive" not in page.decode()


NOT_IN_ROOM = "The message this link points to is not in this room (it may have been deleted)."


def test_a_permalink_to_a_message_of_another_room_says_it_is_not_in_this_room(server, room):
    ann = signed_in(server, "ann")
    elsewhere = ann.post(room + "-other", "said elsewhere")[1]["id"]
    ann.post(room, "said here")
    status, _, page = ann.request("GET", "/rooms/%s?at=%s" % (room, elsewhere), headers={"Accept": "text/html"})
    page = page.decode()
    assert status == 404
    assert NOT_IN_ROOM in page and "said here<" in page  # the room around where it would be
    assert "target" not in page.split('data-messages', 1)[1]  # nothing highlighted


def test_a_permalink_to_a_message_in_this_room_says_nothing_is_missing(server, room):
    ann = signed_in(server, "ann")
    here = ann.post(room, "said here")[1]["id"]
    status, _, page = ann.request("GET", "/rooms/%s?at=%s" % (room, here), headers={"Accept": "text/html"})
    assert status == 200 and NOT_IN_ROOM not in page.decode()


def test_the_missing_message_is_said_in_the_readers_language(server, room):
    ann = signed_in(server, "ann")
    _, _, page = ann.request("GET", "/rooms/%s?at=1700000000000-0" % room,
                             headers={"Accept": "text/html", "Accept-Language": "zh-CN"})
    assert "这个链接指向的消息不在本房间里（可能已被删除）。" in page.decode()


def test_broken_permalinks_are_400(server, room):
    ann = signed_in(server, "ann")
    status, _, _ = ann.request("GET", "/rooms/%s?at=nope" % room, headers={"Accept": "text/html"})
    assert status == 400
    status, _, _ = ann.request("GET", "/rooms/%s?at=1-0&before=1-0" % room, headers={"Accept": "text/html"})
    assert status == 400


def test_a_broken_permalink_says_so_in_plain_words_without_parameter_names_or_id_formats(server, room):
    # h62 finding 9: "Invalid link: “at” must be a message ID, e.g. 1732371730000-0." to a person
    # who only followed a link.
    ann = signed_in(server, "ann")
    for query in ("?at=nope", "?before=1-0&after=1-0"):
        for language, sentence in (("en", "This link does not point to a message in this room."),
                                   ("zh-CN", "这个链接没有指向本房间里的消息。")):
            status, _, page = ann.request("GET", "/rooms/%s%s" % (room, query),
                                          headers={"Accept": "text/html", "Accept-Language": language})
            assert status == 400
            page = page.decode()
            assert sentence in page
            assert "1732371730000" not in page and "“at”" not in page and "before, after" not in page
