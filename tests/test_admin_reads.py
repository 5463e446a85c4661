"""Administrators read every room, private ones included (report h48, A3): the admin token and
an admin account, on every read path: the page, history, members, presence, the stream (through
Flask and through the Flask-free fast path, app/web/faststream.py). Others still get the 404."""
import json
import time
import uuid

from app.ops.services import services
from app.people.accounts import account_key

from .support import TEST_HEARTBEAT, TOKEN
from .test_accounts import account_holder
from .test_publish_tokens import create as create_token
from .test_room_admin import BEARER, admin_app  # noqa: F401 (a fixture)
from .test_rooms import answer, create, guest, new_room
from .web import Browser

PASSWORD = "correct horse battery"


def test_the_admin_token_reads_a_private_room_it_created(admin_app):  # noqa: F811
    client = admin_app.test_client()
    room = new_room("secret")
    made = client.post("/rooms", json={"name": room, "visibility": "private"}, headers=BEARER)
    assert made.status_code == 201, made.get_json()
    posted = client.post("/rooms/%s/messages" % room, json={"text": "for the archive", "user": "bot"},
                         headers={"Authorization": "Bearer " + TOKEN})
    assert posted.status_code == 201, posted.get_json()
    history = client.get("/rooms/%s/messages" % room, headers=BEARER)
    assert history.status_code == 200
    assert [m["text"] for m in history.get_json()["messages"]] == ["for the archive"]
    assert client.get("/rooms/%s/members" % room, headers=BEARER).status_code == 200
    assert client.get("/rooms/%s/presence" % room, headers=BEARER).get_json()["room"] == room
    assert client.get("/rooms/%s" % room, headers=BEARER).status_code == 200
    assert client.head("/rooms/%s/events" % room, headers=BEARER).status_code == 200
    # Anyone else: the same 404 as no room at all.
    for path in ("/messages", "/members", "/presence", "", "/events"):
        assert client.get("/rooms/%s%s" % (room, path)).status_code == 404, path


def admin_browser(server, app):
    """A browser signed in on ``server`` as a new admin account (made in-process by ``app``,
    which shares the server's Redis)."""
    name = "adm-" + uuid.uuid4().hex[:6]
    with app.app_context():
        services(app).accounts.create(name, PASSWORD, admin=True)
    browser = Browser(server.url)
    status, _, body = browser.request("GET", "/session")
    browser.token = json.loads(body)["csrf_token"]
    status, _, body = browser.request("POST", "/session", body={"name": name, "password": PASSWORD})
    assert status == 200, body
    browser.token, browser.name = json.loads(body)["csrf_token"], name
    return browser


def test_an_admin_account_reads_and_streams_a_private_room_it_is_no_member_of(server, app):
    owner, stranger, admin = account_holder(server, "own"), guest(server, "str"), admin_browser(server, app)
    room = new_room("priv")
    assert create(owner, room, "private")[0] == 201
    assert owner.post(room, "members only")[0] == 201
    assert answer(stranger, "GET", "/rooms/%s/messages" % room)[0] == 404
    assert stranger.stream(room).status == 404
    status, history = answer(admin, "GET", "/rooms/%s/messages" % room)
    assert status == 200 and [m["text"] for m in history["messages"]] == ["members only"]
    assert answer(admin, "GET", "/rooms/%s/members" % room)[0] == 200
    assert answer(admin, "GET", "/rooms/%s/presence" % room)[0] == 200
    assert admin.request("GET", "/rooms/%s" % room, headers={"Accept": "text/html"})[0] == 200
    with admin.stream(room) as stream:
        assert stream.status == 200
        stream.until("ready")
        assert owner.post(room, "heard by the administrator")[0] == 201
        assert stream.until("message")[0].json()["text"] == "heard by the administrator"


def test_an_admin_accounts_stream_stays_open_when_its_room_is_made_private(server, app):
    owner, admin = account_holder(server, "own"), admin_browser(server, app)
    room = new_room("pub")
    assert create(owner, room, "public")[0] == 201
    with admin.stream(room) as stream:  # a public room: the fast path opens it
        assert stream.status == 200
        stream.until("ready")
        assert answer(owner, "PATCH", "/rooms/%s" % room, body={"visibility": "private"})[0] == 200
        assert owner.post(room, "still heard")[0] == 201
        message, before = stream.until("message")
        assert [e.name for e in before if e.name == "removed"] == []
        assert message.json()["text"] == "still heard"


