"""Read positions, unread counts, the room sidebar and @mentions (issue 17) over HTTP, against
real Redis and the real 2-worker Gunicorn: the rules of the contract, the counts after a move on
another device, the live sync between two sessions of one account on both workers, and the
pages that work without JavaScript."""
import json
import re
import urllib.parse
import uuid

import pytest

from .support import post
from .test_accounts import PASSWORD, register, sign_in
from .web import Browser


def unique(name):
    return "%s-%s" % (name, uuid.uuid4().hex[:6])


def guest(server, name=None):
    person = Browser(server.url)
    assert person.sign_in(name or unique("ann")) == 200
    return person


def account_on_two_devices(server):
    """One account signed in on two browsers (two sessions of one person)."""
    laptop = Browser(server.url)
    name = unique("ann")
    assert register(laptop, name)[0] == 201
    phone = Browser(server.url)
    assert sign_in(phone, name, PASSWORD)[0] == 200
    return laptop, phone


def publish(server, room, text, user="bob"):
    status, body = post(server.url, room, text, user=user)
    assert status == 201, (status, body)
    return body["id"]


def visit(person, room):
    """Open the room's page (signed in): the room joins the person's sidebar."""
    status, _, page = person.request("GET", "/rooms/%s" % urllib.parse.quote(room))
    assert status == 200
    return page.decode()


def my_rooms(person):
    status, _, body = person.request("GET", "/me/rooms")
    assert status == 200, body
    return {entry["room"]: entry for entry in json.loads(body)}


def mark(person, room, mid):
    status, _, body = person.request("PUT", "/rooms/%s/read" % urllib.parse.quote(room), body={"id": mid})
    return status, json.loads(body) if body else None


# -- read positions and counts ----------------------------------------------------------------

def test_opening_a_room_puts_it_in_the_sidebar_with_nothing_unread(server, room):
    publish(server, room, "before anyone came")
    ann = guest(server)
    visit(ann, room)
    entry = my_rooms(ann)[room]
    assert entry["unread"] == 0 and entry["mentions"] == 0
    assert entry["read_id"] == entry["last_id"] and entry["last_activity"] == int(entry["last_id"].split("-")[0])


def test_unread_counts_what_came_after_the_position(server, room):
    publish(server, room, "seen")
    ann = guest(server)
    visit(ann, room)
    ids = [publish(server, room, "new %d" % i) for i in range(3)]
    assert my_rooms(ann)[room]["unread"] == 3
    assert mark(ann, room, ids[1]) == (204, None)
    entry = my_rooms(ann)[room]
    assert entry["unread"] == 1 and entry["read_id"] == ids[1] and entry["last_id"] == ids[2]


def test_a_position_never_moves_back(server, room):
    publish(server, room, "seen")
    ann = guest(server)
    visit(ann, room)
    ids = [publish(server, room, "new %d" % i) for i in range(3)]
    assert mark(ann, room, ids[2])[0] == 204
    assert mark(ann, room, ids[0])[0] == 204  # older: changes nothing, still 204
    entry = my_rooms(ann)[room]
    assert entry["read_id"] == ids[2] and entry["unread"] == 0


def test_an_id_past_the_newest_message_is_422(server, room):
    newest = publish(server, room, "the newest")
    ann = guest(server)
    visit(ann, room)
    ms = int(newest.split("-")[0])
    status, body = mark(ann, room, "%d-0" % (ms + 60_000))
    assert status == 422 and body["code"] == "read_ahead" and body["error"]


def test_a_malformed_id_is_400_and_a_stranger_is_401(server, room):
    ann = guest(server)
    status, body = mark(ann, room, "yesterday")
    assert status == 400 and body["code"] == "bad_id"
    stranger = Browser(server.url)
    _, _, session = stranger.request("GET", "/session")
    stranger.token = json.loads(session)["csrf_token"]
    status, body = mark(stranger, room, "1-0")
    assert status == 401 and body["code"] == "signed_out"
    assert stranger.request("GET", "/me/rooms")[0] == 401


def test_counts_stay_cheap_and_right_past_the_history_length(server, room):
    """The count is an ordinal difference: a room whose history was trimmed still counts every
    message after the position (here 1,000 kept; 30 new)."""
    publish(server, room, "seen")
    ann = guest(server)
    visit(ann, room)
    for i in range(30):
        publish(server, room, "n%d" % i)
    assert my_rooms(ann)[room]["unread"] == 30


