"""Invitations after a removal or a ban, and links that no longer admit anyone (issue 15's
leftovers), through real Gunicorn (2 gevent workers) and real Redis."""
import json

import pytest

from .test_accounts import account_holder
from .test_rooms import answer, create, guest, invite, new_room, path_of


@pytest.fixture
def owner(server):
    return account_holder(server, "own")


@pytest.fixture
def room(owner):
    room = new_room("inv")
    assert create(owner, room, "private", "the plans topic")[0] == 201
    return room


def join(person, made):
    return answer(person, "POST", path_of(made["url"]))


def test_a_removed_member_cannot_rejoin_with_an_invitation_made_before_the_removal(server, owner, room):
    made, member = invite(owner, room), guest(server, "mem")
    assert join(member, made)[0] == 200
    assert owner.request("DELETE", "/rooms/%s/members/%s" % (room, member.name))[0] == 204
    status, body = join(member, made)
    assert (status, body["code"]) == (403, "removed")
    assert member.request("GET", "/rooms/%s/messages" % room)[0] == 404


def test_a_new_invitation_lets_a_removed_member_back(server, owner, room):
    member = guest(server, "mem")
    assert join(member, invite(owner, room))[0] == 200
    assert owner.request("DELETE", "/rooms/%s/members/%s" % (room, member.name))[0] == 204
    assert join(member, invite(owner, room)) == (200, {"room": room, "role": "member"})


def test_an_invitation_from_before_a_ban_stays_refused_once_the_ban_is_lifted(server, owner, room):
    made, member = invite(owner, room), guest(server, "mem")
    assert join(member, made)[0] == 200
    status, ban = answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": member.name})
    assert status == 201
    assert owner.request("DELETE", "/rooms/%s/bans/%s" % (room, ban["user"]))[0] == 204
    assert join(member, made)[1]["code"] == "removed"


def test_a_member_who_left_may_come_back_with_the_same_invitation(server, owner, room):
    made, member = invite(owner, room), guest(server, "mem")
    assert join(member, made)[0] == 200
    assert member.request("DELETE", "/rooms/%s/members/%s" % (room, member.name))[0] == 204
    assert join(member, made)[0] == 200


def _kill(how, owner, room, made, redis_client, server):
    if how == "revoked":
        assert owner.request("DELETE", "/rooms/%s/invites/%s" % (room, made["id"]))[0] == 204
    elif how == "expired":
        key = "ripple:{r:%s}:invites" % room
        record = json.loads(redis_client.hget(key, made["id"]))
        record["expires"] = 1  # long past: no sleeping in tests
        redis_client.hset(key, made["id"], json.dumps(record))
    else:
        assert join(guest(server, "first"), made)[0] == 200


@pytest.mark.parametrize("how", ["revoked", "expired", "used up"])
def test_a_dead_invitations_page_says_it_expired_and_nothing_of_the_room(server, owner, room, redis_client, how):
    made = invite(owner, room, max_uses=1)
    _kill(how, owner, room, made, redis_client, server)
    visitor = guest(server, "vis")
    status, page = answer(visitor, "GET", path_of(made["url"]), headers={"Accept": "text/html"})
    assert status == 410 and "This invitation can no longer be used" in page
    assert room not in page and "plans" not in page
    status, body = answer(visitor, "GET", path_of(made["url"]))
    assert (status, body["code"]) == (410, "invite_used") and room not in json.dumps(body)


def test_a_banned_person_opening_an_invitation_is_told_so_instead_of_offered_join(server, owner, room):
    made, member = invite(owner, room), guest(server, "mem")
    assert join(member, made)[0] == 200
    assert answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": member.name})[0] == 201
    status, page = answer(member, "GET", path_of(invite(owner, room)["url"]), headers={"Accept": "text/html"})
    assert status == 403 and "You are banned from #%s." % room in page and "Join" not in page


def test_a_used_up_invitation_is_shown_so_on_the_manage_page_without_a_revoke_button(server, owner, room):
    made = invite(owner, room, max_uses=1)
    assert join(guest(server, "one"), made)[0] == 200
    status, page = answer(owner, "GET", "/rooms/%s/manage" % room, headers={"Accept": "text/html"})
    listed = page.split("<h2>Invitations</h2>", 1)[1].split("</table>", 1)[0]
    assert status == 200 and "used up" in listed and "Revoke" not in listed
