"""Administrators (issue 15): the /admin page (no JavaScript needed) and its JSON API, the admin
token in every room, the operators' ``flask rooms`` commands, history trimmed by age, and an
export/import round trip that keeps ids and a client's cursor."""
import json
import re
import time
import uuid

import pytest

from app import create_app
from app.ops.services import services
from app.rooms import keys

from .support import LIMITS_OFF, TOKEN, flask_cli, post
from .test_accounts import account_holder
from .test_rooms import answer, create, new_room
from .web import Browser

ADMIN_TOKEN = "test-admin-token-" + uuid.uuid4().hex
BEARER = {"Authorization": "Bearer " + ADMIN_TOKEN}


@pytest.fixture
def admin_app(redis_url):
    return create_app({"TESTING": True, "REDIS_URL": redis_url, "PUBLISH_TOKEN": TOKEN,
                       "SECRET_KEY": "test-secret", "ADMIN_TOKEN": ADMIN_TOKEN, **LIMITS_OFF})


def csrf(client):
    return client.get("/session").get_json()["csrf_token"]


def signed_in_admin(app, client):
    name = "adm-" + uuid.uuid4().hex[:6]
    with app.app_context():
        services(app).accounts.create(name, "correct horse battery", admin=True)
    response = client.post("/session", json={"name": name, "password": "correct horse battery"},
                           headers={"X-CSRF-Token": csrf(client)})
    assert response.status_code == 200
    return name