def test_counts_stay_right_after_edits_reactions_and_deletions(server, room):
    """Only messages count: an edit or a reaction (events on the log) adds nothing, a deleted
    message after the position no longer counts, and a position on an edited message (its
    entry left the log) still counts from it."""
    ann = guest(server)
    bob = guest(server, unique("bob"))
    visit(ann, room)
    _, first = bob.post(room, "one")
    _, second = bob.post(room, "two")
    _, third = bob.post(room, "three")
    assert my_rooms(ann)[room]["unread"] == 3
    assert bob.request("PATCH", "/rooms/%s/messages/%s" % (room, first["id"]), body={"text": "one!"})[0] == 200
    assert bob.request("PUT", "/rooms/%s/messages/%s/reactions/%s" % (
        room, third["id"], urllib.parse.quote("👍")))[0] == 200
    assert my_rooms(ann)[room]["unread"] == 3
    assert bob.request("DELETE", "/rooms/%s/messages/%s" % (room, second["id"]))[0] == 204
    assert my_rooms(ann)[room]["unread"] == 2
    assert mark(ann, room, first["id"])[0] == 204  # edited: its entry is no longer in the log
    assert my_rooms(ann)[room]["unread"] == 1
    bob.post(room, "four")
    assert my_rooms(ann)[room]["unread"] == 2


def test_display_caps_at_99_plus(server, room):
    publish(server, room, "seen")
    ann = guest(server)
    visit(ann, room)
    for i in range(101):
        publish(server, room, "n%d" % i)
    assert my_rooms(ann)[room]["unread"] == 101
    status, _, lobby = ann.request("GET", "/")
    assert re.search(r'data-room="%s"[^>]*data-unread="101"' % room, lobby.decode())
    assert '>99+</span>' in lobby.decode()


# -- the sidebar ---------------------------------------------------------------------------------

def test_posting_puts_a_room_in_the_sidebar(server, room):
    ann = guest(server)
    status, _ = ann.post(room, "first words")
    assert status == 201
    assert room in my_rooms(ann)


def test_a_hidden_room_stays_hidden_until_shown(server, room):
    ann = guest(server)
    visit(ann, room)
    assert ann.request("DELETE", "/me/rooms/%s" % room)[0] == 204
    assert room not in my_rooms(ann)
    visit(ann, room)  # opening it again does not bring it back
    assert room not in my_rooms(ann)
    assert ann.request("PUT", "/me/rooms/%s" % room)[0] == 204
    assert room in my_rooms(ann)


def test_the_sidebar_is_ordered_by_activity(server):
    ann = guest(server)
    quiet, busy = "t-" + uuid.uuid4().hex[:12], "t-" + uuid.uuid4().hex[:12]
    publish(server, busy, "x")
    publish(server, quiet, "x")
    visit(ann, busy)
    visit(ann, quiet)
    publish(server, busy, "busier now")
    _, _, body = ann.request("GET", "/me/rooms")
    order = [entry["room"] for entry in json.loads(body) if entry["room"] in (quiet, busy)]
    assert order == [busy, quiet]


def test_the_sidebar_works_without_javascript(server, room):
    """Server-rendered counts; a plain form hides a room; the page read with JavaScript off
    marks itself read through its <noscript> stylesheet."""
    other = "t-" + uuid.uuid4().hex[:12]
    publish(server, other, "seen")
    ann = guest(server)
    visit(ann, other)
    publish(server, other, "unread one")
    publish(server, other, "unread two")
    page = visit(ann, room)
    item = re.search(r'<li data-room="%s"(.*?)</li>' % other, page, re.S).group(0)
    assert 'data-unread="2"' in item and re.search(r'data-badge[^>]*>2</span>', item)
    # The other room's page: its noscript stylesheet says what was read.
    page = visit(ann, other)
    css = re.search(r'<noscript>.*?href="([^"]*read\.css[^"]*)"', page, re.S).group(1)
    assert ann.request("GET", css.replace("&amp;", "&"))[0] == 200
    assert my_rooms(ann)[other]["unread"] == 0
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    status, headers, _ = ann.request("POST", "/me/rooms/%s" % other,
                                     form={"csrf_token": token, "action": "hide", "next": "/rooms/" + room})
    assert status == 303 and headers["Location"].endswith("/rooms/" + room)
    assert other not in my_rooms(ann)


# -- new since you left ------------------------------------------------------------------------

def test_the_page_marks_the_first_unread_message(server, room):
    publish(server, room, "old")
    ann = guest(server)
    visit(ann, room)
    first = publish(server, room, "first new")
    publish(server, room, "second new")
    page = visit(ann, room)
    assert re.search(r'class="msg[^"]*first-unread[^"]*"\s+id="m-%s"' % first, page)
    assert 'href="#m-%s"' % first in page and "Jump to first unread" in page


