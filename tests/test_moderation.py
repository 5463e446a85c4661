"""Moderation that takes effect at once, everywhere (issue 15), through real Gunicorn (2 gevent
workers) and real Redis: bans and removals end a person's streams on both workers within a
second and refuse their reconnects and posts; deleting a room ends every stream with an event
that says so; slow mode across workers; the audit record."""
import json
import re
import time

import pytest
from redis.crc import key_slot

from app.rooms import deletions, keys
from app.rooms.records import RecordKeys

from .servers import wait_until
from .support import TOKEN
from .test_accounts import account_holder, streams_on_both_workers
from .test_rooms import answer, create, guest, invite, new_room, path_of
from .web import Browser


@pytest.fixture
def owner(server):
    return account_holder(server, "own")


def room_with_member(server, owner, visibility="private"):
    room = new_room("mod")
    assert create(owner, room, visibility)[0] == 201
    member = guest(server, "mem")
    assert answer(member, "POST", path_of(invite(owner, room)["url"]))[0] == 200
    return room, member


def ended_with(stream, name, deadline):
    """The event ``name`` arrives before ``deadline`` (monotonic), and then the stream ends."""
    event, _ = stream.until(name, timeout=max(0.05, deadline - time.monotonic()))
    assert stream.next(timeout=5) is None  # the server ended it
    return event.json()


@pytest.mark.parametrize("visibility", ["private", "public"])
def test_a_ban_ends_the_persons_streams_on_both_workers_within_a_second(server, owner, visibility):
    room, member = room_with_member(server, owner, visibility)
    streams = streams_on_both_workers(server, member, room)
    watcher = owner.stream(room)
    watcher.until("ready")
    started = time.monotonic()
    status, ban = answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": member.name})
    assert status == 201 and ban["until"] == 0
    for stream in streams:
        said = ended_with(stream, "removed", started + 1.0 + 0.5)  # one second, and the POST's trip
        assert said == {"room": room, "reason": "banned", "message": "You were banned from #%s." % room}
    assert time.monotonic() - started < 3
    owner.post(room, "still here")
    assert watcher.until("message")[0].json()["text"] == "still here"  # others stay
    watcher.close()


def test_a_timed_bans_event_says_when_it_lapses(server, owner):
    room, member = room_with_member(server, owner, "public")
    stream = member.stream(room)
    stream.until("ready")
    ban = answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": member.name, "seconds": 600})[1]
    said = ended_with(stream, "removed", time.monotonic() + 5)
    assert said["reason"] == "banned" and said["until"] == ban["until"]
    assert 595 <= said["seconds_left"] <= 600  # by the server's clock: a browser's may be off


def test_a_banned_persons_reconnect_and_posts_are_refused_so_eventsource_stops(server, owner):
    room, member = room_with_member(server, owner, "public")
    answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": member.name, "seconds": 600})
    again = member.stream(room, headers={"Last-Event-ID": "0-0"})
    assert again.status == 403  # any status but 200 ends an EventSource for good
    assert json.loads(again.response.read())["code"] == "banned"
    again.close()
    status, body = member.post(room, "let me back")
    assert status == 403 and body["code"] == "banned" and "until" in body["error"]
    assert answer(member, "POST", "/rooms/%s/typing" % room, body={})[0] == 403
    assert member.request("GET", "/rooms/%s/messages" % room)[0] == 200  # public: still readable


@pytest.mark.parametrize("again_as", [str, str.upper], ids=["same-name", "same-name-upper-case"])
def test_a_banned_guest_signing_in_again_with_the_name_is_still_banned(server, owner, again_as):
    room, member = room_with_member(server, owner, "public")
    assert answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": member.name})[0] == 201
    assert member.request("DELETE", "/session")[0] == 204  # "Leave", then back as a guest
    back = Browser(server.url)
    assert back.sign_in(again_as(member.name)) == 200
    stream = back.stream(room)
    assert stream.status == 403 and json.loads(stream.response.read())["code"] == "banned"
    stream.close()
    status, body = back.post(room, "I'm back")
    assert status == 403 and body["code"] == "banned"
    other = guest(server, "oth")  # another guest name is not banned
    assert other.post(room, "hello")[0] == 201


def test_a_banned_guest_signing_in_again_with_the_name_cannot_use_an_invitation(server, owner):
    room, member = room_with_member(server, owner, "private")
    assert answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": member.name})[0] == 201
    link = invite(owner, room)
    assert member.request("DELETE", "/session")[0] == 204
    back = Browser(server.url)
    assert back.sign_in(member.name) == 200
    status, body = answer(back, "POST", path_of(link["url"]))
    assert (status, body["code"]) == (403, "banned")
    assert answer(owner, "GET", "/rooms/%s/invites" % room)[1]["invites"][0]["uses"] == 0  # not spent


