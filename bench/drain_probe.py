"""How fast a reload's drain ends a leaving worker's streams (issue 20, docs/performance.md).

    python bench/drain_probe.py --root /tmp/treeA -n 2000 [--profile FILE]

Starts a fresh Redis and a 2-worker Ripple from ``--root`` (bench/servers.py, the grid's
settings), opens ``n`` raw SSE streams in 10 rooms (clients that never reconnect, so only the
leaving workers work), posts one message per room every 500 ms, then sends the master
``kill -HUP`` and prints one line: how many streams ended, when (seconds after the signal:
p10/p50/p90/p100 of each stream's close), and the leaving workers' CPU from the signal to
their exit against the same window before it; then the workers' own drain lines from the log.
``--profile FILE``: py-spy (raw, collapsed stacks) of one leaving worker, from the signal on.
Only 127.0.0.1; every loop is bounded; the server and Redis are stopped at the end.
"""
import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import servers  # noqa: E402

ROOMS = 10


async def stream(port, room, ended):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /rooms/%s/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n" % room.encode())
    await writer.drain()
    while await reader.read(65536):
        pass
    ended.append(time.monotonic())
    writer.close()


async def publisher(port, stop):
    """One post per room every 500 ms on a keep-alive connection (a new one when told to close)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = 0
    while not stop.is_set():
        for room in range(ROOMS):
            body = b"text=m%d" % sent
            sent += 1
            writer.write(b"POST /rooms/r%d/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                         b"Content-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (room, servers.PUBLISH_TOKEN.encode(), len(body), body))
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            if b"connection: close" in head.lower():
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.5)


def cpu(workers):
    total = 0.0
    for worker in workers:
        try:
            times = worker.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def quantiles(values):
    values = sorted(values)
    return "/".join("%.2f" % values[min(len(values) - 1, int(q * len(values)))] for q in (0.1, 0.5, 0.9, 1.0)) \
        if values else "-"


async def probe(args):
    work = tempfile.mkdtemp(prefix="drain-probe-")
    redis = servers.RedisServer(work).start()
    server = servers.Ripple(work, redis.system_url, root=args.root).start()
    tasks, ended, stop = [], [], asyncio.Event()
    try:
        for i in range(args.n):
            tasks.append(asyncio.create_task(stream(server.port, "r%d" % (i % ROOMS), ended)))
            if i % 200 == 199:
                await asyncio.sleep(0.2)  # a ramp the server takes without refusals
        posting = asyncio.create_task(publisher(server.port, stop))
        await asyncio.sleep(3)
        workers = [psutil.Process(pid) for pid in server.worker_pids()]
        before = cpu(workers)
        await asyncio.sleep(2)
        quiet = cpu(workers) - before
        spy = None
        if args.profile:
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(workers[0].pid),
                                    "-r", "500", "--format", "raw", "-o", args.profile, "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(1)  # py-spy attached
        last = {w.pid: 0.0 for w in workers}
        start = {w.pid: sum(w.cpu_times()[:2]) for w in workers}
        signalled = time.monotonic()
        os.kill(server.pid, signal.SIGHUP)
        while time.monotonic() - signalled < 30 and any(w.is_running() for w in workers):
            for w in workers:
                try:
                    last[w.pid] = sum(w.cpu_times()[:2]) - start[w.pid]
                except psutil.NoSuchProcess:
                    pass
            await asyncio.sleep(0.05)
        await asyncio.wait(tasks, timeout=max(1.0, 30 - (time.monotonic() - signalled)))
        stop.set()
        posting.cancel()
        if spy is not None:
            spy.wait(timeout=30)
        print("ended %d of %d streams; closes after the signal p10/p50/p90/p100 %s s; leaving workers' CPU "
              "from the signal to their exit %s s (2 s before it: %.2f s in all)" % (
                  len(ended), args.n, quantiles([t - signalled for t in ended]),
                  " / ".join("%.2f" % v for v in last.values()), quiet), flush=True)
        with open(server.log_path, errors="replace") as log:
            for line in log:
                if "drain: told" in line or "leaving," in line or "graceful timeout" in line:
                    print("  " + line.rstrip()[:200])
    finally:
        for task in tasks:
            task.cancel()
        server.stop()
        redis.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(ROOT), help="the Ripple tree to run")
    parser.add_argument("-n", type=int, default=2000, help="streams held before the signal")
    parser.add_argument("--profile", metavar="FILE", help="py-spy raw output of one leaving worker")
    asyncio.run(probe(parser.parse_args()))


if __name__ == "__main__":
    main()
