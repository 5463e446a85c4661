"""Issue 17's measurement: message delivery to 1,000 subscribers while 20 people type.

Starts its own Redis and Ripple (2 workers) on loopback, then runs the load tool's latency mode
(1,000 subscribers in one room, 10 messages/s) several times, alternating:

- ``quiet``: nobody types;
- ``typing``: 20 signed-in people each send ``POST /rooms/<room>/typing`` every 0.5 s, as a page
  does while someone types (the server broadcasts at most one per person per 3 s: ~6.7 typing
  events/s reach every one of the 1,000 streams, ~6,700 extra deliveries/s);
- ``typing+sidebars``: the same, and the 20 typists also hold a stream in another room whose
  sidebar follows this one (every message then also goes out as ``event: activity``).

Prints one JSON line per run and a Markdown table (docs/performance.md quotes it). Usage:

    python bench/typists.py [--runs 2] [--messages 150] [--subscribers 1000]
"""
import argparse
import http.cookiejar
import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import servers  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TYPISTS = 20
SIGNAL_EVERY = 0.5  # seconds between one typist's signals (a page sends one per keystroke burst)


class Typist:
    """One signed-in person: a cookie jar, a CSRF token, and a loop of typing signals."""

    def __init__(self, base_url, room):
        self.base_url, self.room = base_url, room
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        try:
            token = json.loads(self.opener.open(base_url + "/session", timeout=10).read())["csrf_token"]
        except urllib.error.HTTPError as signed_out:  # 401 and a CSRF token: nobody signed in yet
            token = json.loads(signed_out.read())["csrf_token"]
        request = urllib.request.Request(base_url + "/session", method="POST",
                                         data=json.dumps({"name": "typist-" + uuid.uuid4().hex[:6]}).encode(),
                                         headers={"Content-Type": "application/json", "X-CSRF-Token": token})
        self.token = json.loads(self.opener.open(request, timeout=10).read())["csrf_token"]
        self.sent = self.failed = 0
        self.stream = None

    def visit(self, room):
        """Open a room's page: the room joins this person's sidebar."""
        self.opener.open(self.base_url + "/rooms/" + room, timeout=10).read()

    def follow(self, room):
        """Hold a stream in ``room`` (its sidebar follows the measured room's activity)."""
        request = urllib.request.Request(self.base_url + "/rooms/%s/events" % room)
        self.stream = self.opener.open(request, timeout=60)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        stream = self.stream
        try:
            while stream.read1(65536):
                pass
        except (OSError, ValueError, AttributeError):  # closed under it: the run is over
            pass

    def type_until(self, stop):
        request = urllib.request.Request(self.base_url + "/rooms/%s/typing" % self.room, method="POST",
                                         data=b"", headers={"X-CSRF-Token": self.token})
        while not stop.is_set():
            try:
                with self.opener.open(request, timeout=10) as response:
                    response.read()
                self.sent += 1
            except OSError:
                self.failed += 1
            stop.wait(SIGNAL_EVERY)

    def close(self):
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.close()


def latency(server, redis, room, subscribers, messages, rate, workdir):
    out = os.path.join(workdir, "lat-%s.f32" % uuid.uuid4().hex[:6])
    argv = [sys.executable, str(ROOT / "bench" / "loadtool.py"), "latency", *server.loadtool_args(),
            "--server-pid", str(server.pid), "--redis", redis.url, "--room", room,
            "-s", str(subscribers), "--rate", str(rate), "-m", str(messages),
            "--latency-out", out, "--drain-timeout", "10", "--max-seconds", "180"]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"ok": False, "error": proc.stderr[-2000:]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=150)
    parser.add_argument("--rate", type=int, default=10)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        redis = servers.RedisServer(workdir, maxclients=19900).start()
        server = None
        try:
            # 20 sign-ins from one address in a few seconds: the sign-in limit is for people.
            server = servers.Ripple(workdir, redis.system_url,
                                    env={"RIPPLE_SESSION_RATE_IP": "10000000 per minute"}).start()
            for run in range(args.runs):
                for mode in ("quiet", "typing", "typing+sidebars"):
                    room = "bench-typing-%s" % uuid.uuid4().hex[:8]
                    typists, stop, threads = [], threading.Event(), []
                    if mode != "quiet":
                        typists = [Typist(server.url, room) for _ in range(TYPISTS)]
                        if mode == "typing+sidebars":
                            elsewhere = "bench-side-%s" % uuid.uuid4().hex[:8]
                            for typist in typists:
                                typist.visit(room)
                                typist.follow(elsewhere)
                        threads = [threading.Thread(target=t.type_until, args=(stop,), daemon=True)
                                   for t in typists]
                        for thread in threads:
                            thread.start()
                    try:
                        res = latency(server, redis, room, args.subscribers, args.messages, args.rate, workdir)
                    finally:
                        stop.set()
                        for thread in threads:
                            thread.join(15)
                        for typist in typists:
                            typist.close()
                    res.update(mode=mode, run=run, typing_signals=sum(t.sent for t in typists),
                               typing_failed=sum(t.failed for t in typists))
                    print(json.dumps(res), flush=True)
                    rows.append(res)
        finally:
            if server is not None:
                server.stop()
            redis.stop()
    print()
    print("| run | mode | p50 ms | p99 ms | max ms | lost | server CPU per message delivery (µs) "
          "| typing signals sent | other load on the machine (cores) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lat = r.get("latency_ms", {})
        print("| %d | %s | %s | %s | %s | %s | %s | %d | %s |" % (
            r["run"] + 1, r["mode"], lat.get("p50"), lat.get("p99"), lat.get("max"), r.get("lost"),
            (r.get("server") or {}).get("cpu_us_per_delivery"), r["typing_signals"],
            r.get("machine_other_cores")))


if __name__ == "__main__":
    main()
