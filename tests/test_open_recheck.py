"""A stream looks again once it listens: a sign-out or a ban that lands between its opening
checks and its subscription would otherwise never reach it (their word was published before it
listened). On a single Redis that look shares one round trip with the history's replay
(app/rooms/reads.py); both stream paths (app/web/faststream.py and Flask's route) take it."""
import pytest

from app.ops.services import services
from app.people import identity
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
