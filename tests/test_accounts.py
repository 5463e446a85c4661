"""Accounts (issue 14) through real Gunicorn (2 gevent workers) and real Redis: register, sign in
and out with JSON and with plain forms, one answer for a wrong password and an unknown name,
attempt limits, names reserved for good, password changes and disabling that end sessions and
streams everywhere, the operators' commands, and a service without guests."""
import json
import re
import uuid

import pytest

from app.ops.services import services
from app.people import accounts
from app.people.names import Names
from app.rooms import keys

from .servers import Gunicorn, wait_until
from .support import SERVER_ENV, TEST_HEARTBEAT, flask_cli, ready
from .support import streams_on_both_workers as both_workers
from .test_sessions_security import copy_of, until_end
from .web import Browser

PASSWORD = "correct horse battery"


def fresh(prefix="ann"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:6])


def token(browser):
    status, _, body = browser.request("GET", "/session")
    browser.token = json.loads(body)["csrf_token"]
    return status, json.loads(body)


def register(browser, name, password=PASSWORD):
    """POST /accounts as JSON; return (status, body)."""
    token(browser)
    status, headers, body = browser.request("POST", "/accounts", body={"name": name, "password": password})
    data = json.loads(body)
    if status == 201:
        browser.token, browser.name = data["csrf_token"], name
    return status, data


def sign_in(browser, name, password=PASSWORD):
    """POST /session with a password as JSON; return (status, headers, body)."""
    token(browser)
    status, headers, body = browser.request("POST", "/session", body={"name": name, "password": password})
    data = json.loads(body)
    if status == 200:
        browser.token, browser.name = data["csrf_token"], name
    return status, headers, data


def account_holder(server, prefix="ann"):
    browser = Browser(server.url)
    assert register(browser, fresh(prefix))[0] == 201
    return browser


def form_token(browser, path):
    _, _, page = browser.request("GET", path)
    return re.search(r'name="csrf_token" value="([^"]+)"', page.decode()).group(1)


def cli(redis_url, *args, stdin=None):
    return flask_cli(redis_url, "accounts", *args, stdin=stdin)


def streams_on_both_workers(server, browser, room):
    """The browser's ready streams of ``room`` on both workers (the per-session cap is 10)."""
    return both_workers(server, lambda: ready(browser.stream(room)), most=8)


# -- register, sign in, sign out ------------------------------------------------------------------

def test_registering_signs_in_as_the_account(server):
    browser = Browser(server.url)
    name = fresh()
    status, body = register(browser, name)
    assert status == 201
    assert body["name"] == name and body["kind"] == "account" and body["admin"] is False
    status, me = token(browser)
    assert status == 200
    assert {k: me[k] for k in ("name", "id", "kind", "admin")} == {
        "name": name, "id": body["id"], "kind": "account", "admin": False}
    assert me["csrf_token"]


def test_a_guest_session_says_it_is_a_guest(server):
    browser = Browser(server.url)
    assert browser.sign_in(fresh("gus")) == 200
    _, me = token(browser)
    assert me["kind"] == "guest" and me["admin"] is False and me["id"].startswith("guest:")


def test_signing_in_with_the_password_issues_a_new_session(server):
    owner = account_holder(server)
    assert owner.request("DELETE", "/session")[0] == 204
    other = Browser(server.url)
    assert other.sign_in(fresh("gus")) == 200
    before = other.cookie()
    status, _, body = sign_in(other, owner.name)
    assert status == 200 and body["kind"] == "account" and body["name"] == owner.name
    assert other.cookie() != before
    assert token(other)[1]["kind"] == "account"


def test_one_answer_for_a_wrong_password_and_an_unknown_name(server):
    owner = account_holder(server)
    wrong = sign_in(Browser(server.url), owner.name, "not the password")
    unknown = sign_in(Browser(server.url), fresh("nobody"), "not the password")
    assert wrong[0] == unknown[0] == 401
    assert wrong[2] == unknown[2] and "do not match" in wrong[2]["error"]


def test_a_password_signs_in_from_a_second_device_without_ending_the_first(server, room):
    first = account_holder(server)
    second = Browser(server.url)
    assert sign_in(second, first.name)[0] == 200
    assert first.post(room, "from the first")[0] == 201
    assert second.post(room, "from the second")[0] == 201


