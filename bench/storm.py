#!/usr/bin/env python3
"""Reconnect storm (issue 20): what a reload or a crashed worker costs the clients of an SSE server.

N streams in R rooms, one keep-alive publisher per room posting every --interval seconds; once
every stream is live, a signal: ``--signal hup`` sends SIGHUP to the server's master (gunicorn's
graceful reload, nginx's reload), ``--signal kill-worker`` SIGKILLs the worker holding the most
connections. Every client reconnects as an EventSource does: after the ``retry:`` the server gave
(times 1 + U(0, --jitter): a realistic spread) with ``Last-Event-ID``, again after every failure.

Prints ONE JSON line: the time from the signal until 50 / 99 / 100 % of the disrupted clients were
back (their new stream's first event: for Ripple the replay chunk with everything missed, then
``ready``), the p99 delivery latency of the messages posted during the storm, lost and duplicated
messages per client (against every acknowledged post), the posts that failed or took more than
1 s, ERROR lines the server logged meanwhile (--server-log), and server RSS and Redis memory
before the signal and --settle seconds after the storm.

    python bench/storm.py --sub-url 'http://127.0.0.1:8000/rooms/{room}/events' \\
        --pub-url 'http://127.0.0.1:8000/rooms/{room}/messages' \\
        --pub-header 'Authorization: Bearer T' --server-pid <master> --redis redis://127.0.0.1:6379 \\
        --server-log /tmp/gunicorn.log -n 10000 --rooms 10 --procs 2 --signal hup

The load tool's rules hold: loopback targets only, every loop bounded, the run bounded by
--max-seconds. Each connection costs one descriptor and the limit is per process: --procs 2
or more above ~9,000 streams.
"""
from __future__ import annotations

import argparse
import array
import asyncio
import gc
import json
import multiprocessing
import os
import random
import re
import signal
import socket
import sys
import time
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadtool as lt  # noqa: E402  (bench/loadtool.py: targets, parsers, publisher, probes)

time_ns = lt.time_ns
STALL_S = 1.0           # a post slower than this "stalled" (the bound)
MAX_ATTEMPTS = 60       # reconnects per client, a bound


class Client:
    """One EventSource: its room, where it is, and every connection it made."""

    __slots__ = ("idx", "room", "path", "last_id", "retry_ms", "conns", "attempts", "gone")

    def __init__(self, idx, room, path):
        self.idx, self.room, self.path = idx, room, path
        self.last_id = None
        self.retry_ms = 3000  # the WHATWG default until the server says otherwise
        self.conns = []
        self.attempts = 0
        self.gone = False


class Conn(asyncio.Protocol):
    """One connection of a client: bytes timestamped and kept, parsed when it ends."""

    __slots__ = ("client", "st", "transport", "chunks", "opened", "status", "status_t", "closed",
                 "err", "head", "tail")

    def __init__(self, client, st):
        self.client, self.st = client, st
        self.transport = None
        self.chunks = []
        self.opened = time_ns()
        self.status = self.status_t = self.closed = self.err = None
        self.head = b""
        self.tail = b""

    def connection_made(self, transport):
        self.transport = transport
        extra = self.st.headers
        if self.client.last_id is not None:
            extra += "Last-Event-ID: %s\r\n" % self.client.last_id.decode("latin-1")
        transport.write(lt._request_bytes(self.client.path, self.st.hostport, extra))

    def data_received(self, data):
        self.chunks.append((time_ns(), data))
        if self.status is None:
            self.head += data
            end = self.head.find(b"\r\n")
            if end >= 0:
                try:
                    self.status = int(self.head[:end].split(None, 2)[1])
                except (IndexError, ValueError):
                    self.status = -1
                self.status_t = time_ns()
                self.head = b""
        # The response's end (chunked framing's last chunk) ends the stream, as for an
        # EventSource, which reconnects then: it does not wait for the server to close the
        # connection (a server may keep it open for a next request).
        self.tail = (self.tail + data)[-7:]
        if self.tail.endswith(b"\r\n0\r\n\r\n") and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc):
        self.closed = time_ns()
        if exc is not None:
            self.err = type(exc).__name__
        self.st.lost(self)