def test_a_guests_ban_is_listed_under_their_name_and_lifted_by_it(server, owner):
    room, member = room_with_member(server, owner, "public")
    ban = answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": member.name})[1]
    assert ban["user"].startswith("name:") and ban["name"] == member.name
    assert member.request("DELETE", "/session")[0] == 204  # nobody holds the name now
    assert owner.request("DELETE", "/rooms/%s/bans/%s?by=name" % (room, member.name))[0] == 204
    back = Browser(server.url)
    assert back.sign_in(member.name) == 200
    assert back.post(room, "back")[0] == 201


def test_a_timed_bans_refusal_says_how_long_is_left_in_the_readers_language(server, owner):
    room, member = room_with_member(server, owner, "public")
    answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": member.name, "seconds": 600})
    status, _, body = member.request("POST", "/rooms/%s/messages" % room, body={"text": "hm"},
                                     headers={"Accept-Language": "zh-CN"})
    assert status == 403
    assert "还有 10分钟" in json.loads(body)["error"]  # the UTC time alone misled readers east of it


def test_the_record_of_actions_reads_in_the_readers_language(server, owner):
    room, member = room_with_member(server, owner, "public")  # joined by an invitation
    answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": member.name, "seconds": 15})
    status, _, page = owner.request("GET", "/rooms/%s/manage" % room, headers={"Accept-Language": "zh-CN"})
    record = page.decode().split("<table", 2)[-1]
    assert status == 200 and "加入了" in record and "15 秒" in record
    assert ">join<" not in record and "for 15" not in record


def test_the_record_of_actions_says_changes_and_invitations_in_words_not_internal_text(server, owner, redis_client):
    room, member = room_with_member(server, owner)  # an invitation that never expires, and a join by it
    changes = {"slow_mode_seconds": 20, "topic": "plans, for now"}
    assert answer(owner, "PATCH", "/rooms/%s" % room, body=changes)[0] == 200
    assert answer(owner, "PATCH", "/rooms/%s" % room, body={"slow_mode_seconds": 0, "visibility": "private"})[0] == 200
    assert answer(owner, "POST", "/rooms/%s/invites" % room, body={"expires_in": 3600, "max_uses": 5})[0] == 201
    # Entries are stored as they always were (the audit API's "detail"): an old one reads the same.
    details = [a["detail"] for a in answer(owner, "GET", "/rooms/%s/audit" % room)[1]["actions"]]
    assert details[:2] == ["expires_in=3600 max_uses=5", "slow=0, visibility=private"]
    redis_client.xadd("ripple:{r:%s}:audit" % room, {"at": "1", "room": room, "actor": "", "actor_name": "old",
                                                     "action": "change", "target": "", "detail": "odd text"})
    page = owner.request("GET", "/rooms/%s/manage" % room, headers=PAGE)[2].decode()
    record = page.split("data-audit", 1)[1]
    assert "<th>详情</th>" in record  # the detail column has a header
    for said in ("慢速模式：20 秒；主题：plans, for now", "慢速模式：关闭；可见性：私密",
                 "邀请：1小时后过期，最多使用 5 次", "邀请：永不过期，不限次数", "通过邀请链接", "可见性：私密",
                 "odd text"):
        assert said in record, said
    for raw in ("slow=", "visibility=", "expires_in", "None", "invite "):
        assert raw not in record, raw
    english = owner.request("GET", "/rooms/%s/manage" % room, headers={"Accept": "text/html"})[2].decode()
    assert "Invitation: expires after 1 hour, up to 5 uses" in english
    assert "Slow mode: 20 s; Topic: plans, for now" in english


def test_the_manage_page_says_who_is_signed_in_and_offers_sign_out(server, owner):
    room, _ = room_with_member(server, owner)
    page = owner.request("GET", "/rooms/%s/manage" % room, headers=PAGE)[2].decode()
    assert '<strong dir="auto" data-whoami>%s</strong>' % owner.name in page
    assert 'action="/session/leave"' in page and "退出" in page


def test_the_manage_page_says_a_ban_ends_membership_and_how_guests_get_in(server, owner):
    room, member = room_with_member(server, owner)
    assert answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": member.name})[0] == 201
    page = owner.request("GET", "/rooms/%s/manage" % room, headers=PAGE)[2].decode()
    bans = page.split("<h2>封禁</h2>", 1)[1]
    assert "解除封禁后成员身份也不会恢复" in bans and "新的邀请链接" in bans  # said before the owner acts
    assert "访客（没有账号）请通过下方的邀请链接加入" in page.split("按名称添加账号", 1)[1]
    # What it warns of: unbanned, the guest is still out of the private room.
    ban = answer(owner, "GET", "/rooms/%s/bans" % room)[1]["bans"][0]
    assert owner.request("DELETE", "/rooms/%s/bans/%s" % (room, ban["user"]))[0] == 204
    assert member.request("GET", "/rooms/%s" % room)[0] == 404


