"""SSE framing: hostile text can never forge an event, and the tests' SSE client reads it right."""
import json

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