def test_a_page_with_many_unread_starts_at_the_first(server, room):
    publish(server, room, "old")
    ann = guest(server)
    visit(ann, room)
    first = publish(server, room, "first new")
    for i in range(60):  # more than a page (50)
        publish(server, room, "more %d" % i)
    page = visit(ann, room)
    ids = re.findall(r'data-id="(\d+-\d+)" data-kind="message"', page)
    assert ids[0] == first and len(ids) == 50
    assert "Load older messages" in page


def test_no_divider_when_nothing_is_new(server, room):
    publish(server, room, "old")
    ann = guest(server)
    visit(ann, room)
    assert "first-unread" not in visit(ann, room)


# -- mentions --------------------------------------------------------------------------------------

def test_a_mention_of_a_chinese_name_is_resolved_and_counted(server, room):
    xiaoming = guest(server, "小明" + uuid.uuid4().hex[:4])
    visit(xiaoming, room)
    ann = guest(server)
    status, message = ann.post(room, "@%s你好，看一下" % xiaoming.name)
    assert status == 201 and message["mentions"] == [xiaoming.name]
    entry = my_rooms(xiaoming)[room]
    assert entry["mentions"] == 1 and entry["unread"] == 1
    status, _, body = xiaoming.request("GET", "/me/mentions")
    found = json.loads(body)["mentions"]
    assert [(m["room"], m["id"], m["user"]) for m in found] == [(room, message["id"], ann.name)]
    assert mark(xiaoming, room, message["id"])[0] == 204
    assert my_rooms(xiaoming)[room]["mentions"] == 0


def test_mentions_are_case_and_width_insensitive_and_take_the_longest_name(server, room):
    tag = uuid.uuid4().hex[:4]
    short, long_ = guest(server, "ann" + tag), guest(server, "ann" + tag + " lee")
    visit(short, room)
    visit(long_, room)
    bob = guest(server)
    wide = "".join(chr(ord(c) + 0xFEE0) for c in ("ANN" + tag.upper()))  # full-width letters
    _, message = bob.post(room, "hi @%s LEE and @%s!" % (("ANN" + tag.upper()), wide))
    assert message["mentions"] == [long_.name, short.name]


def test_an_address_or_an_unknown_name_is_no_mention(server, room):
    ann = guest(server)
    visit(ann, room)
    bob = guest(server)
    _, message = bob.post(room, "mail me at x%s@example.com or ask @nobody-%s" % (ann.name, uuid.uuid4().hex))
    assert "mentions" not in message


def test_an_api_client_that_read_the_history_can_be_mentioned(server, room):
    ann = guest(server)  # no page, no post: it reads the history, as a client filling its view
    status, _, _ = ann.request("GET", "/rooms/%s/messages" % room, headers={"Accept": "application/json"})
    assert status == 200
    status, message = post(server.url, room, "your turn, @%s" % ann.name, user="ci-bot")
    assert status == 201 and message["mentions"] == [ann.name]
    assert room in my_rooms(ann)  # and the room is in its sidebar, as after opening its page


def test_a_publish_token_post_resolves_mentions_too(server, room):
    ann = guest(server)
    visit(ann, room)
    status, message = post(server.url, room, "deploy done, @%s" % ann.name, user="ci-bot")
    assert status == 201 and message["mentions"] == [ann.name]


def test_the_mentions_page_works_without_javascript(server, room):
    ann = guest(server)
    visit(ann, room)
    publish(server, room, "ping @%s about <b>this</b>" % ann.name)
    status, _, page = ann.request("GET", "/me/mentions", headers={"Accept": "text/html"})
    assert status == 200
    assert "#%s" % room in page.decode() and "&lt;b&gt;this&lt;/b&gt;" in page.decode()


@pytest.mark.parametrize("query", ["before=soon", "limit=0", "limit=1000"])
def test_bad_mention_queries_are_400(server, query):
    ann = guest(server)
    assert ann.request("GET", "/me/mentions?" + query)[0] == 400


# -- live, across devices and workers -------------------------------------------------------------

def streams_on_both_workers(server, devices, room):
    """One ready stream per device, on different workers."""
    for _ in range(20):
        streams = [device.stream(room) for device in devices]
        for stream in streams:
            stream.until("ready")
        if len({server.worker_of(s.local_port) for s in streams}) == len(devices):
            return streams
        for stream in streams:
            stream.close()
    pytest.fail("streams never landed on different workers")