def test_unbanning_lets_the_person_back(server, owner):
    room, member = room_with_member(server, owner, "public")
    ban = answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": member.name})[1]
    assert [b["user"] for b in answer(owner, "GET", "/rooms/%s/bans" % room)[1]["bans"]] == [ban["user"]]
    assert owner.request("DELETE", "/rooms/%s/bans/%s" % (room, ban["user"]))[0] == 204
    assert member.post(room, "back")[0] == 201
    assert answer(owner, "GET", "/rooms/%s/bans" % room)[1]["bans"] == []


def test_a_timed_ban_lapses_by_itself(server, owner, redis_client):
    room, member = room_with_member(server, owner, "public")
    ban = answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": member.name, "seconds": 60})[1]
    record = json.loads(redis_client.hget("ripple:{r:%s}:bans" % room, ban["user"]))
    record["until"] = int(time.time() * 1000) - 1  # its minute is over: no sleeping in tests
    redis_client.hset("ripple:{r:%s}:bans" % room, ban["user"], json.dumps(record))
    assert member.post(room, "back")[0] == 201


@pytest.mark.parametrize("address", ["fe80::1%eth0", "fe80::1%a\nb"])
def test_an_address_with_a_zone_is_not_a_ban(server, owner, address):
    room, _ = room_with_member(server, owner, "public")
    status, body = answer(owner, "POST", "/rooms/%s/bans" % room, body={"address": address})
    assert (status, body["code"]) == (400, "bad_address")


def test_a_ban_by_address_refuses_everyone_from_it(server, owner):
    room, member = room_with_member(server, owner, "public")
    status, _ = answer(owner, "POST", "/rooms/%s/bans" % room, body={"address": "127.0.0.1", "seconds": 60})
    assert status == 201
    assert member.post(room, "hi")[1]["code"] == "banned"
    anonymous = Browser(server.url).stream(room)
    assert anonymous.status == 403
    anonymous.close()
    status, body = answer(owner, "POST", "/rooms/%s/bans" % room, body={"address": "nowhere"})
    assert status == 400 and body["code"] == "bad_address"


def test_removing_a_member_ends_their_streams_and_their_access_to_a_private_room(server, owner):
    room, member = room_with_member(server, owner)
    streams = streams_on_both_workers(server, member, room)
    started = time.monotonic()
    assert owner.request("DELETE", "/rooms/%s/members/%s" % (room, member.name))[0] == 204
    for stream in streams:
        assert ended_with(stream, "removed", started + 1.5)["reason"] == "removed"
    assert member.request("GET", "/rooms/%s/messages" % room)[0] == 404
    assert member.stream(room).status == 404


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("method, path, status", [
    ("PUT", "/rooms/%s/moderators/%s", 200),
    ("DELETE", "/rooms/%s/members/%s", 204),
    ("POST", "/rooms/%s/invites", 201),
])
def test_an_empty_body_sent_as_json_counts_as_an_empty_object(server, owner, method, path, status):
    # Many HTTP clients send the Content-Type on every request, body or not: it was 400 bad_body.
    room, member = room_with_member(server, owner)
    target = path % (room, member.name) if path.count("%s") == 2 else path % room
    assert owner.request(method, target, headers=JSON, raw=b"")[0] == status


@pytest.mark.parametrize("raw", [b"{", b"[]", b"null", b" "])
def test_a_json_body_that_is_not_an_object_is_still_refused(server, owner, raw):
    room, member = room_with_member(server, owner)
    status, _, said = owner.request("PUT", "/rooms/%s/moderators/%s" % (room, member.name), headers=JSON, raw=raw)
    assert (status, json.loads(said)["code"]) == (400, "bad_body")


def test_a_member_who_leaves_is_told_they_left_not_that_they_were_removed(server, owner):
    room, member = room_with_member(server, owner)
    stream = member.stream(room)
    stream.until("ready")
    started = time.monotonic()
    assert member.request("DELETE", "/rooms/%s/members/%s" % (room, member.name))[0] == 204
    said = ended_with(stream, "removed", started + 1.5)
    assert (said["reason"], said["message"]) == ("left", "You left #%s." % room)


