"""What opening one stream costs Ripple (issue 20): worker CPU and Redis commands per open.

Starts its own Redis (TCP for this tool, a unix socket for the server) and a 2-worker Ripple from
``--root`` (a checkout: compare two trees with the same command), with every rate limit ON but
raised for 127.0.0.1 (bench/servers.py's RIPPLE_ENV), then:

1. opens ``--hold`` streams and keeps them (the "already open" load),
2. measures the idle CPU rate of the workers for ``--idle`` seconds,
3. opens ``--opens`` more streams, ``--inflight`` at a time, each counted open when its response
   head and first chunk arrived, and waits ``--settle`` s for the opens' tail work,
4. prints ONE JSON line: opens/s (wall: only as good as the machine is quiet), worker CPU per
   open (utime+stime of both workers over the window, less the idle rate), Redis commands per
   open (INFO commandstats delta, by command) and Redis CPU per open.

``--signed-in``: every stream carries a session cookie, as a browser's EventSource does: the tool
signs in ``ceil(opens / 8)`` names first (GET /session for the CSRF token, POST /session) and
spreads the streams over them (8 per session: under RIPPLE_MAX_STREAMS_PER_SESSION, 10).
``--reopen``: measure the held streams' clients coming back (a reload's reconnects: the same
sessions in the same rooms, with a Last-Event-ID) instead of new streams.
``--profile FILE``: py-spy records both workers during step 3 (``--format raw``: collapsed stacks, FILE.<pid>).

    python bench/opens.py --root . --opens 3000 --hold 2000 --signed-in
Only 127.0.0.1; every loop is bounded; the server and Redis are stopped by pid at the end.
"""
import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import servers  # noqa: E402


def worker_cpu(pids):
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def commandstats(redis):
    """({command: calls}, {command: µs inside it}, Redis CPU in s) from one INFO."""
    calls, usec, cpu = {}, {}, 0.0
    for line in redis.command("INFO", "all").splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[len("cmdstat_"):].split(":", 1)
            fields = dict(kv.split("=") for kv in rest.split(","))
            calls[name] = int(fields["calls"])
            usec[name] = int(fields["usec"])
        elif line.startswith(("used_cpu_user:", "used_cpu_sys:")):
            cpu += float(line.split(":")[1])
    return calls, usec, cpu


def slow_commands(redis, opened):
    """SLOWLOG grouped by command and, for scripts, SHA and first key: {what: [calls, µs per open]}."""
    import redis as redis_py  # the bench's venv has it
    client = redis_py.Redis(host="127.0.0.1", port=redis.port)
    groups = {}
    for entry in client.slowlog_get(200000):
        words = entry["command"].decode(errors="replace").split()
        what = words[0].lower()
        if what in ("evalsha", "eval") and len(words) > 3:
            what = "%s %s %s" % (what, words[1][:8], words[3] if words[2] != "0" else "")
        calls, usec = groups.get(what, (0, 0))
        groups[what] = (calls + 1, usec + entry["duration"])
    client.close()
    ranked = sorted(groups.items(), key=lambda kv: -kv[1][1])
    return {k: [c, round(u / max(1, opened), 1)] for k, (c, u) in ranked[:25]}


async def http(port, request, until=b"\r\n\r\n", timeout=30):
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    writer.write(request)
    data = b""
    deadline = time.monotonic() + timeout
    while until not in data:
        chunk = await asyncio.wait_for(reader.read(65536), max(0.1, deadline - time.monotonic()))
        if not chunk:
            break
        data += chunk
    return reader, writer, data


async def sign_in(port, name):
    """A session cookie signed in as ``name`` (GET /session, then POST it the CSRF token)."""
    req = b"GET /session HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    reader, writer, data = await http(port, req)
    data += await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    cookie = _cookie(head)
    token = json.loads(body.decode().split("\r\n")[1] if b"chunked" in head.lower() else body)["csrf_token"]
    form = ("name=%s" % name).encode()
    req = (b"POST /session HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nCookie: %s\r\n"
           b"X-CSRF-Token: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n"
           b"Content-Length: %d\r\n\r\n%s") % (cookie.encode(), token.encode(), len(form), form)
    reader, writer, data = await http(port, req)
    writer.close()
    status = data.split(b" ", 2)[1]
    if status not in (b"200", b"303"):
        raise RuntimeError("sign-in answered %r" % data[:300])
    return _cookie(data.partition(b"\r\n\r\n")[0]) or cookie


