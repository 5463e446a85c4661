"""Typing indicators (issue 17): ephemeral, throttled per person, never stored or numbered."""
import json
import urllib.request

from playwright.sync_api import expect

from .browser import browser, dialogs, open_room, unique  # noqa: F401 (fixtures)
from .support import post
from .test_streams import open_ready
from .web import Browser


def typing(person, room):
    status, _, _ = person.request("POST", "/rooms/%s/typing" % room)
    return status


def test_a_typing_signal_reaches_a_stream_on_another_worker_without_an_id(server, room, person):
    ann = person("ann")
    streams = []
    try:
        while len({server.worker_of(s.local_port) for s in streams} - {None}) < 2:
            assert len(streams) < 40, "streams never reached both workers"
            streams.append(open_ready(server, room)[0])
        cursors = [s.last_id for s in streams]
        assert typing(ann, room) == 204
        for stream in streams:
            event = stream.messages(1, timeout=1.0, name="typing")[0]
            assert json.loads(event.data) == {"room": room, "name": ann.name} and event.id is None
        assert [s.last_id for s in streams] == cursors  # a cursor never moves for one
    finally:
        for stream in streams:
            stream.close()


def test_signals_are_throttled_to_one_broadcast_per_person_per_interval(server, room, person):
    ann = person("ann")
    stream, _ = open_ready(server, room)
    with stream:
        assert typing(ann, room) == 204 and typing(ann, room) == 204 and typing(ann, room) == 204
        post(server.url, room, "after the signals")  # everything before it has arrived by then
        seen = []
        while True:
            event = stream.next(5)
            seen.append(event.name)
            if event.name == "message":
                break
    assert seen.count("typing") == 1


def test_typing_is_never_stored_or_replayed(server, room, person):
    ann = person("ann")
    stream, _ = open_ready(server, room)
    with stream:
        cursor = stream.last_id
        typing(ann, room)
        stream.messages(1, name="typing")
    with urllib.request.urlopen("%s/rooms/%s/messages" % (server.url, room), timeout=10) as response:
        assert json.loads(response.read())["messages"] == []
    again, before = open_ready(server, room, headers={"Last-Event-ID": cursor})
    with again:
        assert [e.name for e in before if e.name == "typing"] == []


def test_only_a_signed_in_person_can_signal(server, room):
    anonymous = Browser(server.url)
    status, _, body = anonymous.request("GET", "/session")
    anonymous.token = json.loads(body)["csrf_token"]
    assert typing(anonymous, room) == 401


def test_a_page_shows_who_is_typing_and_forgets_them(open_room, room):
    ann_name = unique("ann")
    ann = open_room(name=ann_name)
    bob = open_room(name=unique("bob"))
    ann.locator("#text").press_sequentially("hel")
    line = bob.locator("[data-typing]")
    expect(line).to_have_text("%s is typing…" % ann_name, timeout=1_500)
    expect(ann.locator("[data-typing]")).to_have_text("")  # never oneself
    expect(line).to_have_text("", timeout=8_000)  # 6 s after the last signal
