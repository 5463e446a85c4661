"""A private room's word reaches nobody who may no longer read it, through the routes that are
not the room's own (review of issues 15 and 17): the sidebar's live activity of a stream open in
another room, through real Gunicorn (2 gevent workers) and real Redis."""
import time

from .test_accounts import account_holder
from .test_rooms import answer, create, guest, invite, new_room, path_of
from .web import Browser


def heard_until_marker(person, stream, room, marker, deadline=20.0):
    """The events ``stream`` (open in ``room``) carries until the message ``marker`` arrives; a
    stream the server ends is reopened from its cursor, as an EventSource would."""
    heard, ends = [], time.monotonic() + deadline
    while True:
        event = stream.next(max(0.01, ends - time.monotonic()))
        if event is None:  # ended: reconnect where it left off
            cursor = stream.last_id
            stream.close()
            stream = person.stream(room, headers={"Last-Event-ID": cursor} if cursor else None)
            assert stream.status == 200
            continue
        heard.append(event)
        if event.name == "message" and event.json()["text"] == marker:
            stream.close()
            return heard


def sidebar_stream(server, person, elsewhere):
    """A stream of ``person`` open in the public room ``elsewhere`` (their sidebar's activity)."""
    assert person.post(elsewhere, "here too")[0] == 201
    stream = person.stream(elsewhere)
    stream.until("ready")
    return stream


def test_a_removed_member_hears_no_more_of_the_private_rooms_activity_in_another_room(server):
    owner = account_holder(server, "own")
    room, elsewhere = new_room("priv"), new_room("pub")
    assert create(owner, room, "private")[0] == 201
    member = guest(server, "mem")
    assert answer(member, "POST", path_of(invite(owner, room)["url"]))[0] == 200
    assert member.request("GET", "/rooms/%s" % room)[0] == 200  # in their sidebar now
    stream = sidebar_stream(server, member, elsewhere)
    owner.post(room, "before")
    assert stream.until("activity")[0].json()["room"] == room  # the sidebar follows it
    assert owner.request("DELETE", "/rooms/%s/members/%s" % (room, member.name))[0] == 204
    owner.post(room, "@%s the secret plan" % member.name)
    owner.post(elsewhere, "marker")
    heard = heard_until_marker(member, stream, elsewhere, "marker")
    assert [e.data for e in heard if room in e.data] == []


def test_a_room_made_private_stops_its_activity_reaching_non_members_elsewhere(server):
    owner = account_holder(server, "own")
    room, elsewhere = new_room("pub"), new_room("pub")
    assert create(owner, room, "public")[0] == 201
    reader = guest(server, "rdr")
    assert reader.post(room, "hello")[0] == 201  # in their sidebar
    stream = sidebar_stream(server, reader, elsewhere)
    assert answer(owner, "PATCH", "/rooms/%s" % room, body={"visibility": "private"})[0] == 200
    owner.post(room, "@%s members only now" % reader.name)
    owner.post(elsewhere, "marker")
    heard = heard_until_marker(reader, stream, elsewhere, "marker")
    assert [e.data for e in heard if room in e.data] == []


def test_a_member_keeps_the_private_rooms_activity_when_someone_else_is_removed(server):
    owner = account_holder(server, "own")
    room, elsewhere = new_room("priv"), new_room("pub")
    assert create(owner, room, "private")[0] == 201
    member, other = guest(server, "mem"), guest(server, "oth")
    for person in (member, other):
        assert answer(person, "POST", path_of(invite(owner, room)["url"]))[0] == 200
    assert member.request("GET", "/rooms/%s" % room)[0] == 200
    stream = sidebar_stream(server, member, elsewhere)
    assert owner.request("DELETE", "/rooms/%s/members/%s" % (room, other.name))[0] == 204
    owner.post(room, "still ours")
    event = stream.until("activity")[0]
    assert event.json()["room"] == room
    stream.close()


def test_the_admin_api_refuses_a_signed_out_browser_as_it_refuses_any_client(server):
    owner = account_holder(server, "own")
    room = new_room("priv")
    assert create(owner, room, "private", "plans")[0] == 201
    stranger = Browser(server.url)
    for path in ("/admin/api/rooms", "/admin/api/accounts", "/admin/api/bans", "/admin/api/audit",
                 "/admin/api/rooms/%s" % room):
        for accept in ("text/html", "application/json"):
            status, _, body = stranger.request("GET", path, headers={"Accept": accept})
            assert status == 401, (path, accept, status)
            assert room.encode() not in body and b"plans" not in body
        status, _, body = owner.request("GET", path, headers={"Accept": "text/html"})
        assert status == 403 and room.encode() not in body


def test_a_stream_open_on_a_free_name_hears_nothing_once_it_is_made_a_private_room(server):
    owner = account_holder(server, "own")
    room = new_room("plans")
    lurker = Browser(server.url).stream(room)  # a public room nobody posted to answers 200
    assert lurker.status == 200
    lurker.until("ready")
    assert create(owner, room, "private")[0] == 201
    owner.post(room, "the secret plan")
    heard = []
    while True:
        event = lurker.next(timeout=10)
        if event is None:
            break
        heard.append(event)
    lurker.close()
    assert [e for e in heard if "secret" in e.data] == []
    assert heard[-1].name == "removed" and heard[-1].json()["reason"] == "private"


def test_mentions_of_a_room_one_left_neither_show_nor_leave_the_page_short(server):
    owner = account_holder(server, "own")
    room, elsewhere = new_room("priv"), new_room("pub")
    assert create(owner, room, "private")[0] == 201
    member = guest(server, "mem")
    assert answer(member, "POST", path_of(invite(owner, room)["url"]))[0] == 200
    assert member.request("GET", "/rooms/%s" % room)[0] == 200  # the room knows their name
    assert member.post(elsewhere, "hello")[0] == 201
    assert owner.post(elsewhere, "@%s over here" % member.name)[0] == 201
    for text in ("the plan", "the other plan"):
        assert owner.post(room, "@%s %s" % (member.name, text))[0] == 201
    assert owner.request("DELETE", "/rooms/%s/members/%s" % (room, member.name))[0] == 204
    status, page = answer(member, "GET", "/me/mentions?limit=1")
    assert status == 200
    assert [m["text"] for m in page["mentions"]] == ["@%s over here" % member.name]
    assert page["more"] is False