def test_reading_on_one_device_clears_the_count_on_the_other_live(server, room):
    publish(server, room, "seen")
    laptop, phone = account_on_two_devices(server)
    visit(laptop, room)
    newest = publish(server, room, "read me on the phone")
    assert my_rooms(laptop)[room]["unread"] == 1
    laptop_stream, phone_stream = streams_on_both_workers(server, [laptop, phone], room)
    with laptop_stream, phone_stream:
        assert mark(phone, room, newest)[0] == 204
        read = json.loads(laptop_stream.messages(1, name="read")[0].data)
        assert read == {"room": room, "read_id": newest}
        unread = json.loads(laptop_stream.messages(1, name="unread")[0].data)
        assert [(e["room"], e["unread"], e["read_id"]) for e in unread["rooms"]] == [(room, 0, newest)]


def test_a_stream_opens_with_the_counts_and_follows_the_other_rooms(server, room):
    other = "t-" + uuid.uuid4().hex[:12]
    publish(server, other, "seen")
    ann = guest(server)
    visit(ann, other)
    publish(server, other, "while away")
    stream = ann.stream(room)
    with stream:
        _, before = stream.until("ready")
        snapshot = json.loads([e for e in before if e.name == "unread"][0].data)
        assert snapshot["complete"] and {e["room"]: e["unread"] for e in snapshot["rooms"]}[other] == 1
        mid = publish(server, other, "hello @%s" % ann.name)
        activity = stream.messages(1, name="activity")[0]
        assert activity.id is None  # unnumbered: it never moves the cursor
        assert json.loads(activity.data) == {"room": other, "user": "bob", "mentions": [ann.name],
                                             "text": "hello @%s" % ann.name, "id": mid}
        plain = publish(server, other, "no one named")
        assert json.loads(stream.messages(1, name="activity")[0].data) == {
            "room": other, "user": "bob", "mentions": [], "id": plain}


def test_a_private_room_leaves_the_sidebar_and_mentions_with_its_membership(server):
    room = "t-" + uuid.uuid4().hex[:12]
    owner, bob = Browser(server.url), Browser(server.url)
    assert register(owner, unique("owner"))[0] == 201
    assert register(bob, unique("bob"))[0] == 201
    status, _, body = owner.request("POST", "/rooms", body={"name": room, "visibility": "private"})
    assert status == 201, body
    assert owner.request("PUT", "/rooms/%s/members/%s" % (room, urllib.parse.quote(bob.name)))[0] in (200, 201, 204)
    visit(bob, room)
    status, message = owner.post(room, "@%s a secret for you" % bob.name)
    assert status == 201 and message["mentions"] == [bob.name]
    assert my_rooms(bob)[room]["mentions"] == 1
    assert owner.request("DELETE", "/rooms/%s/members/%s" % (room, urllib.parse.quote(bob.name)))[0] in (200, 204)
    assert room not in my_rooms(bob)
    _, _, body = bob.request("GET", "/me/mentions")
    assert json.loads(body)["mentions"] == []
    assert mark(bob, room, message["id"])[0] == 404
    stranger = guest(server)
    assert mark(stranger, room, message["id"])[0] == 404


def test_a_deleted_mention_stops_counting_and_leaves_the_mentions_page(server, room):
    ann = guest(server)
    visit(ann, room)
    bob = guest(server, unique("bob"))
    _, message = bob.post(room, "@%s look" % ann.name)
    assert my_rooms(ann)[room]["mentions"] == 1
    assert bob.request("DELETE", "/rooms/%s/messages/%s" % (room, message["id"]))[0] == 204
    entry = my_rooms(ann)[room]
    assert entry["mentions"] == 0 and entry["unread"] == 0
    _, _, body = ann.request("GET", "/me/mentions")
    assert json.loads(body)["mentions"] == []


def edit(person, room, mid, text):
    status, _, body = person.request("PATCH", "/rooms/%s/messages/%s" % (room, mid), body={"text": text})
    assert status == 200, body
    return json.loads(body)


def test_an_edit_that_mends_a_mistyped_mention_reaches_its_person(server, room):
    ann = guest(server)
    visit(ann, room)
    bob = guest(server, unique("bob"))
    _, message = bob.post(room, "@%sx look" % ann.name)  # a typo: nobody
    assert "mentions" not in message and my_rooms(ann)[room]["mentions"] == 0
    edited = edit(bob, room, message["id"], "@%s look" % ann.name)
    assert edited["mentions"] == [ann.name]
    assert my_rooms(ann)[room]["mentions"] == 1
    _, _, body = ann.request("GET", "/me/mentions")
    assert [m["id"] for m in json.loads(body)["mentions"]] == [message["id"]]


