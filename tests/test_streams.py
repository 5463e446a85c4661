"""Live delivery through a real Gunicorn with 2 gevent workers and a real Redis."""
import json
import random
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.rooms.keys import RoomKeys
from app.rooms.store import Store

from .servers import wait_until
from .sse import SSEStream
from .support import post


def events_url(server, room, query=""):
    return "%s/rooms/%s/events%s" % (server.url, room, ("?" + query) if query else "")


def open_ready(server, room, query="", headers=None):
    """Open a stream and read up to its ready event; return (stream, events before ready)."""
    stream = SSEStream(events_url(server, room, query), headers)
    assert stream.status == 200
    _, before = stream.until("ready")
    return stream, before


def test_stream_headers_and_first_chunk(server, room):
    with SSEStream(events_url(server, room)) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert stream.headers["Cache-Control"] == "no-cache"
        assert stream.headers["X-Accel-Buffering"] == "no"
        stream.until("ready")
        assert stream.retry == 2000


def test_silence_brings_heartbeat_comments(server, room):
    stream, _ = open_ready(server, room)
    with stream:
        with pytest.raises(TimeoutError):  # no event in 1.6 s of silence, only comments
            stream.next(1.6)
        assert stream.comments >= 2


def test_silence_brings_ping_events_a_page_can_hear(server, room):
    # Comments never reach an EventSource's script: the keep-alive is also an event, with no
    # id (a reconnect's cursor stays the last message's), so a page can tell quiet from dead.
    stream, _ = open_ready(server, room)
    with stream:
        ready_id = stream.last_id
        with pytest.raises(TimeoutError):  # pings are keep-alives: counted, not returned
            stream.next(1.6)
        assert stream.pings >= 2
        assert stream.last_id == ready_id


def test_fan_out_across_workers_every_stream_gets_every_message_once_in_order(server, room, fault_report):
    streams = []
    try:
        # Open at least 20 streams, and more until both workers hold some (bounded).
        while len(streams) < 20 or len({server.worker_of(s.local_port) for s in streams}) < 2:
            assert len(streams) < 120, "streams never reached the second worker"
            streams.append(open_ready(server, room)[0])
        assert len({server.worker_of(s.local_port) for s in streams} - {None}) >= 2

        def sender(who):
            return [post(server.url, room, "%s-%d" % (who, i), user=who)[1]["id"] for i in range(10)]

        with ThreadPoolExecutor(4) as pool:
            sent = [m for ids in pool.map(sender, ["ann", "bob", "cy", "dee"]) for m in ids]
        expected = sorted(sent, key=lambda i: tuple(map(int, i.split("-"))))
        got = [[e.json()["id"] for e in s.messages(len(sent), timeout=10)] for s in streams]
        fault_report.add("none: 4 concurrent posters, streams on both workers", len(streams), len(sent), got)
        for ids in got:
            assert ids == expected
    finally:
        for stream in streams:
            stream.close()


def test_resume_with_last_event_id_gets_exactly_the_missed_messages(server, room):
    stream, _ = open_ready(server, room)
    post(server.url, room, "before")
    seen = stream.messages(1)[0]
    stream.close()
    missed = [post(server.url, room, "missed %d" % i)[1]["id"] for i in range(3)]
    resumed, before = open_ready(server, room, headers={"Last-Event-ID": seen.id})
    with resumed:
        assert [e.json()["id"] for e in before if e.name == "message"] == missed
        after = post(server.url, room, "live")[1]["id"]
        assert resumed.messages(1)[0].json()["id"] == after


def test_resume_with_query_cursor_for_clients_without_headers(server, room):
    first = post(server.url, room, "one")[1]["id"]
    second = post(server.url, room, "two")[1]["id"]
    stream, before = open_ready(server, room, "last_event_id=" + first)
    with stream:
        assert [e.id for e in before] == [second]


def test_header_cursor_wins_over_the_query_cursor(server, room):
    first = post(server.url, room, "one")[1]["id"]
    second = post(server.url, room, "two")[1]["id"]
    stream, before = open_ready(server, room, "last_event_id=" + first, {"Last-Event-ID": second})
    with stream:
        assert [e.name for e in before] == []


