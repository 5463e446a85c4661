"""A small, strict SSE client for tests: raw HTTP/1.1, the event-stream grammar, deadlines."""
import http.client
import io
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


class _Body:
    """A response body decoded as its bytes arrive, in whatever pieces: chunked, of a length, or
    until the server closes. ``done``: its end was read (the last chunk, or the whole length)."""

    def __init__(self, headers):
        self.chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        length = headers.get("Content-Length")
        self.left = int(length) if length is not None and not self.chunked else None
        self.done = self.left == 0
        self._raw, self._chunk = b"", 0  # chunked: undecoded bytes; what is left of this chunk + its CRLF

    def feed(self, raw):
        """Return the body bytes ``raw`` adds (a chunk's framing may be cut anywhere)."""
        if not self.chunked:
            if self.left is not None:
                raw = raw[:self.left]
                self.left -= len(raw)
                self.done = self.left == 0
            return raw
        self._raw += raw
        body = []
        while not self.done:
            if self._chunk > 2:  # the chunk's data
                piece = self._raw[:self._chunk - 2]
                if not piece:
                    break
                body.append(piece)
                self._raw, self._chunk = self._raw[len(piece):], self._chunk - len(piece)
            elif self._chunk:  # the CRLF after it
                if len(self._raw) < 2:
                    break
                self._raw, self._chunk = self._raw[2:], 0
            else:  # a chunk's size line
                end = self._raw.find(b"\r\n")
                if end == -1:
                    break
                size = int(self._raw[:end].split(b";")[0], 16)
                self._raw, self._chunk, self.done = self._raw[end + 2:], size + 2, size == 0
        return b"".join(body)


class SSEStream:
    """One open stream; ``next()`` returns events (keep-alives counted, not returned: comments
    and the unnumbered ``ping`` events a page watches for).

    The response is read from the socket here, not through http.client's: a read that reaches
    its deadline consumes nothing (a socket timeout only), so the next read goes on where it
    stopped, even in the middle of an event or of a chunk's framing (http.client's reader
    refuses to read again after a timeout, and its chunked decoder loses its place)."""

    _event = None  # the event being read: (name, data lines, id, has an id), kept across reads

    def __init__(self, url, headers=None, timeout=10.0, context=None):
        parts = urlsplit(url)
        if parts.scheme == "https":  # ``context``: an ssl.SSLContext trusting the test's certificate
            self.conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=context)
        else:
            self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self.conn.request("GET", parts.path + ("?" + parts.query if parts.query else ""),
                          headers={"Accept": "text/event-stream", **(headers or {})})
        self.local_port = self.conn.sock.getsockname()[1] if self.conn.sock else None
        self._raw = b""  # received, not yet decoded (the head, then the body's framing)
        self.status, self.headers = self._head(time.monotonic() + timeout)
        self._body = _Body(self.headers)
        self._buffer = self._body.feed(self._raw)  # the body: event-stream text not yet parsed
        self._raw = b""
        self.response = None
        self.comments = 0
        self.pings = 0
        self.retry = None
        self.last_id = None
        self.ended = False
        if self.status != 200:  # a refusal: keep its body, give the connection back at once
            self.body = self._rest(time.monotonic() + timeout)
            self.response = _Answered(self.body)
            self.close()
            self.ended = True

    def _head(self, deadline):
        """Read the status line and the headers: (status, http.client.HTTPMessage)."""
        while b"\r\n\r\n" not in self._raw:
            chunk = self._recv(deadline)
            if not chunk:
                raise http.client.RemoteDisconnected("the server closed the connection without answering")
            self._raw += chunk
        head, self._raw = self._raw.split(b"\r\n\r\n", 1)
        status_line, _, fields = head.partition(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        return status, http.client.parse_headers(io.BytesIO(fields + b"\r\n\r\n"))

    def _rest(self, deadline):
        """The rest of a body that ends (a refusal's), read before ``deadline``."""
        body = self._buffer
        while not self._body.done:
            chunk = self._recv(deadline)
            if not chunk:
                break
            body += self._body.feed(chunk)
        return body

    def _recv(self, deadline):
        """The next bytes from the socket (b"" once the server closed it); TimeoutError at
        ``deadline``, having consumed nothing."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete SSE line before the deadline")
        self.conn.sock.settimeout(remaining)
        try:
            return self.conn.sock.recv(65536)
        except TimeoutError:
            raise TimeoutError("no complete SSE line before the deadline") from None
        except ConnectionError:
            return b""

    def next(self, timeout=10.0):
        """Return the next event, or None at end of stream; raise TimeoutError at the deadline
        (the stream stays readable: the next call goes on where this one stopped)."""
        deadline = time.monotonic() + timeout
        name, data, event_id, has_id = self._event or ("message", [], None, False)
        while True:
            self._event = (name, data, event_id, has_id)
            line = self._line(deadline)
            if line is None:
                self._event = None
                return None
            if line == "":
                if has_id:
                    self.last_id = event_id
                if data and name == "ping":
                    self.pings += 1
                elif data:
                    self._event = None
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
            if self.ended or self.conn.sock is None or self._body.done:  # the server ended it
                return self._end()
            chunk = self._recv(deadline)
            if not chunk:
                return self._end()
            self._buffer += self._body.feed(chunk)

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