class State:
    """One tool process: its clients and how they reconnect."""

    def __init__(self, loop, cfg):
        self.loop, self.cfg = loop, cfg
        self.host, self.port, self.hostport = cfg["host"], cfg["port"], cfg["hostport"]
        self.headers = cfg["headers"]
        self.clients = []
        self.connect_errors = {}
        self.stopping = False
        self.pending = 0  # reconnects scheduled, not yet made

    def lost(self, conn):
        client = conn.client
        if self.stopping or client.gone:
            return
        # Where the stream got to and the delay it asked for, as an EventSource keeps them.
        _, counts, events = lt.parse_events_fast(conn.chunks)
        for _, _, eid, _ in events:
            if eid is not None:
                client.last_id = eid
        if counts.retry is not None:
            client.retry_ms = counts.retry
        self.schedule(client)

    def schedule(self, client):
        client.attempts += 1
        if client.attempts > MAX_ATTEMPTS:
            client.gone = True
            return
        delay = client.retry_ms / 1000 * (1 + random.random() * self.cfg["jitter"])
        self.pending += 1
        self.loop.call_later(delay, lambda: self.loop.create_task(self.connect(client)))

    async def connect(self, client, first=False):
        if not first:
            self.pending -= 1
        if self.stopping:
            return False
        conn = Conn(client, self)
        client.conns.append(conn)
        try:
            await asyncio.wait_for(self.loop.create_connection(lambda: conn, self.host, self.port),
                                   self.cfg["connect_timeout"])
            return True
        except Exception as exc:  # noqa: BLE001 - counted by kind; EventSource tries again
            kind = type(exc).__name__ + (":%d" % exc.errno if isinstance(exc, OSError) and exc.errno else "")
            self.connect_errors[kind] = self.connect_errors.get(kind, 0) + 1
            conn.closed = time_ns()
            conn.err = kind
            if conn.transport is None and not self.stopping:
                self.schedule(client)
            return False

    async def open_all(self, specs, rate, inflight):
        sem = asyncio.Semaphore(inflight)
        t0 = self.loop.time()

        async def one(client):
            try:
                await self.connect(client, first=True)
                if self.cfg["ramp_wait"] == "connect":
                    return
                deadline = self.loop.time() + self.cfg["connect_timeout"]
                while client.conns[-1].status is None and client.conns[-1].closed is None \
                        and self.loop.time() < deadline:
                    await asyncio.sleep(0.01)
            finally:
                sem.release()

        tasks = []
        for k, (idx, room, path) in enumerate(specs):
            delay = t0 + k / rate - self.loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await sem.acquire()
            client = Client(idx, room, path)
            self.clients.append(client)
            tasks.append(self.loop.create_task(one(client)))
        if tasks:
            await asyncio.wait(tasks, timeout=self.cfg["connect_timeout"] * 2 + 5)
        return self.loop.time() - t0

    def status(self, since):
        """Counts for the parent's watch: live now, and back after a disruption after ``since``."""
        live = disrupted = back = 0
        for c in self.clients:
            conn = c.conns[-1]
            ok = conn.closed is None and conn.status == 200
            live += ok
            hit = any(x.closed is not None and x.closed >= since for x in c.conns)
            if hit:
                disrupted += 1
                back += ok and conn.opened >= since and conn.status_t is not None
        return {"clients": len(self.clients), "live": live, "disrupted": disrupted, "back": back,
                "pending": self.pending, "gave_up": sum(c.gone for c in self.clients)}

    def watch(self, marker):
        """How many clients have this marker in what they received (the warm-up probe)."""
        n = 0
        for c in self.clients:
            for conn in c.conns:
                if any(marker in d for _, d in conn.chunks[-8:]):
                    n += 1
                    break
        return n

    def analyze(self, spec):
        """Per client: every connection parsed, this run's messages checked against the acks."""
        self.stopping = True
        run, t_sig, t_end = spec["run"], spec["signal_ns"], spec["storm_end_ns"]
        acked = {room: set(map(tuple, keys)) for room, keys in spec["acked"].items()}
        prefix = (run + "|").encode()
        storm_lat, all_lat, back_s = array.array("d"), array.array("d"), array.array("d")
        cut_s, gap_s = array.array("d"), array.array("d")
        res = {"clients": len(self.clients), "lost": 0, "duplicates": 0, "clients_with_loss": 0,
               "clients_with_duplicates": 0, "max_lost_one": 0, "max_dup_one": 0, "disrupted": 0,
               "never_back": 0, "not_caught_up": 0, "reconnects": 0, "bad_status": {},
               "events_by_name": {}, "gave_up": 0}
        for c in self.clients:
            seen, dups, ended = set(), 0, False
            disrupted_at, back_at = None, None
            for conn in c.conns:
                if conn.transport is not None and conn.closed is None:
                    conn.transport.close()
                decoder, _, events = lt.parse_events_fast(conn.chunks)
                conn.chunks = None
                if decoder.status not in (None, 200):
                    key = str(decoder.status)
                    res["bad_status"][key] = res["bad_status"].get(key, 0) + 1
                if disrupted_at is not None and back_at is None and decoder.status == 200 and events:
                    back_at = events[0][3]
                if conn.closed is not None and conn.closed >= t_sig and disrupted_at is None:
                    disrupted_at = conn.closed
                for name, data, _, t in events:
                    names = res["events_by_name"]
                    names[name] = names.get(name, 0) + 1
                    if name != "message" or prefix not in data:
                        continue
                    try:
                        _, kind, pub, seq, sent = json.loads(data)["text"].split("|")
                    except (ValueError, KeyError, TypeError):
                        continue
                    if kind == "e":
                        ended = True
                    if kind != "m":
                        continue
                    key = (int(pub), int(seq))
                    if key in seen:
                        dups += 1
                        continue
                    seen.add(key)
                    ms = (t - int(sent)) / 1e6
                    all_lat.append(ms)
                    if t_sig <= int(sent) <= t_end:
                        storm_lat.append(ms)
            res["reconnects"] += max(0, len(c.conns) - 1)
            res["gave_up"] += c.gone
            lost = len(acked.get(c.room, set()) - seen)
            res["lost"] += lost
            res["duplicates"] += dups
            res["clients_with_loss"] += lost > 0
            res["clients_with_duplicates"] += dups > 0
            res["max_lost_one"] = max(res["max_lost_one"], lost)
            res["max_dup_one"] = max(res["max_dup_one"], dups)
            res["not_caught_up"] += not ended
            if disrupted_at is not None:
                res["disrupted"] += 1
                if back_at is None:
                    res["never_back"] += 1
                else:
                    back_s.append((back_at - t_sig) / 1e9)
                    gap_s.append((back_at - disrupted_at) / 1e9)
                cut_s.append((disrupted_at - t_sig) / 1e9)
        res["connect_errors"] = self.connect_errors
        res["cut_s"], res["gap_s"] = cut_s.tobytes(), gap_s.tobytes()
        res["storm_lat"] = storm_lat.tobytes()
        res["all_lat"] = all_lat.tobytes()
        res["back_s"] = back_s.tobytes()
        return res


