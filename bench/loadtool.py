#!/usr/bin/env python3
"""Load tool for server-sent-event servers on 127.0.0.1 (Ripple, issue 5).

Modes (each prints ONE JSON line on stdout; progress goes to stderr with -v):

  capacity    ramp to N concurrent streams, hold them, probe that they are live, and report how
              many stayed up, server RSS/PSS per stream over the idle baseline, server fds,
              Redis connected_clients / used_memory
  latency     S subscribers in one room, M messages at a fixed rate; each message carries its
              send time; per-delivery p50/p90/p99/max, expected vs received, duplicates,
              out-of-order
  throughput  S subscribers, P publishers posting back to back for T seconds; deliveries/s,
              publishes/s, loss, server CPU per delivery
  publish     P publishers, no subscribers, T seconds: POSTs/s and POST latency
  selftest    check the SSE / chunked / RESP parsers against hand-made streams

With redis://127.0.0.1:PORT/{room} as both --sub-url and --pub-url the same modes measure Redis
itself (raw SUBSCRIBE connections, PUBLISH of the same body): the physical reference for fan-out.

The target is any SSE server: --sub-url and --pub-url are templates where ``{room}`` and
``{i}`` (subscriber index) are filled in; --pub-body is a template where ``{text}`` is the
message text (JSON-safe: ASCII letters, digits and ``|``).  The subscriber finds the text in the
event's JSON data under --text-field (default ``text``).  Every text is
``<run>|<kind>|<publisher>|<seq>|<send time ns>``, so any server that relays the posted text can be
measured: latency = receive time - send time, duplicates and order per (publisher, seq) (each
publisher posts sequentially, so a correct server delivers its messages in order), and, when the
event carries a comparable id (``ms-seq`` or ``time:tag``), id order as well.

Client overhead is kept low: asyncio (uvloop when installed) with raw protocols; a stream's
bytes are only timestamped and stored while the run is live, and are parsed after it (a full
WHATWG event-stream parser: fields, multi-line data, comments, CR / LF / CRLF, BOM, behind an
HTTP/1.1 chunked decoder).  --procs N spreads the subscriber connections over N processes
(each connection costs this tool one fd; the fd limit is per process).  The tool's own CPU
(process CPU time / wall, per process) is reported beside every figure and a run where one of
its processes used more than 90 % of a core is flagged ``client_limited``.

Only loopback targets are accepted; every loop is bounded in count and time and the whole run
is bounded by --max-seconds (SIGALRM).
"""
from __future__ import annotations

import argparse
import array
import asyncio
import datetime
import gc
import ipaddress
import json
import multiprocessing
import os
import random
import signal
import socket
import sys
import time
from urllib.parse import urlsplit

VERSION = 1
time_ns = time.time_ns  # one clock for every process of the tool: send and receive stamps

CLIENT_LIMIT = 0.90  # fraction of one core above which a tool process counts as the bottleneck


def log(args, *parts):
    if getattr(args, "verbose", False):
        print("[loadtool %.3f]" % time.time(), *parts, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Targets


def _loopback(host):
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Target:
    """An http:// URL template on a loopback host; ``{room}`` and ``{i}`` are filled per use."""

    def __init__(self, template):
        self.template = template
        probe = urlsplit(template.replace("{room}", "r").replace("{i}", "0"))
        if probe.scheme not in ("http", "redis"):
            raise SystemExit("loadtool: only http:// (and redis:// for the Redis reference) URLs "
                             "are supported: %r" % template)
        self.resp = probe.scheme == "redis"
        if not _loopback(probe.hostname or ""):
            raise SystemExit("loadtool: refusing a non-loopback target %r" % probe.hostname)
        self.host = probe.hostname
        self.port = probe.port or (6379 if self.resp else 80)

    def channel(self, room="", i=0):
        """redis://host:port/<channel>: the channel a RESP subscriber or publisher uses."""
        return urlsplit(self.template.replace("{room}", room).replace("{i}", str(i))).path.lstrip("/")

    def path(self, room="", i=0):
        url = urlsplit(self.template.replace("{room}", room).replace("{i}", str(i)))
        return (url.path or "/") + ("?" + url.query if url.query else "")

    @property
    def hostport(self):
        return "%s:%d" % (self.host, self.port)


# --------------------------------------------------------------------------------------------
# Parsers (used after the run, and by the self test)


class SSEParser:
    """Incremental text/event-stream parser following the WHATWG rules.

    ``feed(chunk, t, out)`` appends ``(event name, data bytes, id bytes | None, t)`` for every
    dispatched event; ``id`` is the event's own ``id:`` field (None when it had none).
    Lines end at CRLF, LF or CR (also split across chunks); a leading UTF-8 BOM is dropped;
    ``:`` lines are comments; a field without a colon has an empty value; one space after the
    colon is removed; ``data`` lines join with LF; an event without data is not dispatched.
    """

    __slots__ = ("buf", "started", "cr_pending", "name", "data", "event_id", "last_id",
                 "retry", "comments")

    def __init__(self):
        self.buf = b""
        self.started = False
        self.cr_pending = False
        self.name = b""
        self.data = []
        self.event_id = None
        self.last_id = None
        self.retry = None
        self.comments = 0

    def feed(self, chunk, t, out):
        if not chunk:
            return
        if self.cr_pending:
            self.cr_pending = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]  # second half of a CRLF split across reads
        buf = self.buf + chunk if self.buf else chunk
        if not self.started:
            if len(buf) < 3 and b"\xef\xbb\xbf".startswith(buf):
                self.buf = buf
                return
            self.started = True
            if buf.startswith(b"\xef\xbb\xbf"):
                buf = buf[3:]
        if b"\r" in buf:
            if buf[-1:] == b"\r":
                self.cr_pending = True
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        self.buf = lines.pop()
        for line in lines:
            if not line:
                if self.data:
                    name = self.name.decode("utf-8", "replace") or "message"
                    out.append((name, b"\n".join(self.data), self.event_id, t))
                self.name, self.data, self.event_id = b"", [], None
                continue
            if line[0] == 58:  # ':'
                self.comments += 1
                continue
            colon = line.find(b":")
            if colon < 0:
                field, value = line, b""
            else:
                field, value = line[:colon], line[colon + 1:]
                if value[:1] == b" ":
                    value = value[1:]
            if field == b"data":
                self.data.append(value)
            elif field == b"event":
                self.name = value
            elif field == b"id":
                if b"\0" not in value:
                    self.event_id = self.last_id = value
            elif field == b"retry":
                if value.isdigit():
                    self.retry = int(value)


