"""Rooms that belong to someone (issue 15), through real Gunicorn (2 gevent workers) and real
Redis: creating rooms, private rooms invisible to strangers on every route, invitations, roles."""
import json
import threading
import uuid

import pytest

from .test_accounts import account_holder, fresh
from .web import Browser


def new_room(prefix="r"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def guest(server, prefix="gus"):
    browser = Browser(server.url)
    assert browser.sign_in(fresh(prefix)) == 200
    return browser


def create(browser, room, visibility="public", topic=""):
    status, _, body = browser.request("POST", "/rooms", body={"name": room, "topic": topic,
                                                               "visibility": visibility})
    return status, json.loads(body or b"{}")


def answer(browser, method, path, body=None, headers=None):
    status, headers_, raw = browser.request(method, path, body=body, headers=headers)
    try:
        return status, json.loads(raw or b"{}")
    except ValueError:
        return status, raw.decode(errors="replace")


@pytest.fixture
def owner(server):
    return account_holder(server, "own")


@pytest.fixture
def private_room(owner):
    room = new_room("priv")
    assert create(owner, room, "private", "plans")[0] == 201
    assert owner.post(room, "the secret plan")[0] == 201
    return room


# Creating rooms -------------------------------------------------------------------------------

def test_creating_a_room_makes_its_creator_the_owner(server, owner):
    room = new_room()
    status, created = create(owner, room, "private", "  Our   plans ")
    assert status == 201
    assert created["room"] == room and created["visibility"] == "private" and created["topic"] == "Our plans"
    status, listed = answer(owner, "GET", "/rooms/%s/members" % room)
    assert status == 200
    assert [(m["name"], m["role"]) for m in listed["members"]] == [(owner.name, "owner")]


def test_a_room_name_is_taken_by_a_record_or_by_history(server, owner):
    room = new_room()
    assert create(owner, room)[0] == 201
    status, body = create(owner, room)
    assert status == 409 and body["code"] == "room_exists"
    talked = new_room()
    assert owner.post(talked, "hello")[0] == 201  # posting still creates a public room
    assert create(owner, talked, "private")[1]["code"] == "room_exists"


def test_creating_a_room_needs_a_sign_in_and_good_fields(server, owner):
    stranger = strangers(server)["signed out"]
    assert create(stranger, new_room())[0] == 401
    assert create(owner, "no spaces")[1]["code"] == "bad_room"
    assert create(owner, new_room(), "secret")[1]["code"] == "bad_visibility"
    assert create(owner, new_room(), topic="x" * 201)[1]["code"] == "bad_topic"


def test_a_public_room_nobody_posted_to_answers_as_before(server):
    reader = Browser(server.url)
    room = new_room("empty")
    assert answer(reader, "GET", "/rooms/%s/messages" % room) == (200, {
        "room": room, "messages": [], "more": False, "more_before": False, "more_after": False})
    assert reader.request("GET", "/rooms/%s" % room)[0] == 200
    stream = reader.stream(room)
    assert stream.status == 200 and stream.until("ready")[0].json()["room"] == room
    stream.close()


# Private rooms: nothing for strangers, on any route --------------------------------------------

def strangers(server):
    """Someone signed out, a guest and an account holder, none of them a member."""
    signed_out = Browser(server.url)
    status, _, body = signed_out.request("GET", "/session")
    signed_out.token = json.loads(body)["csrf_token"]
    return {"signed out": signed_out, "guest": guest(server), "account": account_holder(server, "str")}


@pytest.mark.parametrize("who", ["signed out", "guest", "account"])
def test_a_stranger_gets_404_and_nothing_else_from_every_route_of_a_private_room(server, private_room, who):
    stranger = strangers(server)[who]
    room = private_room
    routes = [("GET", "/rooms/%s" % room, None), ("GET", "/rooms/%s?before=9999999999999-0" % room, None),
              ("GET", "/rooms/%s/messages" % room, None), ("GET", "/rooms/%s/messages?after=0-0" % room, None),
              ("GET", "/rooms/%s/presence" % room, None), ("GET", "/rooms/%s/members" % room, None),
              ("POST", "/rooms/%s/messages" % room, {"text": "let me in"}),
              ("POST", "/rooms/%s/invites" % room, {}), ("GET", "/rooms/%s/bans" % room, None),
              ("GET", "/rooms/%s/manage" % room, None)]
    if who != "signed out":
        routes.append(("POST", "/rooms/%s/typing" % room, {}))
    for method, path, body in routes:
        status, _, raw = stranger.request(method, path, body=body)
        assert status == 404, (method, path, status)
        assert b"secret plan" not in raw and b"plans" not in raw, (method, path)


@pytest.mark.parametrize("who", ["signed out", "guest", "account"])
def test_a_strangers_stream_of_a_private_room_is_404_even_with_a_stolen_cursor(server, owner, private_room, who):
    stranger = strangers(server)[who]
    cursor = owner.stream(private_room, query="backlog=5")
    first = cursor.next()
    while first.name != "message":
        first = cursor.next()
    cursor.close()
    for headers in ({}, {"Last-Event-ID": first.id}, {"Last-Event-ID": "0-0"}):
        stream = stranger.stream(private_room, headers=headers)
        assert stream.status == 404
        assert b"secret plan" not in stream.response.read()
        stream.close()


def test_a_private_room_is_missing_from_the_lobby_of_strangers_and_listed_for_members(server, owner, private_room):
    stranger = guest(server)
    assert private_room.encode() not in stranger.request("GET", "/")[2]
    assert private_room.encode() in owner.request("GET", "/")[2]


def test_a_stranger_signed_in_without_javascript_is_not_marked_online_in_a_private_room(server, owner, private_room):
    stranger = guest(server)
    assert stranger.request("GET", "/rooms/%s/here.css" % private_room)[0] == 200
    assert stranger.name not in answer(owner, "GET", "/rooms/%s/presence" % private_room)[1]["online"]


def test_the_owner_reads_posts_and_streams_a_private_room(server, owner, private_room):
    assert b"the secret plan" in owner.request("GET", "/rooms/%s" % private_room)[2]
    status, page = answer(owner, "GET", "/rooms/%s/messages" % private_room)
    assert status == 200 and [m["text"] for m in page["messages"]] == ["the secret plan"]
    stream = owner.stream(private_room, query="backlog=5")
    assert stream.status == 200 and stream.until("message")[0].json()["text"] == "the secret plan"
    stream.close()


# Invitations ----------------------------------------------------------------------------------

def invite(browser, room, **limits):
    status, made = answer(browser, "POST", "/rooms/%s/invites" % room, body=limits)
    assert status == 201, made
    return made


def path_of(url):
    return "/" + url.split("/", 3)[3]


def test_an_invitation_makes_a_signed_in_person_a_member(server, owner, private_room):
    made = invite(owner, private_room, expires_in=3600)
    assert made["url"].startswith(server.url + "/invite/") and made["max_uses"] is None
    friend = guest(server, "fri")
    status, page = answer(friend, "GET", path_of(made["url"]), headers={"Accept": "text/html"})
    assert status == 200 and "Join #%s" % private_room in page
    assert answer(friend, "POST", path_of(made["url"])) == (200, {"room": private_room, "role": "member"})
    assert b"the secret plan" in friend.request("GET", "/rooms/%s" % private_room)[2]
    assert friend.name in [m["name"] for m in answer(owner, "GET", "/rooms/%s/members" % private_room)[1]["members"]]


def test_a_one_use_invitation_admits_exactly_one_of_many_at_once(server, owner, private_room):
    made = invite(owner, private_room, max_uses=1)
    people = [guest(server, "race") for _ in range(6)]
    results = [None] * len(people)

    def join(i):
        results[i] = people[i].request("POST", path_of(made["url"]), body={})[0]

    threads = [threading.Thread(target=join, args=(i,)) for i in range(len(people))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [200] + [410] * 5
    admitted = [p for p, status in zip(people, results) if status == 200]
    assert admitted[0].request("GET", "/rooms/%s/messages" % private_room)[0] == 200
    assert all(p.request("GET", "/rooms/%s/messages" % private_room)[0] == 404
               for p, status in zip(people, results) if status != 200)


def test_a_revoked_a_forged_and_an_expired_invitation_admit_nobody(server, owner, private_room, redis_client):
    made = invite(owner, private_room)
    assert owner.request("DELETE", "/rooms/%s/invites/%s" % (private_room, made["id"]))[0] == 204
    friend = guest(server, "fri")
    status, body = answer(friend, "POST", path_of(made["url"]))
    assert status == 404 and body["code"] == "invite_invalid"
    assert answer(friend, "POST", path_of(made["url"])[:-3] + "abc")[0] == 404
    short = invite(owner, private_room, expires_in=1)
    record = json.loads(redis_client.hget("ripple:{r:%s}:invites" % private_room, short["id"]))
    record["expires"] = 1  # long past: no sleeping in tests
    redis_client.hset("ripple:{r:%s}:invites" % private_room, short["id"], json.dumps(record))
    status, body = answer(friend, "POST", path_of(short["url"]))
    assert status == 410 and "expired" in body["error"]
    assert friend.request("GET", "/rooms/%s/messages" % private_room)[0] == 404


def test_a_signed_out_visitor_of_an_invitation_is_asked_to_sign_in_first(server, owner, private_room):
    made = invite(owner, private_room)
    visitor = strangers(server)["signed out"]
    status, page = answer(visitor, "GET", path_of(made["url"]), headers={"Accept": "text/html"})
    assert status == 200 and "Sign in first" in page and "secret plan" not in page
    assert answer(visitor, "POST", path_of(made["url"]))[1]["code"] == "signed_out"


def test_invitations_are_for_moderators_and_owners_only(server, owner, private_room):
    made = invite(owner, private_room)
    member = guest(server, "mem")
    answer(member, "POST", path_of(made["url"]))
    status, body = answer(member, "POST", "/rooms/%s/invites" % private_room, body={})
    assert status == 403 and body["code"] == "forbidden"
    assert answer(owner, "POST", "/rooms/%s/invites" % private_room, body={"max_uses": 0})[1]["code"] == "bad_max_uses"


# Roles ----------------------------------------------------------------------------------------

def test_the_owner_adds_an_account_by_name_and_appoints_a_moderator(server, owner, private_room):
    friend = account_holder(server, "acc")
    status, added = answer(owner, "PUT", "/rooms/%s/members/%s" % (private_room, friend.name))
    assert status == 200 and added["role"] == "member" and added["name"] == friend.name
    assert friend.request("GET", "/rooms/%s/messages" % private_room)[0] == 200
    status, body = answer(friend, "POST", "/rooms/%s/invites" % private_room, body={})
    assert status == 403
    assert answer(owner, "PUT", "/rooms/%s/moderators/%s" % (private_room, friend.name))[1]["role"] == "moderator"
    assert answer(friend, "POST", "/rooms/%s/invites" % private_room, body={})[0] == 201
    assert answer(owner, "DELETE", "/rooms/%s/moderators/%s" % (private_room, friend.name))[1]["role"] == "member"
    assert answer(owner, "PUT", "/rooms/%s/members/%s" % (private_room, "nobody-" + fresh()))[1]["code"] == "no_account"


def test_only_the_owner_changes_the_room_and_appoints(server, owner, private_room):
    made = invite(owner, private_room)
    member = guest(server, "mem")
    answer(member, "POST", path_of(made["url"]))
    assert answer(member, "PATCH", "/rooms/%s" % private_room, body={"topic": "mine"})[1]["code"] == "forbidden"
    assert answer(member, "PUT", "/rooms/%s/moderators/%s" % (private_room, member.name))[0] == 403
    assert answer(member, "DELETE", "/rooms/%s" % private_room)[0] == 403
    status, changed = answer(owner, "PATCH", "/rooms/%s" % private_room, body={"topic": "new plans"})
    assert status == 200 and changed["topic"] == "new plans"


def test_a_link_cannot_tell_a_signed_in_person_they_are_signed_out(server):
    # /?expired=1 is where a create form refused for its session comes back: only the signed out
    # hear "you are signed out", whoever made the link.
    person = guest(server)
    status, _, page = person.request("GET", "/?expired=1&name=phish&topic=send+your+password",
                                      headers={"Accept": "text/html"})
    assert status == 200 and "you are signed out" not in page.decode()
    status, _, page = Browser(server.url).request("GET", "/?expired=1&name=mine", headers={"Accept": "text/html"})
    assert status == 200 and "you are signed out" in page.decode()


def test_a_member_removed_meanwhile_keeps_the_text_a_plain_form_could_not_send(server, owner, private_room):
    # helper-86: JavaScript off, no stream tells a member they were removed: their next post got
    # a bare 404 page, and what they had typed was gone.
    from .test_accounts import form_token
    bob = account_holder(server, "bob")
    assert answer(owner, "PUT", "/rooms/%s/members/%s" % (private_room, bob.name))[0] in (200, 201)
    page = "/rooms/%s" % private_room
    token = form_token(bob, page)
    assert answer(owner, "DELETE", "/rooms/%s/members/%s" % (private_room, bob.name))[0] in (200, 204)
    status, _, body = bob.request("POST", page + "/messages", form={
        "text": "am I <still> here?", "csrf_token": token, "idempotency_key": uuid.uuid4().hex})
    html = body.decode()
    assert status == 404 and "the secret plan" not in html  # still nothing of the room
    kept = '<textarea id="kept" class="kept" readonly rows="3" dir="auto" data-kept>\n' \
        'am I &lt;still&gt; here?</textarea>'
    assert kept in html