def test_sign_out_ends_the_account_session(server):
    owner = account_holder(server)
    thief = copy_of(owner)
    assert owner.request("DELETE", "/session")[0] == 204
    assert token(thief)[0] == 401


@pytest.mark.parametrize("password", ["short", "x" * 1025, 12345678901])
def test_a_bad_password_is_refused_with_a_sentence(server, password):
    status, body = register(Browser(server.url), fresh(), password)
    assert status in (400, 422) and "Password" in body["error"]


def test_the_password_is_never_stored_in_clear(server, redis_client):
    owner = account_holder(server)
    account_id = token(owner)[1]["id"]
    stored = redis_client.hgetall("ripple:{a:%s}" % account_id)
    assert stored["hash"].startswith("$argon2id$") and PASSWORD not in json.dumps(stored)


# -- without JavaScript ----------------------------------------------------------------------------

def test_passwords_never_reach_the_logs(redis_url, tmp_path):
    gunicorn = Gunicorn(tmp_path, redis_url=redis_url, workers=2, env=dict(SERVER_ENV, LOG_LEVEL="DEBUG"),
                        args=["--access-logfile", "-"])
    gunicorn.start()
    try:
        first, second, wrong = ("secret-%s-%d" % (uuid.uuid4().hex, n) for n in range(3))
        browser = Browser(gunicorn.url)
        assert register(browser, fresh(), first)[0] == 201
        assert sign_in(Browser(gunicorn.url), browser.name, wrong)[0] == 401
        status, _, _ = browser.request("POST", "/account/password", body={"current": first, "new": second})
        assert status == 200
        status, _, _ = browser.request("POST", "/account/password", body={"current": wrong, "new": "short"})
        assert status == 401
        assert sign_in(Browser(gunicorn.url), browser.name, second)[0] == 200
    finally:
        gunicorn.stop()
    log = gunicorn.log_path.read_text(errors="replace")
    assert "POST /session" in log  # the access log was on
    assert not any(secret in log for secret in (first, second, wrong))
    assert "Traceback" not in log  # a wrong password is an answer, not an error to report


def test_register_sign_out_and_sign_in_with_plain_forms(server):
    browser = Browser(server.url)
    name = fresh()
    status, headers, _ = browser.request("POST", "/accounts", form={
        "csrf_token": form_token(browser, "/register"), "name": name, "password": PASSWORD, "next": "/rooms/lobby"})
    assert status == 303 and headers["Location"].endswith("/rooms/lobby")
    _, _, page = browser.request("GET", "/")
    assert name in page.decode() and "data-guest" not in page.decode()
    status, _, _ = browser.request("POST", "/session/leave", form={"csrf_token": form_token(browser, "/")})
    assert status == 303
    status, headers, _ = browser.request("POST", "/session", form={
        "csrf_token": form_token(browser, "/"), "name": name, "password": PASSWORD, "next": "/"})
    assert status == 303
    assert token(browser)[1]["kind"] == "account"


def test_a_wrong_password_in_the_form_keeps_the_name_and_never_the_password(server):
    owner = account_holder(server)
    browser = Browser(server.url)
    status, _, page = browser.request("POST", "/session", form={
        "csrf_token": form_token(browser, "/"), "name": owner.name, "password": "wrong-password-typed"})
    page = page.decode()
    assert status == 401 and "do not match" in page
    assert 'value="%s"' % owner.name in page and "wrong-password-typed" not in page


def test_a_refused_registration_form_keeps_the_name(server):
    owner = account_holder(server)
    browser = Browser(server.url)
    status, _, page = browser.request("POST", "/accounts", form={
        "csrf_token": form_token(browser, "/register"), "name": owner.name, "password": PASSWORD})
    page = page.decode()
    assert status == 409 and "taken by an account" in page and 'value="%s"' % owner.name in page
    assert PASSWORD not in page


def test_the_password_can_be_changed_with_a_plain_form(server):
    owner = account_holder(server)
    status, headers, _ = owner.request("POST", "/account/password", form={
        "csrf_token": form_token(owner, "/account"), "current": PASSWORD, "new": "another long password"})
    assert status == 303
    _, _, page = owner.request("GET", headers["Location"])
    assert "Password changed" in page.decode()
    assert sign_in(Browser(server.url), owner.name, "another long password")[0] == 200