def test_a_member_may_leave_and_a_moderator_cannot_remove_the_owner(server, owner):
    room, member = room_with_member(server, owner)
    assert answer(owner, "PUT", "/rooms/%s/moderators/%s" % (room, member.name))[0] == 200
    status, body = answer(member, "DELETE", "/rooms/%s/members/%s" % (room, owner.name))
    assert status == 403 and body["code"] == "owner"
    assert answer(member, "POST", "/rooms/%s/bans" % room, body={"user": owner.name})[1]["code"] == "owner"
    assert member.request("DELETE", "/rooms/%s/members/%s" % (room, member.name))[0] == 204
    assert member.request("GET", "/rooms/%s" % room)[0] == 404


def test_making_a_room_private_ends_the_streams_of_everyone_but_its_members(server, owner):
    room, member = room_with_member(server, owner, "public")
    reader = Browser(server.url).stream(room)
    reader.until("ready")
    own = member.stream(room)
    own.until("ready")
    started = time.monotonic()
    assert answer(owner, "PATCH", "/rooms/%s" % room, body={"visibility": "private"})[1]["visibility"] == "private"
    assert ended_with(reader, "removed", started + 1.5)["reason"] == "private"
    owner.post(room, "members only now")
    assert own.until("message")[0].json()["text"] == "members only now"
    own.close()


def test_deleting_a_room_ends_every_stream_with_an_event_and_frees_its_name(server, owner, redis_client):
    room, member = room_with_member(server, owner, "public")
    owner.post(room, "history")
    streams = streams_on_both_workers(server, member, room) + [Browser(server.url).stream(room)]
    streams[-1].until("ready")
    started = time.monotonic()
    assert owner.request("DELETE", "/rooms/%s" % room)[0] == 204
    for stream in streams:
        assert ended_with(stream, "room-deleted", started + 1.5)["reason"] == "deleted"
    # A presence refresh racing the deletion may re-add a member; it expires within seconds.
    # (but its tombstone: RecordKeys.gone, the last id the history gave, which refuses a reconnect,
    # and the note that it was deleted, app/rooms/deletions.py).
    wait_until(lambda: sorted(redis_client.keys("ripple:{r:%s}*" % room)) == sorted(
        [RecordKeys(room).gone, deletions.key(room)]), timeout=15, message="the room's keys gone")
    assert answer(owner, "GET", "/rooms/%s/messages" % room)[1]["messages"] == []
    assert create(owner, room)[0] == 201


def test_a_deleted_rooms_streams_are_refused_their_reconnect_but_its_name_lives_on(server, owner):
    room = new_room("del")
    assert create(owner, room, "public")[0] == 201
    assert owner.post(room, "history")[0] == 201
    anonymous, signed_in = Browser(server.url).stream(room), owner.stream(room)
    for stream in (anonymous, signed_in):
        stream.until("ready")
    assert owner.request("DELETE", "/rooms/%s" % room)[0] == 204
    for stream in (anonymous, signed_in):
        assert ended_with(stream, "room-deleted", time.monotonic() + 5)["reason"] == "deleted"
    cursor = anonymous.last_id
    assert cursor and signed_in.last_id
    # The reconnects an EventSource makes (the fast path and Flask's): refused for good, 410.
    for again in (Browser(server.url).stream(room, headers={"Last-Event-ID": cursor}),
                  owner.stream(room, headers={"Last-Event-ID": signed_in.last_id}),
                  Browser(server.url).stream(room, query="last_event_id=" + cursor),
                  Browser(server.url).stream(room, headers={"Last-Event-ID": cursor,  # Flask's path
                                                            "Authorization": "Bearer " + TOKEN})):
        assert again.status == 410
        assert json.loads(again.body) == {"error": "#%s was deleted by its owner or an administrator." % room,
                                          "code": "room_deleted"}
    # The name is free: a new stream opens, and so does a reconnect from the new room's history.
    fresh = Browser(server.url).stream(room)
    assert fresh.status == 200
    fresh.until("ready")
    assert create(owner, room, "public")[0] == 201  # on purpose: posting alone no longer creates it
    assert owner.post(room, "a new room")[0] == 201
    newer = fresh.until("message")[0].id
    fresh.close()
    resumed = Browser(server.url).stream(room, headers={"Last-Event-ID": newer})
    assert resumed.status == 200
    resumed.until("ready")
    resumed.close()


def test_a_deleted_rooms_tombstone_is_the_last_id_its_history_gave_not_its_last_entry(server, owner, redis_client):
    # A client may hold the id of an entry that left the log after its last one (moved or
    # trimmed): its reconnect is from the deleted history too, never the new room's (L4).
    room = new_room("del")
    assert create(owner, room, "public")[0] == 201
    assert owner.post(room, "kept")[0] == 201
    heard = owner.post(room, "gone before the room")[1]["id"]
    redis_client.xdel(keys.RoomKeys(room).log, heard)
    assert owner.request("DELETE", "/rooms/%s" % room)[0] == 204
    assert redis_client.get(RecordKeys(room).gone) == heard
    for again in (Browser(server.url).stream(room, headers={"Last-Event-ID": heard}),  # the fast path
                  owner.stream(room, headers={"Last-Event-ID": heard})):
        assert again.status == 410 and json.loads(again.body)["code"] == "room_deleted"


