"""A ban by address holds for everyone at it but the room's owner and moderators (review of issue
15): nobody acts on the owner, a moderator on no other moderator (room_views._may_act_on), and an
address is shared (a household, an office's NAT; in these tests everyone is 127.0.0.1). Real
Gunicorn (2 gevent workers), real Redis."""
from .test_accounts import account_holder
from .test_rooms import answer, create, guest, invite, new_room, path_of


def test_a_moderators_ban_of_an_address_spares_the_owner_and_moderators_there(server):
    owner = account_holder(server, "own")
    room = new_room("addr")
    assert create(owner, room, "private")[0] == 201
    moderator, member = guest(server, "mod"), guest(server, "mem")
    for person in (moderator, member):
        assert answer(person, "POST", path_of(invite(owner, room)["url"]))[0] == 200
    assert answer(owner, "PUT", "/rooms/%s/moderators/%s" % (room, moderator.name))[0] == 200
    owners_stream = owner.stream(room)
    owners_stream.until("ready")
    status, _ = answer(moderator, "POST", "/rooms/%s/bans" % room, body={"address": "127.0.0.1", "seconds": 60})
    assert status == 201
    assert member.post(room, "hi")[1]["code"] == "banned"
    assert owner.post(room, "still mine")[0] == 201
    assert moderator.post(room, "still moderating")[0] == 201
    assert owners_stream.until("message")[0].json()["text"] == "still mine"  # not ended by the ban
    owners_stream.close()
    assert answer(owner, "DELETE", "/rooms/%s/bans/addr:127.0.0.1" % room)[0] in (200, 204)
