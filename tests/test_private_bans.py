"""What a ban means for reading (app/web/gate.py's rule): a private room's member under a ban (by
address: a ban by person ends the membership) reads nothing of it; a public room stays as public
to a banned person as it is to anyone signed out. Real Gunicorn (2 gevent workers), real Redis;
everyone here is 127.0.0.1."""
import json

import pytest

from .test_accounts import account_holder
from .test_reading import my_rooms
from .test_rooms import answer, create, guest, invite, new_room, path_of


def banned_member(server, visibility, before_ban=None):
    """(owner, member, room, a message id): ``member`` is a member of ``room`` whose address is
    banned (the owner's is spared: owners and moderators are)."""
    owner = account_holder(server, "own")
    room = new_room("ban")
    assert create(owner, room, visibility, "the plans topic")[0] == 201
    status, message = owner.post(room, "the secret plan")
    assert status == 201
    member = guest(server, "mem")
    assert answer(member, "POST", path_of(invite(owner, room)["url"]))[0] == 200
    if before_ban:
        before_ban(member, room)
    assert answer(owner, "POST", "/rooms/%s/bans" % room, body={"address": "127.0.0.1", "seconds": 600})[0] == 201
    return owner, member, room, message["id"]


@pytest.fixture
def private_ban(server):
    owner, member, room, mid = banned_member(server, "private")
    yield member, room, mid
    owner.request("DELETE", "/rooms/%s/bans/addr:127.0.0.1" % room)


@pytest.fixture
def public_ban(server):
    owner, member, room, mid = banned_member(server, "public")
    yield member, room, mid
    owner.request("DELETE", "/rooms/%s/bans/addr:127.0.0.1" % room)


def test_a_banned_member_reads_nothing_of_a_private_room(private_ban):
    member, room, mid = private_ban
    for path in ("/rooms/%s" % room, "/rooms/%s?at=%s" % (room, mid), "/rooms/%s/messages" % room,
                 "/rooms/%s/messages?around=%s" % (room, mid), "/rooms/%s/members" % room,
                 "/rooms/%s/presence" % room):
        status, _, body = member.request("GET", path)
        assert status == 403 and b"secret plan" not in body and b"plans topic" not in body, path
    status, body = answer(member, "GET", "/rooms/%s/messages" % room)
    assert body["code"] == "banned"
    stream = member.stream(room)
    assert stream.status == 403
    stream.close()


def test_a_banned_person_still_reads_a_public_room_as_anyone_signed_out_may(public_ban):
    member, room, mid = public_ban
    status, _, page = member.request("GET", "/rooms/%s?at=%s" % (room, mid))
    assert status == 200 and b"the secret plan" in page
    status, body = answer(member, "GET", "/rooms/%s/messages" % room)
    assert status == 200 and [m["text"] for m in body["messages"]] == ["the secret plan"]
    assert json.loads(member.request("POST", "/rooms/%s/messages" % room, body={"text": "x"})[2])["code"] == "banned"


def test_a_private_room_leaves_the_sidebar_of_a_member_banned_there(server):
    def opened(member, room):  # the room joins their sidebar
        assert member.request("GET", "/rooms/%s" % room)[0] == 200
        assert room in my_rooms(member)
    owner, member, room, _ = banned_member(server, "private", before_ban=opened)
    try:
        assert room not in my_rooms(member)
    finally:
        owner.request("DELETE", "/rooms/%s/bans/addr:127.0.0.1" % room)