def test_a_new_room_under_a_deleted_ones_name_is_never_refused_even_with_a_clock_behind(server, owner, redis_client):
    # The deleted room's ids came from a master whose clock was ahead of this one's (a
    # failover): the new room's log starts past its tombstone, so none of its cursors is taken
    # for one from the deleted history (L5).
    room = new_room("del")
    assert create(owner, room, "public")[0] == 201
    assert owner.post(room, "old")[0] == 201
    assert owner.request("DELETE", "/rooms/%s" % room)[0] == 204
    ahead = "%d-7" % (time.time() * 1000 + 86400 * 1000)  # a day ahead of this clock
    redis_client.set(RecordKeys(room).gone, ahead, keepttl=True)
    assert create(owner, room, "public")[0] == 201  # the name made a room again, on purpose
    reader = Browser(server.url).stream(room)
    reader.until("ready")
    status, first = owner.post(room, "new")
    assert status == 201 and keys.parse_stream_id(first["id"]) > keys.parse_stream_id(ahead)
    assert reader.until("message")[0].json()["text"] == "new"
    reader.close()
    for again in (Browser(server.url).stream(room, headers={"Last-Event-ID": first["id"]}),  # the fast path
                  owner.stream(room, headers={"Last-Event-ID": first["id"]})):
        assert again.status == 200
        again.until("ready")
        again.close()
    assert [m["text"] for m in answer(owner, "GET", "/rooms/%s/messages" % room)[1]["messages"]] == ["new"]


def test_a_deleted_private_room_leaves_its_members_sidebars_and_its_name_says_it_was_deleted(server, owner):
    # h55 finding 2: the room stayed in its former members' sidebars, and its link opened an
    # empty public room of the same name, where a member talking on was talking in public.
    room, member = room_with_member(server, owner)
    assert owner.post(room, "between us")[0] == 201
    for person in (owner, member):
        assert person.request("GET", "/rooms/%s" % room)[0] == 200  # the room joins the sidebar
        assert room in [entry["room"] for entry in answer(person, "GET", "/me/rooms")[1]]
    other = new_room("else")
    elsewhere = member.stream(other)  # another room's page follows this one's activity
    elsewhere.until("ready")
    assert owner.request("DELETE", "/rooms/%s" % room)[0] == 204
    event, _ = elsewhere.until("unread", timeout=5)
    assert event.json() == {"rooms": [], "hidden": [room]}  # that page drops it at once
    elsewhere.close()
    for person in (owner, member):
        assert room not in [entry["room"] for entry in answer(person, "GET", "/me/rooms")[1]]
        assert room not in person.request("GET", "/")[2].decode()  # no longer in "my rooms"
    # Its page says what happened, in the reader's language, with a way to start anew on purpose.
    status, _, page = member.request("GET", "/rooms/%s" % room)
    assert status == 410 and "#%s was deleted by its owner or an administrator." % room in page.decode()
    assert "Create a new #%s" % room in page.decode() and "/?name=%s" % room in page.decode()
    status, _, page = member.request("GET", "/rooms/%s" % room, headers={"Accept-Language": "zh-CN"})
    assert status == 410 and "#%s 已被创建者或管理员删除" % room in page.decode()
    assert room not in [entry["room"] for entry in answer(member, "GET", "/me/rooms")[1]]  # not again
    # Talking on, from an old page (a plain form) or a program, creates no public room.
    status, _, page = member.request("POST", "/rooms/%s/messages" % room,
                                     form={"text": "still here?", "csrf_token": member.token})
    assert status == 410 and "was deleted" in page.decode()
    status, said = member.post(room, "still here?")
    assert status == 410 and said["code"] == "room_deleted"
    assert answer(owner, "GET", "/rooms/%s/messages" % room)[1]["messages"] == []
    # Creating it on purpose (the lobby's form) makes the name a room again.
    assert create(member, room, "private")[0] == 201
    assert member.request("GET", "/rooms/%s" % room)[0] == 200
    assert member.post(room, "a new start")[0] == 201
    assert answer(owner, "GET", "/rooms/%s" % room)[0] == 404  # private: the old owner is no member


def test_only_the_owner_deletes_a_room(server, owner):
    room, member = room_with_member(server, owner)
    answer(owner, "PUT", "/rooms/%s/moderators/%s" % (room, member.name))
    assert answer(member, "DELETE", "/rooms/%s" % room)[1]["code"] == "forbidden"


PAGE = {"Accept": "text/html", "Accept-Language": "zh-CN"}