def test_ready_event_carries_the_head_cursor_so_an_idle_client_can_resume(server, room):
    head = post(server.url, room, "old")[1]["id"]
    stream, before = open_ready(server, room)
    stream.close()
    assert before == [] and stream.last_id == head
    missed = post(server.url, room, "while away")[1]["id"]
    resumed, before = open_ready(server, room, headers={"Last-Event-ID": stream.last_id})
    with resumed:
        assert [e.id for e in before] == [missed]


def test_backlog_sends_the_last_n_messages_on_a_fresh_connect(server, room):
    ids = [post(server.url, room, "m%d" % i)[1]["id"] for i in range(5)]
    stream, before = open_ready(server, room, "backlog=3")
    with stream:
        assert [e.id for e in before] == ids[2:]


def test_malformed_cursor_streams_from_now_without_an_error(server, room):
    post(server.url, room, "old")
    stream, before = open_ready(server, room, headers={"Last-Event-ID": "garbage\u00e9" * 5})
    with stream:
        assert before == []
        new = post(server.url, room, "new")[1]["id"]
        assert stream.messages(1)[0].id == new


def test_cursor_older_than_history_gets_a_dropped_notice_then_what_is_kept(server, redis_client, room):
    store = Store(redis_client, 3, 60)  # trims to 3, as a room with a short history would
    first = json.loads(store.publish(room, "ann", "gone")[0])["id"]
    kept = [json.loads(store.publish(room, "ann", "m%d" % i)[0])["id"] for i in range(5)][-3:]
    stream, before = open_ready(server, room, headers={"Last-Event-ID": first})
    with stream:
        assert [e.name for e in before] == ["dropped", "message", "message", "message"]
        assert [e.id for e in before[1:]] == kept
        assert before[0].id is None


def test_hostile_text_round_trips_exactly(server, room):
    # Line breaks inside a message (CR, CRLF) round-trip; blank lines at its ends are trimmed on
    # store (issue 11 #16), so the hostile ones sit inside.
    texts = ["a\n\ndata: fake\n\nevent: message\nid: 1-0", "cr\ronly\r\n\r\nafter", "字" * 2000,
             "emoji 🎉👍🏽 and rtl مرحبا", "tabs\tand \\u0000 literally", ": comment-looking"]
    stream, _ = open_ready(server, room)
    with stream:
        for text in texts:
            assert post(server.url, room, text)[0] == 201
        got = stream.messages(len(texts))
        assert [e.json()["text"] for e in got] == texts
        assert all(e.name == "message" for e in got)


def test_history_live_race_never_gaps_or_duplicates(server, room):
    """Streams connect with cursors while posts run; each sees a contiguous, duplicate-free run."""
    stop = threading.Event()
    posted = []

    def poster():
        while not stop.is_set() and len(posted) < 400:
            posted.append(post(server.url, room, "race %d" % len(posted))[1]["id"])

    thread = threading.Thread(target=poster)
    thread.start()
    try:
        wait_until(lambda: len(posted) >= 5, 10, message="first posts")
        rounds = 0
        while rounds < 25:
            rounds += 1
            cursor = random.choice(posted[:-1])
            stream = SSEStream(events_url(server, room), {"Last-Event-ID": cursor})
            with stream:
                ids = [e.id for e in stream.messages(10, timeout=10)]
            start = posted.index(cursor) + 1
            # A stream can see a message before its POST has returned to the poster.
            wait_until(lambda: len(posted) >= start + 10, 10, message="poster to catch up")  # noqa: B023
            assert ids == posted[start:start + 10], "gap or duplicate after %s" % cursor
    finally:
        stop.set()
        thread.join(10)


def test_dropped_clients_release_their_redis_connections(server, redis_client, room):
    channel = RoomKeys(room).channel
    subscribers = lambda: redis_client.pubsub_numsub(channel)[0][1]  # noqa: E731
    sockets = []
    try:
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            s.sendall(b"GET /rooms/%s/events HTTP/1.1\r\nHost: x\r\n\r\n" % room.encode())
            sockets.append(s)
        for s in sockets:  # each reaches its ready event: the stream and its subscription are up
            received = b""
            while b"event: ready" not in received:
                chunk = s.recv(4096)
                assert chunk, "stream closed early"
                received += chunk
        assert subscribers() == 200
        peak = redis_client.info("clients")["connected_clients"]
    finally:
        for s in sockets:
            s.close()
    # Each stream notices at its next heartbeat write (0.5 s here) and closes its connection.
    wait_until(lambda: subscribers() == 0, 15, message="pub/sub connections released")
    assert redis_client.info("clients")["connected_clients"] <= peak - 200


