"""A stream looks again once it listens: a sign-out or a ban that lands between its opening
checks and its subscription would otherwise never reach it (their word was published before it
listened). On a single Redis that look shares one round trip with the history's replay
(app/rooms/reads.py); both stream paths (app/web/faststream.py and Flask's route) take it."""
import time

import pytest
import redis

from app.ops.services import services
from app.people import accounts, identity, reading
from app.rooms import keys
from app.web import opening

from .test_faststream import make_app, open_stream, signed_in

ADDRESS = "198.51.100.7"
# The fast path's stream, and Flask's (a query parameter the fast path leaves to Flask).
PATHS = {"fast": "/rooms/%s/events", "flask": "/rooms/%s/events?other=1"}


def after_subscription(monkeypatch, act):
    """Run ``act(app)`` after each stream's checks passed and before it subscribes."""
    real = opening.subscription

    def subscription(ripple, *args, **kwargs):
        sub = real(ripple, *args, **kwargs)
        act()
        return sub
    monkeypatch.setattr(opening, "subscription", subscription)


@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
def test_a_session_that_ends_while_its_stream_opens_ends_the_stream(redis_url, room, redis_client, monkeypatch, path):
    app = make_app(redis_url)
    name = "so-" + room[-6:]
    cookie = signed_in(app, name)
    sid = app.session_interface.get_signing_serializer(app).loads(cookie.split("=", 1)[1])["sid"]
    after_subscription(monkeypatch, lambda: redis_client.delete(keys.PersonKeys(sid).session))
    status, _, body = open_stream(app, path % room, {"Cookie": cookie}, address=ADDRESS,
                                  until=b"event: signed-out")
    assert status == "200 OK"
    assert b"event: signed-out" in body and b"event: ready" not in body and b"event: message" not in body


@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
def test_a_ban_that_lands_while_a_stream_opens_ends_the_stream(redis_url, room, redis_client, monkeypatch, path):
    app = make_app(redis_url)
    cookie = signed_in(app, "bn-" + room[-6:])
    services(app).store.publish(room, "bob", "before the ban")
    after_subscription(monkeypatch, lambda: services(app).moderation.ban(room, "addr:" + ADDRESS, "bn", "owner"))
    status, _, body = open_stream(app, path % room, {"Cookie": cookie}, address=ADDRESS,
                                  until=b"event: removed")
    assert status == "200 OK"
    assert b"event: removed" in body and b'"banned"' in body
    assert b"before the ban" not in body and b"event: ready" not in body


@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
def test_a_signed_in_stream_replays_the_room_and_then_the_persons_direct_messages(redis_url, room, path):
    app = make_app(redis_url)
    name = "dm-" + room[-6:]
    cookie = signed_in(app, name)
    sid = app.session_interface.get_signing_serializer(app).loads(cookie.split("=", 1)[1])["sid"]
    ripple = services(app)
    ripple.store.publish(room, "bob", "in the room")
    ripple.store.publish_direct(("bob", None), (name, sid), "just for you")
    status, _, body = open_stream(app, (path % room) + ("&" if "?" in path else "?") + "backlog=5",
                                  {"Cookie": cookie}, address=ADDRESS, until=b"event: ready")
    assert status == "200 OK"
    assert 0 < body.index(b"in the room") < body.index(b"just for you") < body.index(b"event: ready")


def test_a_members_stream_of_a_private_room_opens_as_its_person(redis_url, room):
    # A private room's checks are not sure in the script alone: the person is registered apart.
    app = make_app(redis_url)
    name = "pm-" + room[-6:]
    cookie = signed_in(app, name)
    uid = identity.stable_id(services(app).sessions.record(sid_of(app, cookie)), sid_of(app, cookie))
    services(app).rooms.create(room, "", "private", uid, name, keys.RoomKeys(room).log)
    status, _, body = open_stream(app, "/rooms/%s/events" % room, {"Cookie": cookie}, address=ADDRESS,
                                  until=b"event: ready")
    assert status == "200 OK" and b"event: presence" in body and name.encode() in body


def test_a_stream_whose_name_another_session_holds_now_listens_anonymously(redis_url, room, redis_client):
    app = make_app(redis_url)
    name = "nt-" + room[-6:]
    cookie = signed_in(app, name)
    redis_client.set(services(app).names.key(name), "another-session", px=60000)
    status, _, body = open_stream(app, "/rooms/%s/events" % room, {"Cookie": cookie}, address=ADDRESS,
                                  until=b"event: ready")
    assert status == "200 OK" and b"event: ready" in body and b"event: presence" not in body
    assert services(app).presence.people(room) == ([], [])


