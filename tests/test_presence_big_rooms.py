"""Presence in big rooms (issue 20): above RIPPLE_PRESENCE_LIST_MAX names online, a join or leave
reaches everyone as the change alone (name, action, guest, online_count), and a new stream's
snapshot lists at most that many names (its own among them) with the count. Small rooms keep the
whole lists (tests/test_presence.py). Here the limit is 2, so three people make a big room."""
import uuid

import pytest
import requests
from playwright.sync_api import expect

from app.ops.embedded_redis import EmbeddedRedis

from .browser import browser, dialogs, open_room  # noqa: F401 (fixtures)
from .receivers import Receiver
from .servers import Gunicorn, free_port, wait_until
from .support import SERVER_ENV
from .web import Browser

LIST_MAX = 2


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """This module's own Redis: the presence sweeper is one process per Redis (a lock), and the
    suite's other servers (whose list limit is the default) would announce this module's leaves."""
    own = EmbeddedRedis(tmp_path_factory.mktemp("big-rooms-redis"), port=free_port(), appendonly=False)
    own.start()
    yield own.url
    own.stop()


@pytest.fixture(scope="module")
def server(redis_url, tmp_path_factory):
    """This module's Gunicorn: the test settings, with a list of at most LIST_MAX names."""
    gunicorn = Gunicorn(tmp_path_factory.mktemp("big-rooms"), redis_url=redis_url, workers=2,
                        env={**SERVER_ENV, "RIPPLE_PRESENCE_LIST_MAX": str(LIST_MAX)}).start()
    yield gunicorn
    gunicorn.halt()


def person(server, prefix):
    browser = Browser(server.url)
    assert browser.sign_in("%s-%s" % (prefix, uuid.uuid4().hex[:6])) == 200
    return browser


def announcement(stream, name, action, timeout=10):
    """The presence event announcing ``name``'s ``action`` (earlier ones skipped)."""
    while True:
        event, _ = stream.until("presence", timeout=timeout)
        if event.json().get("name") == name and event.json()["action"] == action:
            return event.json()


@pytest.fixture
def crowd(server, room):
    """Three people with a stream open in ``room``: one more than the list shows."""
    streams = []
    for prefix in ("ann", "bob", "cy"):
        stream = person(server, prefix).stream(room)
        stream.until("ready")
        streams.append(stream)
    yield streams
    for stream in streams:
        stream.close()


def test_a_join_in_a_big_room_reaches_the_others_as_the_change_and_the_count(server, room, crowd):
    dan = person(server, "dan")
    with dan.stream(room) as joining:
        joining.until("ready")
        event = announcement(crowd[0], dan.name, "join")
    assert event == {"room": room, "name": dan.name, "action": "join", "guest": True, "online_count": 4}


def test_a_leave_in_a_big_room_reaches_the_others_as_the_change_and_the_count(server, room, crowd):
    dan = person(server, "dan")
    with dan.stream(room) as joining:
        joining.until("ready")
        announcement(crowd[0], dan.name, "join")
    event = announcement(crowd[0], dan.name, "leave")
    assert event == {"room": room, "name": dan.name, "action": "leave", "guest": True, "online_count": 3}


def test_a_new_streams_snapshot_of_a_big_room_is_bounded_and_counts_everyone(server, room, crowd):
    dan = person(server, "dan")
    with dan.stream(room) as joining:
        snapshot, _ = joining.until("presence")
        data = snapshot.json()
    assert data["action"] == "here" and data["online_count"] == 4
    assert len(data["online"]) == LIST_MAX and dan.name in data["online"]
    assert data["online"] == sorted(data["online"]) and data["guests"] == data["online"]  # signed in as guests


def test_a_small_rooms_join_still_carries_the_whole_list_and_the_count(server, room):
    ann, bob = person(server, "ann"), person(server, "bob")
    with ann.stream(room) as watching:
        watching.until("ready")
        with bob.stream(room) as joining:
            joining.until("ready")
            event = announcement(watching, bob.name, "join")
    assert event["online"] == event["guests"] == sorted([ann.name, bob.name])  # signed in as guests
    assert event["online_count"] == 2 and event["guest"] is True


def test_a_page_of_a_big_room_lists_the_first_names_and_how_many_more(server, room, crowd):
    page = Browser(server.url)
    with page.opener.open("%s/rooms/%s" % (server.url, room), timeout=10) as response:
        html = response.read().decode()
    listed = html.split("<ul data-online", 1)[1].split("</ul>", 1)[0]
    assert listed.count('data-name="') == LIST_MAX
    assert "and 1 more" in html and "<span data-online-count>3</span>" in html


def test_a_browser_applies_joins_and_leaves_of_a_big_room(server, room, crowd, open_room):
    page = open_room("eve-" + uuid.uuid4().hex[:6])
    people = page.locator("[data-online]")
    expect(page.locator("[data-online-count]")).to_have_text("4")
    expect(people.locator("li[data-name]")).to_have_count(LIST_MAX)
    expect(people.locator("li[data-more]")).to_have_text("and 2 more")
    early = person(server, "0-early")  # sorts first: listed once it joins
    with early.stream(room) as joining:
        joining.until("ready")
        expect(page.locator("[data-online-count]")).to_have_text("5")
        expect(people.locator('li[data-name="%s"]' % early.name)).to_have_count(1)
        expect(people.locator("li[data-more]")).to_have_text("and 3 more")
    expect(page.locator("[data-online-count]")).to_have_text("4", timeout=15_000)
    expect(people.locator('li[data-name="%s"]' % early.name)).to_have_count(0)


# -- webhooks: the same rule ------------------------------------------------------------------

ADMIN_TOKEN = "test-admin-token"


@pytest.fixture(scope="module")
def hook_server(tmp_path_factory):
    """A server with a Redis of its own (webhooks registered here reach no other test's server)."""
    store = EmbeddedRedis(tmp_path_factory.mktemp("big-hooks-redis"), port=free_port(), appendonly=False)
    store.start()
    gunicorn = Gunicorn(tmp_path_factory.mktemp("big-hooks"), redis_url=store.url, workers=2,
                        env={**SERVER_ENV, "RIPPLE_PRESENCE_LIST_MAX": str(LIST_MAX),
                             "RIPPLE_ADMIN_TOKEN": ADMIN_TOKEN}).start()
    yield gunicorn
    gunicorn.halt()
    store.stop()


def test_a_webhooks_join_in_a_big_room_carries_the_change_and_the_count(hook_server, room):
    crowd = [person(hook_server, prefix).stream(room) for prefix in ("ann", "bob", "cy")]
    try:
        for stream in crowd:
            stream.until("ready")
        with Receiver() as receiver:
            answer = requests.post(hook_server.url + "/admin/webhooks", timeout=10,
                                   json={"url": receiver.url, "events": "join", "rooms": room},
                                   headers={"Authorization": "Bearer " + ADMIN_TOKEN})
            assert answer.status_code == 201, answer.text
            dan = person(hook_server, "dan")
            with dan.stream(room) as joining:
                joining.until("ready")
                wait_until(receiver.requests, 30, message="the join")
            data = receiver.requests()[0].json["data"]
    finally:
        for stream in crowd:
            stream.close()
    assert data == {"room": room, "name": dan.name, "action": "join", "guest": True, "online_count": 4}