def test_a_mention_reacted_to_stays_on_the_mentions_page_as_it_is_now(server, room):
    ann = guest(server)
    visit(ann, room)
    bob = guest(server, unique("bob"))
    _, message = bob.post(room, "@%s look" % ann.name)
    path = "/rooms/%s/messages/%s" % (room, message["id"])
    assert ann.request("PUT", path + "/reactions/%F0%9F%91%8D")[0] == 200  # 👍
    edit(bob, room, message["id"], "@%s look at this" % ann.name)
    _, _, body = ann.request("GET", "/me/mentions")
    found = json.loads(body)["mentions"]
    assert [(m["id"], m["text"]) for m in found] == [(message["id"], "@%s look at this" % ann.name)]


def test_an_edit_that_drops_a_mention_stops_it_counting(server, room):
    ann, cat = guest(server), guest(server, unique("cat"))
    visit(ann, room)
    visit(cat, room)
    bob = guest(server, unique("bob"))
    _, message = bob.post(room, "@%s and @%s look" % (ann.name, cat.name))
    edited = edit(bob, room, message["id"], "only @%s now" % cat.name)
    assert edited["mentions"] == [cat.name]
    assert my_rooms(ann)[room]["mentions"] == 0 and my_rooms(cat)[room]["mentions"] == 1
    _, _, body = ann.request("GET", "/me/mentions")
    assert json.loads(body)["mentions"] == []
    assert "mentions" not in edit(bob, room, message["id"], "never mind")
    assert my_rooms(cat)[room]["mentions"] == 0


def test_an_edit_event_carries_the_new_texts_mentions(server, room):
    ann = guest(server)
    visit(ann, room)
    bob = guest(server, unique("bob"))
    _, message = bob.post(room, "hello")
    stream = ann.stream(room, headers={"Last-Event-ID": message["id"]})
    with stream:
        edit(bob, room, message["id"], "hello @%s" % ann.name)
        event, _ = stream.until("edit")
    assert json.loads(event.data)["mentions"] == [ann.name]


def test_sidebars_in_other_rooms_hear_an_edit_or_deletion_change_whom_a_message_mentions_and_the_deletion(server, room):
    ann = guest(server)
    visit(ann, room)
    bob = guest(server, unique("bob"))
    _, message = bob.post(room, "hello")
    stream = ann.stream("t-" + uuid.uuid4().hex[:12])  # reading another room: the sidebar follows this one
    with stream:
        stream.until("ready")
        edit(bob, room, message["id"], "hello @%s" % ann.name)
        added, _ = stream.until("mentions")
        assert bob.request("DELETE", "/rooms/%s/messages/%s" % (room, message["id"]))[0] == 204
        removed, _ = stream.until("mentions")
        deleted, _ = stream.until("deleted")
    assert json.loads(deleted.data) == {"room": room, "id": message["id"]}
    assert json.loads(added.data) == {"room": room, "id": message["id"], "added": [ann.name], "removed": [],
                                      "user": bob.name, "text": "hello @%s" % ann.name}
    assert json.loads(removed.data) == {"room": room, "id": message["id"], "added": [], "removed": [ann.name],
                                        "user": bob.name}


def test_an_open_stream_follows_a_room_joined_meanwhile(server, room):
    ann = guest(server)
    elsewhere = "t-" + uuid.uuid4().hex[:12]
    stream = ann.stream(room)
    with stream:
        stream.until("ready")
        visit(ann, elsewhere)  # in another tab, on either worker: the room joins her sidebar
        joined = json.loads(stream.messages(1, name="unread")[0].data)
        assert [entry["room"] for entry in joined["rooms"]] == [elsewhere]
        mid = publish(server, elsewhere, "hello there")
        activity = json.loads(stream.messages(1, name="activity")[0].data)
        assert (activity["room"], activity["id"]) == (elsewhere, mid)


@pytest.mark.parametrize("query", ["limit=²", "before=²", "limit=١٢", "before=0x10"])
def test_a_mentions_query_that_is_no_ascii_whole_number_is_a_400(server, query):
    # "²" passes str.isdigit() but not int(): it was a 500.
    status, _, body = guest(server).request("GET", "/me/mentions?" + urllib.parse.quote(query, safe="="),
                                             headers={"Accept": "application/json"})
    assert status == 400 and json.loads(body)["code"] == "bad_request", body