def sid_of(app, cookie):
    return app.session_interface.get_signing_serializer(app).loads(cookie.split("=", 1)[1])["sid"]


# -- the person's registration inside the opening checks' script (the fast path) ----------------

def _limits(n):
    return [opening.Limit(1000, 60000, "LIMITER:{stream:t%d}:x" % i) for i in range(n)]


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_the_open_script_registers_the_person_with_any_number_of_limits(redis_url, room, redis_client, n):
    ext = services(make_app(redis_url))
    sid, name = "s-" + room, "p" + room[-8:]
    admission = opening.PersonAdmission(ext, name, sid, True, None, "guest:" + sid)
    conn = ext.addresses.new_conn()
    reply = opening.run_checks(ext.redis, room, _limits(n), int(time.time() * 1000), "guest:" + sid,
                               ADDRESS + str(n), True, ext.addresses.admit_args(conn), name, admission)
    assert reply[0] == 0 and reply[4] == 1 and reply[6][0] == 1
    assert redis_client.zscore(keys.PersonKeys(sid).streams, admission.conn) is not None
    assert redis_client.get(ext.names.key(name)) == sid


def test_a_lost_reply_of_the_open_script_costs_no_other_stream_its_place(redis_url, room, redis_client,
                                                                         monkeypatch):
    # The script ran and its reply was lost (a timeout in a storm): Flask's path registers the
    # person again, with the same connection id, so no phantom takes a place of the session's.
    app = make_app(redis_url, MAX_STREAMS_PER_SESSION=2)
    cookie = signed_in(app, "lr-" + room[-6:])
    sid = sid_of(app, cookie)
    other_tab = services(app).presence.admit(sid)
    real, calls = opening.run_checks, []

    def reply_lost(*args, **kwargs):
        reply = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            raise redis.TimeoutError("Timeout reading from socket")
        return reply
    monkeypatch.setattr(opening, "run_checks", reply_lost)
    status, _, body = open_stream(app, "/rooms/%s/events" % room, {"Cookie": cookie}, address=ADDRESS,
                                  until=b"event: ready")
    assert status == "200 OK" and b"event: ready" in body
    # The stream opened and closed again: the other tab keeps its place, nothing else is left.
    assert redis_client.zrange(keys.PersonKeys(sid).streams, 0, -1) == [other_tab]


def test_a_registration_failing_inside_the_open_script_is_said_and_writes_nothing(redis_url, room, redis_client):
    ext = services(make_app(redis_url))
    sid, name = "s-" + room, "pf" + room[-8:]
    uid = "guest:" + sid
    redis_client.set(reading.ReaderKeys(reading.reader_id(uid)).rooms, "not a sorted set")
    admission = opening.PersonAdmission(ext, name, sid, True, None, uid)
    conn = ext.addresses.new_conn()
    reply = opening.run_checks(ext.redis, room, [], int(time.time() * 1000), uid, ADDRESS, True,
                               ext.addresses.admit_args(conn), name, admission)
    assert reply[0] == 0 and reply[4] == 1 and reply[6][0] == -1  # the checks stand, the failure is said
    assert redis_client.zscore(keys.PersonKeys(sid).streams, admission.conn) is None
    assert redis_client.get(ext.names.key(name)) is None


def test_the_open_script_reads_an_accounts_sessions_along_for_the_sidebar(redis_url, room, redis_client):
    # The sidebar's counts are the account's (every device's read position): its session ids
    # come with the registration, not in a round trip of their own.
    ext = services(make_app(redis_url))
    account, sid, name = "a" * 24, "s-" + room, "pa" + room[-8:]
    redis_client.sadd(accounts.sessions_key(account), sid, "another-device")
    admission = opening.PersonAdmission(ext, name, sid, False, account, account)
    conn = ext.addresses.new_conn()
    reply = opening.run_checks(ext.redis, room, [], int(time.time() * 1000), account, ADDRESS, True,
                               ext.addresses.admit_args(conn), name, admission)
    admission.answer(reply[6])
    assert admission.result[0] == admission.conn
    assert sorted(admission.result[2]) == sorted(["another-device", sid])
