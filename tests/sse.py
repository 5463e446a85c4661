"""A small, strict SSE client for tests: raw HTTP/1.1, the event-stream grammar, deadlines."""
import http.client
import json
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Event:
    name: str
    data: str
    id: str | None

    def json(self):
        return json.loads(self.data)


class _Answered:
    """What is left of a refused stream's response: its body, readable as before."""

    def __init__(self, body):
        self._body = body

    def read(self, *_):
        body, self._body = self._body, b""
        return body


class SSEStream:
    """One open stream; ``next()`` returns events (keep-alives counted, not returned: comments
    and the unnumbered ``ping`` events a page watches for)."""

    def __init__(self, url, headers=None, timeout=10.0, context=None):
        parts = urlsplit(url)
        if parts.scheme == "https":  # ``context``: an ssl.SSLContext trusting the test's certificate
            self.conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=context)
        else:
            self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self.conn.request("GET", parts.path + ("?" + parts.query if parts.query else ""),
                          headers={"Accept": "text/event-stream", **(headers or {})})
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = self.response.headers
        self.local_port = self.conn.sock.getsockname()[1] if self.conn.sock else None
        self._buffer = b""
        self.comments = 0
        self.pings = 0
        self.retry = None
        self.last_id = None
        self.ended = False
        if self.status != 200:  # a refusal: keep its body, give the connection back at once
            self.body = self.response.read()
            self.response = _Answered(self.body)
            self.close()
            self.ended = True

    def next(self, timeout=10.0):
        """Return the next event, or None at end of stream; raise TimeoutError at the deadline."""
        deadline = time.monotonic() + timeout
        name, data, event_id, has_id = "message", [], None, False
        while True:
            line = self._line(deadline)
            if line is None:
                return None
            if line == "":
                if has_id:
                    self.last_id = event_id
                if data and name == "ping":
                    self.pings += 1
                elif data:
                    return Event(name, "\n".join(data), event_id if has_id else None)
                name, data, has_id = "message", [], False
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "":
                self.comments += 1
            elif field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id, has_id = value, True
            elif field == "retry" and value.isdigit():
                self.retry = int(value)

    def messages(self, count, timeout=10.0, name="message"):
        """Collect ``count`` events named ``name`` (others are skipped) before the deadline."""
        deadline = time.monotonic() + timeout
        found = []
        while len(found) < count:
            event = self.next(max(0.01, deadline - time.monotonic()))
            if event is None:
                raise AssertionError("stream ended after %d of %d events" % (len(found), count))
            if event.name == name:
                found.append(event)
        return found

    def until(self, name, timeout=10.0):
        """Skip to the first event named ``name``; return it and the events before it."""
        before = []
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(0.01, deadline - time.monotonic()))
            if event is None:
                raise AssertionError("stream ended before a %r event" % name)
            if event.name == name:
                return event, before
            before.append(event)

    def _line(self, deadline):
        while True:
            idx = self._find_break()
            if idx is not None:
                end, width = idx
                line, self._buffer = self._buffer[:end], self._buffer[end + width:]
                return line.decode("utf-8")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no complete SSE line before the deadline")
            if self.conn.sock is None or self.response.isclosed():  # the server ended it
                return self._end()
            self.conn.sock.settimeout(remaining)
            try:
                chunk = self.response.read1(65536)
            except TimeoutError:
                raise
            except (http.client.IncompleteRead, ConnectionError):
                chunk = b""
            if not chunk:
                return self._end()
            self._buffer += chunk

    def _end(self):
        """The server ended the stream: give the connection back (no socket left to the GC)."""
        self.ended = True
        self.close()

    def _find_break(self):
        # A line ends at CRLF, LF or CR: the same rule a browser applies.
        lf, cr = self._buffer.find(b"\n"), self._buffer.find(b"\r")
        if cr == -1 or (lf != -1 and lf < cr):
            return None if lf == -1 else (lf, 1)
        if cr + 1 == len(self._buffer):
            return None  # a CR at the end may be half of a CRLF
        return (cr, 2) if self._buffer[cr + 1] == 10 else (cr, 1)

    def close(self):
        try:
            self.conn.sock and self.conn.sock.close()
        finally:
            self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