def test_the_sidebar_asks_whether_someone_is_an_administrator_once_and_only_when_it_decides(redis_client):
    # Each ask is an account read: a member of many private rooms paid one per room on every
    # stream open (review helper-54, M1).
    from app.rooms import records
    from app.web import gate
    uid = "a" * 24
    mine, theirs = [new_room("mine") for _ in range(4)], [new_room("theirs") for _ in range(3)]
    for room in mine + theirs:
        redis_client.hset(records.RecordKeys(room).info, "visibility", records.PRIVATE)
    for room in mine:
        redis_client.hset(records.RecordKeys(room).members, uid, json.dumps({"role": "member"}))
    asked = []

    def administrator():
        asked.append(1)
        return False
    assert gate.readable_of(redis_client, mine, uid, "127.0.0.1", "ann", admin=administrator) == mine
    assert asked == []
    assert gate.readable_of(redis_client, mine + theirs, uid, "127.0.0.1", "ann", admin=administrator) == mine
    assert asked == [1]


def test_a_tokens_write_is_never_judged_by_a_cookies_admin_flag(server, app, redis_url):
    # A scoped token no member of a private room, sent beside an admin account's cookie: the
    # token's own access decides, as on the fast path (review helper-54, M3).
    owner, admin = account_holder(server, "own"), admin_browser(server, app)
    room = new_room("priv")
    assert create(owner, room, "private")[0] == 201
    token = create_token(redis_url, room, "bot")[1]
    status, _, _ = admin.request("POST", "/rooms/%s/messages" % room, body={"text": "in?"},
                                 headers={"Authorization": "Bearer " + token, "Accept": "application/json"})
    assert status == 404


def test_an_admin_account_moderates_a_private_room_it_is_no_member_of_but_writes_nothing_there(server, app):
    # Administrators read and moderate every room; in a private room they are no member of they
    # do not post, edit, react or type as if one of its members (review helper-56, L3).
    owner, member, admin = account_holder(server, "own"), account_holder(server, "mem"), admin_browser(server, app)
    room = new_room("priv")
    assert create(owner, room, "private")[0] == 201
    assert answer(owner, "PUT", "/rooms/%s/members/%s" % (room, member.name))[0] == 200
    said = owner.post(room, "members only")[1]
    assert member.post(room, "me too")[0] == 201
    thumbs = "/rooms/%s/messages/%s/reactions/%%F0%%9F%%91%%8D" % (room, said["id"])
    for method, path, body in (("POST", "/rooms/%s/messages" % room, {"text": "hello from outside"}),
                               ("POST", "/rooms/%s/typing" % room, None),
                               ("PUT", thumbs, None)):
        status, refusal = answer(admin, method, path, body=body)
        assert (status, refusal["code"]) == (403, "members_only"), path
        assert refusal["error"] == ("Only the members of #%s can write there; as an administrator you can read "
                                    "it and moderate it." % room)
    status, _, page = admin.request("POST", "/rooms/%s/messages" % room, headers={"Accept": "text/html"},
                                    form={"text": "by form", "csrf_token": admin.token})
    assert status == 403 and "Only the members of #%s can write there" % room in page.decode()
    status, _, page = admin.request("GET", "/rooms/%s" % room, headers={"Accept": "text/html"})
    assert status == 200 and "data-observer" in page.decode() and 'class="composer"' not in page.decode()
    # Reading and moderating: a member's message deleted, the member banned.
    status, history = answer(admin, "GET", "/rooms/%s/messages" % room)
    assert [m["text"] for m in history["messages"]] == ["members only", "me too"]
    mine = history["messages"][1]["id"]
    assert admin.request("DELETE", "/rooms/%s/messages/%s" % (room, mine))[0] == 204
    assert answer(admin, "POST", "/rooms/%s/bans" % room, body={"user": member.name})[0] == 201
    # A stranger still gets the 404 of no room at all; a member still writes.
    assert answer(guest(server, "str"), "POST", "/rooms/%s/messages" % room, body={"text": "x"})[0] == 404
    assert owner.post(room, "still mine")[0] == 201
    # Made a member, the administrator writes as one.
    assert answer(owner, "PUT", "/rooms/%s/members/%s" % (room, admin.name))[0] == 200
    assert admin.post(room, "now a member")[0] == 201


def test_a_disabled_admin_account_holds_no_administrators_power_on_a_session_it_still_has(server, app,
                                                                                         redis_client):
    # Disabling sets the flag and then ends the account's sessions (identity.disable_account); a
    # request in between, or a session the account's list no longer names, still comes signed
    # in. Whatever it asks, it asks as no administrator: one rule (accounts.administers).
    owner, admin, other = account_holder(server, "own"), admin_browser(server, app), account_holder(server, "oth")
    room = new_room("pub")
    assert create(owner, room, "public")[0] == 201
    said = owner.post(room, "the owner's own")[1]
    with app.app_context():
        account_id = services(app).accounts.id_for(admin.name)
    redis_client.hset(account_key(account_id), "disabled", "1")  # the flag alone: the session stands
    assert answer(admin, "GET", "/session")[1]["admin"] is False
    status, refusal = answer(admin, "DELETE", "/rooms/%s/messages/%s" % (room, said["id"]))
    assert (status, refusal["code"]) == (403, "not_yours_delete")
    assert admin.request("POST", "/admin/accounts/%s/disable" % other.name, body={})[0] == 403
    assert answer(other, "GET", "/session")[1]["name"] == other.name  # still signed in


