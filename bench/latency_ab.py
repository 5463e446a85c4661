#!/usr/bin/env python3
"""Server CPU per delivery of several Ripple trees, alternated: is a difference code or noise?

For each ROOT in turn (give each twice or more, alternated: A B A B): a fresh Redis
(bench/servers.py) and a 2-worker Ripple from that tree, then ``bench/loadtool.py latency -s
1000 --rate 50 -m 400`` (1,000 subscribers, 50 messages a second, every message its own
wake-up). Prints one line per run: the tree, server CPU per delivery (µs), p50 and p99
delivery latency (ms), messages lost. Loopback only; every server stopped by its pid.

    python bench/latency_ab.py /tmp/before . /tmp/before .
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import servers  # noqa: E402 - bench/servers.py, beside this file


def run(root):
    work = tempfile.mkdtemp(prefix="latency-ab-")
    redis = servers.RedisServer(work, maxclients=19900).start()
    server = servers.Ripple(work, redis.system_url, root=root).start()
    try:
        argv = [sys.executable, str(HERE / "loadtool.py"), "latency",
                *[str(a) for a in server.loadtool_args()], "--server-pid", str(server.pid),
                "--redis", redis.url, "-s", "1000", "--rate", "50", "-m", "400", "--max-seconds", "120"]
        out = subprocess.run(argv, capture_output=True, text=True, cwd=work, timeout=300)
        found = json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])
        return {"root": root, "cpu_us_per_delivery": (found.get("server") or {}).get("cpu_us_per_delivery"),
                "p50_ms": found["latency_ms"]["p50"], "p99_ms": found["latency_ms"]["p99"],
                "lost": found.get("lost")}
    finally:
        server.stop()
        redis.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("roots", nargs="+", help="Ripple checkouts, in the order to run them")
    for root in p.parse_args().roots:
        print(json.dumps(run(root)), flush=True)


if __name__ == "__main__":
    main()
