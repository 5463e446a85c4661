"""Presence through real Gunicorn workers: per person, with a grace window, and a sweeper that
announces the leave of a killed worker's streams."""
import json
import os
import signal
import time
import urllib.request
import uuid

import pytest

from .servers import Gunicorn, wait_until
from .support import SERVER_ENV, TEST_HEARTBEAT
from .web import Browser

GRACE = float(SERVER_ENV["RIPPLE_PRESENCE_GRACE_SECONDS"])


def person(server, prefix):
    browser = Browser(server.url)
    assert browser.sign_in("%s-%s" % (prefix, uuid.uuid4().hex[:6])) == 200
    return browser


def online(server, room):
    with urllib.request.urlopen("%s/rooms/%s/presence" % (server.url, room), timeout=10) as r:
        return json.loads(r.read())["online"]


def presence_events(stream, seconds):
    """Collect presence events for ``seconds`` (a bounded listen, for "nothing happened")."""
    found, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            event = stream.next(max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            break
        if event is None:
            break
        if event.name == "presence":
            found.append(event.json())
    return found


def announcement(stream, name, action, timeout=10):
    """Skip to the presence event announcing ``name``'s ``action`` (one's own join comes too)."""
    deadline = time.monotonic() + timeout
    while True:
        event, _ = stream.until("presence", timeout=max(0.01, deadline - time.monotonic()))
        if event.json()["name"] == name and event.json()["action"] == action:
            return event


def test_a_person_with_two_tabs_is_online_once(server, room):
    ann = person(server, "ann")
    tabs = [ann.stream(room) for _ in range(2)]
    try:
        for tab in tabs:
            tab.until("ready")
        assert online(server, room) == [ann.name]
    finally:
        for tab in tabs:
            tab.close()


def test_join_is_announced_to_others_with_the_online_list(server, room):
    ann, bob = person(server, "ann"), person(server, "bob")
    with ann.stream(room) as watching:
        watching.until("ready")
        with bob.stream(room) as joining:
            joining.until("ready")
            event = announcement(watching, bob.name, "join")
            assert sorted(event.json()["online"]) == sorted([ann.name, bob.name])
            assert event.id is None  # presence never moves the resume cursor


def test_a_quick_reconnect_announces_neither_leave_nor_join(server, room):
    ann, bob = person(server, "ann"), person(server, "bob")
    with ann.stream(room) as watching:
        watching.until("ready")
        first = bob.stream(room)
        first.until("ready")
        announcement(watching, bob.name, "join")
        first.close()
        with bob.stream(room) as again:  # a reload: back well within the grace window
            again.until("ready")
            assert presence_events(watching, GRACE + 2 * TEST_HEARTBEAT + 1) == []


def test_leaving_is_announced_after_the_grace_window(server, room):
    ann, bob = person(server, "ann"), person(server, "bob")
    with ann.stream(room) as watching:
        watching.until("ready")
        tab = bob.stream(room)
        tab.until("ready")
        announcement(watching, bob.name, "join")
        tab.close()
        started = time.monotonic()
        event = announcement(watching, bob.name, "leave", timeout=GRACE + 5)
        assert event.json()["online"] == [ann.name]
        assert time.monotonic() - started >= GRACE * 0.8


@pytest.mark.slow
def test_a_killed_workers_people_leave_within_two_heartbeats(redis_url, tmp_path, room):
    server = Gunicorn(tmp_path, redis_url=redis_url, workers=2, env=SERVER_ENV).start()
    try:
        ann = person(server, "ann")
        watchers = []
        # ann watches from both workers, so one survives whichever we kill.
        while len({server.worker_of(w.local_port) for w in watchers}) < 2:
            assert len(watchers) < 40
            stream = ann.stream(room)
            stream.until("ready")
            watchers.append(stream)
        bob = person(server, "bob")
        tab = bob.stream(room)
        tab.until("ready")
        victim = server.worker_of(tab.local_port)
        survivor = next(w for w in watchers if server.worker_of(w.local_port) != victim)
        announcement(survivor, bob.name, "join")
        os.kill(victim, signal.SIGKILL)
        started = time.monotonic()
        # The registration was refreshed at most one heartbeat ago and lives two: then the
        # sweeper (on the survivor) announces the leave.
        announcement(survivor, bob.name, "leave")
        assert time.monotonic() - started < 2 * TEST_HEARTBEAT + 2.0
        wait_until(lambda: online(server, room) == [ann.name], 5, message="presence list")
        for stream in watchers + [tab]:
            stream.close()
    finally:
        server.stop()


def guests(server, room):
    with urllib.request.urlopen("%s/rooms/%s/presence" % (server.url, room), timeout=10) as r:
        return json.loads(r.read())["guests"]


def test_a_guest_who_registers_is_no_longer_listed_as_a_guest(server, room):
    from .test_accounts import register
    ann = person(server, "ann")
    here = "/rooms/%s/here.css" % room  # JavaScript off: a page's visit keeps them online for the idle window
    with person(server, "bob").stream(room) as watching:
        watching.until("ready")
        assert ann.request("GET", here)[0] == 200
        assert ann.name in announcement(watching, ann.name, "join").json()["guests"]
        assert register(ann, ann.name)[0] == 201  # their guest visit lingers; the name is the account's now
        assert ann.request("GET", here)[0] == 200
        told = announcement(watching, ann.name, "here")
        assert ann.name in told.json()["online"] and ann.name not in told.json()["guests"]
    assert ann.name in online(server, room) and ann.name not in guests(server, room)


@pytest.mark.parametrize("how", ["json", "form"])
def test_signing_out_ends_a_pages_presence_without_javascript_at_once(server, how):
    # h55 finding 6: a no-JS reader who signed out stayed online for the idle window (5 minutes)
    # while their name was already free for someone else.
    rooms = ["out-%s" % uuid.uuid4().hex[:8] for _ in range(2)]
    ann = person(server, "ann")
    for room in rooms:
        assert ann.request("GET", "/rooms/%s/here.css" % room)[0] == 200
    assert all(online(server, room) == [ann.name] for room in rooms)
    with person(server, "bob").stream(rooms[0]) as watching:
        assert ann.name in watching.until("presence")[0].json()["online"]  # the stream's first: who is here
        started = time.monotonic()
        if how == "json":
            assert ann.request("DELETE", "/session")[0] == 204
        else:
            assert ann.request("POST", "/session/leave", form={"csrf_token": ann.token})[0] == 303
        announcement(watching, ann.name, "leave", timeout=5)  # the grace window (1 s here), then the sweep
        assert time.monotonic() - started < 5
    for room in rooms:
        wait_until(lambda: ann.name not in online(server, room), 5, message="online in #%s" % room)