def _child_main(conn, cfg):
    signal.alarm(int(cfg["max_seconds"]) + 30)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    loop, _ = lt._new_loop(cfg["uvloop"])
    try:
        loop.run_until_complete(_child(loop, conn, cfg))
    except (EOFError, OSError):
        pass
    finally:
        loop.close()


async def _child(loop, conn, cfg):
    st = State(loop, cfg)
    gc.disable()  # no collection pauses in the measured window
    while True:
        cmd, arg = await lt._arecv(loop, conn)
        if cmd == "open":
            secs = await st.open_all(arg["specs"], arg["rate"], arg["inflight"])
            conn.send({"seconds": secs, "errors": dict(st.connect_errors)})
        elif cmd == "status":
            conn.send(st.status(arg))
        elif cmd == "watch":
            conn.send(st.watch(arg))
        elif cmd == "finish":
            conn.send(st.analyze(arg))
            return


class Fleet(lt.Fleet):
    def __init__(self, n, cfg):  # noqa: D107 - lt.Fleet's, with this module's child
        ctx = multiprocessing.get_context("fork")
        self.conns, self.procs = [], []
        for _ in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_child_main, args=(child, cfg), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)


def redis_figures(url):
    """used_memory, clients and keys of the server's Redis (INFO over a raw socket)."""
    if not url:
        return None
    info = lt.redis_info(url)
    parts = urlsplit(url)
    try:
        if parts.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(5)
            sock.connect(parts.path)
        else:
            sock = socket.create_connection((parts.hostname, parts.port or 6379), timeout=5)
        with sock:
            sock.sendall(b"DBSIZE\r\n")
            info["keys"] = int(sock.recv(100).strip()[1:])
    except (OSError, ValueError):
        pass
    return {k: info.get(k) for k in ("used_memory", "used_memory_rss", "connected_clients", "keys")}