def test_a_rooms_delete_form_asks_first_then_says_it_was_deleted_where_the_owner_lands(server, owner):
    room = new_room("del")
    assert create(owner, room, "private")[0] == 201
    assert owner.post(room, "history")[0] == 201
    assert owner.request("GET", "/rooms/%s" % room)[0] == 200  # in the owner's sidebar now
    status, _, manage = owner.request("GET", "/rooms/%s/manage" % room, headers=PAGE)
    assert re.search(r'<button type="submit" class="danger">删除 #%s' % room, manage.decode())  # red, not blue
    # The manage page's form, as sent: a mis-tap deletes nothing and lands on a page that asks.
    status, headers, _ = owner.request("POST", "/rooms/%s" % room, form={"_method": "DELETE"}, headers=PAGE)
    assert status == 303 and headers["Location"].endswith("/rooms/%s/delete" % room)
    assert answer(owner, "GET", "/rooms/%s/messages" % room)[1]["messages"]  # still there
    status, _, asked = owner.request("GET", "/rooms/%s/delete" % room, headers=PAGE)
    asked = asked.decode()
    assert status == 200 and "删除 #%s？" % room in asked and "无法撤销" in asked
    assert 'href="/rooms/%s/manage">取消</a>' % room in asked  # Cancel: back to the manage page
    assert 'name="confirm" value="1"' in asked and 'class="danger"' in asked
    assert owner.request("GET", "/rooms/%s/delete" % room, headers=PAGE)[0] == 200  # asking again is harmless
    status, headers, _ = owner.request("POST", "/rooms/%s" % room, form={"_method": "DELETE", "confirm": "1"},
                                       headers=PAGE)
    assert status == 303 and headers["Location"] == "/"
    status, _, lobby = owner.request("GET", "/", headers=PAGE)
    lobby = lobby.decode()
    assert "#%s 已被删除。" % room in lobby  # said once, in the reader's language
    assert 'data-room="%s"' % room not in lobby  # and gone from the owner's rooms
    assert "已被删除" not in owner.request("GET", "/", headers=PAGE)[2].decode()


def test_a_member_leaves_a_private_room_from_its_page_after_being_told_what_it_means(server, owner):
    room, member = room_with_member(server, owner)
    page = member.request("GET", "/rooms/%s" % room, headers=PAGE)[2].decode()
    link = re.search(r'<a class="manage" data-leave href="([^"]+)">离开</a>', page)
    assert link, "the room page offers Leave"
    status, _, asked = member.request("GET", link.group(1), headers=PAGE)
    asked = asked.decode()
    assert status == 200 and "离开 #%s？" % room in asked and "只有通过邀请链接才能重新加入" in asked
    form = re.search(r'<form class="choices" method="post" action="([^"]+)">', asked).group(1).replace("&amp;", "&")
    assert member.request("GET", "/rooms/%s" % room)[0] == 200  # asking left nothing yet
    status, headers, _ = member.request("POST", form, form={"_method": "DELETE"}, headers=PAGE)
    assert status == 303 and headers["Location"] == "/"
    lobby = member.request("GET", "/", headers=PAGE)[2].decode()
    assert "你已离开 #%s。" % room in lobby and 'data-room="%s"' % room not in lobby
    assert member.request("GET", "/rooms/%s" % room)[0] == 404  # private: no longer theirs
    assert [a["action"] for a in answer(owner, "GET", "/rooms/%s/audit" % room)[1]["actions"]][0] == "leave"


def test_the_owner_is_offered_no_leave_but_told_why_and_a_public_rooms_member_what_stays(server, owner):
    room, member = room_with_member(server, owner, "public")
    asked = member.request("GET", "/rooms/%s/leave" % room, headers=PAGE)[2].decode()
    assert "你将不再是 #%s 的成员。这是公开房间" % room in asked
    page = owner.request("GET", "/rooms/%s" % room, headers=PAGE)[2].decode()
    assert "data-leave" not in page  # the owner's header has Manage
    status, _, told = owner.request("GET", "/rooms/%s/leave" % room, headers=PAGE)
    told = told.decode()
    assert status == 200 and "所以不能离开它" in told and 'name="_method"' not in told
    assert "不能离开它；要退出只能删除房间" in owner.request("GET", "/rooms/%s/manage" % room, headers=PAGE)[2].decode()
    assert Browser(server.url).request("GET", "/rooms/%s/leave" % room, headers=PAGE)[0] == 401


def test_a_program_still_deletes_a_room_at_once_and_only_the_owner_is_asked(server, owner):
    room, member = room_with_member(server, owner)
    assert answer(member, "GET", "/rooms/%s/delete" % room)[0] == 403  # a member is not asked
    status, _, _ = owner.request("POST", "/rooms/%s" % room, form={"_method": "DELETE"},
                                 headers={"Accept": "application/json"})
    assert status == 204


