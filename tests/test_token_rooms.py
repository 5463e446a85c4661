"""Scoped publish tokens in a room's moderation: a room's bans stop a bot (by its uid
"token:<id>", or by the name it posts as), and a private room refuses a bot that is no member,
on every path a token writes (the fast path, Flask's JSON and form posts, edits, deletes and
reactions),
until its owner adds the bot as a member. The global publish token stays outside both."""
import json

import pytest

from .support import TOKEN, flask_cli
from .test_accounts import account_holder, register
from .test_publish_tokens import change, create, post
from .test_room_admin import BEARER, admin_app  # noqa: F401 (a fixture)
from .test_rooms import answer, invite, path_of
from .test_rooms import create as create_room
from .web import Browser


def uid_of(token):
    return "token:" + token[len("rpl_"):len("rpl_") + 16]


@pytest.fixture
def bot(redis_url, room):
    return create(redis_url, room + "*", "feed-bot", "feed-bot-2")[1]


@pytest.fixture
def owner(server):
    return account_holder(server, "own")


def form_post(server, room, token, text):
    """A token's form post (Accept: application/json): (status, JSON)."""
    return post(server.url, room, token, None, form={"text": text}, headers={"Accept": "application/json"})[:2]


def refused_everywhere(server, room, token, sent, status, code):
    """Every write of ``token`` to ``room`` is refused ``status``/``code``: the fast path's JSON
    post, a reply (Flask's JSON path), a form post, and an edit, a delete and a reaction of ``sent``."""
    assert post(server.url, room, token, {"text": "fast"})[:2][0] == status
    assert post(server.url, room, token, {"text": "fast"})[1]["code"] == code
    assert post(server.url, room, token, {"text": "reply", "reply_to": sent["id"]})[1]["code"] == code
    assert form_post(server, room, token, "form")[1]["code"] == code
    path = "/rooms/%s/messages/%s" % (room, sent["id"])
    assert change(server.url, "PATCH", path, token, {"text": "edited"})[1]["code"] == code
    assert change(server.url, "DELETE", path, token)[1]["code"] == code
    assert change(server.url, "PUT", path + "/reactions/👍", token)[1]["code"] == code


def test_a_ban_by_the_tokens_uid_stops_it_on_every_path_until_lifted(server, room, bot, owner):
    assert create_room(owner, room)[0] == 201
    sent = post(server.url, room, bot, {"text": "before the ban"})[1]
    assert sent["uid"] == uid_of(bot)
    status, ban = answer(owner, "POST", "/rooms/%s/bans" % room, body={"user_id": uid_of(bot)})
    assert status == 201 and ban["user"] == uid_of(bot) and ban["name"] == "feed-bot"
    assert [b["user"] for b in answer(owner, "GET", "/rooms/%s/bans" % room)[1]["bans"]] == [uid_of(bot)]
    refused_everywhere(server, room, bot, sent, 403, "banned")
    assert post(server.url, room, TOKEN, {"text": "the operator", "user": "feed-bot"})[0] == 201
    assert answer(owner, "DELETE", "/rooms/%s/bans/%s" % (room, uid_of(bot)))[0] == 204
    assert post(server.url, room, bot, {"text": "after the ban"})[0] == 201


def test_the_cli_bans_a_token_by_uid_and_a_bots_name_and_refuses_an_unknown_token(
        server, redis_url, room, bot):
    sent = post(server.url, room, bot, {"text": "hello"})[1]
    unknown = flask_cli(redis_url, "rooms", "ban", room, "token:0123456789abcdef")
    assert unknown.returncode == 2 and "no publish token" in unknown.stderr
    done = flask_cli(redis_url, "rooms", "ban", room, uid_of(bot), "--seconds", "60")
    assert done.returncode == 0 and "banned feed-bot" in done.stdout
    refused_everywhere(server, room, bot, sent, 403, "banned")
    assert flask_cli(redis_url, "rooms", "unban", room, uid_of(bot)).returncode == 0
    assert post(server.url, room, bot, {"text": "back"})[0] == 201
    # A name's ban stops whoever posts under that name: a guest, or a bot; not its other names,
    # and not the operator's global token.
    assert flask_cli(redis_url, "rooms", "ban", room, "name:Feed-Bot").returncode == 0
    status, body = post(server.url, room, bot, {"text": "as the banned name"})[:2]
    assert status == 403 and body["code"] == "banned"
    assert form_post(server, room, bot, "as the banned name")[1]["code"] == "banned"
    assert post(server.url, room, bot, {"text": "as its other name", "user": "feed-bot-2"})[0] == 201
    assert post(server.url, room, TOKEN, {"text": "the operator", "user": "feed-bot"})[0] == 201