def test_pages_mark_a_guest(server):
    guest = Browser(server.url)
    assert guest.sign_in(fresh("gus")) == 200
    _, _, page = guest.request("GET", "/")
    assert "data-guest" in page.decode()


# -- names reserved for good -----------------------------------------------------------------------

def test_a_guest_cannot_take_an_accounts_name_or_a_look_alike(server):
    owner = account_holder(server, "olga")
    assert owner.request("DELETE", "/session")[0] == 204  # not here: still reserved
    for name in (owner.name, owner.name.upper(), owner.name.replace("o", "\u043e")):  # Cyrillic о
        guest = Browser(server.url)
        token(guest)
        status, _, body = guest.request("POST", "/session", body={"name": name})
        assert status == 409 and "taken by an account" in json.loads(body)["error"], name


def test_a_look_alike_of_an_accounts_name_cannot_be_registered(server):
    owner = account_holder(server, "olga")
    status, body = register(Browser(server.url), owner.name.replace("o", "\u043e"))
    assert status == 409


def test_a_name_a_guest_holds_now_cannot_be_registered_by_someone_else(server):
    guest = Browser(server.url)
    assert guest.sign_in(fresh("gus")) == 200
    assert register(Browser(server.url), guest.name)[0] == 409


def test_a_guest_can_register_the_name_they_hold(server):
    guest = Browser(server.url)
    assert guest.sign_in(fresh("gus")) == 200
    status, body = register(guest, guest.name)
    assert status == 201 and body["kind"] == "account"


def test_a_guest_that_held_a_name_before_it_was_registered_loses_it(server, redis_client, room):
    guest = Browser(server.url)
    assert guest.sign_in(fresh("gus")) == 200
    redis_client.delete(Names.key(guest.name))  # the guest's claim lapsed
    assert register(Browser(server.url), guest.name)[0] == 201
    assert guest.post(room, "still me?")[0] == 409


def test_reserved_names_cannot_be_registered(server):
    assert register(Browser(server.url), "Admin")[0] == 422


# -- change password, disable ----------------------------------------------------------------------

def test_changing_the_password_ends_the_other_sessions_and_their_streams(server, room):
    here = account_holder(server)
    there = Browser(server.url)
    assert sign_in(there, here.name)[0] == 200
    with there.stream(room) as stream:
        stream.until("ready")
        status, _, body = here.request("POST", "/account/password",
                                       body={"current": PASSWORD, "new": "a brand new password"})
        assert status == 200 and json.loads(body)["ended"] == 1
        stream.until("signed-out", timeout=5)
        assert until_end(stream) == []
    assert token(there)[0] == 401
    assert token(here)[0] == 200  # the session that changed it stays
    assert sign_in(Browser(server.url), here.name)[0] == 401
    assert sign_in(Browser(server.url), here.name, "a brand new password")[0] == 200


def test_changing_the_password_needs_the_current_one(server):
    owner = account_holder(server)
    status, _, body = owner.request("POST", "/account/password", body={"current": "nope nope nope", "new": "x" * 12})
    assert status == 401 and json.loads(body)["error"]


def test_disabling_an_account_ends_its_streams_on_both_workers_and_refuses_it(server, redis_url, room):
    owner = account_holder(server)
    streams = streams_on_both_workers(server, owner, room)
    try:
        result = cli(redis_url, "disable", owner.name)
        assert result.returncode == 0, result.stderr
        for stream in streams:  # the word is published at once; a stream that missed it checks
            stream.until("signed-out", timeout=3 * TEST_HEARTBEAT)  # its session every heartbeat
            assert until_end(stream, timeout=5) == []
    finally:
        for stream in streams:
            stream.close()
    status, _, body = sign_in(Browser(server.url), owner.name)
    assert status == 403 and "disabled" in body["error"]
    assert cli(redis_url, "enable", owner.name).returncode == 0
    assert sign_in(Browser(server.url), owner.name)[0] == 200