# Slow mode ------------------------------------------------------------------------------------

def test_slow_mode_refuses_then_admits_across_workers(server, owner, redis_client):
    room, member = room_with_member(server, owner, "public")
    assert answer(owner, "PATCH", "/rooms/%s" % room, body={"slow_mode_seconds": 30})[1]["slow_mode_seconds"] == 30
    assert member.post(room, "first")[0] == 201
    for _ in range(6):  # fresh connections: both workers answer some of them
        status, headers, body = member.request("POST", "/rooms/%s/messages" % room, body={"text": "again"})
        assert status == 429 and json.loads(body)["code"] == "slow_mode"
        assert 1 <= int(headers["Retry-After"]) <= 30 and "post again in" in json.loads(body)["error"]
    waits = redis_client.keys("ripple:{r:%s}:slow:*" % room)
    assert len(waits) == 1 and redis_client.delete(*waits) == 1  # the interval is over: no sleeping
    second = member.post(room, "second")
    assert second[0] == 201, second
    assert owner.post(room, "owners are exempt")[0] == 201 and owner.post(room, "twice")[0] == 201


def test_slow_mode_does_not_hold_back_the_post_after_one_that_was_refused(server, owner):
    room, member = room_with_member(server, owner, "public")
    answer(owner, "PATCH", "/rooms/%s" % room, body={"slow_mode_seconds": 30})
    status, _, body = member.request("POST", "/rooms/%s/messages" % room,
                                     body={"text": "re: that", "reply_to": "1-0"})  # no such message
    assert status == 404 and b"unknown_message" in body, body
    corrected = member.post(room, "re: that")
    assert corrected[0] == 201, corrected
    assert member.post(room, "and more")[1]["code"] == "slow_mode"


def test_slow_mode_never_holds_back_a_retry_of_a_stored_post(server, owner):
    room, member = room_with_member(server, owner, "public")
    answer(owner, "PATCH", "/rooms/%s" % room, body={"slow_mode_seconds": 30})
    first = member.post(room, "once", key="k-1")
    assert first[0] == 201
    assert member.post(room, "once", key="k-1") == (200, first[1])


def test_slow_mode_holds_back_a_plain_forms_changed_text_sent_with_the_same_key(server, owner):
    room, member = room_with_member(server, owner, "public")
    answer(owner, "PATCH", "/rooms/%s" % room, body={"slow_mode_seconds": 30})
    status, _, page = member.request("GET", "/rooms/%s" % room)
    token = page.decode().split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    sent = []
    for text in ("first", "first", "second"):  # a double click, then a new text on the same page
        sent.append(member.request("POST", "/rooms/%s/messages" % room, headers={"Accept": "text/html"},
                                   form={"text": text, "csrf_token": token, "idempotency_key": "page-k"})[0])
    assert sent == [303, 303, 429]


def test_slow_mode_without_javascript_keeps_the_text_and_says_when(server, owner):
    room, member = room_with_member(server, owner, "public")
    answer(owner, "PATCH", "/rooms/%s" % room, body={"slow_mode_seconds": 30})
    member.post(room, "first")
    status, _, page = member.request("GET", "/rooms/%s" % room)
    token = page.decode().split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    status, headers, page = member.request("POST", "/rooms/%s/messages" % room,
                                           form={"text": "my typed words", "csrf_token": token},
                                           headers={"Accept": "text/html"})
    assert status == 429 and headers["Retry-After"]
    assert "my typed words" in page.decode() and "Slow mode is on" in page.decode()


# The record -----------------------------------------------------------------------------------

def test_every_action_is_recorded_for_the_owner(server, owner):
    room, member = room_with_member(server, owner)
    answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": member.name, "seconds": 60})
    actions = answer(owner, "GET", "/rooms/%s/audit" % room)[1]["actions"]
    assert [a["action"] for a in actions] == ["ban", "join", "invite", "create"]
    assert actions[0]["actor_name"] == owner.name and actions[0]["target"] == member.name
    moderator = guest(server, "mdr")
    answer(moderator, "POST", path_of(invite(owner, room)["url"]))
    answer(owner, "PUT", "/rooms/%s/moderators/%s" % (room, moderator.name))
    assert answer(moderator, "GET", "/rooms/%s/audit" % room)[1]["code"] == "forbidden"


# Moderators delete anyone's message (through issue 16's delete) --------------------------------

