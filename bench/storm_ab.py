"""A/B of the HUP reload storm between Ripple trees, alternated in one sitting.

    python bench/storm_ab.py --size 5000 A=/tmp/treeA B=/tmp/treeB A=/tmp/treeA B=/tmp/treeB

Each run: a fresh Redis and Ripple (bench/servers.py, the grid's settings) from that tree,
``size`` streams in 10 rooms with a post per room every 500 ms, ``kill -HUP`` of the master
(or ``--signal kill-worker``: SIGKILL of one worker; bench/storm.py), then one line per run:
the label, the time (UTC), the share of clients back and caught up at p50/p99/p100 (s after
the signal), lost and duplicated messages, and the posts sent meanwhile: how many, failed,
over 1 s, the slowest. Trees come from ``git archive <commit> | tar -x -C /tmp/treeA``.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import servers  # noqa: E402


def storm(root, size, signal="hup"):
    work = tempfile.mkdtemp(prefix="storm-ab-")
    redis = servers.RedisServer(work, maxclients=19900).start()
    server = servers.Ripple(work, redis.system_url, root=root).start()
    try:
        args = server.loadtool_args() + [
            "--server-pid", server.pid, "--server-log", server.log_path, "-n", size, "--rooms", 10,
            "--signal", signal, "--procs", 1 if size <= 6000 else 2, "--connect-rate", 1000,
            "--settle", 10, "--max-seconds", 300, "--label", "Ripple storm", "--redis", redis.url,
            "--retry-key", "Idempotency-Key"]
        proc = subprocess.run([sys.executable, str(ROOT / "bench" / "storm.py")] + [str(a) for a in args],
                              capture_output=True, text=True, timeout=400)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else {"error": proc.stderr[-800:]}
    finally:
        server.stop()
        redis.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=5000, help="streams held before the signal")
    parser.add_argument("--signal", default="hup", choices=["hup", "kill-worker"],
                        help="kill -HUP the master (a reload), or SIGKILL one worker")
    parser.add_argument("runs", nargs="+", help="LABEL=TREE, in the order to run them")
    args = parser.parse_args()
    for run in args.runs:
        label, _, root = run.partition("=")
        result = storm(root, args.size, args.signal)
        back = result.get("back_s") or {}
        posts = result.get("posts") or {}
        print("%s %s back p50 %s p99 %s p100 %s s, lost %s, duplicated %s, posts %s failed %s "
              "over 1 s %s slowest %s s%s" % (
                  label, time.strftime("%H:%M:%S", time.gmtime()), back.get("p50"), back.get("p99"),
                  back.get("p100"), result.get("lost"), result.get("duplicates"), posts.get("total"),
                  posts.get("failed"), posts.get("stalled_over_1s"), posts.get("slowest_s"),
                  "" if "error" not in result else ", error: " + result["error"]), flush=True)


if __name__ == "__main__":
    main()