def _cookie(head):
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"set-cookie:"):
            return line.split(b":", 1)[1].split(b";")[0].strip().decode()
    return None


class Opener:
    def __init__(self, port, rooms, cookies):
        self.port, self.rooms, self.cookies = port, rooms, cookies
        self.held, self.failed, self.statuses = [], 0, {}
        self.last_event_id = None

    def request(self, i):
        room = self.rooms[i % len(self.rooms)]
        cookie = b"Cookie: %s\r\n" % self.cookies[(i // 8) % len(self.cookies)].encode() if self.cookies else b""
        resume = b"Last-Event-ID: %s\r\n" % self.last_event_id.encode() if self.last_event_id else b""
        return (b"GET /rooms/%s/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                b"Cache-Control: no-cache\r\n%s%s\r\n") % (room.encode(), cookie, resume)

    async def open_one(self, i):
        try:
            reader, writer, data = await http(self.port, self.request(i), until=b"retry:")
        except (OSError, asyncio.TimeoutError):
            self.failed += 1
            return
        status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "?"
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if b"retry:" not in data:
            self.failed += 1
        self.held.append(writer)

    async def open(self, start, count, inflight):
        queue = iter(range(start, start + count))

        async def worker():
            for i in queue:
                await self.open_one(i)
        await asyncio.gather(*(worker() for _ in range(inflight)))

    def close(self):
        for writer in self.held:
            writer.close()
        self.held = []


async def run(a):
    work = tempfile.mkdtemp(prefix="ripple-opens-")
    redis = servers.RedisServer(work).start()
    env = {"RIPPLE_MAX_STREAMS_PER_ADDRESS": "10000000", "RIPPLE_SESSION_RATE_IP": "10000000 per minute"}
    server = servers.Ripple(work, redis.system_url, workers=2, env=env, root=a.root).start()
    out = {"root": str(Path(a.root).resolve()), "opens": a.opens, "hold": a.hold,
           "signed_in": a.signed_in, "inflight": a.inflight}
    spy = None
    try:
        port, pids = server.port, server.worker_pids()
        rooms = ["opens-%d" % i for i in range(a.rooms)]
        cookies = []
        if a.signed_in:
            sessions = math.ceil((a.opens + a.hold) / 8)
            for start in range(0, sessions, 50):
                cookies += await asyncio.gather(*(sign_in(port, "op%05d" % i)
                                                  for i in range(start, min(sessions, start + 50))))
        opener = Opener(port, rooms, cookies)
        if a.reopen:
            opener.last_event_id = a.last_event_id
        await opener.open(0, 100, 20)  # warm both workers (imports, pools)
        opener.close()
        await asyncio.sleep(1)
        if a.hold:
            await opener.open(100, a.hold, a.inflight)
            await asyncio.sleep(1)
        c0 = worker_cpu(pids)
        await asyncio.sleep(a.idle)
        idle_rate = (worker_cpu(pids) - c0) / a.idle
        if a.profile:
            binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            spy = [subprocess.Popen([binary, "record", "--format", "raw", "-o", "%s.%d" % (a.profile, pid),
                                     "-r", "200", "--nonblocking", "-p", str(pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid in pids]
            await asyncio.sleep(1.5)
        first = 100 + a.hold
        if a.reopen:  # the held streams' clients come back (a reload): same sessions, same rooms
            opener.close()
            await asyncio.sleep(1)
            first = 100
        held_before = len(opener.held)
        if a.slowlog is not None:
            redis.command("CONFIG", "SET", "slowlog-log-slower-than", str(a.slowlog))
            redis.command("CONFIG", "SET", "slowlog-max-len", "200000")
            redis.command("SLOWLOG", "RESET")
        stats0, usec0, rcpu0 = commandstats(redis)
        cpu0, t0 = worker_cpu(pids), time.monotonic()
        await opener.open(first, a.opens, a.inflight)
        wall = time.monotonic() - t0
        await asyncio.sleep(a.settle)
        cpu1, t1 = worker_cpu(pids), time.monotonic()
        stats1, usec1, rcpu1 = commandstats(redis)
        opened = len(opener.held) - held_before
        cpu = cpu1 - cpu0 - idle_rate * (t1 - t0)
        delta = {k: v - stats0.get(k, 0) for k, v in stats1.items() if v - stats0.get(k, 0) > 0}
        # INFO itself is counted once per sample
        delta = {k: round(v / max(1, opened), 2) for k, v in sorted(delta.items(), key=lambda kv: -kv[1])}
        # the time Redis spent inside each command (not its I/O, nor pub/sub's sends outside them)
        spent = {k: v - usec0.get(k, 0) for k, v in usec1.items() if v - usec0.get(k, 0) > 0}
        spent = {k: round(v / max(1, opened), 1) for k, v in sorted(spent.items(), key=lambda kv: -kv[1])}
        out.update({"opened": opened, "failed": opener.failed, "statuses": opener.statuses,
                    "wall_s": round(wall, 3), "opens_per_s": round(opened / wall, 1),
                    "idle_cores": round(idle_rate, 3),
                    "worker_cpu_ms_per_open": round(1000 * cpu / max(1, opened), 3),
                    "redis_cpu_us_per_open": round(1e6 * (rcpu1 - rcpu0) / max(1, opened), 1),
                    "redis_commands_per_open": round(sum(delta.values()), 2),
                    "redis_by_command": delta,
                    "redis_us_per_open_by_command": spent,
                    "load_avg": os.getloadavg()[0]})
        if a.slowlog is not None:
            out["slowlog"] = slow_commands(redis, opened)
        if a.monitor:  # every command of ONE more open, as Redis saw them
            with open(a.monitor, "w") as f:
                mon = subprocess.Popen(["redis-cli", "-p", str(redis.port), "monitor"], stdout=f)
                await asyncio.sleep(1)
                await opener.open(100 + a.hold + a.opens, 1, 1)
                await asyncio.sleep(1.5)
                mon.terminate()
                mon.wait(10)
        opener.close()
    finally:
        for one in spy or []:
            one.send_signal(signal.SIGINT)
            try:
                one.wait(30)
            except subprocess.TimeoutExpired:
                one.kill()
        server.stop()
        redis.stop()
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default=str(servers.ROOT), help="the checkout whose Ripple to start")
    p.add_argument("--opens", type=int, default=2000)
    p.add_argument("--hold", type=int, default=0, help="streams opened and kept before measuring")
    p.add_argument("--rooms", type=int, default=10)
    p.add_argument("--inflight", type=int, default=64)
    p.add_argument("--signed-in", action="store_true")
    p.add_argument("--reopen", action="store_true",
                   help="measure the --hold streams' clients reconnecting (closed, then opened again: "
                        "same sessions and rooms, with --last-event-id) instead of new ones; --opens = --hold")
    p.add_argument("--last-event-id", default="1-0", help="the cursor a --reopen sends")
    p.add_argument("--idle", type=float, default=2.0)
    p.add_argument("--settle", type=float, default=1.5)
    p.add_argument("--monitor", help="write Redis MONITOR's lines for one more open to this file")
    p.add_argument("--profile", help="py-spy raw (collapsed) output file")
    p.add_argument("--slowlog", type=int, metavar="USEC",
                   help="log every Redis command slower than USEC µs during the opens and print them by script")
    a = p.parse_args()
    if a.reopen:
        a.opens = a.hold
    if a.opens + a.hold > 15000:
        p.error("at most 15,000 streams (the tool's own fds)")
    asyncio.run(asyncio.wait_for(run(a), 600))


if __name__ == "__main__":
    main()