def test_a_moderator_deletes_anyones_message_and_a_member_cannot(server, owner):
    room, member = room_with_member(server, owner, "public")
    moderator = guest(server, "mdr")
    answer(moderator, "POST", path_of(invite(owner, room)["url"]))
    answer(owner, "PUT", "/rooms/%s/moderators/%s" % (room, moderator.name))
    status, rude = member.post(room, "rude words")
    assert status == 201
    watcher = Browser(server.url).stream(room)
    watcher.until("ready")
    status, body = answer(guest(server, "oth"), "DELETE", "/rooms/%s/messages/%s" % (room, rude["id"]))
    assert status == 403 and body["code"] == "not_yours_delete"
    assert moderator.request("DELETE", "/rooms/%s/messages/%s" % (room, rude["id"]))[0] == 204
    assert watcher.until("delete")[0].json()["message_id"] == rude["id"]
    watcher.close()
    shown = answer(owner, "GET", "/rooms/%s/messages" % room)[1]["messages"]
    assert [m.get("deleted") for m in shown if m["id"] == rude["id"]] == [True]
    assert "rude words" not in json.dumps(shown)


def test_a_stranger_cannot_touch_a_private_rooms_messages(server, owner):
    room, member = room_with_member(server, owner)
    status, said = member.post(room, "ours")
    stranger = guest(server, "str")
    base = "/rooms/%s/messages/%s" % (room, said["id"])
    for method, path, body in (("DELETE", base, None), ("PATCH", base, {"text": "mine now"}),
                               ("PUT", base + "/reactions/%F0%9F%91%8D", None)):
        assert stranger.request(method, path, body=body)[0] == 404, (method, path)


# Two hosts on one Redis, and one Cluster slot per room -------------------------------------------

@pytest.fixture(scope="module")
def two_hosts(server, other_host):
    """Two Ripple instances (separate masters, as separate hosts would be) on one Redis: the
    session's two (tests/conftest.py)."""
    return [server, other_host]


def test_a_ban_on_one_host_ends_the_persons_streams_on_both_hosts_within_a_second(two_hosts):
    a, b = two_hosts
    owner = account_holder(a, "own")
    room, member = room_with_member(a, owner, "public")
    elsewhere = Browser(b.url).same_session_as(member)
    streams = [member.stream(room), elsewhere.stream(room)]
    for stream in streams:
        stream.until("ready")
    started = time.monotonic()
    assert answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": member.name})[0] == 201
    for stream in streams:
        assert ended_with(stream, "removed", started + 1.5)["reason"] == "banned"
    again = elsewhere.stream(room, headers={"Last-Event-ID": "0-0"})
    assert again.status == 403  # refused on the other host too: the EventSource stops there
    again.close()


def test_every_key_of_a_room_record_shares_the_rooms_cluster_slot():
    k, h = RecordKeys("lobby"), keys.RoomKeys("lobby")
    names = [k.info, k.members, k.bans, k.invites, k.audit, k.slow("abc"), k.channel, h.log, h.meta, h.changed]
    assert len({key_slot(n.encode()) for n in names}) == 1


def test_a_moderator_sets_slow_mode_is_exempt_from_it_and_cannot_change_the_rest(server, owner):
    room, moderator = room_with_member(server, owner, "public")
    answer(owner, "PUT", "/rooms/%s/moderators/%s" % (room, moderator.name))
    status, changed = answer(moderator, "PATCH", "/rooms/%s" % room, body={"slow_mode_seconds": 60})
    assert status == 200 and changed["slow_mode_seconds"] == 60
    assert answer(moderator, "PATCH", "/rooms/%s" % room, body={"topic": "mine"})[1]["code"] == "forbidden"
    assert [moderator.post(room, text)[0] for text in ("one", "two", "three")] == [201, 201, 201]


@pytest.mark.parametrize("body", [{}, {"user": ""}, {"user": "  "}, {"user": 5}, {"user_id": ["x"]}, {"user": None}])
def test_a_ban_that_names_no_one_is_a_400_saying_whom_to_name(server, owner, body):
    room = new_room("mod")
    assert create(owner, room, "public")[0] == 201
    status, said = answer(owner, "POST", "/rooms/%s/bans" % room, body=body)
    assert status == 400 and said["code"] == "no_target" and "user_id" in said["error"]


@pytest.mark.parametrize("recorded", [True, False], ids=["created", "only-messages"])
def test_a_public_rooms_leave_page_tells_a_non_member_they_are_not_one_not_that_it_is_missing(server, owner,
                                                                                              recorded):
    room = new_room("mod")
    if recorded:
        assert create(owner, room, "public")[0] == 201
    else:
        assert owner.post(room, "hello")[0] == 201
    passer = guest(server, "pas")
    status, _, told = passer.request("GET", "/rooms/%s/leave" % room, headers={"Accept-Language": "zh-CN"})
    said = json.loads(told)
    assert status == 404 and said["code"] == "not_member" and "不是 #%s 的成员" % room in said["error"]