def test_the_cli_creates_an_admin_and_lists_accounts(server, redis_url):
    name = fresh("root")
    result = cli(redis_url, "create", name, "--admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    listed = cli(redis_url, "list")
    assert listed.returncode == 0
    line = next(row for row in listed.stdout.splitlines() if row.startswith(name + "\t"))
    assert "admin" in line and "active" in line
    browser = Browser(server.url)
    assert sign_in(browser, name)[2]["admin"] is True


def test_the_cli_refuses_a_short_password_and_an_unknown_account(redis_url):
    result = cli(redis_url, "create", fresh(), "--password-stdin", stdin="short\n")
    assert result.returncode == 2 and "too short" in result.stderr
    result = cli(redis_url, "disable", fresh("nobody"))
    assert result.returncode == 2 and "no account" in result.stderr


# -- limits and a service without guests ------------------------------------------------------------

@pytest.fixture(scope="module")
def strict_server(redis_url, tmp_path_factory):
    """Small sign-in limits, guests off, the first account an admin, on a Redis database of its own
    (a fresh install)."""
    import redis as redis_py
    url = redis_url.rsplit("/", 1)[0] + "/7"
    with redis_py.Redis.from_url(url) as client:
        client.flushdb()
    env = dict(SERVER_ENV, RIPPLE_SIGNIN_RATE_ACCOUNT="3 per minute", RIPPLE_SIGNIN_RATE_IP="8 per minute",
               RIPPLE_GUESTS="false", RIPPLE_FIRST_ACCOUNT_ADMIN="true")
    gunicorn = Gunicorn(tmp_path_factory.mktemp("strict"), redis_url=url, workers=2, env=env)
    gunicorn.start()
    yield gunicorn
    gunicorn.halt()


def test_first_account_is_admin_when_allowed_and_guests_are_refused(strict_server):
    first = Browser(strict_server.url)
    assert register(first, fresh("boss"))[1]["admin"] is True
    assert register(Browser(strict_server.url), fresh())[1]["admin"] is False
    guest = Browser(strict_server.url)
    token(guest)
    status, _, body = guest.request("POST", "/session", body={"name": fresh("gus")})
    assert status == 403 and "register" in json.loads(body)["error"]


def test_sign_in_attempts_are_limited_per_name(strict_server):
    name = fresh("target")
    answers = [sign_in(Browser(strict_server.url), name, "guess number %d" % i) for i in range(4)]
    assert [a[0] for a in answers] == [401, 401, 401, 429]
    assert int(answers[-1][1]["Retry-After"]) > 0 and "this name" in answers[-1][2]["error"]
    browser = Browser(strict_server.url)
    status, headers, page = browser.request("POST", "/session", form={
        "csrf_token": form_token(browser, "/register"), "name": name, "password": "another guess"})
    assert status == 429 and headers["Retry-After"] and "try again in" in page.decode()
    assert 'value="%s"' % name in page.decode()


def test_sign_in_attempts_are_limited_per_address(strict_server):
    statuses = [sign_in(Browser(strict_server.url), fresh("any"), "a guess here")[0] for _ in range(12)]
    assert statuses[-1] == 429 and 401 in statuses


# -- messages carry their author's stable id ---------------------------------------------------------

def test_messages_carry_the_authors_stable_id(server, room):
    owner = account_holder(server)
    account_id = token(owner)[1]["id"]
    guest = Browser(server.url)
    assert guest.sign_in(fresh("gus")) == 200
    guest_id = token(guest)[1]["id"]
    assert owner.post(room, "from the account")[1]["uid"] == account_id
    assert guest.post(room, "from the guest")[1]["uid"] == guest_id and guest_id.startswith("guest:")
    _, _, body = Browser(server.url).request("GET", "/rooms/%s/messages" % room)
    assert [m["uid"] for m in json.loads(body)["messages"]] == [account_id, guest_id]


# -- administrators over HTTP ------------------------------------------------------------------------

@pytest.fixture
def admin(server, redis_url):
    name = fresh("boss")
    result = cli(redis_url, "create", name, "--admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    browser = Browser(server.url)
    assert sign_in(browser, name)[0] == 200
    return browser


def test_an_admin_disables_an_account_and_its_streams_end_on_both_workers(server, admin, room):
    target = account_holder(server, "eve")
    streams = streams_on_both_workers(server, target, room)
    try:
        status, _, body = admin.request("POST", "/admin/accounts/%s/disable" % target.name, body={})
        assert status == 200 and json.loads(body)["ended"] == 1
        for stream in streams:
            stream.until("signed-out", timeout=3 * TEST_HEARTBEAT)
            assert until_end(stream, timeout=5) == []
    finally:
        for stream in streams:
            stream.close()
    assert sign_in(Browser(server.url), target.name)[0] == 403
    assert admin.request("POST", "/admin/accounts/%s/enable" % target.name, body={})[0] == 200
    assert sign_in(Browser(server.url), target.name)[0] == 200


def test_an_admin_disables_an_account_with_a_plain_form(server, admin):
    target = account_holder(server, "eve")
    _, _, page = admin.request("GET", "/account")
    assert target.name in page.decode()
    status, headers, _ = admin.request("POST", "/admin/accounts/%s/disable" % target.name,
                                       form={"csrf_token": form_token(admin, "/account")})
    assert status == 303 and headers["Location"].endswith("/account")
    assert token(target)[0] == 401


def test_only_an_admin_can_disable_an_account(server):
    target = account_holder(server, "eve")
    for someone in (account_holder(server, "bob"), Browser(server.url)):
        token(someone)
        if someone.name is None:
            assert someone.sign_in(fresh("gus")) == 200
        status, _, body = someone.request("POST", "/admin/accounts/%s/disable" % target.name, body={})
        assert status == 403 and json.loads(body)["error"]
        assert json.loads(body)["code"] == "not_admin"  # api.md's table, as /admin/api/ says it
    assert token(target)[0] == 200


def test_the_account_routes_refuse_with_the_codes_of_the_api_docs_table(server, admin):
    # They said their statuses' defaults (unauthorized, forbidden, not_found) where every other
    # route says signed_out, not_admin and no_account.
    nobody = Browser(server.url)
    token(nobody)
    for path, body in (("/admin/accounts/%s/disable" % fresh("eve"), {}),
                       ("/account/password", {"current": PASSWORD, "new": PASSWORD + "!"})):
        status, _, said = nobody.request("POST", path, body=body)
        assert (status, json.loads(said)["code"]) == (401, "signed_out"), path
    status, _, said = admin.request("POST", "/admin/accounts/%s/disable" % fresh("nobody"), body={})
    assert (status, json.loads(said)["code"]) == (404, "no_account")


# -- direct messages to an account -------------------------------------------------------------------

def test_a_direct_message_reaches_every_device_of_an_account(server, room):
    phone = account_holder(server)
    laptop = Browser(server.url)
    assert sign_in(laptop, phone.name)[0] == 200
    bob = account_holder(server, "bob")
    with phone.stream(room) as on_phone, laptop.stream(room) as on_laptop:
        on_phone.until("ready")
        on_laptop.until("ready")
        status, sent = bob.direct(phone.name, "to both devices")
        assert status == 201
        for stream in (on_phone, on_laptop):
            event, _ = stream.until("direct")
            assert event.json()["text"] == "to both devices"


def test_a_direct_message_to_an_account_that_is_away_waits_for_it(server, room):
    away = account_holder(server)
    bob = account_holder(server, "bob")
    token(bob)
    status, headers, body = bob.request("POST", "/users/%s/messages" % away.name, body={"text": "when you are back"})
    assert status == 201 and headers["Ripple-Delivery"] == "waiting"
    with away.stream(room) as stream:  # back: a fresh connect replays it, once
        _, before = stream.until("ready")
    assert [e.json()["text"] for e in before if e.name == "direct"] == ["when you are back"]


def test_a_direct_message_to_a_guest_that_is_gone_still_says_so(server):
    bob = account_holder(server, "bob")
    status, body = bob.direct(fresh("gone"), "anyone?")
    assert status == 404 and "here right now" in body["error"]


def test_a_direct_message_to_an_account_signed_in_nowhere_arrives_at_its_next_sign_in(server, room):
    away = account_holder(server)
    assert away.request("DELETE", "/session")[0] == 204
    bob = account_holder(server, "bob")
    token(bob)
    for text in ("first while away", "second while away"):
        status, headers, _ = bob.request("POST", "/users/%s/messages" % away.name, body={"text": text})
        assert status == 201 and headers["Ripple-Delivery"] == "waiting"
    back = Browser(server.url)
    assert sign_in(back, away.name)[0] == 200
    with back.stream(room) as stream:
        _, before = stream.until("ready")
    got = [e.json() for e in before if e.name == "direct"]
    assert [m["text"] for m in got] == ["first while away", "second while away"]  # in order, once
    assert all(m["sent"] <= m["ts"] for m in got)


def test_the_room_page_marks_guests_and_a_name_that_changed_hands(server, room):
    name = fresh("ann")
    first = Browser(server.url)
    assert first.sign_in(name) == 200 and first.post(room, "from the first")[0] == 201
    assert first.request("DELETE", "/session")[0] == 204  # the name is free again
    second = Browser(server.url)
    assert second.sign_in(name) == 200 and second.post(room, "from the second")[0] == 201
    _, _, page = Browser(server.url).request("GET", "/rooms/%s" % room)
    page = page.decode()
    assert page.count('class="guest"') >= 2
    assert page.count("data-changed") == 1 and page.index("data-changed") > page.index("from the first")


def test_moving_parked_direct_messages_keeps_one_parked_meanwhile(app, redis_client):
    import uuid

    from app.rooms.keys import PersonKeys
    store = app.extensions["ripple"].store
    parked, session = "parked-" + uuid.uuid4().hex[:8], "sid-" + uuid.uuid4().hex[:8]
    log = PersonKeys(parked).log
    first = redis_client.xadd(log, {"m": '"from":"ann","to":"bob","text":"one"}'})
    # What a move does once it has read the log, had another message been parked meanwhile:
    late = redis_client.xadd(log, {"m": '"from":"ann","to":"bob","text":"two"}'})
    store._forget_moved(keys=[log, PersonKeys(parked).meta], args=[first])
    assert [entry_id for entry_id, _ in redis_client.xrange(log)] == [late]
    assert store.move_direct(parked, session) == 1  # the next move takes it, then the log goes
    assert not redis_client.exists(log)
    assert [json.loads(body)["text"] for _, body in store.replay(PersonKeys(session), None, 10)[0]] == ["two"]


# -- who is a guest, in the online list -----------------------------------------------------------

def test_the_online_list_says_who_is_a_guest(server, room):
    owner = account_holder(server)
    guest = Browser(server.url)
    assert guest.sign_in(fresh("gus")) == 200
    with owner.stream(room) as one:
        one.until("ready")
        # The owner is online (the room's list says so) before the guest's stream opens: its
        # snapshot is what this test reads. (A rare CI failure had the owner missing from it.)
        wait_until(lambda: owner.name in json.loads(
            Browser(server.url).request("GET", "/rooms/%s/presence" % room)[2])["online"],
            timeout=10, message="the owner in the room's online list")
        with guest.stream(room) as other:
            _, events = other.until("ready")
            here = [e.json() for e in events if e.name == "presence"][-1]
            assert here["guests"] == [guest.name] and owner.name in here["online"]
            _, _, body = Browser(server.url).request("GET", "/rooms/%s/presence" % room)
            assert json.loads(body) == {"room": room, "online": sorted([owner.name, guest.name]),
                                        "guests": [guest.name]}
            _, _, page = owner.request("GET", "/rooms/%s" % room)
    marked = re.findall(r'<li dir="auto" data-name="([^"]+)" data-kind="guest"', page.decode())
    assert marked == [guest.name]


def test_a_guest_without_javascript_is_marked_in_the_online_list(server, room):
    guest = Browser(server.url)
    assert guest.sign_in(fresh("gus")) == 200
    assert guest.request("GET", "/rooms/%s/here.css" % room)[0] == 200  # what its page's <noscript> loads
    _, _, body = Browser(server.url).request("GET", "/rooms/%s/presence" % room)
    assert json.loads(body)["guests"] == [guest.name]


def test_a_direct_message_sent_while_both_devices_are_away_arrives_once_on_each(server, room):
    phone = account_holder(server)
    laptop = Browser(server.url)
    assert sign_in(laptop, phone.name)[0] == 200  # signed in on both, streaming on neither
    bob = account_holder(server, "bob")
    token(bob)
    status, headers, _ = bob.request("POST", "/users/%s/messages" % phone.name, body={"text": "while away"})
    assert status == 201 and headers["Ripple-Delivery"] == "waiting"
    for device in (phone, laptop):
        with device.stream(room) as stream:
            event, before = stream.until("ready")
            cursor = event.id
        assert [e.json()["text"] for e in before if e.name == "direct"] == ["while away"]
        with device.stream(room, headers={"Last-Event-ID": cursor}) as stream:  # resumed: not again
            _, again = stream.until("ready")
        assert [e for e in again if e.name == "direct"] == []


def test_a_direct_message_form_to_an_account_that_is_away_says_it_waits(server, room):
    away = account_holder(server)
    bob = account_holder(server, "bob")
    page = "/rooms/%s?with=%s" % (room, away.name)
    status, headers, _ = bob.request("POST", "/users/%s/messages" % away.name,
                                     form={"text": "later", "next": page, "csrf_token": form_token(bob, page),
                                           "idempotency_key": uuid.uuid4().hex})
    assert status == 303 and headers["Location"].endswith(page + "&delivery=waiting#dm-latest")
    _, _, shown = bob.request("GET", headers["Location"])
    assert "is away: it is delivered when they are back" in shown.decode()


def directs(device, room):
    """The direct messages a fresh stream of ``device`` replays."""
    with device.stream(room) as stream:
        _, before = stream.until("ready")
    return [e.json() for e in before if e.name == "direct"]


def test_what_an_account_sends_from_one_device_shows_on_its_other(server, room):
    phone = account_holder(server)
    laptop = Browser(server.url)
    assert sign_in(laptop, phone.name)[0] == 200
    bob = account_holder(server, "bob")
    with laptop.stream(room) as on_laptop:
        on_laptop.until("ready")
        assert phone.direct(bob.name, "sent from the phone")[0] == 201
        event, _ = on_laptop.until("direct")
        assert (event.json()["from"], event.json()["text"]) == (phone.name, "sent from the phone")
    assert [m["text"] for m in directs(laptop, room)] == ["sent from the phone"]  # once
    assert [m["text"] for m in directs(bob, room)] == ["sent from the phone"]


def test_a_new_device_of_an_account_starts_with_its_recent_direct_messages(server, room):
    phone = account_holder(server)
    bob = account_holder(server, "bob")
    assert bob.direct(phone.name, "before the laptop")[0] == 201
    laptop = Browser(server.url)
    assert sign_in(laptop, phone.name)[0] == 200
    got = directs(laptop, room)
    assert [m["text"] for m in got] == ["before the laptop"] and got[0]["sent"] <= got[0]["ts"]


def test_messages_parked_while_signed_in_nowhere_reach_each_device_signed_in_after(server, room):
    away = account_holder(server)
    assert away.request("DELETE", "/session")[0] == 204
    bob = account_holder(server, "bob")
    for text in ("one", "two"):
        assert bob.direct(away.name, text)[0] == 201
    devices = []
    for _ in range(2):
        device = Browser(server.url)
        assert sign_in(device, away.name)[0] == 200
        devices.append(device)
    for device in devices:
        assert [m["text"] for m in directs(device, room)] == ["one", "two"]


def test_a_direct_message_without_a_key_leaves_one_copy_with_its_sender(server, room):
    phone = account_holder(server)
    laptop = Browser(server.url)
    assert sign_in(laptop, phone.name)[0] == 200  # two devices: two copies for the recipient
    bob = account_holder(server, "bob")
    status, _, _ = bob.request("POST", "/users/%s/messages" % phone.name, body={"text": "no key"})
    assert status == 201
    assert [m["text"] for m in directs(bob, room)] == ["no key"]


# -- no impersonation ------------------------------------------------------------------------------

def test_no_one_posts_as_an_account_by_form_field_json_field_or_header(server, room):
    owner = account_holder(server, "olga")
    owner_id = token(owner)[1]["id"]
    mallory = Browser(server.url)
    assert mallory.sign_in(fresh("mal")) == 200
    token(mallory)
    forged = {"user": owner.name, "uid": owner_id, "from": owner.name, "bot": True}
    status, _, body = mallory.request("POST", "/rooms/%s/messages" % room, body={"text": "json", **forged},
                                      headers={"X-Forwarded-User": owner.name})  # no trusted proxy here
    mallory_id = token(mallory)[1]["id"]
    assert status == 201 and (json.loads(body)["user"], json.loads(body)["uid"]) == (mallory.name, mallory_id)
    page = "/rooms/%s" % room
    status, _, _ = mallory.request("POST", page + "/messages", form={
        "text": "form", "next": page, "csrf_token": form_token(mallory, page),
        "idempotency_key": uuid.uuid4().hex, **forged}, headers={"X-Forwarded-User": owner.name})
    assert status == 303
    _, _, body = Browser(server.url).request("GET", page + "/messages")
    shown = [(m["text"], m["user"], m.get("uid")) for m in json.loads(body)["messages"]]
    assert shown == [("json", mallory.name, mallory_id), ("form", mallory.name, mallory_id)]


def test_a_cookie_signed_with_another_key_is_nobody(server):
    from flask import Flask
    from flask.sessions import SecureCookieSessionInterface
    owner = account_holder(server, "olga")
    forger = Flask("forger")
    forger.secret_key = "not-the-services-key"
    forged = SecureCookieSessionInterface().get_signing_serializer(forger).dumps(
        {"name": owner.name, "sid": "made-up"})
    status, _, _ = Browser(server.url).request("GET", "/session", headers={"Cookie": "session=" + forged,
                                                                            "Accept": "application/json"})
    assert status == 401


def test_the_token_leeway_is_at_most_ten_seconds():
    from app.people.jwts import Verifier
    assert Verifier(secret="x" * 32, leeway=3600).leeway == 10 and Verifier(secret="x" * 32, leeway=-5).leeway == 0


def test_direct_messages_carry_their_authors_stable_id_and_mark_a_guest(server, room):
    owner = account_holder(server)
    owner_id = token(owner)[1]["id"]
    guest = Browser(server.url)
    assert guest.sign_in(fresh("gus")) == 200
    guest_id = token(guest)[1]["id"]
    assert guest.direct(owner.name, "from a guest")[1]["uid"] == guest_id
    assert owner.direct(guest.name, "from the account")[1]["uid"] == owner_id
    _, _, page = owner.request("GET", "/rooms/%s?with=%s" % (room, guest.name))
    conversation = page.decode().split("data-conversation", 1)[1]
    assert re.search(r'data-user="%s"[^>]*data-uid="%s"' % (guest.name, guest_id), conversation)
    assert conversation.count('class="guest"') == 1  # the guest's message, not the account's


def account_session(server, app, redis_client, prefix):
    """A fresh account's browser, its account's list of sessions (key), its one session id and
    that session's lifetime (s)."""
    browser = account_holder(server, prefix)
    with app.app_context():
        listed = accounts.sessions_key(services(app).accounts.id_for(browser.name))
    (sid,) = redis_client.smembers(listed)
    return browser, listed, sid, redis_client.ttl(keys.PersonKeys(sid).session)


def test_a_used_accounts_session_keeps_its_account_able_to_end_it(server, app, redis_client):
    # Disabling an account (or signing out everywhere) ends the sessions its list names: a
    # session kept alive by use must keep that list alive too, or it outlives it, unreachable.
    browser, listed, sid, lifetime = account_session(server, app, redis_client, "lst")
    for key in (keys.PersonKeys(sid).session, listed):  # both run down, as after weeks of use
        redis_client.expire(key, lifetime // 2)
    assert browser.request("GET", "/session")[0] == 200  # a use slides the session...
    assert redis_client.ttl(keys.PersonKeys(sid).session) > lifetime - 60
    assert redis_client.ttl(listed) > lifetime - 60  # ...and its account's list with it


def test_a_used_session_is_named_again_by_an_account_list_that_lapsed(server, app, redis_client):
    # A list that lapsed before sessions slid it along (the release before) names them again.
    browser, listed, sid, lifetime = account_session(server, app, redis_client, "lps")
    redis_client.delete(listed)
    redis_client.expire(keys.PersonKeys(sid).session, lifetime // 2)
    assert browser.request("GET", "/session")[0] == 200
    assert redis_client.smembers(listed) == {sid}
