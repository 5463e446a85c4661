"""Naming a member is never ambiguous: a display name that looks like someone's account id (24 hex
digits) names the person called that; a uid is named only with ``?by=id`` or ``user_id``."""
import pytest

from .test_accounts import account_holder
from .test_rooms import answer, create, invite, new_room, path_of
from .web import Browser


@pytest.fixture
def lookalike_room(server):
    """A private room with an account member and a guest member whose display name is that
    account's id: (owner, room, account member's uid, guest's name)."""
    owner, account = account_holder(server, "own"), account_holder(server, "acc")
    room = new_room("look")
    assert create(owner, room, "private")[0] == 201
    assert answer(account, "POST", path_of(invite(owner, room)["url"]))[0] == 200
    uid = next(m["id"] for m in answer(owner, "GET", "/rooms/%s/members" % room)[1]["members"]
               if m["name"] == account.name)
    assert len(uid) == 24
    lookalike = Browser(server.url)
    assert lookalike.sign_in(uid) == 200
    assert answer(lookalike, "POST", path_of(invite(owner, room)["url"]))[0] == 200
    return owner, room, uid, lookalike.name


def members(owner, room):
    return {(m["id"], m["name"]) for m in answer(owner, "GET", "/rooms/%s/members" % room)[1]["members"]}


def test_a_name_that_looks_like_an_account_id_names_the_person_called_that(lookalike_room):
    owner, room, uid, name = lookalike_room
    assert owner.request("DELETE", "/rooms/%s/members/%s" % (room, name))[0] == 204
    left = members(owner, room)
    assert uid in {i for i, _ in left} and name not in {n for _, n in left}


def test_by_id_names_a_member_by_uid_only(lookalike_room):
    owner, room, uid, name = lookalike_room
    assert owner.request("DELETE", "/rooms/%s/members/%s?by=id" % (room, uid))[0] == 204
    left = members(owner, room)
    assert uid not in {i for i, _ in left} and name in {n for _, n in left}


def test_a_ban_by_user_id_bans_the_account_and_by_user_the_lookalike(lookalike_room):
    owner, room, uid, name = lookalike_room
    status, ban = answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": name})
    assert status == 201 and ban["user"] != uid
    status, ban = answer(owner, "POST", "/rooms/%s/bans" % room, body={"user_id": uid})
    assert status == 201 and ban["user"] == uid
    assert {b["user"] for b in answer(owner, "GET", "/rooms/%s/bans" % room)[1]["bans"]} >= {uid}