@pytest.mark.slow
def test_a_closed_client_frees_its_redis_connection_at_once_not_at_the_next_heartbeat(
        redis_url, redis_client, tmp_path, room):
    from .servers import Gunicorn
    from .support import SERVER_ENV
    quiet = Gunicorn(tmp_path, redis_url=redis_url, workers=2,
                     env={**SERVER_ENV, "RIPPLE_HEARTBEAT_SECONDS": "60"}).start()
    channel = RoomKeys(room).channel
    try:
        streams = [SSEStream("%s/rooms/%s/events" % (quiet.url, room)) for _ in range(50)]
        for stream in streams:
            stream.until("ready")
        assert redis_client.pubsub_numsub(channel)[0][1] == 50
        for stream in streams:
            stream.close()
        # Far sooner than the 60 s heartbeat that would otherwise find them gone.
        wait_until(lambda: redis_client.pubsub_numsub(channel)[0][1] == 0, 5, message="subscriptions freed")
        with SSEStream("%s/rooms/%s/events" % (quiet.url, room)) as still:  # the server is fine
            still.until("ready")
            post(quiet.url, room, "after")
            assert still.messages(1)[0].json()["text"] == "after"
        assert "Error handling request" not in quiet.log_tail(200)
    finally:
        quiet.stop()


def _raw_request(server, lines):
    """Send a hand-written request; return the socket (caller closes it)."""
    host, port = server.url.split("//")[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def _read_until(sock, marker, deadline_s=10):
    data = b""
    sock.settimeout(deadline_s)
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_http_1_0_client_gets_an_unchunked_stream_with_live_messages(server, room):
    sock = _raw_request(server, ["GET /rooms/%s/events HTTP/1.0" % room, "Host: x"])
    with sock:
        head = _read_until(sock, b"event: ready")
        assert b"Transfer-Encoding" not in head.split(b"\r\n\r\n")[0]
        post(server.url, room, "over one-oh")
        body = _read_until(sock, b"over one-oh")
        assert b"\r\n" not in head.split(b"\r\n\r\n", 1)[1] + body  # no chunk framing at all
        frame = body[body.index(b"event: message"):]
        assert frame.split(b"\n")[1].startswith(b"id: ") and b"over one-oh" in frame.split(b"\n")[2]


def test_http_1_1_stream_keeps_valid_chunked_framing_for_live_messages(server, room):
    sock = _raw_request(server, ["GET /rooms/%s/events HTTP/1.1" % room, "Host: x"])
    with sock:
        data = _read_until(sock, b"event: ready")
        post(server.url, room, "chunk me")
        data += _read_until(sock, b"chunk me")
        data += _read_until(sock, b"\r\n", 5) if not data.endswith(b"\r\n") else b""
        head, _, body = data.partition(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head.lower()
        events = b""
        while body:  # decode every chunk: sizes must match exactly
            size_line, _, rest = body.partition(b"\r\n")
            size = int(size_line, 16)
            events, body = events + rest[:size], rest[size + 2:]
            assert rest[size:size + 2] in (b"\r\n", b"")
        assert events.count(b"event: message") == 1 and b"chunk me" in events


def test_head_on_a_stream_returns_its_headers_and_no_stream(server, room):
    sock = _raw_request(server, ["HEAD /rooms/%s/events HTTP/1.1" % room, "Host: x", "Connection: close"])
    with sock:
        data = _read_until(sock, b"\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 200") and b"text/event-stream" in data
        sock.settimeout(5)
        rest = data.split(b"\r\n\r\n", 1)[1]
        while True:  # the server closes: nothing held open, no body bytes
            chunk = sock.recv(4096)
            if not chunk:
                break
            rest += chunk
        assert rest == b""