def server_memory(probe, master):
    """RSS of the server's processes (Redis excluded: it has its own figures)."""
    if probe is None:
        return None
    rss, workers = 0, {}
    for proc in probe.processes():
        try:
            name = " ".join(proc.cmdline())
            if "redis" in name or "valkey" in name:
                continue
            mb = proc.memory_info().rss
        except probe.psutil.Error:
            continue
        rss += mb
        if proc.pid != master:
            workers[str(proc.pid)] = round(mb / 2**20, 1)
    return {"rss_mb": round(rss / 2**20, 1), "workers_rss_mb": workers}


def victim_worker(probe, master, port):
    """The worker holding the most streams: the most established connections on the server's
    ``port`` (int), then the most descriptors. Descriptors alone picked an idle worker (its Redis
    pools) over one holding a few streams, and a SIGKILL then disrupted nobody (a CI run)."""
    best = None
    for proc in probe.processes():
        try:
            if proc.pid == master or "redis" in " ".join(proc.cmdline()):
                continue
            clients = sum(1 for conn in proc.net_connections("tcp")
                          if conn.status == probe.psutil.CONN_ESTABLISHED and conn.laddr and conn.laddr.port == port)
            held = (clients, proc.num_fds())
        except probe.psutil.Error:
            continue
        if best is None or held > best[0]:
            best = (held, proc.pid)
    return best[1] if best else None


