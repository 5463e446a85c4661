"""A stream's opening checks (app/web/opening.py): its limits, its room's gate and its address's
admission are one round trip, and each keeps its rule; through real Gunicorn and Redis."""
import uuid

import pytest

from app.people import names

from .servers import Gunicorn
from .support import SERVER_ENV
from .test_accounts import account_holder
from .test_hardening import From, an_address
from .test_rooms import create, new_room

CAPPED = {**SERVER_ENV, "RIPPLE_TRUSTED_PROXIES": "1", "RIPPLE_MAX_STREAMS_PER_ADDRESS": "2"}
RATED = {**SERVER_ENV, "RIPPLE_TRUSTED_PROXIES": "1", "RIPPLE_STREAM_RATE_IP": "6 per minute"}


@pytest.fixture(scope="module")
def opening(redis_url, tmp_path_factory):
    """Two streams per address; each test speaks from an address of its own."""
    server = Gunicorn(tmp_path_factory.mktemp("opening"), redis_url=redis_url, workers=2, env=CAPPED).start()
    yield server
    server.halt()


@pytest.fixture(scope="module")
def rated(redis_url, tmp_path_factory):
    """Six new streams a minute per address."""
    server = Gunicorn(tmp_path_factory.mktemp("rated"), redis_url=redis_url, workers=2, env=RATED).start()
    yield server
    server.halt()


def _first_event(stream):
    event = stream.next(5)
    return event.name if event else None


def test_streams_a_private_room_refuses_take_no_place_of_their_address(opening):
    owner = account_holder(opening)
    private, public = new_room("priv"), new_room("pub")
    assert create(owner, private, "private")[0] == 201
    stranger = From(opening.url, an_address())
    for _ in range(3):  # past the address's cap of two, were they admitted
        status, _, _ = stranger.request("GET", "/rooms/%s/events" % private,
                                        headers={"Accept": "text/event-stream", "Connection": "close"})
        assert status == 404
    opened = [stranger.stream(public) for _ in range(2)]
    try:
        events = [stream.next(5) for stream in opened]
        assert [e.name for e in events] == ["ready", "ready"], [e.data for e in events]
    finally:
        for stream in opened:
            stream.close()


def test_a_head_request_holds_no_stream(opening, room):
    viewer = From(opening.url, an_address())
    for _ in range(3):  # more than the address's two streams: a HEAD holds none
        status, headers, body = viewer.request("HEAD", "/rooms/%s/events" % room)
        assert status == 200 and headers["Content-Type"].startswith("text/event-stream") and body == b""
    stream = viewer.stream(room)
    try:
        assert _first_event(stream) == "ready"
    finally:
        stream.close()


def test_new_streams_past_the_address_rate_are_told_to_come_back_later(rated, room):
    viewer = From(rated.url, an_address())
    answers = []
    for _ in range(8):  # six a minute from one address
        stream = viewer.stream(room)
        answers.append(_first_event(stream))
        if answers[-1] == "busy":
            # when one more fits: within this minute's window and the next (sliding window counter)
            assert 1 <= int(stream.headers["Retry-After"]) <= 120
        stream.close()
    assert answers[:6] == ["ready"] * 6 and answers[6:] == ["busy", "busy"]


@pytest.fixture(scope="module")
def unhurried(redis_url, tmp_path_factory):
    """Two streams per address, refreshed every 30 s: a place kept by mistake stays kept."""
    env = {**CAPPED, "RIPPLE_HEARTBEAT_SECONDS": "30"}
    server = Gunicorn(tmp_path_factory.mktemp("unhurried"), redis_url=redis_url, workers=2, env=env).start()
    yield server
    server.halt()


def test_an_open_that_fails_after_its_admission_gives_its_place_back(unhurried, room, redis_client):
    address = an_address()
    person = From(unhurried.url, address)
    assert person.sign_in("mid-" + uuid.uuid4().hex[:8]) == 200
    # Redis fails the person's step (after the address admitted the stream): a WRONGTYPE here
    # stands for any error then (a timeout, a dropped connection).
    redis_client.hset(names.Names.account_key(person.name), "x", "1")
    for _ in range(3):  # past the address's two places, were they kept
        status, _, body = person.request("GET", "/rooms/%s/events" % room)
        assert status == 503, body
    viewer = From(unhurried.url, address)
    stream = viewer.stream(room)
    try:
        assert _first_event(stream) == "ready"
    finally:
        stream.close()


def test_every_key_an_open_writes_expires(rated, room, redis_client):
    address = an_address()
    person = From(rated.url, address)
    assert person.sign_in("ttl-" + uuid.uuid4().hex[:8]) == 200
    for headers in ({}, {"Last-Event-ID": "1-0"}):  # a new stream (per address and session), a resume
        stream = person.stream(room, headers)
        try:
            stream.until("ready")
        finally:
            stream.close()
    written = [key for key in redis_client.scan_iter(match="*{stream:*", count=1000)
               if address in key or "sid:" in key]
    written += list(redis_client.scan_iter(match="ripple:{a:%s}:*" % address))
    assert any("resume:" + address in key for key in written) and any("ip:" + address in key for key in written)
    assert any("sid:" in key for key in written)
    ttls = {key: redis_client.pttl(key) for key in written}
    # -1: kept for ever (the fault); -2: gone since the scan, which is expiring (another test's
    # session's counter of a window that just ran out).
    assert all(ttl > 0 or ttl == -2 for ttl in ttls.values()), ttls