class HTTPStreamDecoder:
    """An HTTP/1.x response head, then its body (chunked, sized or until close) to a parser."""

    __slots__ = ("parser", "head", "status", "headers", "state", "chunked", "left", "cbuf",
                 "need_crlf")

    def __init__(self, parser):
        self.parser = parser
        self.head = b""
        self.status = None
        self.headers = {}
        self.state = "head"
        self.chunked = False
        self.left = None  # bytes left: in the current chunk, or of a Content-Length body
        self.cbuf = b""
        self.need_crlf = False

    def feed(self, data, t, out):
        if self.state == "head":
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[:end], self.head[end + 4:]
            self.head = b""
            lines = head.split(b"\r\n")
            try:
                self.status = int(lines[0].split(None, 2)[1])
            except (IndexError, ValueError):
                self.status = -1
            for line in lines[1:]:
                key, _, value = line.partition(b":")
                self.headers[key.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
            self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
            if not self.chunked and "content-length" in self.headers:
                try:
                    self.left = int(self.headers["content-length"])
                except ValueError:
                    self.left = None
            self.state = "body"
        if self.state != "body" or not data:
            return
        if not self.chunked:
            if self.left is not None:
                data = data[:self.left]
                self.left -= len(data)
                if self.left <= 0:
                    self.state = "done"
            self.parser.feed(data, t, out)
            return
        buf = self.cbuf + data if self.cbuf else data
        pos, size = 0, len(buf)
        while pos < size:
            if self.left:
                piece = buf[pos:pos + self.left]
                self.parser.feed(piece, t, out)
                pos += len(piece)
                self.left -= len(piece)
                if self.left:
                    break
                self.need_crlf = True
            if self.need_crlf:
                if size - pos < 2:
                    break
                pos += 2
                self.need_crlf = False
                continue
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            try:
                chunk_size = int(buf[pos:eol].split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.state = "error"
                return
            pos = eol + 2
            if chunk_size == 0:
                self.state = "done"
                return
            self.left = chunk_size
        self.cbuf = buf[pos:]


def parse_events(chunks):
    """Decode one recorded response: [(t, bytes)] -> (decoder, parser, [(name, data, id, t)])."""
    parser = SSEParser()
    decoder = HTTPStreamDecoder(parser)
    out = []
    for t, data in chunks:
        decoder.feed(data, t, out)
    return decoder, parser, out


class _Collect:
    """Stands in for the SSE parser behind the HTTP decoder: keeps the body pieces."""

    __slots__ = ("pieces",)

    def __init__(self):
        self.pieces = []

    def feed(self, data, t, out):
        self.pieces.append((t, data))


class _Counts:
    __slots__ = ("comments", "retry")

    def __init__(self):
        self.comments = 0
        self.retry = None


def parse_events_fast(chunks):
    """parse_events with the same results, fewer Python calls per event.

    The body is joined once and cut at blank lines; each event's time is that of the read that
    completed it.  Bodies with a CR or a BOM (rare) take the incremental parser instead.
    """
    collect = _Collect()
    decoder = HTTPStreamDecoder(collect)
    for t, data in chunks:
        decoder.feed(data, t, None)
    pieces = collect.pieces
    body = b"".join(d for _, d in pieces)
    if b"\r" in body or body[:3] == b"\xef\xbb\xbf" or (len(body) < 3 and body and b"\xef\xbb\xbf".startswith(body)):
        parser = SSEParser()
        out = []
        for t, data in pieces:
            parser.feed(data, t, out)
        return decoder, parser, out
    counts = _Counts()
    out = []
    ends, times, total = [], [], 0
    for t, data in pieces:
        total += len(data)
        ends.append(total)
        times.append(t)
    blocks = body.split(b"\n\n")
    blocks.pop()  # not ended by a blank line (yet)
    pos, j = 0, 0
    for block in blocks:
        pos += len(block) + 2
        block = block.lstrip(b"\n")
        if not block:
            continue
        name, data, eid = b"", None, None
        for line in block.split(b"\n"):
            if line[:1] == b":":
                counts.comments += 1
                continue
            colon = line.find(b":")
            if colon < 0:
                field, value = line, b""
            else:
                field, value = line[:colon], line[colon + 1:]
                if value[:1] == b" ":
                    value = value[1:]
            if field == b"data":
                data = value if data is None else data + b"\n" + value
            elif field == b"event":
                name = value
            elif field == b"id":
                if b"\0" not in value:
                    eid = value
            elif field == b"retry":
                if value.isdigit():
                    counts.retry = int(value)
        if data is None:
            continue
        while ends[j] < pos:
            j += 1
        out.append((name.decode("utf-8", "replace") or "message", data, eid, times[j]))
    return decoder, counts, out


def resp_command(*args):
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


def _resp_value(buf, pos):
    """Parse one RESP2 value at ``pos``: (value, next pos), or None when incomplete."""
    eol = buf.find(b"\r\n", pos)
    if eol < 0:
        return None
    kind, line = buf[pos:pos + 1], buf[pos + 1:eol]
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, eol + 2
        end = eol + 2 + size
        if len(buf) < end + 2:
            return None
        return buf[eol + 2:end], end + 2
    if kind == b"*":
        items, at = [], eol + 2
        for _ in range(int(line)):
            got = _resp_value(buf, at)
            if got is None:
                return None
            value, at = got
            items.append(value)
        return items, at
    if kind == b":":
        return int(line), eol + 2
    return line, eol + 2  # + simple string, - error


def parse_resp_events(chunks):
    """A RESP subscriber's recording -> (status, counts, [("message", payload, None, t)])."""
    counts = _Counts()
    body = b"".join(d for _, d in chunks)
    ends, times, total = [], [], 0
    for t, data in chunks:
        total += len(data)
        ends.append(total)
        times.append(t)
    out, pos, j, status = [], 0, 0, None
    while pos < len(body):
        got = _resp_value(body, pos)
        if got is None:
            break
        value, pos = got
        if isinstance(value, list) and value:
            if value[0] == b"message" and len(value) == 3:
                while ends[j] < pos:
                    j += 1
                out.append(("message", value[2], None, times[j]))
            elif value[0] == b"subscribe":
                status = 200
    return status, counts, out


def comparable_id(value):
    """``1795444156125-0`` or ``1700000000:3`` -> a tuple of ints; anything else -> None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    a, sep, b = value.partition("-")
    if not sep:
        a, sep, b = value.partition(":")
    if sep and a.isdigit() and b.isdigit():
        return int(a), int(b)
    return None


def percentiles(values, points=(50, 90, 99, 99.9)):
    """Nearest-rank percentiles of a list of numbers (sorted in place), plus max/mean/n."""
    n = len(values)
    if not n:
        return {"n": 0}
    values.sort()
    res = {"n": n}
    for p in points:
        k = max(0, min(n - 1, int(-(-p * n // 100)) - 1))
        res["p%s" % ("%g" % p).replace(".", "")] = round(values[k], 3)
    res["max"] = round(values[-1], 3)
    res["min"] = round(values[0], 3)
    res["mean"] = round(sum(values) / n, 3)
    return res


# --------------------------------------------------------------------------------------------
# Live subscriber connections (minimal work per read)


class Shared:
    """State one tool process shares between its subscriber connections."""

    def __init__(self, budget_bytes):
        self.gen = 0            # current watch generation
        self.marker = None      # bytes a watched message contains
        self.need = 0
        self.seen = 0
        self.done = None        # asyncio.Event set when seen >= need
        self.count_tag = None   # bytes counted in every read (flow control / progress)
        self.count = 0
        self.budget = budget_bytes
        self.stored = 0
        self.truncated = 0


class Sub(asyncio.Protocol):
    __slots__ = ("idx", "room", "req", "st", "transport", "chunks", "status", "head", "opened",
                 "closed", "mark", "tail", "err", "rounds", "ready")

    def __init__(self, idx, room, req, st):
        self.idx, self.room, self.req, self.st = idx, room, req, st
        self.transport = None
        self.chunks = []
        self.status = None
        self.head = b""
        self.opened = None
        self.closed = None
        self.mark = 0
        self.tail = b""
        self.err = None
        self.rounds = 0
        self.ready = None  # a future the ramp may wait on: resolved at the status line or close

    def connection_made(self, transport):
        self.transport = transport
        self.opened = time_ns()
        transport.write(self.req)

    def data_received(self, data):
        st = self.st
        st.stored += len(data)
        if st.stored < st.budget:
            self.chunks.append((time_ns(), data))
        else:
            st.truncated += 1
        if self.status is None:
            self._head(data)
        if st.marker is not None and self.mark != st.gen:
            if st.marker in self.tail + data:
                self.mark = st.gen
                st.seen += 1
                if st.seen >= st.need and st.done is not None:
                    st.done.set()
            self.tail = data[-96:]
        if st.count_tag is not None:
            st.count += data.count(st.count_tag)

    def _head(self, data):
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > 65536:
                self.status = -1
                self.transport.close()
            return
        line = self.head[:self.head.find(b"\r\n")]
        try:
            self.status = int(line.split(None, 2)[1])
        except (IndexError, ValueError):
            self.status = -1
        self.head = b""
        if self.ready is not None and not self.ready.done():
            self.ready.set_result(self.status)
        if self.status != 200:
            self.transport.close()

    def connection_lost(self, exc):
        self.closed = time_ns()
        if exc is not None:
            self.err = type(exc).__name__
        if self.ready is not None and not self.ready.done():
            self.ready.set_result(None)
        st = self.st
        if st.marker is not None and self.mark != st.gen:
            st.need -= 1
            if st.seen >= st.need and st.done is not None:
                st.done.set()

    @property
    def alive(self):
        return self.transport is not None and self.closed is None and self.status in (None, 200)


class RespSub(Sub):
    """A raw Redis subscriber (the fan-out reference): status 200 once SUBSCRIBE is confirmed."""

    __slots__ = ()

    def _head(self, data):
        self.head += data
        if b"subscribe" in self.head:
            self.status = 200
            self.head = b""
            if self.ready is not None and not self.ready.done():
                self.ready.set_result(200)


def _header_line(header):
    name, sep, value = header.partition(":")
    if not sep or not name.strip() or "\r" in header or "\n" in header:
        raise SystemExit("loadtool: a header is 'Name: value': %r" % header)
    return "%s: %s\r\n" % (name.strip(), value.strip())


def _read_cookies(path):
    """The Cookie header values in ``path``, one per line (stream i sends line i mod count)."""
    with open(path) as f:
        cookies = [line.strip() for line in f if line.strip()]
    if not cookies or any("\r" in c or "\n" in c for c in cookies):
        raise SystemExit("loadtool: --cookie-file needs one Cookie header value per line")
    return cookies


def _request_bytes(path, hostport, extra=""):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n"
            "Cache-Control: no-cache\r\nUser-Agent: ripple-loadtool\r\n%s\r\n"
            % (path, hostport, extra)).encode()


async def _open_one(loop, sub, host, port, src, timeout, errors):
    try:
        kwargs = {"local_addr": (src, 0)} if src else {}
        await asyncio.wait_for(loop.create_connection(lambda: sub, host, port, **kwargs), timeout)
        return True
    except Exception as exc:  # noqa: BLE001 - counted by kind
        kind = type(exc).__name__
        if isinstance(exc, OSError) and exc.errno:
            kind += ":%d" % exc.errno
        errors[kind] = errors.get(kind, 0) + 1
        sub.closed = time_ns()
        sub.err = kind
        return False


async def _open_many(loop, st, specs, cfg):
    """Open [(idx, room, path)] at cfg['rate'] per second, at most cfg['inflight'] at once."""
    sem = asyncio.Semaphore(cfg["inflight"])
    errors = {}
    subs = []
    tasks = []
    srcs = cfg.get("src_ips") or [None]
    rate = float(cfg["rate"])
    t0 = loop.time()
    deadline = t0 + cfg["open_deadline"]

    wait_headers = cfg.get("ramp_wait") == "headers"

    async def one(sub, src):
        try:
            if wait_headers:
                sub.ready = loop.create_future()
            ok = await _open_one(loop, sub, cfg["host"], cfg["port"], src, cfg["connect_timeout"], errors)
            if ok and wait_headers:
                # Closed loop: the slot frees when the server answered, so the ramp never runs
                # ahead of the server's accept queue (an overflowing backlog resets connections
                # long after they seemed to open).
                try:
                    await asyncio.wait_for(sub.ready, cfg["connect_timeout"])
                except asyncio.TimeoutError:
                    errors["no_response_in_time"] = errors.get("no_response_in_time", 0) + 1
        finally:
            sub.ready = None
            sem.release()

    for k, (idx, room, path) in enumerate(specs):
        if loop.time() > deadline:
            errors["open_deadline"] = errors.get("open_deadline", 0) + len(specs) - k
            break
        due = t0 + k / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await sem.acquire()
        if cfg.get("resp"):
            sub = RespSub(idx, room, resp_command("SUBSCRIBE", path), st)
        else:
            extra = cfg.get("headers", "")
            if cfg.get("cookies"):  # one browser's session per stream, as --cookie-file gives
                extra += "Cookie: %s\r\n" % cfg["cookies"][idx % len(cfg["cookies"])]
            sub = Sub(idx, room, _request_bytes(path, cfg["hostport"], extra), st)
        subs.append(sub)
        tasks.append(loop.create_task(one(sub, srcs[idx % len(srcs)])))
    if tasks:
        await asyncio.wait(tasks, timeout=2 * cfg["connect_timeout"] + 5)
    return subs, errors, loop.time() - t0


def _status_counts(subs):
    res = {"total": len(subs), "alive": 0, "status_200": 0, "no_status_yet": 0, "closed": 0,
           "statuses": {}, "errors": {}}
    for s in subs:
        if s.alive:
            res["alive"] += 1
        if s.status == 200:
            res["status_200"] += 1
        elif s.status is None:
            res["no_status_yet"] += 1
        else:
            res["statuses"][str(s.status)] = res["statuses"].get(str(s.status), 0) + 1
        if s.closed is not None:
            res["closed"] += 1
            if s.err:
                res["errors"][s.err] = res["errors"].get(s.err, 0) + 1
    return res


def _analyze(subs, spec):
    """Parse every recorded stream; deliveries of this run's messages and their quality."""
    run = spec["run"]
    prefix = run + "|"
    event_name = spec["event"]
    field = spec["text_field"]
    acked = spec.get("acked") or set()
    n_acked = len(acked)
    lat = array.array("d")
    res = {"subscribers": len(subs), "subscribed": 0, "received": 0, "unique": 0,
           "duplicates": 0, "out_of_order": 0, "id_out_of_order": 0, "lost": 0,
           "unacked_received": 0, "foreign": 0, "unparsed": 0, "events_by_name": {},
           "comments": 0, "probes": {}, "got_end": 0, "first_recv": None, "last_recv": None,
           "streams_closed_during_run": 0, "status_200": 0, "bad_status": {}, "max_lost_one": 0}
    first = last = None
    probe_counts = res["probes"]
    names = res["events_by_name"]
    loads = json.loads
    for s in subs:
        if isinstance(s, RespSub):
            status, parser, events = parse_resp_events(s.chunks)
        else:
            decoder, parser, events = parse_events_fast(s.chunks)
            status = decoder.status
        s.chunks = None  # free as we go
        res["comments"] += parser.comments
        if status == 200:
            res["status_200"] += 1
        elif status is not None:
            key = str(status)
            res["bad_status"][key] = res["bad_status"].get(key, 0) + 1
        if s.rounds and status == 200:
            res["streams_closed_during_run"] += 1
        seen = set()
        last_seq = {}
        last_id = None
        warm = False
        probes = set()
        for name, data, eid, t in events:
            if name != event_name:
                names[name] = names.get(name, 0) + 1
                continue
            names[name] = names.get(name, 0) + 1
            try:
                obj = loads(data)
                text = obj[field]
            except (ValueError, TypeError, KeyError):
                res["unparsed"] += 1
                continue
            if not isinstance(text, str) or not text.startswith(prefix):
                res["foreign"] += 1
                continue
            try:
                _, kind, pub, seq, sent = text.split("|")
                pub, seq, sent = int(pub), int(seq), int(sent)
            except ValueError:
                res["unparsed"] += 1
                continue
            if kind == "m":
                key = (pub, seq)
                res["received"] += 1
                if key in seen:
                    res["duplicates"] += 1
                    continue
                seen.add(key)
                if seq < last_seq.get(pub, -1):
                    res["out_of_order"] += 1
                else:
                    last_seq[pub] = seq
                cid = comparable_id(obj.get("id") if isinstance(obj, dict) else None) or comparable_id(eid)
                if cid is not None:
                    if last_id is not None and cid <= last_id:
                        res["id_out_of_order"] += 1
                    else:
                        last_id = cid
                lat.append((t - sent) / 1e6)
                if first is None or t < first:
                    first = t
                if last is None or t > last:
                    last = t
            elif kind == "w":
                warm = True
            elif kind == "e":
                res["got_end"] += 1
            else:
                probes.add(kind)
        limits = spec.get("probe_limits") or {}
        for p in probes:
            if s.idx < limits.get(p, s.idx + 1):  # only streams that existed when it was posted
                probe_counts[p] = probe_counts.get(p, 0) + 1
        if warm:
            res["subscribed"] += 1
        if acked:
            good = len(seen & acked)
            res["unique"] += good
            res["unacked_received"] += len(seen) - good
            if warm:
                lost = n_acked - good
                res["lost"] += lost
                res["max_lost_one"] = max(res["max_lost_one"], lost)
        else:
            res["unique"] += len(seen)
    res["first_recv"] = first
    res["last_recv"] = last
    res["latencies"] = lat.tobytes()
    return res


# --------------------------------------------------------------------------------------------
# Pipes between the tool's processes, read without blocking the event loop


def _arecv(loop, conn):
    fut = loop.create_future()
    fd = conn.fileno()

    def ready():
        loop.remove_reader(fd)
        os.set_blocking(fd, True)  # uvloop leaves a watched fd non-blocking; recv reads it whole
        try:
            fut.set_result(conn.recv())
        except BaseException as exc:  # noqa: BLE001 - EOF from a dead peer included
            fut.set_exception(exc)

    loop.add_reader(fd, ready)
    return fut


def _new_loop(use_uvloop):
    if use_uvloop:
        try:
            import uvloop
            return uvloop.new_event_loop(), "uvloop"
        except ImportError:
            pass
    return asyncio.new_event_loop(), "asyncio"


def _child_main(conn, opts):
    signal.alarm(int(opts["max_seconds"]) + 30)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    loop, _ = _new_loop(opts["uvloop"])
    try:
        loop.run_until_complete(_child(loop, conn, opts))
    except (EOFError, OSError):
        pass
    finally:
        loop.close()


async def _child(loop, conn, opts):
    st = Shared(opts["budget_bytes"])
    subs = []
    gc.disable()  # no collection pauses inside the measured window; collected on finish
    while True:
        cmd, arg = await _arecv(loop, conn)
        if cmd == "open":
            new, errors, secs = await _open_many(loop, st, arg["specs"], arg)
            subs.extend(new)
            conn.send({"attempted": len(new), "errors": errors, "seconds": secs})
        elif cmd == "reopen":
            # Streams refused (a non-200 status, e.g. 503 at a worker's stream cap) or closed: try
            # again once, like an EventSource would after ``retry``.
            bad = [s for s in subs if not s.alive]
            keep = [s for s in subs if s.alive]
            specs = [(s.idx, s.room, None) for s in bad]
            for s in bad:
                if s.transport is not None:
                    s.transport.close()
            arg = dict(arg)
            arg["specs"] = [(idx, room, arg["paths"][idx]) for idx, room, _ in specs]
            new, errors, secs = await _open_many(loop, st, arg["specs"], arg)
            subs[:] = keep + new
            conn.send({"attempted": len(new), "errors": errors, "seconds": secs})
        elif cmd == "status":
            conn.send(_status_counts(subs))
        elif cmd == "watch":
            st.gen += 1
            st.marker = arg
            st.seen = 0
            st.need = sum(1 for s in subs if s.alive)
            st.done = asyncio.Event()
            if st.need <= 0:
                st.done.set()
            conn.send(st.need)
        elif cmd == "wait":
            try:
                await asyncio.wait_for(st.done.wait(), arg)
            except asyncio.TimeoutError:
                pass
            conn.send({"seen": st.seen, "need": st.need,
                       "alive": sum(1 for s in subs if s.alive)})
            st.marker = None
        elif cmd == "count_tag":
            st.count_tag = arg
            st.count = 0
            conn.send(True)
        elif cmd == "count":
            conn.send(st.count)
        elif cmd == "close":
            for s in subs:
                if s.transport is not None:
                    s.transport.close()
            await asyncio.sleep(0.05)
            subs = []
            gc.collect()
            conn.send(True)
        elif cmd == "finish":
            status = _status_counts(subs)
            for s in subs:
                s.rounds = 1 if s.closed is not None else 0  # closed by the server (or refused)
            for s in subs:
                if s.transport is not None:
                    s.transport.close()
            await asyncio.sleep(0.05)
            res = _analyze(subs, arg)
            res["status"] = status
            res["truncated_reads"] = st.truncated
            conn.send(res)
            return
        elif cmd == "exit":
            return


class Fleet:
    """The subscriber processes (fork): connections are split across them round-robin."""

    def __init__(self, n, opts):
        ctx = multiprocessing.get_context("fork")
        self.conns, self.procs = [], []
        for _ in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_child_main, args=(child, opts), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    @property
    def pids(self):
        return [p.pid for p in self.procs]

    async def call(self, cmd, args):
        """Send ``(cmd, args[i])`` to child i and gather the replies."""
        loop = asyncio.get_running_loop()
        for conn, arg in zip(self.conns, args):
            conn.send((cmd, arg))
        return list(await asyncio.gather(*[_arecv(loop, c) for c in self.conns]))

    async def all(self, cmd, arg=None):
        return await self.call(cmd, [arg] * len(self.conns))

    def stop(self):
        for conn in self.conns:
            try:
                conn.send(("exit", None))
            except OSError:
                pass
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(2)


# --------------------------------------------------------------------------------------------
# Publishing: a keep-alive HTTP/1.1 client, one request at a time per connection


def _parse_response(buf):
    """Return (status, body, consumed, close) for one complete response in ``buf``, or None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buf[:end].split(b"\r\n")
    try:
        status = int(lines[0].split(None, 2)[1])
    except (IndexError, ValueError):
        status = -1
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(b":")
        headers[key.strip().lower()] = value.strip()
    close = headers.get(b"connection", b"").lower() == b"close" or lines[0].startswith(b"HTTP/1.0")
    start = end + 4
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        pos, body = start, []
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(buf[pos:eol].split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                tail = buf.find(b"\r\n", eol + 2)
                if tail < 0:
                    return None
                return status, b"".join(body), tail + 2, close
            if len(buf) < eol + 2 + size + 2:
                return None
            body.append(buf[eol + 2:eol + 2 + size])
            pos = eol + 2 + size + 2
    length = int(headers.get(b"content-length", b"0") or 0)
    if len(buf) < start + length:
        return None
    return status, buf[start:start + length], start + length, close


class HTTPConn(asyncio.Protocol):
    def __init__(self):
        self.transport = None
        self.buf = b""
        self.fut = None
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        if self.fut is not None and not self.fut.done():
            res = _parse_response(self.buf)
            if res is not None:
                status, body, used, close = res
                self.buf = self.buf[used:]
                if close:
                    self.closed = True
                    self.transport.close()
                self.fut.set_result((status, body))

    def connection_lost(self, exc):
        self.closed = True
        if self.fut is not None and not self.fut.done():
            self.fut.set_exception(ConnectionError("connection closed before the response"))

    def request(self, data):
        self.fut = asyncio.get_running_loop().create_future()
        self.buf = b""
        self.transport.write(data)
        return self.fut


class RespConn(HTTPConn):
    """One Redis command at a time: the reply is one RESP value (PUBLISH answers :<n>)."""

    def data_received(self, data):
        self.buf += data
        if self.fut is not None and not self.fut.done():
            got = _resp_value(self.buf, 0)
            if got is not None:
                value, used = got
                self.buf = self.buf[used:]
                ok = isinstance(value, int)
                self.fut.set_result((200 if ok else 500, value))


class Publisher:
    """One sequential publisher: its messages are acknowledged one after another.

    ``key_header`` (e.g. "Idempotency-Key"; None: none sent): each post carries a key unique to
    it (run, publisher, seq), so ``post(..., again=True)`` can resend the last post, same text
    and key, as a real client retries one whose answer it never got (bench/storm.py)."""

    def __init__(self, pid, args, run, target, key_header=None):
        self.pid, self.args, self.run, self.target = pid, args, run, target
        self.key_header = key_header
        self.last = None  # (seq, text) of the last post sent
        self.conn = None
        self.seq = 0
        self.ok = 0
        self.errors = {}
        self.latencies = array.array("d")
        self.acked = []
        body_tpl = args.pub_body
        self.body_head, _, self.body_tail = body_tpl.partition("{text}")
        extra = "".join(_header_line(h) for h in args.pub_header).replace("%", "%%")
        self.head = ("%s %%s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nAccept: application/json\r\n"
                     "Content-Length: %%d\r\nUser-Agent: ripple-loadtool\r\n%s%%s\r\n"
                     % (args.pub_method, target.hostport, args.pub_content_type, extra))

    async def _connect(self):
        loop = asyncio.get_running_loop()
        _, self.conn = await asyncio.wait_for(
            loop.create_connection(RespConn if self.target.resp else HTTPConn, self.target.host,
                                   self.target.port),
            self.args.connect_timeout)

    async def post(self, room, kind="m", record=True, again=False):
        """Post one message; return the HTTP status (-1 on a transport error). ``again``: send
        the last post once more (same text, same idempotency key) instead of a new one."""
        if again:
            seq, text = self.last
        else:
            seq, text = self.seq, None
            self.seq += 1
        try:
            if self.conn is None or self.conn.closed:
                await self._connect()
            sent = time_ns()
            if text is None:
                text = "%s|%s|%d|%d|%d" % (self.run, kind, self.pid, seq, sent)
            self.last = (seq, text)
            body = (self.body_head.replace("{room}", room) + text
                    + self.body_tail.replace("{room}", room).replace("{text}", text)).encode()
            if self.target.resp:
                data = resp_command("PUBLISH", self.target.channel(room), body)
            else:
                key = "%s: %s-%d-%d\r\n" % (self.key_header, self.run, self.pid, seq) if self.key_header else ""
                data = (self.head % (self.target.path(room), len(body), key)).encode() + body
            status, _ = await asyncio.wait_for(self.conn.request(data), self.args.request_timeout)
        except Exception as exc:  # noqa: BLE001 - counted by kind, the connection is renewed
            kind_name = type(exc).__name__
            self.errors[kind_name] = self.errors.get(kind_name, 0) + 1
            if self.conn is not None and self.conn.transport is not None:
                self.conn.transport.close()
            self.conn = None
            return -1
        if record:
            if 200 <= status < 300:
                self.ok += 1
                self.acked.append((self.pid, seq))
                self.latencies.append((time_ns() - sent) / 1e6)
            else:
                key = "http_%d" % status
                self.errors[key] = self.errors.get(key, 0) + 1
        return status

    def close(self):
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.close()


# --------------------------------------------------------------------------------------------
# Measurements of the server side


class ServerProbe:
    """Server processes (given pids plus all their descendants) and, optionally, a Redis."""

    def __init__(self, pids, redis_url):
        import psutil  # the server side is only measured when asked for
        self.psutil = psutil
        self.roots = [psutil.Process(p) for p in pids]
        self.redis = redis_url

    def processes(self):
        found, seen = [], set()
        for root in self.roots:
            try:
                for proc in [root] + root.children(recursive=True):
                    if proc.pid not in seen:
                        seen.add(proc.pid)
                        found.append(proc)
            except self.psutil.NoSuchProcess:
                continue
        return found

    def sample(self, memory=True):
        res = {"pids": [], "cpu_s": 0.0, "user_s": 0.0, "sys_s": 0.0, "rss": 0, "pss": 0, "uss": 0,
               "fds": 0, "fds_by_pid": {}, "rss_mb_by_pid": {}}
        for proc in self.processes():
            try:
                with proc.oneshot():
                    cpu = proc.cpu_times()
                    res["cpu_s"] += cpu.user + cpu.system
                    res["user_s"] += cpu.user
                    res["sys_s"] += cpu.system
                    fds = proc.num_fds()
                    res["fds"] += fds
                    res["fds_by_pid"][str(proc.pid)] = fds
                    if memory:
                        mem = proc.memory_full_info()
                        res["rss"] += mem.rss
                        res["rss_mb_by_pid"][str(proc.pid)] = round(mem.rss / 2**20, 1)
                        res["pss"] += getattr(mem, "pss", 0)
                        res["uss"] += getattr(mem, "uss", 0)
                res["pids"].append(proc.pid)
            except (self.psutil.NoSuchProcess, self.psutil.AccessDenied):
                continue
        res["procs"] = len(res["pids"])
        if self.redis:
            res["redis"] = redis_info(self.redis)
        return res


def redis_info(url):
    """INFO of a Redis over a raw socket: the few figures the benchmark reports."""
    parts = urlsplit(url)
    try:
        if parts.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            sock.connect(parts.path)
        else:
            if not _loopback(parts.hostname or ""):
                return {"error": "non-loopback redis"}
            sock = socket.create_connection((parts.hostname, parts.port or 6379), timeout=5)
        with sock:
            sock.sendall(b"INFO\r\n")
            data = b""
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                piece = sock.recv(65536)
                if not piece:
                    break
                data += piece
                eol = data.find(b"\r\n")
                if eol > 0 and data[:1] == b"$" and len(data) >= eol + 2 + int(data[1:eol]):
                    break
    except OSError as exc:
        return {"error": str(exc)}
    info = {}
    for line in data.decode("utf-8", "replace").splitlines()[1:]:
        key, _, value = line.partition(":")
        info[key] = value
    keys = ("connected_clients", "used_memory", "used_memory_rss", "used_cpu_sys",
            "used_cpu_user", "pubsub_channels", "maxclients", "process_id", "redis_version")
    res = {}
    for key in keys:
        if key in info:
            value = info[key]
            try:
                res[key] = float(value) if "." in value else int(value)
            except ValueError:
                res[key] = value
    if "used_cpu_sys" in res and "used_cpu_user" in res:
        res["cpu_s"] = res["used_cpu_sys"] + res["used_cpu_user"]
    return res


class ClientCPU:
    """CPU time of the tool's own processes over a window, as a fraction of one core each."""

    def __init__(self, pids):
        import psutil
        self.procs = [psutil.Process(os.getpid())] + [psutil.Process(p) for p in pids]
        self.start()

    def _times(self):
        res = []
        for proc in self.procs:
            try:
                cpu = proc.cpu_times()
                res.append(cpu.user + cpu.system)
            except Exception:  # noqa: BLE001 - a finished child
                res.append(None)
        return res

    def _busy(self):
        import psutil
        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)

    def start(self):
        self.t0 = time.monotonic()
        self.c0 = self._times()
        self.b0 = self._busy()

    def stop(self):
        wall = max(1e-9, time.monotonic() - self.t0)
        c1 = self._times()
        busy = (self._busy() - self.b0) / wall
        per = [round((b - a) / wall, 3) if a is not None and b is not None else None
               for a, b in zip(self.c0, c1)]
        known = [p for p in per if p is not None]
        return {"wall_s": round(wall, 3), "core_fraction_per_proc": per,
                "core_fraction_total": round(sum(known), 3),
                "core_fraction_max_proc": round(max(known) if known else 0, 3),
                "limited": bool(known and max(known) > CLIENT_LIMIT),
                "machine_busy_cores": round(busy, 3)}


def phase(args, name):
    """Tell an outside observer (a profiler started by run_all) which phase the run is in."""
    if getattr(args, "phase_file", None):
        with open(args.phase_file, "w") as f:
            f.write(name)


def machine_other(client, server):
    """Cores the rest of the machine used in the window: busy - this tool - server - Redis."""
    if not client:
        return None
    wall = client["wall_s"]
    used = client["core_fraction_total"]
    if server:
        used += (server.get("cpu_s", 0) + server.get("redis_cpu_s", 0)) / wall
    return round(client["machine_busy_cores"] - used, 3)


# --------------------------------------------------------------------------------------------
# The modes


class Run:
    def __init__(self, args):
        self.args = args
        self.run = args.run_id or "lt%08x" % random.getrandbits(32)
        self.room = args.room or ("bench-" + self.run)
        self.sub = Target(args.sub_url) if args.sub_url else None
        self.pub = Target(args.pub_url) if args.pub_url else None
        self.fleet = None
        self.probe = None
        if args.server_pid:
            self.probe = ServerProbe(args.server_pid, args.redis)
        self.loop_kind = None
        self.publishers = []
        self.paths = {}
        self.probe_pool = []
        self.pub_seq = 0
        self.cookies = _read_cookies(args.cookie_file) if getattr(args, "cookie_file", None) else None

    def open_cfg(self, specs, rate=None):
        a = self.args
        return {"specs": specs, "host": self.sub.host, "port": self.sub.port,
                "hostport": self.sub.hostport, "rate": (rate or a.connect_rate) / a.procs,
                "inflight": max(1, a.inflight // a.procs), "connect_timeout": a.connect_timeout,
                "open_deadline": a.open_deadline, "src_ips": a.src_ips, "resp": self.sub.resp,
                "ramp_wait": a.ramp_wait,
                "headers": "".join(_header_line(h) for h in a.sub_header),
                "cookies": self.cookies}

    def rooms(self):
        return [self.room if self.args.rooms == 1 else "%s-%d" % (self.room, r)
                for r in range(self.args.rooms)]

    async def open_subscribers(self, count, rate=None, start=0):
        rooms = self.rooms()
        per = [[] for _ in range(self.args.procs)]
        paths = self.paths if start else {}
        for i in range(start, start + count):
            room = rooms[i % len(rooms)]
            paths[i] = self.sub.channel(room, i) if self.sub.resp else self.sub.path(room, i)
            per[i % self.args.procs].append((i, room, paths[i]))
        self.paths = paths
        cfgs = []
        for specs in per:
            cfg = self.open_cfg(specs, rate)
            cfg["paths"] = paths
            cfgs.append(cfg)
        t0 = time.monotonic()
        replies = await self.fleet.call("open", cfgs)
        errors = {}
        for r in replies:
            for k, v in r["errors"].items():
                errors[k] = errors.get(k, 0) + v
        return {"attempted": count, "connect_errors": errors,
                "ramp_s": round(time.monotonic() - t0, 3)}

    async def status(self):
        replies = await self.fleet.all("status")
        total = {"alive": 0, "status_200": 0, "no_status_yet": 0, "closed": 0, "statuses": {},
                 "errors": {}}
        for r in replies:
            for key in ("alive", "status_200", "no_status_yet", "closed"):
                total[key] += r[key]
            for key in ("statuses", "errors"):
                for k, v in r[key].items():
                    total[key][k] = total[key].get(k, 0) + v
        return total

    def publisher(self, pid):
        pub = Publisher(pid, self.args, self.run, self.pub)
        self.publishers.append(pub)
        return pub

    async def probe_marker(self, kind, rooms, timeout, repeat_every=None, publisher=None):
        """Watch for a message of ``kind``; post it to each room (again every ``repeat_every`` s
        until every live subscriber saw one, within ``timeout``); return seen/need."""
        marker = ("%s|%s|" % (self.run, kind)).encode()
        await self.fleet.all("watch", marker)
        if publisher is not None:
            pool = [publisher]
        else:
            while len(self.probe_pool) < min(8, len(rooms)):
                self.probe_pool.append(self.publisher(10000 + len(self.publishers)))
            pool = self.probe_pool[:max(1, min(8, len(rooms)))]
        waiter = asyncio.ensure_future(self.fleet.all("wait", timeout))
        deadline = time.monotonic() + timeout
        posted = 0

        async def post_some(pub, some):
            for room in some:
                await pub.post(room, kind, record=False)

        while True:
            await asyncio.gather(*[post_some(p, rooms[i::len(pool)]) for i, p in enumerate(pool)])
            posted += len(rooms)
            if not repeat_every:
                break
            try:
                await asyncio.wait_for(asyncio.shield(waiter), repeat_every)
                break
            except asyncio.TimeoutError:
                if time.monotonic() > deadline:
                    break
        replies = await waiter
        return {"posted": posted, "seen": sum(r["seen"] for r in replies),
                "need": sum(r["need"] for r in replies), "alive": sum(r["alive"] for r in replies),
                "seconds": round(timeout - max(0.0, deadline - time.monotonic()), 3)}

    def sample(self, memory=True):
        return self.probe.sample(memory) if self.probe else None

    async def finish(self, acked=None, probe_limits=None):
        spec = {"run": self.run, "event": self.args.event, "text_field": self.args.text_field,
                "acked": set(acked or ()), "probe_limits": probe_limits or {}}
        replies = await self.fleet.all("finish", spec)
        total = {}
        lat = array.array("d")
        firsts, lasts = [], []
        for r in replies:
            lat.frombytes(r.pop("latencies"))
            if r["first_recv"] is not None:
                firsts.append(r["first_recv"])
                lasts.append(r["last_recv"])
            for key, value in r.items():
                if key in ("first_recv", "last_recv"):
                    continue
                if isinstance(value, dict):
                    d = total.setdefault(key, {})
                    for k, v in value.items():
                        if isinstance(v, dict):
                            dd = d.setdefault(k, {})
                            for kk, vv in v.items():
                                dd[kk] = dd.get(kk, 0) + vv
                        else:
                            d[k] = d.get(k, 0) + v
                elif key == "max_lost_one":
                    total[key] = max(total.get(key, 0), value)
                else:
                    total[key] = total.get(key, 0) + value
        total["first_recv"] = min(firsts) if firsts else None
        total["last_recv"] = max(lasts) if lasts else None
        return total, lat


def _server_delta(before, after, deliveries=None, posts=None):
    if not before or not after:
        return None
    res = {"cpu_s": round(after["cpu_s"] - before["cpu_s"], 4),
           "user_s": round(after["user_s"] - before["user_s"], 4),
           "sys_s": round(after["sys_s"] - before["sys_s"], 4), "procs": after["procs"],
           "fds": after["fds"]}
    if after["rss"]:
        res["rss_mb"] = round(after["rss"] / 2**20, 2)
    if deliveries:
        res["cpu_us_per_delivery"] = round(1e6 * res["cpu_s"] / deliveries, 3)
    if posts:
        res["cpu_us_per_post"] = round(1e6 * res["cpu_s"] / posts, 3)
    rb, ra = before.get("redis") or {}, after.get("redis") or {}
    if "cpu_s" in rb and "cpu_s" in ra:
        res["redis_cpu_s"] = round(ra["cpu_s"] - rb["cpu_s"], 4)
        if deliveries:
            res["redis_cpu_us_per_delivery"] = round(1e6 * res["redis_cpu_s"] / deliveries, 3)
    if ra:
        res["redis_connected_clients"] = ra.get("connected_clients")
        res["redis_used_memory"] = ra.get("used_memory")
    return res


def _capacity_figures(base, during, held, after, up):
    """Server and Redis memory/fds at a held level against the idle baseline."""
    out = {}
    if not (base and during):
        return out
    up = max(1, up)
    out["server"] = {
        "procs": during["procs"],
        "rss_baseline_mb": round(base["rss"] / 2**20, 2),
        "rss_held_mb": round(during["rss"] / 2**20, 2),
        "rss_peak_held_mb": round(max(s["rss"] for s in held) / 2**20, 2) if held else None,
        "rss_after_close_mb": round(after["rss"] / 2**20, 2) if after else None,
        "rss_per_stream_kb": round((during["rss"] - base["rss"]) / up / 1024, 2),
        "pss_baseline_mb": round(base["pss"] / 2**20, 2),
        "pss_held_mb": round(during["pss"] / 2**20, 2),
        "pss_per_stream_kb": round((during["pss"] - base["pss"]) / up / 1024, 2),
        "fds_baseline": base["fds"], "fds_held": during["fds"],
        "fds_held_by_pid": during["fds_by_pid"], "rss_held_mb_by_pid": during["rss_mb_by_pid"],
        "fds_per_stream": round((during["fds"] - base["fds"]) / up, 3),
        "cpu_s_hold": round(during["cpu_s"] - (held[0]["cpu_s"] if held else during["cpu_s"]), 3),
    }
    rb, rd = base.get("redis") or {}, during.get("redis") or {}
    if rb and rd:
        out["redis"] = {
            "connected_clients_baseline": rb.get("connected_clients"),
            "connected_clients_held": rd.get("connected_clients"),
            "used_memory_baseline_mb": round(rb.get("used_memory", 0) / 2**20, 2),
            "used_memory_held_mb": round(rd.get("used_memory", 0) / 2**20, 2),
            "used_memory_per_stream_kb": round(
                (rd.get("used_memory", 0) - rb.get("used_memory", 0)) / up / 1024, 2),
            "used_memory_rss_held_mb": round(rd.get("used_memory_rss", 0) / 2**20, 2),
            "used_memory_rss_per_stream_kb": round(
                (rd.get("used_memory_rss", 0) - rb.get("used_memory_rss", 0)) / up / 1024, 2),
            "maxclients": rd.get("maxclients"),
        }
    return out


async def mode_capacity(r):
    """Ramp to each level of --steps (default: just --connections) in turn, without closing
    anything in between: at each level probe, hold, sample, probe again. One server start and
    one ramp serve every level, and no stream ever closes before the last level, so no level
    is measured on memory an earlier one freed."""
    a = r.args
    steps = sorted(set(a.steps or [a.connections]))
    n = steps[-1]
    rooms = r.rooms()
    out = {"connections": n, "rooms": len(rooms), "levels": steps}
    # Warm the server (imports, pools, first stream) before the idle baseline.
    warm = min(20, n)
    await r.open_subscribers(warm)
    await r.probe_marker("p0", rooms[:warm], a.probe_timeout, repeat_every=0.25)
    await r.fleet.all("close")
    r.paths = {}
    await asyncio.sleep(a.settle)
    base = r.sample()
    levels = []
    opened = 0
    for level in steps:
        step = {"connections": level}
        log(a, "ramping to", level)
        cpu = ClientCPU(r.fleet.pids)
        ramp = await r.open_subscribers(level - opened, start=opened)
        opened = level
        step.update(ramp)
        step["attempted"] = level
        step["ramp_client_cpu"] = cpu.stop()
        step["connect_rate_achieved"] = round(ramp["attempted"] / max(ramp["ramp_s"], 1e-9), 1)
        await asyncio.sleep(min(1.0, a.settle))
        step["after_ramp"] = await r.status()
        step["probe_start"] = await r.probe_marker("s%d" % level, rooms, a.probe_timeout, repeat_every=0.25)
        log(a, "start probe", step["probe_start"])
        # Like an EventSource: streams that were refused (e.g. 503 at a worker's cap) or dropped
        # (reset) connect again after a delay, then the start probe is repeated for everyone.
        retries = []
        for _ in range(a.retries):
            st = await r.status()
            missing = level - st["alive"]
            if missing <= 0:
                break
            await asyncio.sleep(a.retry_delay)
            rep = await r.fleet.all("reopen", r.open_cfg([]) | {"paths": r.paths})
            again = await r.probe_marker("s%d" % level, rooms, a.probe_timeout, repeat_every=0.25)
            retries.append({"not_alive_before": missing, "reopened": sum(x["attempted"] for x in rep),
                            "probe": again})
        step["retries"] = retries
        step["reconnects"] = sum(x["reopened"] for x in retries)
        hold_cpu = ClientCPU(r.fleet.pids)
        held = []
        t_end = time.monotonic() + a.hold
        while time.monotonic() < t_end:
            await asyncio.sleep(min(1.0, max(0.0, t_end - time.monotonic())))
            held.append(r.sample())
        during = held[-1] if held else r.sample()
        step["hold_client_cpu"] = hold_cpu.stop()
        if held:
            step["machine_other_cores_hold"] = machine_other(
                step["hold_client_cpu"], {"cpu_s": during["cpu_s"] - held[0]["cpu_s"]})
        step["probe_end"] = await r.probe_marker("e%d" % level, rooms, a.probe_timeout)
        step["status_end"] = await r.status()
        log(a, "end probe", step["probe_end"])
        step["_samples"] = (during, held)
        levels.append(step)
    # A server that replays old messages to a new stream (nchan's buffer) must not count a
    # level's probe on streams opened after it.
    limits = {}
    for level in steps:
        limits["s%d" % level] = limits["e%d" % level] = level
    total, _ = await r.finish(probe_limits=limits)
    await asyncio.sleep(a.settle)
    after = r.sample()
    if a.after_close_watch and base:
        # After the wave: does the server give its memory back? Sampled until it is within 20 %
        # of the pre-wave baseline or the watch ends (issue 20: within 60 s).
        t_close = time.monotonic() - a.settle
        watch = [(round(time.monotonic() - t_close, 1), round(after["rss"] / 2**20, 1))]
        while after["rss"] > 1.2 * base["rss"] and time.monotonic() - t_close < a.after_close_watch:
            await asyncio.sleep(2.0)
            after = r.sample()
            watch.append((round(time.monotonic() - t_close, 1), round(after["rss"] / 2**20, 1)))
        out["after_close_rss_mb"] = watch
        out["rss_back_within_20pct_s"] = watch[-1][0] if after["rss"] <= 1.2 * base["rss"] else None
    for step in levels:
        level = step["connections"]
        during, held = step.pop("_samples")
        step["stayed_up"] = total["probes"].get("e%d" % level, 0)
        step["got_first_probe"] = total["probes"].get("s%d" % level, 0)
        step.update(_capacity_figures(base, during, held, after if step is levels[-1] else None,
                                      step["stayed_up"]))
        step["ok"] = step["stayed_up"] == level
    out.update({k: v for k, v in levels[-1].items() if k != "connections"})
    out["steps"] = levels
    out["streams_closed_during_run"] = total["streams_closed_during_run"]
    out["events_by_name"] = total["events_by_name"]
    out["bad_status"] = total["bad_status"]
    out["ok"] = all(step["ok"] for step in levels)
    return out


async def _subscribe_and_warm(r, count):
    ramp = await r.open_subscribers(count)
    warm = await r.probe_marker("w", [r.room], r.args.warmup_timeout, repeat_every=0.25)
    return ramp, warm


def _collect(r, total, lat, acked, sent_first):
    pubs = r.publishers
    n_acked = len(acked)
    expected = n_acked * total["subscribed"]
    latencies = lat.tolist()
    res = {"subscribers": r.args.subscribers, "subscribed": total["subscribed"],
           "messages_acked": n_acked, "expected": expected, "received": total["received"],
           "unique_received": total["unique"], "lost": total["lost"],
           "max_lost_one_subscriber": total.get("max_lost_one", 0),
           "duplicates": total["duplicates"], "out_of_order": total["out_of_order"],
           "id_out_of_order": total["id_out_of_order"], "unacked_received": total["unacked_received"],
           "unparsed": total["unparsed"], "foreign": total["foreign"],
           "events_by_name": total["events_by_name"], "comments": total["comments"],
           "streams_closed_during_run": total["streams_closed_during_run"],
           "bad_status": total["bad_status"], "truncated_reads": total.get("truncated_reads", 0),
           "publish_errors": {}}
    for p in pubs:
        for k, v in p.errors.items():
            res["publish_errors"][k] = res["publish_errors"].get(k, 0) + v
    if r.args.latency_out and latencies:
        array.array("f", latencies).tofile(open(r.args.latency_out, "wb"))
        res["latency_file"] = r.args.latency_out
    res["latency_ms"] = percentiles(latencies)
    post_lat = array.array("d")
    for p in pubs:
        if p.pid < 10000:
            post_lat.extend(p.latencies)
    res["post_latency_ms"] = percentiles(post_lat.tolist())
    if total["first_recv"] and total["last_recv"] and sent_first:
        span = (total["last_recv"] - sent_first) / 1e9
        res["delivery_span_s"] = round(span, 3)
        res["deliveries_per_s"] = round(total["unique"] / span, 1) if span > 0 else None
    res["ok"] = (res["lost"] == 0 and res["duplicates"] == 0 and res["out_of_order"] == 0
                 and res["id_out_of_order"] == 0 and expected > 0)
    return res


async def mode_latency(r):
    a = r.args
    ramp, warm = await _subscribe_and_warm(r, a.subscribers)
    pubs = [r.publisher(p) for p in range(a.publishers)]
    for p in pubs:  # connect before the clock starts
        await p.post(r.room, "x", record=False)
    interval = 1.0 / a.rate
    base = r.sample(memory=False)
    cpu = ClientCPU(r.fleet.pids)
    phase(a, "measure")
    t0 = time.monotonic() + 0.05
    sent_first = time_ns() + 50_000_000
    lag = [0.0]

    # A server that cannot keep the rate is not waited for without end: what is not sent by
    # 1.5x the planned time is counted as unsent (rate_achieved shows it).
    hard_end = t0 + a.messages * interval * 1.5 + 2
    unsent = [0]

    async def run_pub(p):
        for k in range(p.pid, a.messages, len(pubs)):
            due = t0 + k * interval
            now = time.monotonic()
            if now > hard_end:
                unsent[0] += 1
                continue
            if due > now:
                await asyncio.sleep(due - now)
            else:
                lag[0] = max(lag[0], now - due)
            await p.post(r.room)

    await asyncio.gather(*[run_pub(p) for p in pubs])
    publish_s = time.monotonic() - t0
    end = await r.probe_marker("e", [r.room], a.drain_timeout, publisher=pubs[0])
    client = cpu.stop()
    after = r.sample(memory=False)
    acked = [k for p in pubs for k in p.acked]
    total, lat = await r.finish(acked)
    res = _collect(r, total, lat, acked, sent_first)
    server = _server_delta(base, after, deliveries=total["unique"], posts=len(acked))
    res.update({"rate": a.rate, "messages": a.messages, "publishers": len(pubs),
                "rate_achieved": round(len(acked) / max(publish_s, 1e-9), 2),
                "publisher_max_lag_ms": round(lag[0] * 1000, 2), "unsent_past_deadline": unsent[0],
                "ramp": ramp, "warmup": warm,
                "drain": end, "client_cpu": client, "server": server,
                "machine_other_cores": machine_other(client, server)})
    return res


async def mode_throughput(r):
    a = r.args
    ramp, warm = await _subscribe_and_warm(r, a.subscribers)
    pubs = [r.publisher(p) for p in range(a.publishers)]
    for p in pubs:
        await p.post(r.room, "x", record=False)
    tag = ("%s|m|" % r.run).encode()
    await r.fleet.all("count_tag", tag)
    subscribed = warm["seen"]
    base = r.sample(memory=False)
    cpu = ClientCPU(r.fleet.pids)
    phase(a, "measure")
    sent_first = time_ns()
    t0 = time.monotonic()
    deadline = t0 + a.duration
    published = [0]
    delivered = [0]

    async def run_pub(p):
        count = 0
        while time.monotonic() < deadline and count < a.max_messages:
            if a.window and published[0] * subscribed - delivered[0] > a.window * subscribed:
                await asyncio.sleep(0.002)
                continue
            await p.post(r.room)
            published[0] += 1
            count += 1

    async def poll():
        while time.monotonic() < deadline:
            counts = await r.fleet.all("count")
            delivered[0] = sum(counts)
            await asyncio.sleep(0.02)

    poller = asyncio.ensure_future(poll()) if a.window else None
    await asyncio.gather(*[run_pub(p) for p in pubs])  # each loop ends at the deadline
    if poller:
        await poller
    publish_s = time.monotonic() - t0
    phase(a, "drain")
    mid = r.sample(memory=False)
    end = await r.probe_marker("e", [r.room], a.drain_timeout, publisher=pubs[0])
    client = cpu.stop()
    after = r.sample(memory=False)
    acked = [k for p in pubs for k in p.acked]
    total, lat = await r.finish(acked)
    res = _collect(r, total, lat, acked, sent_first)
    server = _server_delta(base, after, deliveries=total["unique"], posts=len(acked))
    res.update({"duration": a.duration, "publishers": len(pubs), "window": a.window,
                "publishes_per_s": round(len(acked) / max(publish_s, 1e-9), 1),
                "publish_s": round(publish_s, 3), "ramp": ramp, "warmup": warm, "drain": end,
                "client_cpu": client, "server": server,
                "server_during_publish": _server_delta(base, mid),
                "machine_other_cores": machine_other(client, server)})
    if res["expected"]:
        res["loss_fraction"] = round(res["lost"] / res["expected"], 6)
    return res


async def mode_publish(r):
    a = r.args
    pubs = [r.publisher(p) for p in range(a.publishers)]
    for p in pubs:
        await p.post(r.room, "x", record=False)
    base = r.sample(memory=False)
    cpu = ClientCPU([])
    t0 = time.monotonic()
    deadline = t0 + a.duration

    async def run_pub(p):
        count = 0
        while time.monotonic() < deadline and count < a.max_messages:
            await p.post(r.room)
            count += 1

    await asyncio.gather(*[run_pub(p) for p in pubs])  # each loop ends at the deadline
    wall = time.monotonic() - t0
    client = cpu.stop()
    after = r.sample(memory=False)
    ok = sum(p.ok for p in pubs)
    lat = array.array("d")
    errors = {}
    for p in pubs:
        lat.extend(p.latencies)
        for k, v in p.errors.items():
            errors[k] = errors.get(k, 0) + v
    server = _server_delta(base, after, posts=ok)
    return {"publishers": len(pubs), "duration": a.duration, "posts_ok": ok, "errors": errors,
            "posts_per_s": round(ok / wall, 1), "post_latency_ms": percentiles(lat.tolist()),
            "client_cpu": client, "server": server,
            "machine_other_cores": machine_other(client, server), "ok": ok > 0 and not errors}


# --------------------------------------------------------------------------------------------
# Self test of the parsers


def selftest():
    cases = []

    mismatches = []

    def events(chunks):
        timed = [(i, c) for i, c in enumerate(chunks)]
        _, parser, out = parse_events(timed)
        _, fast_counts, fast = parse_events_fast(timed)
        if fast != out or fast_counts.comments != parser.comments:
            mismatches.append(chunks)
        return [(n, d.decode(), i.decode() if i is not None else None) for n, d, i, _ in out], parser

    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
    got, _ = events([head + b"data: a\n\n"])
    cases.append(("lf", got == [("message", "a", None)]))
    got, _ = events([head + b"event: x\r\ndata: 1\r\ndata:2\r\nid: 7\r\n\r\n"])
    cases.append(("crlf multi-line", got == [("x", "1\n2", "7")]))
    got, _ = events([head + b"data: a\rdata: b\r\r"])
    cases.append(("cr", got == [("message", "a\nb", None)]))
    got, _ = events([head + b"data: a\r", b"\n", b"\r", b"\ndata: b\n\n"])
    cases.append(("crlf split", got == [("message", "a", None), ("message", "b", None)]))
    got, p = events([head + b": keep-alive\n\n: c\ndata: x\n\n"])
    cases.append(("comments", got == [("message", "x", None)] and p.comments == 2))
    got, _ = events([head + b"\xef\xbb\xbfdata: bom\n\nretry: 10\n\nevent: e\n\ndata\n\n"])
    cases.append(("bom, empty events, bare field", got == [("message", "bom", None), ("message", "", None)]))
    got, _ = events([head + b"data:  two spaces\nfoo: bar\nid: a\0b\n\n"])
    cases.append(("one space stripped, unknown field, NUL id", got == [("message", " two spaces", None)]))
    parts = [b"retry: 10\n", b"event: message\nid: 1-0\ndat", b"a: {}\n", b"\n"]
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"".join(b"%x;ext=1\r\n%s\r\n" % (len(x), x) for x in parts) + b"0\r\n\r\n")
    pieces = [chunked[i:i + 7] for i in range(0, len(chunked), 7)]
    got, p = events(pieces)
    cases.append(("chunked, split everywhere", got == [("message", "{}", "1-0")] and p.retry == 10))
    body = b'event: message\ndata: {"text": "r|m|0|0|5"}\n\n'
    sized = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body + b"garbage"
    got, _ = events([sized])
    cases.append(("content-length", got == [("message", '{"text": "r|m|0|0|5"}', None)]))
    cases.append(("ids", comparable_id("1795444156125-3") == (1795444156125, 3)
                  and comparable_id(b"1700000000:2") == (1700000000, 2) and comparable_id("x") is None))
    resp = b"HTTP/1.1 201 CREATED\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1"
    cases.append(("response", _parse_response(resp) == (201, b"{}", len(resp) - 8, False)))
    one_byte = [chunked[i:i + 1] for i in range(len(chunked))]
    got, _ = events(one_byte)
    cases.append(("chunked, one byte per read", got == [("message", "{}", "1-0")]))
    got, _ = events([head + b"data: a\n\n\n\ndata: b\ndata: c\n", b"\nevent: x\n\ndata: d"])
    cases.append(("blank runs, unfinished event", got == [("message", "a", None), ("message", "b\nc", None)]))
    cases.append(("fast parser agrees", not mismatches))
    stream = (b"*3\r\n$9\r\nsubscribe\r\n$1\r\nr\r\n:1\r\n"
              + b"*3\r\n$7\r\nmessage\r\n$1\r\nr\r\n$2\r\n{}\r\n" * 2 + b"*3\r\n$7\r\nmess")
    status, _, got = parse_resp_events([(i, stream[i:i + 5]) for i in range(0, len(stream), 5)])
    cases.append(("resp", status == 200 and [(n, d) for n, d, _, _ in got] == [("message", b"{}")] * 2
                  and got[0][3] == 60))
    failed = [name for name, ok in cases if not ok]
    return {"mode": "selftest", "cases": len(cases), "failed": failed, "ok": not failed}


# --------------------------------------------------------------------------------------------
# CLI


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["capacity", "latency", "throughput", "publish", "selftest"])
    p.add_argument("--sub-url", help="SSE URL template, e.g. http://127.0.0.1:8000/rooms/{room}/events")
    p.add_argument("--pub-url", help="publish URL template, e.g. http://127.0.0.1:8000/rooms/{room}/messages")
    p.add_argument("--pub-method", default="POST")
    p.add_argument("--pub-body", default='{"text": "{text}", "user": "bench"}',
                   help="body template; {text} is the message text (every occurrence: an idempotency "
                        "key may carry it too), {room} the room")
    p.add_argument("--pub-content-type", default="application/json")
    p.add_argument("--pub-header", action="append", default=[],
                   help="extra request header for posts, e.g. 'Authorization: Bearer T'; repeatable")
    p.add_argument("--cookie-file", help="a file of Cookie header values, one per line: stream i "
                   "sends line i mod count (signed-in browsers; bench/signins.py writes one)")
    p.add_argument("--sub-header", action="append", default=[],
                   help="extra request header for streams; repeatable")
    p.add_argument("--event", default="message", help="SSE event name carrying messages")
    p.add_argument("--text-field", default="text", help="key of the text in the event's JSON data")
    p.add_argument("--room", help="room name (default: bench-<run id>)")
    p.add_argument("--rooms", type=int, default=1, help="capacity: spread streams over this many rooms")
    p.add_argument("--run-id")
    p.add_argument("--label", default="", help="free text copied into the JSON line")
    p.add_argument("--connections", "-n", type=int, default=1000, help="capacity: streams to hold")
    p.add_argument("--steps", type=lambda v: [int(x) for x in v.split(",") if x],
                   help="capacity: hold each of these levels in turn, e.g. 1000,2000,5000,10000 "
                        "(one ramp; nothing closes in between)")
    p.add_argument("--subscribers", "-s", type=int, default=100)
    p.add_argument("--messages", "-m", type=int, default=100, help="latency: messages to send")
    p.add_argument("--rate", type=float, default=10.0, help="latency: messages per second")
    p.add_argument("--publishers", "-p", type=int, default=None,
                   help="concurrent sequential publishers (latency 4: message k goes out from "
                        "publisher k mod P at its scheduled time; throughput 4; publish 16)")
    p.add_argument("--duration", "-d", type=float, default=5.0, help="throughput/publish seconds")
    p.add_argument("--max-messages", type=int, default=200000, help="per publisher, a bound")
    p.add_argument("--window", type=int, default=0,
                   help="throughput: pause publishing while more than this many messages per "
                        "subscriber are undelivered (0 = as fast as the server accepts posts)")
    p.add_argument("--hold", type=float, default=3.0, help="capacity: seconds to hold the streams")
    p.add_argument("--procs", type=int, default=1, help="subscriber processes")
    p.add_argument("--connect-rate", type=float, default=1500.0, help="new connections per second")
    p.add_argument("--inflight", type=int, default=256, help="connection attempts at once")
    p.add_argument("--ramp-wait", choices=["headers", "connect"], default="headers",
                   help="an attempt is in flight until the response status (headers; for servers "
                        "that answer a stream at once) or only until TCP connects (connect; for "
                        "servers such as flask-sse that send nothing before the first message)")
    p.add_argument("--connect-timeout", type=float, default=10.0)
    p.add_argument("--request-timeout", type=float, default=10.0)
    p.add_argument("--open-deadline", type=float, default=120.0, help="bound on the ramp, seconds")
    p.add_argument("--retries", type=int, default=0,
                   help="capacity: rounds of reconnecting refused/dropped streams after the start "
                        "probe, as an EventSource would (reported apart from first attempts)")
    p.add_argument("--retry-delay", type=float, default=1.0)
    p.add_argument("--src-ips", type=lambda s: s.split(","), default=None,
                   help="comma-separated loopback source addresses to spread connections over")
    p.add_argument("--probe-timeout", type=float, default=15.0)
    p.add_argument("--warmup-timeout", type=float, default=20.0)
    p.add_argument("--drain-timeout", type=float, default=15.0)
    p.add_argument("--settle", type=float, default=1.0)
    p.add_argument("--after-close-watch", type=float, default=0.0,
                   help="capacity: after the last level closes, sample server RSS for up to this many "
                        "seconds, until it is within 20 %% of the pre-wave baseline")
    p.add_argument("--server-pid", type=int, action="append", default=[],
                   help="server process (its descendants are included); repeatable")
    p.add_argument("--redis", help="redis://127.0.0.1:PORT or unix:///path: INFO is sampled")
    p.add_argument("--latency-out", help="write per-delivery latencies (ms, float32) to this file")
    p.add_argument("--phase-file", help="write the current phase (measure, drain) to this file")
    p.add_argument("--budget-mb", type=int, default=3000, help="bytes stored per process, a bound")
    p.add_argument("--max-seconds", type=int, default=600, help="hard bound on the whole run")
    p.add_argument("--no-uvloop", action="store_true")
    p.add_argument("--verbose", "-v", action="store_true")
    return p


