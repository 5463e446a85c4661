"""SSE framing: hostile text can never forge an event, and the tests' SSE client reads it right."""
import json
import socket
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.delivery import sse
from app.rooms import messages

from .sse import SSEStream


def parse(frame):
    """Parse SSE bytes the way a browser does; return the (name, data, id) of each event."""
    events, name, data, eid = [], "message", [], None
    for line in frame.decode().replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line == "":
            if data:
                events.append((name, "\n".join(data), eid))
            name, data, eid = "message", [], None
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            eid = value
    return events


def test_message_frame_is_one_event_with_the_json_intact():
    body = messages.body("r", "ann", "line one\n\ndata: forged\r\nevent: x\rid: 9")
    payload = messages.assemble("5-1", body)
    events = parse(sse.message_frame(b"5-1", payload.encode()))
    assert events == [("message", payload, "5-1")]
    assert json.loads(events[0][1])["text"] == "line one\n\ndata: forged\r\nevent: x\rid: 9"


def test_event_with_multiline_data_keeps_every_line():
    assert parse(sse.event("note", "a\nb\r\nc", event_id="1-0")) == [("note", "a\nb\nc", "1-0")]


def test_event_name_and_id_cannot_carry_line_breaks():
    assert parse(sse.event("x\ndata: evil", "ok", event_id="1\nevent: y")) == [("x data: evil", "ok", "1 event: y")]


@given(st.text(min_size=1, max_size=300))
def test_any_text_round_trips_through_one_frame(text):
    payload = messages.assemble("1-0", messages.body("room", "user", text))
    events = parse(sse.message_frame(b"1-0", payload.encode()))
    assert len(events) == 1 and json.loads(events[0][1])["text"] == text


def test_test_client_parser_handles_cr_and_crlf():
    class Fake(SSEStream):
        def __init__(self, data):
            self._buffer, self.comments, self.retry, self.last_id, self.ended = data, 0, None, None, False
            self.conn = None
    stream = Fake(b": hi\r\nevent: a\rdata: 1\r\n\r\ndata: 2\n\n")
    first, second = stream.next(0.1), stream.next(0.1)
    assert (first.name, first.data, second.data, stream.comments) == ("a", "1", "2", 1)


class OneStream:
    """A loopback server that answers one SSE request, then writes what the test hands it: a
    stream that stays silent for as long as the test wants."""

    def __init__(self, chunked):
        self.chunked, self.listener = chunked, socket.create_server(("127.0.0.1", 0))
        self.port, self.peer = self.listener.getsockname()[1], None

    def accept(self):
        """Take the client's connection and answer its headers (the request is not read on)."""
        self.listener.settimeout(10)
        self.peer, _ = self.listener.accept()
        self.peer.recv(65536)
        framing = b"Transfer-Encoding: chunked" if self.chunked else b"Connection: close"
        self.peer.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n%s\r\n\r\n" % framing)

    def write(self, data):
        self.peer.sendall(b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data)

    def close(self):
        for sock in (self.peer, self.listener):
            if sock is not None:
                sock.close()


@pytest.fixture(params=[True, False], ids=["chunked", "until-close"])
def silent_server(request):
    server = OneStream(request.param)
    yield server
    server.close()


def opened(server):
    """An SSEStream on ``server``; the server answers while the client waits for its headers."""
    answering = threading.Thread(target=server.accept)
    answering.start()
    stream = SSEStream("http://127.0.0.1:%d/events" % server.port, timeout=10)
    answering.join()
    return stream


def test_a_read_that_timed_out_leaves_the_stream_readable(silent_server):
    with opened(silent_server) as stream:
        silent_server.write(b"data: first\n\n")
        assert stream.next(5).data == "first"
        with pytest.raises(TimeoutError):
            stream.next(0.05)  # nothing comes
        silent_server.write(b"data: second\n\n")
        assert stream.next(5).data == "second"
        with pytest.raises(TimeoutError):
            stream.next(0.05)
        silent_server.write(b"data: third\n\n")
        assert stream.next(5).data == "third"


def test_an_event_cut_by_a_timeout_is_read_whole_by_the_next_read(silent_server):
    with opened(silent_server) as stream:
        silent_server.write(b"event: note\nid: 7-0\ndata: one\n")
        with pytest.raises(TimeoutError):
            stream.next(0.05)  # the event's blank line has not come
        silent_server.write(b"data: two\n\n")
        event = stream.next(5)
        assert (event.name, event.data, event.id, stream.last_id) == ("note", "one\ntwo", "7-0", "7-0")