def test_a_private_room_refuses_a_token_that_is_no_member_until_its_owner_adds_it(server, room, bot, owner):
    assert create_room(owner, room, "private")[0] == 201
    sent = owner.post(room, "members only")[1]
    for status, body in (post(server.url, room, bot, {"text": "fast"})[:2],
                         form_post(server, room, bot, "form"),
                         change(server.url, "DELETE", "/rooms/%s/messages/%s" % (room, sent["id"]), bot)):
        assert (status, body["code"], body["error"]) == (404, "not_found", "There is no room with that name.")
    assert owner.request("GET", "/rooms/%s/messages" % room)[1]  # the owner still reads it
    status, member = answer(owner, "PUT", "/rooms/%s/members/%s" % (room, uid_of(bot)))
    assert status == 200 and (member["id"], member["name"], member["role"]) == (uid_of(bot), "feed-bot", "member")
    assert post(server.url, room, bot, {"text": "a member now"})[0] == 201
    assert form_post(server, room, bot, "and by form")[0] == 201
    assert post(server.url, room, TOKEN, {"text": "the operator", "user": "ops"})[0] == 201
    assert answer(owner, "DELETE", "/rooms/%s/members/%s?by=id" % (room, uid_of(bot)))[0] in (200, 204)
    assert post(server.url, room, bot, {"text": "removed"})[0] == 404


def test_a_bot_is_never_made_a_moderator_and_deletes_only_its_own(server, redis_client, room, bot, owner):
    assert create_room(owner, room)[0] == 201
    sent = owner.post(room, "the owner's message")[1]
    assert answer(owner, "PUT", "/rooms/%s/members/%s" % (room, uid_of(bot)))[0] == 200
    page = owner.request("GET", "/rooms/%s/manage" % room)[2].decode()
    assert uid_of(bot) in page and "/moderators/%s?by=id" % uid_of(bot) not in page.replace("%3A", ":")
    for path in ("/rooms/%s/moderators/feed-bot" % room, "/rooms/%s/moderators/%s?by=id" % (room, uid_of(bot))):
        status, body = answer(owner, "PUT", path)
        assert (status, body["code"]) == (422, "bot_role")
        assert body["error"] == "A bot (publish token) can be a member of a room, not a moderator."
    status, body = answer(owner, "PUT", "/rooms/%s/moderators/feed-bot" % room, headers={"Accept-Language": "zh-Hans"})
    assert status == 422 and "bot" not in body["error"]  # in the reader's language
    assert answer(owner, "GET", "/rooms/%s/members" % room)[1]["members"][1]["role"] == "member"
    path = "/rooms/%s/messages/%s" % (room, sent["id"])
    assert change(server.url, "DELETE", path, bot)[1]["code"] == "not_yours_delete"
    # A role a room's record held for a bot before (made a moderator then) moderates nothing, and
    # adding the bot again puts it back to member.
    redis_client.hset("ripple:{r:%s}:members" % room, uid_of(bot),
                      '{"name": "feed-bot", "role": "moderator", "since": 1}')
    assert change(server.url, "DELETE", path, bot)[1]["code"] == "not_yours_delete"
    assert owner.request("GET", "/rooms/%s/messages" % room)[0] == 200
    status, member = answer(owner, "PUT", "/rooms/%s/members/%s" % (room, uid_of(bot)))
    assert (status, member["role"]) == (200, "member")