async def amain(args):
    r = Run(args)
    if args.mode in ("capacity", "latency", "throughput"):
        if not r.sub or not r.pub:
            raise SystemExit("loadtool: --sub-url and --pub-url are required for %s" % args.mode)
        opts = {"uvloop": not args.no_uvloop, "budget_bytes": args.budget_mb * 2**20 // args.procs,
                "max_seconds": args.max_seconds}
        r.fleet = Fleet(args.procs, opts)
    elif not r.pub:
        raise SystemExit("loadtool: --pub-url is required for publish")
    try:
        if args.mode == "capacity":
            res = await mode_capacity(r)
        elif args.mode == "latency":
            res = await mode_latency(r)
        elif args.mode == "throughput":
            res = await mode_throughput(r)
        else:
            res = await mode_publish(r)
    finally:
        for p in r.publishers:
            p.close()
        if r.fleet:
            r.fleet.stop()
        log(args, "stopped")
    return r, res


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.mode == "selftest":
        print(json.dumps(selftest()))
        return 0
    if args.publishers is None:
        args.publishers = {"latency": 4, "throughput": 4, "publish": 16}.get(args.mode, 1)
    args.procs = max(1, args.procs)
    signal.alarm(args.max_seconds)  # the whole run is bounded, whatever happens
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    loop, kind = _new_loop(not args.no_uvloop)
    try:
        r, res = loop.run_until_complete(amain(args))
    finally:
        loop.close()
    line = {"tool": "ripple-loadtool", "version": VERSION, "mode": args.mode, "label": args.label,
            "run": r.run, "room": r.room, "started": started.isoformat(timespec="seconds"),
            "wall_s": round(time.monotonic() - t0, 3), "loop": kind, "procs": args.procs,
            "argv": [os.path.basename(sys.argv[0])] + list(argv if argv is not None else sys.argv[1:])}
    line.update(res)
    cpu_keys = [k for k in ("client_cpu", "ramp_client_cpu", "hold_client_cpu") if k in line]
    line["client_limited"] = any(line[k]["limited"] for k in cpu_keys)
    print(json.dumps(line, separators=(",", ":")), flush=True)
    return 0 if line.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