def test_the_admin_api_lists_rooms_with_counts_for_the_admin_token_only(admin_app, redis_url):
    client = admin_app.test_client()
    room = new_room("adm")
    for text in ("one", "two"):
        assert post_in_process(client, room, text) == 201
    listed = client.get("/admin/api/rooms", headers=BEARER).get_json()["rooms"]
    found = [r for r in listed if r["room"] == room]
    assert found and found[0]["messages"] == 2 and found[0]["last"] > 0 and found[0]["visibility"] == "public"
    assert client.get("/admin/api/rooms", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/admin/api/accounts").status_code == 401
    for path in ("/admin/api/accounts", "/admin/api/bans", "/admin/api/audit", "/admin/api/rooms/%s" % room):
        assert client.get(path, headers=BEARER).status_code == 200, path


def post_in_process(client, room, text):
    return client.post("/rooms/%s/messages" % room, json={"text": text, "user": "bot"},
                       headers={"Authorization": "Bearer " + TOKEN}).status_code


def test_a_signed_in_non_administrator_gets_403_not_admin(admin_app):
    client = admin_app.test_client()
    client.post("/session", json={"name": "gus-" + uuid.uuid4().hex[:6]}, headers={"X-CSRF-Token": csrf(client)})
    response = client.get("/admin/api/rooms")
    assert response.status_code == 403 and response.get_json()["code"] == "not_admin"
    assert client.get("/admin", headers={"Accept": "text/html"}).status_code == 403


def test_the_admin_token_runs_any_room_without_a_csrf_token(admin_app):
    client = admin_app.test_client()
    room = new_room("tok")
    post_in_process(client, room, "made by posting")
    changed = client.patch("/rooms/%s" % room, json={"visibility": "private", "topic": "taken over"}, headers=BEARER)
    assert changed.status_code == 200 and changed.get_json()["visibility"] == "private"
    assert client.get("/rooms/%s/messages" % room).status_code == 404  # nobody is a member
    assert client.post("/rooms/%s/bans" % room, json={"address": "198.51.100.4"}, headers=BEARER).status_code == 201
    actions = client.get("/admin/api/audit", headers=BEARER).get_json()["actions"]
    assert [a["action"] for a in actions if a["room"] == room][:2] == ["ban", "change"]
    assert client.delete("/rooms/%s" % room, headers=BEARER).status_code == 204


def test_the_admin_token_deletes_any_message_as_admin_and_reacts_as_no_one(admin_app):
    client = admin_app.test_client()
    room = new_room("spam")
    spam = client.post("/rooms/%s/messages" % room, json={"text": "buy now", "user": "spammer"},
                       headers={"Authorization": "Bearer " + TOKEN}).get_json()["id"]
    path = "/rooms/%s/messages/%s" % (room, spam)
    assert client.put(path + "/reactions/%F0%9F%91%8D", headers=BEARER).status_code == 401
    assert client.delete(path, headers={"Authorization": "bearer " + ADMIN_TOKEN}).status_code == 204
    history = client.get("/rooms/%s/messages" % room).get_json()["messages"]
    assert [(m["id"], m.get("deleted"), m["text"]) for m in history] == [(spam, True, "")]


def test_the_admin_token_deletes_in_a_private_room_too(admin_app):
    client = admin_app.test_client()
    room = new_room("hidden")
    spam = client.post("/rooms/%s/messages" % room, json={"text": "buy now", "user": "spammer"},
                       headers={"Authorization": "Bearer " + TOKEN}).get_json()["id"]
    assert client.patch("/rooms/%s" % room, json={"visibility": "private"}, headers=BEARER).status_code == 200
    assert client.delete("/rooms/%s/messages/%s" % (room, spam), headers=BEARER).status_code == 204


@pytest.mark.parametrize("limit", ["0", "abc", "1001", "-1", "2.5", "²", "١٢"])
def test_an_audit_limit_outside_1_to_1000_is_a_400_not_a_guess(admin_app, limit):
    answer = admin_app.test_client().get("/admin/api/audit?limit=" + limit, headers=BEARER)
    assert answer.status_code == 400
    assert answer.get_json() == {"error": "limit must be a whole number from 1 to 1000.", "code": "bad_request"}


def test_the_admin_page_works_without_javascript(admin_app):
    client = admin_app.test_client()
    signed_in_admin(admin_app, client)
    room = new_room("page")
    post_in_process(client, room, "hello")
    page = client.get("/admin", headers={"Accept": "text/html"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "#" + room in html and "Recent moderation" in html
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    form = {"_method": "DELETE", "csrf_token": token, "next": "/admin"}
    asked = client.post("/rooms/%s" % room, data=form, headers={"Accept": "text/html"})  # asks first
    assert asked.status_code == 303 and asked.headers["Location"].endswith("/rooms/%s/delete?next=/admin" % room)
    assert 'name="next" value="/admin"' in client.get(asked.headers["Location"]).get_data(as_text=True)
    deleted = client.post("/rooms/%s" % room, data={**form, "confirm": "1"}, headers={"Accept": "text/html"})
    assert deleted.status_code == 303 and deleted.headers["Location"].endswith("/admin")
    after = client.get("/admin", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "#" + room not in after.split("<table data-rooms>")[1].split("</table>")[0]
    assert "delete-room" in after  # the recent moderation says so


def test_signed_out_the_admin_page_asks_to_sign_in(admin_app):
    page = admin_app.test_client().get("/admin", headers={"Accept": "text/html"})
    assert page.status_code == 401 and "administrator" in page.get_data(as_text=True)


# History trimmed by age --------------------------------------------------------------------------

def test_history_older_than_the_maximum_age_goes_and_a_resume_from_before_is_told(redis_url, redis_client):
    app = create_app({"TESTING": True, "REDIS_URL": redis_url, "SECRET_KEY": "test-secret",
                      "HISTORY_MAX_AGE_DAYS": 1, **LIMITS_OFF})
    room = new_room("age")
    log = "ripple:{r:%s}:log" % room
    for ms in (1000, 2000):  # long ago
        redis_client.xadd(log, {"m": '"room":"%s","user":"old","text":"ancient %d"' % (room, ms)}, id="%d-0" % ms)
    with app.app_context():
        store = services(app).store
        store.publish(room, "new", "today")
        assert services(app).retention.trim(room) == 0  # the post already trimmed it
        texts = [json.loads(m)["text"] for m in store.page(room)[0]]
        assert texts == ["today"]
        from app.rooms import keys
        _, _, dropped = store.replay(keys.RoomKeys(room), (1000, 0))
        assert dropped  # the client is told some of what it asked for is gone


# Operators' commands, export and import -----------------------------------------------------------

def flask(redis_url, *args, stdin=None):
    return flask_cli(redis_url, "rooms", *args, stdin=stdin)


def test_export_and_import_keep_ids_edits_deletions_and_a_clients_cursor(server, redis_url):
    owner = account_holder(server, "exp")
    room = new_room("exp")
    assert create(owner, room)[0] == 201
    sent = [owner.post(room, text)[1] for text in ("one", "two", "three", "four")]
    edited = answer(owner, "PATCH", "/rooms/%s/messages/%s" % (room, sent[1]["id"]), body={"text": "two, edited"})
    assert edited[0] == 200
    assert owner.request("DELETE", "/rooms/%s/messages/%s" % (room, sent[2]["id"]))[0] == 204
    exported = flask(redis_url, "export", room)
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [m["id"] for m in lines] == [m["id"] for m in sent]
    assert [m["text"] for m in lines] == ["one", "two, edited", "", "four"] and lines[2]["deleted"]
    assert all(m["uid"] == sent[0]["uid"] for m in lines)
    assert "three" not in exported.stdout
    refused = flask(redis_url, "import", room, stdin=exported.stdout)
    assert refused.returncode == 2 and "empty room" in refused.stderr
    assert flask(redis_url, "delete", room, "--yes").returncode == 0
    restored = flask(redis_url, "import", room, stdin=exported.stdout)
    assert restored.returncode == 0, restored.stderr
    assert answer(owner, "GET", "/rooms/%s/messages" % room)[1]["messages"] == lines
    stream = Browser(server.url).stream(room, headers={"Last-Event-ID": sent[1]["id"]})  # a cursor held before
    got = [e.json() for e in stream.messages(2)]
    stream.close()
    assert [m["id"] for m in got] == [sent[2]["id"], sent[3]["id"]]
    assert post(server.url, room, "after the import")[0] == 201


def test_an_import_of_another_rooms_history_below_a_deleted_names_tombstone_is_refused(server, redis_url):
    # Its ids kept, the deleted room's readers would resume in it as in their own room (L5).
    owner = account_holder(server, "imp")
    other, room = new_room("src"), new_room("del")
    assert create(owner, other)[0] == 201 and create(owner, room)[0] == 201
    assert owner.post(other, "elsewhere")[0] == 201  # older than the deleted room's last id
    last = owner.post(room, "before the deletion")[1]
    exported = flask(redis_url, "export", other).stdout
    assert flask(redis_url, "delete", room, "--yes").returncode == 0
    refused = flask(redis_url, "import", room, stdin=exported)
    assert refused.returncode == 2 and refused.stderr.startswith("error: Nothing imported: #%s was deleted" % room)
    assert answer(owner, "GET", "/rooms/%s/messages" % room)[1]["messages"] == []
    assert Browser(server.url).stream(room, headers={"Last-Event-ID": last["id"]}).status == 410


def test_an_import_of_another_rooms_history_after_a_deleted_names_tombstone_leaves_it_standing(server, redis_url):
    owner = account_holder(server, "imp")
    room, other = new_room("del"), new_room("src")
    assert create(owner, room)[0] == 201
    last = owner.post(room, "before the deletion")[1]
    assert flask(redis_url, "delete", room, "--yes").returncode == 0
    assert create(owner, other)[0] == 201
    assert owner.post(other, "newer than the deleted room")[0] == 201
    imported = flask(redis_url, "import", room, stdin=flask(redis_url, "export", other).stdout)
    assert imported.returncode == 0, imported.stderr
    assert [m["text"] for m in answer(owner, "GET", "/rooms/%s/messages" % room)[1]["messages"]] == [
        "newer than the deleted room"]
    assert Browser(server.url).stream(room, headers={"Last-Event-ID": last["id"]}).status == 410


def test_a_deleted_rooms_own_history_imported_back_is_followed_by_ids_past_its_tombstone(server, redis_url,
                                                                                         redis_client):
    # Posted after the export, the deleted room's last messages are not in the file; their ids
    # (its tombstone, here from a master whose clock ran a day ahead) stay behind every new one,
    # or a reader resuming from them would skip the new room's first messages.
    owner = account_holder(server, "imp")
    room = new_room("rt")
    assert create(owner, room)[0] == 201
    assert owner.post(room, "exported")[0] == 201
    exported = flask(redis_url, "export", room).stdout
    assert owner.post(room, "after the export")[0] == 201
    assert flask(redis_url, "delete", room, "--yes").returncode == 0
    ahead = "%d-3" % (time.time() * 1000 + 86400 * 1000)
    redis_client.set("ripple:{r:%s}:gone" % room, ahead, keepttl=True)
    assert flask(redis_url, "import", room, stdin=exported).returncode == 0
    with Browser(server.url).stream(room, headers={"Last-Event-ID": ahead}) as stream:  # its history is back
        assert stream.status == 200
        stream.until("ready")
        status, posted = owner.post(room, "after the import")
        assert status == 201 and keys.parse_stream_id(posted["id"]) > keys.parse_stream_id(ahead)
        assert stream.until("message")[0].json()["text"] == "after the import"


def test_the_rooms_commands_list_show_ban_and_unban(server, redis_url):
    owner = account_holder(server, "cli")
    room = new_room("cli")
    create(owner, room, "private")
    listed = [line for line in flask(redis_url, "list").stdout.splitlines() if line.startswith(room + "\t")]
    assert listed and listed[0].split("\t")[1:4] == ["private", "1 member", "0 messages"]
    shown = json.loads(flask(redis_url, "show", room).stdout)
    assert shown["record"]["visibility"] == "private" and shown["members"][0]["role"] == "owner"
    victim = account_holder(server, "vic")
    banned = flask(redis_url, "ban", room, victim.name, "--seconds", "60")
    assert banned.returncode == 0 and "banned" in banned.stdout
    assert json.loads(flask(redis_url, "show", room).stdout)["bans"][0]["name"] == victim.name
    assert flask(redis_url, "unban", room, victim.name).returncode == 0
    assert json.loads(flask(redis_url, "show", room).stdout)["bans"] == []
    assert flask(redis_url, "unban", room, victim.name).returncode == 2
    assert flask(redis_url, "export", "bad name").returncode == 2


# Bounded growth ----------------------------------------------------------------------------------

def test_room_and_invitation_caps_refuse_with_a_sentence(redis_url, redis_client):
    full = redis_client.zcard("ripple:rooms:registry") + 1
    app = create_app({"TESTING": True, "REDIS_URL": redis_url, "SECRET_KEY": "test-secret",
                      "ROOMS_MAX": full, "ROOM_INVITES_MAX": 2, **LIMITS_OFF})
    client = app.test_client()
    client.post("/session", json={"name": "cap-" + uuid.uuid4().hex[:6]}, headers={"X-CSRF-Token": csrf(client)})
    token = csrf(client)
    room = new_room("cap")
    assert client.post("/rooms", json={"name": room}, headers={"X-CSRF-Token": token}).status_code == 201
    refused = client.post("/rooms", json={"name": new_room("cap")}, headers={"X-CSRF-Token": token})
    assert refused.status_code == 409 and refused.get_json()["code"] == "room_cap"
    assert "limit of %d rooms" % full in refused.get_json()["error"]
    for _ in range(2):
        assert client.post("/rooms/%s/invites" % room, json={}, headers={"X-CSRF-Token": token}).status_code == 201
    third = client.post("/rooms/%s/invites" % room, json={}, headers={"X-CSRF-Token": token})
    assert third.status_code == 409 and third.get_json()["code"] == "invite_cap"


def test_room_refusals_speak_the_readers_language(admin_app):
    client = admin_app.test_client()
    room = new_room("zh")
    client.patch("/rooms/%s" % room, json={"visibility": "private"}, headers=BEARER)
    refused = client.get("/rooms/%s/messages" % room, headers={"Accept-Language": "zh-Hans"})
    assert refused.status_code == 404 and refused.get_json()["error"] == "没有这个名称的房间。"
    page = client.get("/", headers={"Accept-Language": "zh-Hans", "Accept": "text/html"})
    assert "创建你自己的房间" not in page.get_data(as_text=True)  # only signed-in people create rooms


def test_rooms_show_of_a_room_that_never_was_says_so_and_fails(app):
    room = new_room("never")
    result = app.test_cli_runner().invoke(args=["rooms", "show", room])
    assert result.exit_code == 2
    assert result.stderr == "error: There is no room called #%s (no record, no messages, no bans).\n" % room


def test_rooms_trim_without_a_maximum_age_says_so_as_a_missing_setting(app):
    result = app.test_cli_runner().invoke(args=["rooms", "trim"])
    assert result.exit_code == 1  # as README says a setting's refusal is said
    assert result.stderr == "Error: RIPPLE_HISTORY_MAX_AGE_DAYS is not set: there is no age to trim by.\n"


def test_the_ban_command_bans_a_guest_by_the_name_they_use(server, redis_url):
    room = new_room("cli")
    victim = Browser(server.url)
    name = "gst-" + uuid.uuid4().hex[:6]
    assert victim.sign_in(name) == 200
    assert flask(redis_url, "ban", room, "guest:0123456789abcdef").returncode == 2  # one sign-in's id: refused
    assert flask(redis_url, "ban", room, "name: ").returncode == 2  # no name at all
    assert flask(redis_url, "ban", room, "name:" + name).returncode == 0
    assert victim.post(room, "hm")[0] == 403
    assert victim.request("DELETE", "/session")[0] == 204
    again = Browser(server.url)  # signed in again as a guest with the name: still banned
    assert again.sign_in(name) == 200
    assert again.post(room, "back?")[0] == 403
    assert flask(redis_url, "unban", room, "name:" + name).returncode == 0
    assert again.post(room, "back")[0] == 201