def test_a_bans_name_on_a_bots_edit_or_delete_is_the_name_its_message_was_posted_under(
        server, redis_url, room):
    bot = create(redis_url, room + "*", "first", "second")[1]
    as_first = post(server.url, room, bot, {"text": "as first"})[1]
    as_second = post(server.url, room, bot, {"text": "as second", "user": "second"})[1]
    path = "/rooms/%s/messages/%%s" % room
    assert flask_cli(redis_url, "rooms", "ban", room, "name:second").returncode == 0
    for verb, body in (("PATCH", {"text": "edited"}), ("DELETE", None)):
        assert change(server.url, verb, path % as_second["id"], bot, body)[1]["code"] == "banned"
    assert change(server.url, "PATCH", path % as_first["id"], bot, {"text": "edited"})[0] == 200
    # A reaction is the bot's as its first name (Grant.acting_name): a ban of another name does not stop it.
    assert change(server.url, "PUT", (path % as_second["id"]) + "/reactions/👍", bot)[0] == 200
    assert flask_cli(redis_url, "rooms", "unban", room, "name:second").returncode == 0
    assert flask_cli(redis_url, "rooms", "ban", room, "name:first").returncode == 0
    assert change(server.url, "PATCH", path % as_first["id"], bot, {"text": "again"})[1]["code"] == "banned"
    assert change(server.url, "PUT", (path % as_first["id"]) + "/reactions/🎉", bot)[1]["code"] == "banned"
    assert change(server.url, "PATCH", path % as_second["id"], bot, {"text": "edited"})[0] == 200
    assert change(server.url, "DELETE", path % as_second["id"], bot)[0] == 204


def test_a_bot_and_a_person_never_share_a_members_name(server, redis_url, redis_client, room, owner):
    name = answer(owner, "GET", "/session")[1]["name"]
    assert create_room(owner, room, "private")[0] == 201
    twin = create(redis_url, room + "*", name.upper())[1]  # the owner's name, another case
    status, body = answer(owner, "PUT", "/rooms/%s/members/%s" % (room, uid_of(twin)))
    assert (status, body["code"]) == (409, "name_taken")
    assert body["error"] == ("“%s” is already the name of a member of #%s; a bot and a person cannot share a "
                             "name there." % (name.upper(), room))
    assert [m["name"] for m in answer(owner, "GET", "/rooms/%s/members" % room)[1]["members"]] == [name]
    # A bot a member first: a person of its name is refused, by invitation or added by the owner.
    helper, aide = ("%s-%s" % (word, uid_of(twin)[-6:]) for word in ("helper", "aide"))
    for bot_name in (helper, aide):
        bot = create(redis_url, room + "*", bot_name)[1]
        assert answer(owner, "PUT", "/rooms/%s/members/%s" % (room, uid_of(bot)))[0] == 200
    stranger = Browser(server.url)
    assert stranger.sign_in(helper.upper()) == 200
    assert answer(stranger, "POST", path_of(invite(owner, room)["url"]))[1]["code"] == "name_taken"
    person = Browser(server.url)
    assert register(person, aide)[0] == 201
    assert answer(owner, "PUT", "/rooms/%s/members/%s" % (room, aide))[1]["code"] == "name_taken"
    # A pair from before the refusal (the bot a moderator then): a name names the person, the
    # bot is named by its uid.
    person_id = answer(person, "GET", "/session")[1]["id"]
    members = "ripple:{r:%s}:members" % room
    redis_client.hset(members, person_id, '{"name": "%s", "role": "member", "since": 1}' % aide)
    redis_client.hset(members, uid_of(bot), '{"name": "%s", "role": "moderator", "since": 1}' % aide)
    status, ban = answer(owner, "POST", "/rooms/%s/bans" % room, body={"user": aide})
    assert (status, ban["user"]) == (201, person_id)


LOOK_ALIKE = str.maketrans("aeo", "\u0430\u0435\u043e")  # Latin a, e, o -> Cyrillic а, е, о: one name to names.fold


def look_alike(name):
    """``name`` with its Latin a, e and o written in Cyrillic: another string, the same name."""
    changed = name.translate(LOOK_ALIKE)
    assert changed != name and changed.casefold() != name.casefold()
    return changed


def test_a_bot_named_like_a_member_in_look_alike_letters_is_refused_as_the_name_itself_is(server, redis_url,
                                                                                            room, owner):
    name = answer(owner, "GET", "/session")[1]["name"]
    assert create_room(owner, room, "private")[0] == 201
    twin = create(redis_url, room + "*", look_alike(name))[1]
    status, body = answer(owner, "PUT", "/rooms/%s/members/%s" % (room, uid_of(twin)))
    assert (status, body["code"]) == (409, "name_taken")
    assert [m["name"] for m in answer(owner, "GET", "/rooms/%s/members" % room)[1]["members"]] == [name]