def ends_within(stream, seconds):
    """Tell whether the server ends ``stream`` before ``seconds`` pass (events on the way skipped);
    when it does not, ``stream`` can read nothing more (its socket timed out)."""
    deadline = time.monotonic() + seconds
    try:
        while stream.next(max(0.01, deadline - time.monotonic())) is not None:
            pass
    except TimeoutError:
        return False
    return True


def test_an_admin_accounts_stream_of_a_private_room_ends_once_the_account_is_no_administrator(server, app,
                                                                                           redis_client):
    # Open on the administrator's power alone (no member: only Flask's path opens it), the stream
    # asks every heartbeat whether the power holds; revoked (in Redis: nothing is published), it
    # ends with a reconnect, and the reconnect gets the 404 of no room (review L1).
    owner, admin = account_holder(server, "own"), admin_browser(server, app)
    room = new_room("priv")
    assert create(owner, room, "private")[0] == 201
    with app.app_context():
        account_id = services(app).accounts.id_for(admin.name)
    with admin.stream(room) as stream:
        assert stream.status == 200
        stream.until("ready")
        redis_client.hset(account_key(account_id), "admin", "0")
        assert ends_within(stream, TEST_HEARTBEAT * 8)
        assert stream.retry is not None and stream.retry < 2000  # come back soon: the checks decide
    assert admin.stream(room).status == 404


def test_an_admin_accounts_stream_of_a_room_it_belongs_to_stays_open_when_it_is_no_administrator(server, app,
                                                                                              redis_client):
    # The power was never used: a member reads the room anyway, and the stream asks nothing.
    owner, admin = account_holder(server, "own"), admin_browser(server, app)
    room = new_room("priv")
    assert create(owner, room, "private")[0] == 201
    assert answer(owner, "PUT", "/rooms/%s/members/%s" % (room, admin.name))[0] == 200
    with app.app_context():
        account_id = services(app).accounts.id_for(admin.name)
    with admin.stream(room) as stream:
        stream.until("ready")
        redis_client.hset(account_key(account_id), "admin", "0")
        assert owner.post(room, "heard")[0] == 201
        assert stream.until("message")[0].json()["text"] == "heard"
        assert not ends_within(stream, TEST_HEARTBEAT * 4)  # (a timed-out stream reads no more)


def test_an_admin_accounts_page_of_a_private_room_it_is_no_member_of_offers_only_what_it_may_do(server, app):
    # It may read, delete and link; replying, reacting and editing it may not (403 members_only):
    # no such control is drawn, the reactions are counts alone, and the composer's place says why.
    owner, admin = account_holder(server, "own"), admin_browser(server, app)
    room = new_room("priv")
    assert create(owner, room, "private")[0] == 201
    said = owner.post(room, "react to me")[1]
    assert answer(owner, "PUT", "/rooms/%s/messages/%s/reactions/%%F0%%9F%%91%%8D" % (room, said["id"]))[0] == 200
    status, _, body = admin.request("GET", "/rooms/%s" % room, headers={"Accept": "text/html"})
    page = body.decode()
    assert status == 200
    for control in ("data-react>", "data-reaction>", "data-reply>", "data-edit ", 'class="composer"'):
        assert control not in page, control
    assert 'class="chip" title="%s" data-emoji="👍"' % owner.name in page  # counted, not pressable
    assert "data-delete" in page and "data-permalink" in page and "data-read-only" in page
    assert page.count("data-observer") == 1 and "Only the members of #%s can write there" % room in page
    # In the reader's language.
    status, _, body = admin.request("GET", "/rooms/%s" % room, headers={"Accept": "text/html",
                                                                        "Accept-Language": "zh-CN"})
    assert "只有 #%s 的成员可以在那里发言" % room in body.decode()


def test_a_members_page_of_a_private_room_offers_reactions_replies_and_the_composer(server, app):
    owner, member = account_holder(server, "own"), account_holder(server, "mem")
    room = new_room("priv")
    assert create(owner, room, "private")[0] == 201
    assert answer(owner, "PUT", "/rooms/%s/members/%s" % (room, member.name))[0] == 200
    assert owner.post(room, "react to me")[0] == 201
    page = member.request("GET", "/rooms/%s" % room, headers={"Accept": "text/html"})[2].decode()
    for control in ("data-react>", "data-reply>", 'class="composer"'):
        assert control in page, control
    assert "data-read-only" not in page and "data-observer" not in page