class LogWatch:
    """ERROR / CRITICAL lines and tracebacks the server writes from now on."""

    PATTERN = re.compile(r"\b(ERROR|CRITICAL)\b|\[error\]|\[crit\]|\[alert\]|\[emerg\]|Traceback")

    def __init__(self, path):
        self.path = path
        self.offset = os.path.getsize(path) if path and os.path.exists(path) else 0

    def read(self):
        if not self.path or not os.path.exists(self.path):
            return None
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            text = f.read().decode("utf-8", "replace")
        hits = [line for line in text.splitlines() if self.PATTERN.search(line)]
        kinds = {}
        for line in hits:
            kind = re.sub(r"^.*?\b(ERROR|CRITICAL|Traceback)\b", r"\1", line)
            kind = re.sub(r"pid=\d+|\d+", "N", kind)[:120]
            kinds[kind] = kinds.get(kind, 0) + 1
        return {"lines": len(hits), "kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1])[:8])}


def _cpu(probe, fleet):
    """CPU seconds so far: the server's processes, its Redis, this tool's, and the machine's."""
    import psutil
    t = psutil.cpu_times()
    res = {"t": time.monotonic(), "busy": sum(t) - t.idle - getattr(t, "iowait", 0.0), "tool": 0.0}
    for pid in [os.getpid()] + [proc.pid for proc in fleet.procs]:
        try:
            c = psutil.Process(pid).cpu_times()
            res["tool"] += c.user + c.system
        except psutil.Error:
            pass
    if probe is not None:
        # every server process's, plus the master's reaped children's: a reload's old workers
        res["server"] = 0.0
        for proc in probe.processes():
            try:
                c = proc.cpu_times()
            except psutil.Error:
                continue
            res["server"] += c.user + c.system
            if proc in probe.roots:
                res["server"] += c.children_user + c.children_system
        res["redis"] = lt.redis_info(probe.redis).get("cpu_s", 0.0) if probe.redis else 0.0
    return res


def _cpu_used(a, b, reconnects):
    """Cores used from ``a`` to ``b`` by the server, its Redis, this tool and everything else
    (other work on a shared machine: machine_other_cores), and server CPU per reconnect."""
    wall = max(1e-9, b["t"] - a["t"])
    res = {"wall_s": round(wall, 2), "machine_busy_cores": round((b["busy"] - a["busy"]) / wall, 2),
           "tool_cores": round((b["tool"] - a["tool"]) / wall, 2)}
    if "server" in a:
        server = max(0.0, b["server"] - a["server"])
        redis = max(0.0, b["redis"] - a["redis"])
        res.update(server_cores=round(server / wall, 2), redis_cores=round(redis / wall, 2),
                   server_ms_per_reconnect=round(1000 * server / reconnects, 2) if reconnects else None)
        res["machine_other_cores"] = round(res["machine_busy_cores"] - res["tool_cores"]
                                           - (server + redis) / wall, 2)
    return res


def _pct(values, points=(50, 99, 100)):
    if not values:
        return {}
    values = sorted(values)
    return {"p%g" % p: round(values[min(len(values) - 1, int(len(values) * p / 100))], 3)
            for p in points}


async def amain(args):
    a = args
    sub, pub = lt.Target(a.sub_url), lt.Target(a.pub_url)
    run = a.run_id or "st%08x" % random.getrandbits(32)
    rooms = ["%s-%d" % (a.room or "storm-" + run, r) for r in range(a.rooms)]
    cfg = {"host": sub.host, "port": sub.port, "hostport": sub.hostport, "max_seconds": a.max_seconds,
           "headers": "".join(lt._header_line(h) for h in a.sub_header), "uvloop": not a.no_uvloop,
           "jitter": a.jitter, "connect_timeout": a.connect_timeout, "ramp_wait": a.ramp_wait}
    probe = lt.ServerProbe(a.server_pid, a.redis) if a.server_pid else None
    master = a.server_pid[0] if a.server_pid else None
    fleet = Fleet(a.procs, cfg)
    out = {"mode": "storm", "run": run, "signal": a.signal, "connections": a.connections,
           "rooms": a.rooms, "interval_s": a.interval, "jitter": a.jitter}
    pubs = []
    try:
        # 1. Open every stream, then wait until each has seen a warm-up message of its room.
        per = [[] for _ in range(a.procs)]
        for i in range(a.connections):
            room = rooms[i % len(rooms)]
            per[i % a.procs].append((i, room, sub.path(room, i)))
        t0 = time.monotonic()
        replies = await fleet.call("open", [{"specs": s, "rate": a.connect_rate / a.procs,
                                             "inflight": max(1, a.inflight // a.procs)} for s in per])
        out["ramp_s"] = round(time.monotonic() - t0, 2)
        out["ramp_errors"] = {k: v for r in replies for k, v in r["errors"].items()}
        pubs = [lt.Publisher(k, a, run, pub, key_header=a.retry_key) for k in range(len(rooms))]
        warm = ("%s|w|" % run).encode()
        deadline = time.monotonic() + a.warmup_timeout
        while time.monotonic() < deadline:
            await asyncio.gather(*[p.post(room, "w", record=False) for p, room in zip(pubs, rooms)])
            await asyncio.sleep(0.5)
            seen = sum(await fleet.all("watch", warm))
            if seen >= a.connections:
                break
        out["warm"] = seen
        # 2. Publish every --interval per room (keep-alive), signal after --before seconds.
        posts = []  # (room, sent ns, status, seconds)
        bad = []    # the failed and stalled posts, each with its error and connection
        retried = []  # the final status of each post sent again (--retry-key)
        stop = asyncio.Event()

        async def publish(p, room):
            nxt = time.monotonic()
            while not stop.is_set():
                sent = time_ns()
                t = time.monotonic()
                reused = p.conn is not None and not p.conn.closed  # a keep-alive connection
                errors = dict(p.errors)
                status = await p.post(room)
                resent = status == -1 and a.retry_key is not None
                if resent:  # no answer: a client with idempotency keys sends it again, at once
                    status = await p.post(room, again=True)
                took = time.monotonic() - t
                posts.append((room, sent, status, took, p.seq - 1))
                if resent:
                    retried.append(status)
                if not 200 <= status < 300 or took > STALL_S:  # what went wrong, and where
                    bad.append({"at_s": sent, "s": round(took, 3), "status": status, "keep_alive": reused,
                                "resent": resent,
                                "error": [k for k, v in p.errors.items() if v != errors.get(k, 0)]})
                nxt += a.interval
                await asyncio.sleep(max(0.0, nxt - time.monotonic()))

        tasks = [asyncio.ensure_future(publish(p, room)) for p, room in zip(pubs, rooms)]
        await asyncio.sleep(a.before)
        out["before"] = {"server": server_memory(probe, master), "redis": redis_figures(a.redis)}
        logs = LogWatch(a.server_log)
        cpu0 = _cpu(probe, fleet)
        if a.signal == "hup":
            os.kill(master, signal.SIGHUP)
            out["signalled_pid"] = master
        else:
            victim = victim_worker(probe, master, sub.port)
            out["signalled_pid"] = victim
            os.kill(victim, signal.SIGKILL)
        t_sig = time_ns()
        # 3. Watch until every disrupted client is back (or --storm-timeout).
        curve, end = [], time.monotonic() + a.storm_timeout
        while time.monotonic() < end:
            await asyncio.sleep(0.25)
            s = await fleet.all("status", t_sig)
            tot = {k: sum(x[k] for x in s) for k in s[0]}
            curve.append([round((time_ns() - t_sig) / 1e9, 2), tot["back"], tot["disrupted"]])
            # Over when every client streams again (and, on a reload, every one was disrupted:
            # a staggered drain reaches the last ones seconds after the first).
            if tot["disrupted"] and tot["live"] + tot["gave_up"] >= tot["clients"] \
                    and tot["back"] + tot["gave_up"] >= tot["disrupted"] and tot["pending"] == 0 \
                    and (a.signal != "hup" or tot["disrupted"] >= tot["clients"]) and curve[-1][0] > 3:
                break
        out["watch"] = tot
        out["storm_cpu"] = _cpu_used(cpu0, _cpu(probe, fleet), tot["back"])
        out["curve"] = curve[::4]
        t_end = time_ns()
        await asyncio.sleep(a.after)
        stop.set()
        await asyncio.gather(*tasks)
        # 4. An end marker per room: a client that has it has caught up.
        for p, room in zip(pubs, rooms):
            await p.post(room, "e", record=False)
        await asyncio.sleep(2.0)
        out["log"] = logs.read()
        await asyncio.sleep(a.settle)
        out["after"] = {"server": server_memory(probe, master), "redis": redis_figures(a.redis)}
        acked = {}
        for room, _, status, _, seq in posts:
            if 200 <= status < 300:
                acked.setdefault(room, []).append((rooms.index(room), seq))
        replies = await fleet.all("finish", {"run": run, "signal_ns": t_sig, "storm_end_ns": t_end,
                                             "acked": acked})
    finally:
        for p in pubs:
            p.close()
        fleet.stop()
    storm_lat, all_lat, back = array.array("d"), array.array("d"), array.array("d")
    cut, gap = array.array("d"), array.array("d")
    total = {}
    for r in replies:
        cut.frombytes(r.pop("cut_s"))
        gap.frombytes(r.pop("gap_s"))
        storm_lat.frombytes(r.pop("storm_lat"))
        all_lat.frombytes(r.pop("all_lat"))
        back.frombytes(r.pop("back_s"))
        for k, v in r.items():
            if isinstance(v, dict):
                d = total.setdefault(k, {})
                for kk, vv in v.items():
                    d[kk] = d.get(kk, 0) + vv
            elif k.startswith("max_"):
                total[k] = max(total.get(k, 0), v)
            else:
                total[k] = total.get(k, 0) + v
    out.update(total)
    out["back_s"] = _pct(back.tolist(), (50, 99, 100))
    out["back_s"]["count"] = len(back)
    # Where "back" goes: the signal until the server ended the client's stream (the hand-over and
    # the staggered hint), then that until the new stream answered (retry wait, connect, open).
    out["cut_s"] = _pct(cut.tolist(), (1, 50, 99, 100))
    out["reconnect_s"] = _pct(gap.tolist(), (50, 99, 100))
    out["storm_latency_ms"] = _pct(storm_lat.tolist(), (50, 99, 100))
    out["latency_ms"] = _pct(all_lat.tolist(), (50, 99, 100))
    out["posts"] = {"total": len(posts), "failed": sum(1 for x in posts if not 200 <= x[2] < 300),
                    "stalled_over_1s": sum(1 for x in posts if x[3] > STALL_S),
                    "slowest_s": round(max((x[3] for x in posts), default=0), 3),
                    # posts whose first try got no answer and were sent again with their key
                    # (--retry-key); "failed" counts the ones that failed again
                    "resent": len(retried), "resent_failed": sum(1 for x in retried if not 200 <= x < 300),
                    "errors": {},
                    # the failed first, then the slow; at most 80
                    "bad": [dict(b, at_s=round((b["at_s"] - t_sig) / 1e9, 2))
                            for b in sorted(bad, key=lambda b: 200 <= b["status"] < 300)][:80]}
    for p in pubs:  # summed over the publishers
        for k, v in p.errors.items():
            out["posts"]["errors"][k] = out["posts"]["errors"].get(k, 0) + v
    out["ok"] = (out["lost"] == 0 and out["duplicates"] == 0 and out["never_back"] == 0
                 and out["posts"]["failed"] == 0)
    return out


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sub-url", required=True)
    p.add_argument("--pub-url", required=True)
    p.add_argument("--pub-method", default="POST")
    p.add_argument("--pub-body", default='{"text": "{text}", "user": "bench"}')
    p.add_argument("--pub-content-type", default="application/json")
    p.add_argument("--pub-header", action="append", default=[])
    p.add_argument("--sub-header", action="append", default=[])
    p.add_argument("--retry-key", metavar="HEADER",
                   help="send every post with an idempotency key in this header (Ripple: "
                        "Idempotency-Key) and a post that got no answer once more at once, as a "
                        "client with keys does; without it a post without an answer counts as failed")
    p.add_argument("--room")
    p.add_argument("--run-id")
    p.add_argument("--label", default="")
    p.add_argument("--connections", "-n", type=int, default=1000)
    p.add_argument("--rooms", type=int, default=10)
    p.add_argument("--interval", type=float, default=0.5, help="seconds between posts, per room")
    p.add_argument("--signal", choices=["hup", "kill-worker"], default="hup")
    p.add_argument("--jitter", type=float, default=0.5,
                   help="a reconnect waits retry x (1 + U(0, jitter))")
    p.add_argument("--procs", type=int, default=1)
    p.add_argument("--connect-rate", type=float, default=1500.0)
    p.add_argument("--inflight", type=int, default=256)
    p.add_argument("--ramp-wait", choices=["headers", "connect"], default="headers",
                   help="the ramp waits for each stream's status line (headers) or only its TCP "
                        "connect (connect: servers such as flask-sse answer nothing before a message)")
    p.add_argument("--connect-timeout", type=float, default=10.0)
    p.add_argument("--request-timeout", type=float, default=15.0)
    p.add_argument("--warmup-timeout", type=float, default=30.0)
    p.add_argument("--before", type=float, default=3.0, help="seconds of posts before the signal")
    p.add_argument("--after", type=float, default=3.0, help="seconds of posts after the storm")
    p.add_argument("--storm-timeout", type=float, default=60.0)
    p.add_argument("--settle", type=float, default=10.0,
                   help="seconds after the storm before memory is sampled again")
    p.add_argument("--server-pid", type=int, action="append", default=[],
                   help="the server's master (signalled; its descendants are measured)")
    p.add_argument("--redis", help="the server's Redis: INFO and DBSIZE before and after")
    p.add_argument("--server-log", help="the server's log: ERROR lines written during the storm")
    p.add_argument("--max-seconds", type=int, default=400)
    p.add_argument("--no-uvloop", action="store_true")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.server_pid:
        raise SystemExit("storm: --server-pid (the server's master) is required")
    signal.alarm(args.max_seconds)
    t0 = time.monotonic()
    loop, kind = lt._new_loop(not args.no_uvloop)
    try:
        res = loop.run_until_complete(amain(args))
    finally:
        loop.close()
    line = {"tool": "ripple-storm", "label": args.label, "loop": kind,
            "wall_s": round(time.monotonic() - t0, 2),
            "argv": [os.path.basename(sys.argv[0])] + list(argv if argv is not None else sys.argv[1:])}
    line.update(res)
    print(json.dumps(line, separators=(",", ":")), flush=True)
    return 0 if line.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