def test_a_person_named_like_a_member_bot_in_look_alike_letters_is_refused_an_invitation(server, redis_url,
                                                                                           room, owner):
    assert create_room(owner, room, "private")[0] == 201
    helper = "helper-%s" % room[-6:]
    bot = create(redis_url, room + "*", helper)[1]
    assert answer(owner, "PUT", "/rooms/%s/members/%s" % (room, uid_of(bot)))[0] == 200
    stranger = Browser(server.url)
    assert stranger.sign_in(look_alike(helper)) == 200
    assert answer(stranger, "POST", path_of(invite(owner, room)["url"]))[1]["code"] == "name_taken"


def test_a_member_stored_by_an_earlier_release_is_compared_by_look_alike_too(server, redis_url, redis_client,
                                                                              room, owner):
    # That release kept the name's str.casefold as "fold", which a look-alike passes: such a
    # record's name is folded again (Rooms.namesakes), as one without any fold always was.
    session = answer(owner, "GET", "/session")[1]
    assert create_room(owner, room, "private")[0] == 201
    earlier = {"name": session["name"], "role": "owner", "since": 1, "fold": session["name"].casefold()}
    redis_client.hset("ripple:{r:%s}:members" % room, session["id"], json.dumps(earlier))
    twin = create(redis_url, room + "*", look_alike(session["name"]))[1]
    assert answer(owner, "PUT", "/rooms/%s/members/%s" % (room, uid_of(twin)))[1]["code"] == "name_taken"


def test_two_bots_may_share_a_members_name_as_a_token_and_its_replacement_do(server, redis_url, room, owner):
    # Only a bot beside a person is refused: a token replaced by a new one posting as the same
    # bot is a member beside it until the old one is removed (by name: the one that joined first).
    assert create_room(owner, room, "private")[0] == 201
    name = "deploy-%s" % room[-6:]
    old, new = (create(redis_url, room + "*", name)[1] for _ in range(2))
    for token in (old, new):
        assert answer(owner, "PUT", "/rooms/%s/members/%s" % (room, uid_of(token)))[0] == 200
        assert post(server.url, room, token, {"text": "deployed"})[0] == 201
    assert answer(owner, "DELETE", "/rooms/%s/members/%s" % (room, name))[0] == 204
    members = answer(owner, "GET", "/rooms/%s/members" % room)[1]["members"]
    assert [m["id"] for m in members if m["name"] == name] == [uid_of(new)]
    assert all(set(m) == {"id", "name", "role", "since"} for m in members)


def test_a_bot_and_a_person_added_at_the_same_moment_never_both_get_in(admin_app, redis_url, room,  # noqa: F811
                                                                      monkeypatch):
    # The person's addition lands between the check of the bot's and its store (another
    # request, on another worker): the check and the store are one script (L7).
    from app.ops.services import services
    from app.rooms.records import MEMBER, Rooms
    client = admin_app.test_client()
    assert client.post("/rooms", json={"name": room, "visibility": "private"}, headers=BEARER).status_code == 201
    name = "ann-%s" % room[-6:]
    with admin_app.app_context():
        services(admin_app).accounts.create(name, "correct horse battery")
        person = services(admin_app).accounts.id_for(name)
    bot = uid_of(create(redis_url, room + "*", name.upper())[1])
    real, landed = Rooms.member, []

    def member(self, room_, uid):
        found = real(self, room_, uid)
        if uid == bot and not landed:
            landed.append(Rooms.add_member(self, room_, person, name, MEMBER))  # the other request's store
        return found
    monkeypatch.setattr(Rooms, "member", member)
    added = client.put("/rooms/%s/members/%s" % (room, bot), headers=BEARER)
    assert landed and (added.status_code, added.get_json()["code"]) == (409, "name_taken")
    members = client.get("/rooms/%s/members" % room, headers=BEARER).get_json()["members"]
    assert sorted(m["id"] for m in members if m["id"] != "admin-token") == [person]
