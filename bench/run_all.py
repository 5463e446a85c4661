#!/usr/bin/env python3
"""Run the benchmark grid for issue 5 and write docs/benchmarks.md plus plots in docs/img/.

Systems, each started here on 127.0.0.1 and stopped by pid:
  ripple     this tree: python -m gunicorn -c gunicorn.conf.py (gevent, 2 workers) + Redis
  flask-sse  bench/peers/flask_sse_app.py under the same gunicorn.conf.py + the same Redis
  nchan      Debian nginx + libnginx-mod-nchan, EventSource mode, 2 workers (memory store)
  redis      redis-benchmark PUBLISH, and the load tool's raw SUBSCRIBE/PUBLISH mode: the
             physical reference of Redis on this machine

Grid: capacity 1k/2k/5k/10k (+18k for Ripple), latency 100/1000 subscribers x 10/50 msg/s,
throughput 100/1000 subscribers, the publish path with no subscribers (the load tool and wrk),
redis-benchmark.  Every figure comes from one load tool run whose command line is listed.

    python bench/run_all.py            # the full grid, ~10 minutes on 2 cores
    python bench/run_all.py --quick    # a short version of every scenario, ~3 minutes
"""
import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers  # noqa: E402  (bench/servers.py)

ROOT = Path(__file__).resolve().parent.parent
LOADTOOL = ROOT / "bench" / "loadtool.py"
STORM = ROOT / "bench" / "storm.py"
SIGNINS = ROOT / "bench" / "signins.py"
# Opening-rate cap of a capacity ramp (per second). The ramp is closed-loop (at most --inflight
# attempts wait for their response), so the cap only keeps a fast server from being flooded;
# 2,000 capped nchan and flask-sse before (both reached it), hence well above issue 20's 3,000.
OPEN_RATE_CAP = 8000
PY = sys.executable
SYSTEM_ORDER = ["Ripple", "flask-sse", "nchan", "Redis"]


def log(*parts):
    print("[run_all %s]" % time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


def machine_busy(seconds=1.0):
    import psutil
    a = psutil.cpu_times()
    time.sleep(seconds)
    b = psutil.cpu_times()
    idle = (b.idle - a.idle) + (getattr(b, "iowait", 0) - getattr(a, "iowait", 0))
    return round((sum(b) - sum(a) - idle) / seconds, 2)


def git_state(root=ROOT):
    def run(*args):
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                                  timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    head = run("rev-parse", "HEAD")
    dirty = run("status", "--porcelain", "--untracked-files=no", "--", "app", "gunicorn.conf.py",
                "requirements.txt")
    return {"commit": head or "?", "dirty_paths": dirty.splitlines()}


def machine_description():
    import psutil
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import resource
    return {"cpu": cpu or platform.processor(), "cores": psutil.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}


class Grid:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.workdir = tempfile.mkdtemp(prefix="ripple-bench-")
        self.results = []      # every load tool JSON line, with system/scenario keys
        self.extra = []        # redis-benchmark and wrk results
        self.commands = []     # (id, command line)
        self.img = Path(args.img)
        self.lat_dir = Path(self.workdir) / "latencies"
        self.lat_dir.mkdir()
        self.notes = []
        self.started = time.monotonic()
        self.quiet_budget = args.quiet_budget
        self.git_start = git_state(args.ripple_root)  # the lead may edit the tree meanwhile

    # ---- helpers ----------------------------------------------------------------------------

    def quiet_gate(self):
        """Wait (bounded) until the rest of the machine is nearly idle; record what it was."""
        limit = min(self.args.quiet_wait, self.quiet_budget)
        t0 = time.monotonic()
        busy = machine_busy(0.5)
        while busy > self.args.quiet_cores and time.monotonic() - t0 < limit:
            time.sleep(1.0)
            busy = machine_busy(0.5)
        self.quiet_budget -= time.monotonic() - t0
        return busy

    def command_id(self, argv):
        line = " ".join(shlex.quote(a) for a in argv)
        for cid, known in self.commands:
            if known == line:
                return cid
        cid = "c%d" % (len(self.commands) + 1)
        self.commands.append((cid, line))
        return cid

    def loadtool(self, system, scenario, args, timeout=300, script=LOADTOOL, cwd=None):
        busy_before = self.quiet_gate()
        argv = ["python", "bench/" + script.name] + [str(a) for a in args]
        log(system, scenario, "...")
        t0 = time.monotonic()
        try:
            proc = subprocess.run([PY, str(script)] + [str(a) for a in args], cwd=cwd or ROOT,
                                  capture_output=True, text=True, timeout=timeout)
            lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
            res = json.loads(lines[-1]) if lines else {"ok": False, "error": proc.stderr[-2000:]}
        except subprocess.TimeoutExpired:
            res = {"ok": False, "error": "timed out after %d s" % timeout}
        res.update({"system": system, "scenario": scenario, "cmd": self.command_id(argv),
                    "busy_before": busy_before, "run_s": round(time.monotonic() - t0, 1)})
        if res.get("latency_file") and os.path.exists(res["latency_file"]):
            res["cdf_ms"] = cdf_points(res["latency_file"])  # kept in the results JSON
        self.results.append(res)
        log(system, scenario, "done in %.1fs" % res["run_s"], _summary(res))
        return res

    def server_args(self, server, redis=None):
        args = server.loadtool_args() + ["--server-pid", server.pid]
        if redis is not None:
            args += ["--redis", redis.url]
        return args

    def start_redis(self):
        return servers.RedisServer(self.workdir, maxclients=19900).start()

    def make(self, name, redis):
        if name == "Ripple":
            return servers.Ripple(self.workdir, redis.system_url, root=self.args.ripple_root).start()
        if name == "flask-sse":
            return servers.FlaskSSE(self.workdir, redis.system_url, root=self.args.ripple_root).start()
        if name == "nchan":
            s = servers.Nchan(self.workdir).start()
            if not s.module_loaded():
                raise RuntimeError("nginx runs but the nchan module is not mapped")
            return s
        raise ValueError(name)

    # ---- scenarios --------------------------------------------------------------------------

    def capacity(self, name, sizes):
        """One staircase run per system: each size held in turn on one fresh server + Redis."""
        redis = self.start_redis() if name != "nchan" else None
        server = None
        top = max(sizes)
        try:
            server = self.make(name, redis)
            args = (["capacity"] + self.server_args(server, redis)
                    + ["--steps", ",".join(str(n) for n in sizes), "--rooms", max(1, top // 200),
                       "--procs", 1 if top <= 5000 else 2,
                       "--hold", 2, "--connect-rate", OPEN_RATE_CAP, "--retries", 2,
                       "--open-deadline", 240, "--after-close-watch", 60,
                       "--max-seconds", 560, "--label", "%s capacity" % name])
            self._staircase(name, "capacity", args)
        except Exception as exc:  # noqa: BLE001 - recorded, the grid goes on
            self.notes.append("%s capacity: %s" % (name, exc))
            log("ERROR", name, "capacity", exc)
        finally:
            if server:
                server.stop()
            if redis:
                redis.stop()

    def signed_in_opening(self, name, held=10000, more=3000):
        """Issue 20: how fast streams open while ``held`` are already open, as signed-in browsers
        open them (session cookies from bench/signins.py: presence, the session's stream cap,
        the sidebar; rate limits on, raised for one address). A staircase ``held`` then
        ``held + more``: the second step's opening rate is the figure."""
        redis = self.start_redis()
        server = None
        try:
            server = self.make(name, redis)
            cookies = Path(self.workdir) / ("cookies-%s.txt" % name)
            people = (held + more) // 4 + 1  # four tabs each: under the session's stream cap
            argv = ["python", "bench/signins.py", "--url", server.url, "-n", people, "-o", cookies.name]
            proc = subprocess.run([PY, str(SIGNINS)] + [str(a) for a in argv[2:-1]] + [str(cookies)],
                                  cwd=ROOT, capture_output=True, text=True, timeout=400)
            self.command_id([str(a) for a in argv])
            log(name, "signed in", proc.stdout.strip()[-300:])
            if proc.returncode != 0:
                raise RuntimeError("signins.py: %s" % (proc.stdout + proc.stderr)[-500:])
            args = (["capacity"] + self.server_args(server, redis)
                    + ["--steps", "%d,%d" % (held, held + more), "--rooms", 50, "--procs", 2,
                       "--hold", 2, "--connect-rate", OPEN_RATE_CAP, "--retries", 2,
                       "--open-deadline", 240, "--cookie-file", cookies.name,
                       "--max-seconds", 500, "--label", "%s signed-in opening" % name])
            self._staircase(name, "signed-in", args, cwd=self.workdir)
        except Exception as exc:  # noqa: BLE001 - recorded, the grid goes on
            self.notes.append("%s signed-in opening: %s" % (name, exc))
            log("ERROR", name, "signed-in opening", exc)
        finally:
            if server:
                server.stop()
            redis.stop()

    def _staircase(self, name, prefix, args, cwd=None):
        """Run one capacity staircase and file each level as its own result ("PREFIX N")."""
        res = self.loadtool(name, "%s staircase" % prefix, args, timeout=620, cwd=cwd)
        self.results.remove(res)
        common = {k: res.get(k) for k in ("tool", "mode", "run", "room", "started", "argv", "cmd",
                                           "busy_before", "run_s", "procs", "client_limited",
                                           "system", "levels")}
        if not res.get("steps"):
            self.results.append(dict(res, scenario="%s %d" % (prefix, max(res.get("levels") or [0]))))
            return
        for step in res["steps"]:
            row = dict(common, **step)
            row["scenario"] = "%s %d" % (prefix, step["connections"])
            if step is res["steps"][-1]:
                for key in ("after_close_rss_mb", "rss_back_within_20pct_s"):
                    row[key] = res.get(key)
            row["client_limited"] = any((step.get(k) or {}).get("limited")
                                        for k in ("ramp_client_cpu", "hold_client_cpu"))
            self.results.append(row)

    def session(self, name):
        """Publish path, latency and throughput on one fresh server (and Redis)."""
        redis = self.start_redis() if name != "nchan" else None
        server = None
        try:
            server = self.make(name, redis)
            base = self.server_args(server, redis)
            secs = 2 if self.quick else 4
            self.loadtool(name, "publish", ["publish"] + base + ["-p", 16, "-d", secs,
                                                                  "--max-seconds", 60])
            self.wrk(name, server, secs)
            lat_secs = 2 if self.quick else 4
            for subs in (100, 1000):
                for rate in (10, 50):
                    out = self.lat_dir / ("%s-%d-%d.f32" % (name, subs, rate))
                    self.loadtool(name, "latency %dx%d" % (subs, rate),
                                  ["latency"] + base + ["-s", subs, "--rate", rate,
                                                        "-m", int(rate * lat_secs),
                                                        "--latency-out", out, "--drain-timeout", 10,
                                                        "--max-seconds", 120])
            for subs in (100, 1000):
                self.loadtool(name, "throughput %d" % subs,
                              ["throughput"] + base + throughput_args(subs, self.quick))
        except Exception as exc:  # noqa: BLE001
            self.notes.append("%s session: %s" % (name, exc))
            log("ERROR", name, exc)
        finally:
            if server:
                server.stop()
            if redis:
                redis.stop()

    def tcp_latency(self, name):
        """Issue 20 asks for the latency figures with Redis over loopback TCP too: the same
        1,000-subscriber runs on a fresh server that reaches its Redis by TCP, not the socket."""
        redis = self.start_redis()
        server = None
        try:
            server = servers.Ripple(self.workdir, redis.url, root=self.args.ripple_root).start()
            base = self.server_args(server, redis)
            secs = 2 if self.quick else 4
            for rate in (10, 50):
                out = self.lat_dir / ("%s-tcp-1000-%d.f32" % (name, rate))
                self.loadtool(name, "latency 1000x%d, Redis over TCP" % rate,
                              ["latency"] + base + ["-s", 1000, "--rate", rate, "-m", int(rate * secs),
                                                    "--latency-out", out, "--drain-timeout", 10,
                                                    "--max-seconds", 120])
        except Exception as exc:  # noqa: BLE001 - recorded, the grid goes on
            self.notes.append("%s TCP latency: %s" % (name, exc))
            log("ERROR", name, "TCP latency", exc)
        finally:
            if server:
                server.stop()
            redis.stop()

    def storm(self, name, size):
        """The reconnect storm (bench/storm.py): a reload (HUP to the master), then, on a fresh
        server, one worker SIGKILLed; ``size`` streams in 10 rooms, a post per room every 500 ms."""
        for how in ("hup", "kill-worker"):
            redis = self.start_redis() if name != "nchan" else None
            server = None
            try:
                server = self.make(name, redis)
                log_path = getattr(server, "log_path", None) or os.path.join(getattr(server, "dir", ""),
                                                                             "error.log")
                args = (server.loadtool_args() + ["--server-pid", server.pid, "--server-log", log_path,
                                                   "-n", size, "--rooms", 10, "--signal", how,
                                                   "--procs", 1 if size <= 6000 else 2,
                                                   "--connect-rate", 1000, "--settle", 10 if self.quick else 30,
                                                   "--max-seconds", 400, "--label", "%s storm" % name])
                if redis is not None:
                    args += ["--redis", redis.url]
                if getattr(server, "idempotency_header", None):
                    args += ["--retry-key", server.idempotency_header]
                self.loadtool(name, "storm %s %d" % ("reload" if how == "hup" else "kill", size), args,
                              timeout=460, script=STORM)
            except Exception as exc:  # noqa: BLE001 - recorded, the grid goes on
                self.notes.append("%s storm %s: %s" % (name, how, exc))
                log("ERROR", name, "storm", how, exc)
            finally:
                if server:
                    server.stop()
                if redis:
                    redis.stop()

    def wrk(self, name, server, secs):
        if not shutil.which("wrk"):
            self.notes.append("wrk not installed: publish path measured by the load tool only")
            return
        lua = Path(self.workdir) / ("post-%s.lua" % name)
        headers = {"Content-Type": "application/json"}
        if name == "Ripple":
            headers["Authorization"] = "Bearer " + servers.PUBLISH_TOKEN
        lua.write_text('wrk.method = "POST"\nwrk.body = \'{"text": "wrk bench message", "user": "wrk"}\'\n'
                       + "".join('wrk.headers["%s"] = "%s"\n' % kv for kv in headers.items()))
        if name == "nchan":
            url = server.url + "/pub?id=bench-wrk"
        else:
            url = server.url + "/rooms/bench-wrk/messages"
        argv = ["wrk", "-t", "1", "-c", "16", "-d", "%ds" % secs, "--latency", "-s", lua.name, url]
        self.quiet_gate()
        proc = subprocess.run(argv, cwd=self.workdir, capture_output=True, text=True, timeout=secs + 30)
        out = proc.stdout
        rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        p50 = re.search(r"\s50%\s+([\d.]+)(us|ms|s)", out)
        p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out)
        cid = self.command_id(argv[:-2] + ["post.lua", url])
        self.extra.append({"system": name, "scenario": "publish (wrk)", "cmd": cid,
                           "posts_per_s": float(rps.group(1)) if rps else None,
                           "non_2xx": int(non2xx.group(1)) if non2xx else 0,
                           "p50_ms": _ms(p50), "p99_ms": _ms(p99), "raw": out[-1500:],
                           "lua": lua.read_text()})
        log(name, "wrk", rps.group(1) if rps else "?", "req/s; non-2xx", non2xx.group(1) if non2xx else 0)

    def redis_reference(self):
        redis = servers.RedisServer(self.workdir, maxclients=19900).start()
        try:
            payload = "x" * 120  # about a Ripple message's size; no quotes or commas (CSV output)
            n = 50000 if self.quick else 200000
            argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(redis.port), "-c", "50",
                    "-n", str(n), "--csv", "PUBLISH", "bench-ch", payload]
            self.quiet_gate()
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            rps = None
            p50 = p99 = None
            for line in proc.stdout.splitlines():
                if line.startswith('"PUBLISH'):
                    cells = [c.strip('"') for c in line.rsplit(",", 7)[1:]]
                    rps, p50, p99 = float(cells[0]), float(cells[3]), float(cells[5])
            cid = self.command_id(argv)
            self.extra.append({"system": "Redis", "scenario": "redis-benchmark PUBLISH, 0 subscribers",
                               "cmd": cid, "publish_per_s": rps, "p50_ms": p50, "p99_ms": p99,
                               "raw": proc.stdout[-800:],
                               "version": redis.version(), "binary": redis.binary})
            log("redis-benchmark", rps)
            url = redis.url.rsplit("/", 1)[0] + "/{room}"
            base = ["--sub-url", url, "--pub-url", url, "--server-pid", redis.pid]
            secs = 2 if self.quick else 4
            for subs in (100, 1000):
                for rate in (10, 50):
                    out = self.lat_dir / ("Redis-%d-%d.f32" % (subs, rate))
                    self.loadtool("Redis", "latency %dx%d" % (subs, rate),
                                  ["latency"] + base + ["-s", subs, "--rate", rate, "-m", int(rate * secs),
                                                        "--latency-out", out, "--max-seconds", 120])
            for subs in (100, 1000):
                self.loadtool("Redis", "throughput %d" % subs,
                              ["throughput"] + base + throughput_args(subs, self.quick))
        finally:
            redis.stop()

    def profile(self):
        """py-spy both Ripple workers during the measured part of a 1,000-subscriber throughput run."""
        spy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
        if not os.path.exists(spy):
            self.notes.append("py-spy not installed: no profile")
            return None
        redis = self.start_redis()
        server = None
        spies = []
        try:
            server = self.make("Ripple", redis)
            phase_file = Path(self.workdir) / "phase"
            duration = 5
            args = (["throughput"] + self.server_args(server, redis)
                    + ["-s", 1000, "-d", duration + 1, "-p", 4, "--drain-timeout", 5,
                       "--max-seconds", 120, "--phase-file", phase_file])
            import threading

            def start_spies():
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not phase_file.exists():
                    time.sleep(0.05)
                for pid in server.worker_pids():
                    out = Path(self.workdir) / ("spy-%d.txt" % pid)
                    spies.append((out, subprocess.Popen(
                        [spy, "record", "--pid", str(pid), "--nonblocking", "--rate", "100",
                         "--duration", str(duration), "--format", "raw", "-o", str(out)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))

            watcher = threading.Thread(target=start_spies, daemon=True)
            watcher.start()
            self.loadtool("Ripple", "throughput 1000 (profiled)", args, timeout=150)
            watcher.join(5)
            for _, proc in spies:
                try:
                    proc.wait(duration + 20)
                except subprocess.TimeoutExpired:
                    proc.terminate()
                    proc.wait(5)
            files = [out for out, _ in spies if out.exists()]
            self.commands.append(("py-spy", "py-spy record --pid <each Ripple worker> --nonblocking "
                                  "--rate 100 --duration %d --format raw  (started when the load "
                                  "tool's --phase-file says measure)" % duration))
            return summarize_profile(files) if files else None
        finally:
            for _, proc in spies:
                if proc.poll() is None:
                    proc.terminate()
            if server:
                server.stop()
            redis.stop()

    # ---- the whole grid ---------------------------------------------------------------------

    def run(self):
        systems = self.args.systems
        if "nchan" in systems and not servers.Nchan.available():
            self.notes.append("nchan skipped: nginx or libnginx-mod-nchan is not installed")
            systems = [s for s in systems if s != "nchan"]
        caps = [1000, 2000] if self.quick else [1000, 2000, 5000, 10000]
        if self.args.only == "signed-in":
            if "Ripple" in systems:
                self.signed_in_opening("Ripple", *((2000, 1000) if self.quick else (10000, 3000)))
            return None
        if self.args.only == "storm":
            for name in systems:
                if name != "Redis":
                    self.storm(name, 2000 if self.quick else self.args.storm_size)
            return None
        for name in systems:
            if name == "Redis":
                self.redis_reference()
                continue
            self.session(name)
            if name == "Ripple":
                self.tcp_latency(name)
                self.signed_in_opening(name, *((2000, 1000) if self.quick else (10000, 3000)))
            if not self.args.no_storm:
                self.storm(name, 2000 if self.quick else self.args.storm_size)
            sizes = list(caps)
            if name == "Ripple" and not self.quick and not self.args.no_18k:
                sizes.append(18000)
            self.capacity(name, sizes)
        prof = self.profile() if self.args.profile else None
        return prof


def cdf_points(path):
    """Latency quantiles (ms) for the CDF plot: every 1 % to 99 %, then finer, then the max."""
    import array
    a = array.array("f")
    a.frombytes(Path(path).read_bytes())
    v = sorted(a)
    if not v:
        return []
    qs = [i / 100 for i in range(100)] + [0.99 + i / 1000 for i in range(1, 10)] + [0.9995, 1.0]
    return [[q, round(v[min(len(v) - 1, int(q * len(v)))], 3)] for q in qs]


def throughput_args(subs, quick):
    # Bounded in time and in count: at most ~600k deliveries to parse afterwards.
    return ["-s", subs, "-d", 2 if quick else 4, "-p", 4, "--drain-timeout", 10,
            "--max-messages", max(50, 600000 // (subs * 4)), "--max-seconds", 150]


def _ms(match):
    if not match:
        return None
    value, unit = float(match.group(1)), match.group(2)
    return round(value / 1000 if unit == "us" else value * 1000 if unit == "s" else value, 3)


def _summary(res):
    mode = res.get("mode")
    if not res.get("mode"):
        return "FAILED: %s" % str(res.get("error", ""))[:300]
    if mode == "capacity":
        return "; ".join("up %s/%s rss/stream %s KB" % (s.get("stayed_up"), s.get("connections"),
                                                        (s.get("server") or {}).get("rss_per_stream_kb"))
                         for s in res.get("steps") or [res])
    if mode == "latency":
        return "p50 %s p99 %s lost %s dup %s ooo %s" % (
            res["latency_ms"].get("p50"), res["latency_ms"].get("p99"), res.get("lost"),
            res.get("duplicates"), res.get("out_of_order"))
    if mode == "throughput":
        return "deliveries/s %s publishes/s %s lost %s" % (res.get("deliveries_per_s"),
                                                           res.get("publishes_per_s"), res.get("lost"))
    if mode == "publish":
        return "posts/s %s" % res.get("posts_per_s")
    if mode == "storm":
        return "back p50/p99/p100 %s s, storm p99 %s ms, lost %s dup %s, posts failed %s slow %s, errors %s" % (
            "/".join(str(res.get("back_s", {}).get(k)) for k in ("p50", "p99", "p100")),
            res.get("storm_latency_ms", {}).get("p99"), res.get("lost"), res.get("duplicates"),
            res.get("posts", {}).get("failed"), res.get("posts", {}).get("stalled_over_1s"),
            (res.get("log") or {}).get("lines"))
    return ""


def summarize_profile(paths, top=15):
    """Self and inclusive time per function from py-spy's collapsed stacks."""
    own, incl, total = {}, {}, 0
    for path in paths:
        for line in Path(path).read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            try:
                count = int(count)
            except ValueError:
                continue
            total += count
            frames = [f for f in stack.split(";") if f]
            if not frames:
                continue
            own[frames[-1]] = own.get(frames[-1], 0) + count
            for f in set(frames):
                incl[f] = incl.get(f, 0) + count
    if not total:
        return None
    def ranked(d):
        return [(round(100.0 * c / total, 1), f) for f, c in sorted(d.items(), key=lambda kv: -kv[1])[:top]]
    return {"samples": total, "self": ranked(own), "inclusive": ranked(incl)}


# ------------------------------------------------------------------------------------------------
# Report


def _get(res, path):
    cur = res
    for key in path.split("."):
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


FIGURES = {
    # mode: [(figure label, json path, unit, higher is better?)]
    "capacity": [("streams held", "stayed_up", "", True),
                 ("server RSS per stream", "server.rss_per_stream_kb", "KB", False),
                 ("server PSS per stream", "server.pss_per_stream_kb", "KB", False),
                 ("Redis used_memory per stream", "redis.used_memory_per_stream_kb", "KB", False),
                 ("server fds per stream", "server.fds_per_stream", "", False),
                 ("streams opened per second", "connect_rate_achieved", "/s", True)],
    "latency": [("p50", "latency_ms.p50", "ms", False), ("p99", "latency_ms.p99", "ms", False),
                ("max", "latency_ms.max", "ms", False),
                ("received / expected", None, "", True),
                ("lost / dup / out-of-order", None, "", False),
                ("server CPU per delivery", "server.cpu_us_per_delivery", "µs", False)],
    "throughput": [("deliveries/s", "deliveries_per_s", "/s", True),
                   ("publishes/s", "publishes_per_s", "/s", True),
                   ("lost", "lost", "", False),
                   ("delivery p99", "latency_ms.p99", "ms", False),
                   ("server CPU per delivery", "server.cpu_us_per_delivery", "µs", False)],
    "storm": [("back: 50 % of clients", "back_s.p50", "s", False),
              ("back: 99 %", "back_s.p99", "s", False),
              ("back: 100 %", "back_s.p100", "s", False),
              ("delivery p99 during the storm", "storm_latency_ms.p99", "ms", False),
              ("lost / dup (all clients)", None, "", False),
              ("clients with a loss", "clients_with_loss", "", False),
              ("posts failed / over 1 s", None, "", False),
              ("ERROR lines in the log", "log.lines", "", False),
              ("Redis used_memory before / after", None, "", False),
              ("worker RSS before / after", None, "", False)],
    "publish": [("POSTs/s", "posts_per_s", "/s", True), ("POST p50", "post_latency_ms.p50", "ms", False),
                ("POST p99", "post_latency_ms.p99", "ms", False),
                ("server CPU per POST", "server.cpu_us_per_post", "µs", False)],
}


def _fmt(value):
    if value is None:
        return "–"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return "{:,.0f}".format(value)
        if abs(value) >= 100:
            return "%.0f" % value
        return "%.3g" % value if abs(value) < 10 else "%.1f" % value
    if isinstance(value, int):
        return "{:,}".format(value)
    return str(value)


def rows_for(res):
    mode = res.get("mode")
    out = []
    for label, path, unit, _ in FIGURES.get(mode, []):
        if mode == "storm" and path is None:
            value = None
            text = _storm_pair(res, label)
        elif label == "received / expected":
            value = None
            text = "%s / %s" % (_fmt(res.get("unique_received")), _fmt(res.get("expected")))
        elif label == "lost / dup / out-of-order":
            value = None
            text = "%s / %s / %s" % (_fmt(res.get("lost")), _fmt(res.get("duplicates")),
                                     _fmt((res.get("out_of_order") or 0) + (res.get("id_out_of_order") or 0)))
        else:
            value = _get(res, path)
            text = _fmt(value) + ((" " + unit) if unit and value is not None and unit not in ("/s",) else "")
            if unit == "/s" and value is not None:
                text = _fmt(value) + "/s"
        if label == "streams held":
            text = "%s / %s" % (_fmt(value), _fmt(res.get("connections")))
            if res.get("reconnects"):
                text += " (%s reconnected)" % _fmt(res["reconnects"])
        out.append((label, value, text))
    return out


def _storm_pair(res, label):
    def mb(side, *path):
        v = res.get(side) or {}
        for key in path:
            v = (v or {}).get(key)
        return v
    if label.startswith("lost"):
        return "%s / %s" % (_fmt(res.get("lost")), _fmt(res.get("duplicates")))
    if label.startswith("posts"):
        p = res.get("posts") or {}
        text = "%s / %s of %s (slowest %s s)" % (_fmt(p.get("failed")), _fmt(p.get("stalled_over_1s")),
                                                _fmt(p.get("total")), _fmt(p.get("slowest_s")))
        if p.get("resent"):  # sent again with its idempotency key after no answer
            text += "; %s resent" % _fmt(p["resent"])
        return text
    if label.startswith("Redis"):
        b, a = mb("before", "redis", "used_memory"), mb("after", "redis", "used_memory")
        return "–" if b is None else "%.1f / %.1f MB" % (b / 2**20, a / 2**20)
    b, a = mb("before", "server", "workers_rss_mb"), mb("after", "server", "workers_rss_mb")
    if not b:
        return "–"
    return "%.0f / %.0f MB" % (sum(b.values()), sum((a or {}).values()))


def flags(res):
    f = []
    if res.get("client_limited"):
        f.append("client-limited")
    other = res.get("machine_other_cores")
    if other is None:
        other = res.get("machine_other_cores_hold")
    if other is not None and other > 0.3:
        f.append("noisy: other load %.1f cores" % other)
    if res.get("error"):
        f.append("failed")
    return ", ".join(f)


def client_cpu(res):
    c = res.get("client_cpu") or res.get("ramp_client_cpu")
    if not c:
        return "–"
    return "%.0f%% (max proc %.0f%%)" % (100 * c["core_fraction_total"], 100 * c["core_fraction_max_proc"])


def targets(results):
    """Issue 5's targets for Ripple: (target, measured, met?, margin)."""
    def find(system, scenario):
        for r in results:
            if r.get("system") == system and r.get("scenario") == scenario and r.get("mode"):
                return r
        return None

    out = []
    cap = find("Ripple", "capacity 18000")
    if cap:
        up = cap.get("stayed_up") or 0
        unopened = (cap.get("connect_errors") or {}).get("open_deadline", 0)
        out.append(("18,000 concurrent streams held across 2 workers", "%s held%s" % (
            _fmt(up), " (%s never attempted: the tool's ramp deadline)" % _fmt(unopened) if unopened else ""),
                    up >= 18000, "%s short" % _fmt(18000 - up) if up < 18000 else "met"))
    biggest = cap or find("Ripple", "capacity 10000") or find("Ripple", "capacity 5000")
    if biggest:
        kb = _get(biggest, "server.rss_per_stream_kb")
        if kb is not None:
            out.append(("server RSS ≤ 25 KB per stream over baseline (%s streams)" % _fmt(biggest.get("connections")),
                        "%.1f KB" % kb, kb <= 25, "%.1fx the target" % (kb / 25.0) if kb > 25 else "met"))
    lat = find("Ripple", "latency 1000x10")
    if lat:
        p99 = _get(lat, "latency_ms.p99")
        if p99 is not None:
            out.append(("1,000 subscribers x 10 msg/s: p99 ≤ 50 ms", "p99 %.1f ms" % p99, p99 <= 50,
                        "%.1fx the target" % (p99 / 50) if p99 > 50 else "met"))
    lat = find("Ripple", "latency 1000x50")
    if lat:
        p99 = _get(lat, "latency_ms.p99")
        lost = lat.get("lost")
        ok = p99 is not None and p99 <= 100 and lost == 0 and lat.get("expected")
        out.append(("1,000 subscribers x 50 msg/s: 0 lost and p99 ≤ 100 ms",
                    "lost %s, p99 %s ms (achieved %s msg/s)" % (_fmt(lost), _fmt(p99), _fmt(lat.get("rate_achieved"))),
                    bool(ok), "met" if ok else "p99 %.1fx the target" % (p99 / 100) if p99 else "missed"))
    rt, ft = find("Ripple", "throughput 1000"), find("flask-sse", "throughput 1000")
    if rt and ft and rt.get("deliveries_per_s") and ft.get("deliveries_per_s"):
        ratio = rt["deliveries_per_s"] / ft["deliveries_per_s"]
        out.append(("throughput ≥ 3x flask-sse deliveries/s at 1,000 subscribers",
                    "%.2fx (%s vs %s /s)" % (ratio, _fmt(rt["deliveries_per_s"]), _fmt(ft["deliveries_per_s"])),
                    ratio >= 3, "met" if ratio >= 3 else "%.0f%% of the target ratio" % (100 * ratio / 3)))
    if rt:
        us = _get(rt, "server.cpu_us_per_delivery")
        if us is not None:
            out.append(("≤ 20 µs server CPU per delivery (1,000 subscribers)", "%.1f µs" % us, us <= 20,
                        "%.1fx the target" % (us / 20) if us > 20 else "met"))
    pub = find("Ripple", "publish")
    wrk = [e for e in _extra_cache if e["system"] == "Ripple" and e["scenario"] == "publish (wrk)"]
    best = max([(pub.get("posts_per_s") or 0) if pub else 0]
               + [w.get("posts_per_s") or 0 for w in wrk])
    if pub or wrk:
        out.append(("publish path ≥ 2,000 POSTs/s", "%s/s (best of load tool and wrk)" % _fmt(best),
                    best >= 2000, "met" if best >= 2000 else "%.0f%% of the target" % (100 * best / 2000)))
    return out


def issue20_targets(results):
    """Issue 20's targets for Ripple: (target, measured, met?, margin), from this run's results."""
    def find(scenario, system="Ripple"):
        for r in results:
            if r.get("system") == system and r.get("scenario") == scenario and r.get("mode"):
                return r
        return None

    out = []

    def times(value, target):
        return "met" if value <= target else "%.1fx the target" % (value / target)

    for scenario, where in (("latency 1000x50", "Redis over a unix socket"),
                            ("latency 1000x50, Redis over TCP", "Redis over loopback TCP")):
        lat = find(scenario)
        if not lat:
            continue
        us, p99, lost = _get(lat, "server.cpu_us_per_delivery"), _get(lat, "latency_ms.p99"), lat.get("lost")
        if us is not None:
            out.append(("CPU per delivery ≤ 12 µs, 1,000 × 50 msg/s (%s)" % where, "%.1f µs" % us,
                        us <= 12, times(us, 12)))
        if p99 is not None:
            out.append(("p99 ≤ 50 ms and 0 lost, 1,000 × 50 msg/s (%s)" % where,
                        "p99 %.1f ms, lost %s" % (p99, _fmt(lost)), p99 <= 50 and lost == 0,
                        times(p99, 50) if lost == 0 else "%s lost" % _fmt(lost)))
    opening = [r for r in results if r.get("system") == "Ripple" and r.get("mode")
               and r.get("scenario", "").startswith("signed-in ")]
    if len(opening) >= 2:
        top = max(opening, key=lambda r: r.get("connections") or 0)
        held = min(r.get("connections") or 0 for r in opening)
        rate = top.get("connect_rate_achieved") or 0
        out.append(("≥ 3,000 streams opened per second with %s already open (signed-in cookies, "
                    "rate limits, presence)" % _fmt(held), "%s/s (%s of %s up)" % (
                        _fmt(rate), _fmt(top.get("stayed_up")), _fmt(top.get("connections"))),
                    rate >= 3000, "met" if rate >= 3000 else "%.0f%% of the target" % (100 * rate / 3000)))
    for r in results:
        if r.get("system") != "Ripple" or r.get("mode") != "storm":
            continue
        back = _get(r, "back_s.p100")
        posts = r.get("posts") or {}
        lines = _get(r, "log.lines") or 0
        clean = (r.get("lost") == 0 and r.get("duplicates") == 0 and not posts.get("failed")
                 and not posts.get("stalled_over_1s") and not lines)
        out.append(("%s: all back within 10 s" % r["scenario"],
                    "50/99/100 %%: %s / %s / %s s" % tuple(_fmt(_get(r, "back_s." + k))
                                                           for k in ("p50", "p99", "p100")),
                    back is not None and back <= 10, times(back, 10) if back is not None else "not all back"))
        out.append(("%s: 0 lost, 0 duplicated, no POST failed or over 1 s, no ERROR" % r["scenario"],
                    "lost %s, dup %s, posts failed %s / over 1 s %s, ERROR lines %s" % (
                        _fmt(r.get("lost")), _fmt(r.get("duplicates")), _fmt(posts.get("failed")),
                        _fmt(posts.get("stalled_over_1s")), _fmt(lines)), clean, "met" if clean else "missed"))
        workers = [sum(((r.get(side) or {}).get("server") or {}).get("workers_rss_mb", {}).values() or [0])
                   for side in ("before", "after")]
        redis = [_get(r, side + ".redis.used_memory") for side in ("before", "after")]
        if workers[0] and redis[0]:
            ok = workers[1] <= 1.2 * workers[0] and redis[1] <= 1.2 * redis[0]
            out.append(("%s: worker RSS and Redis memory back to the pre-reload level (within 20 %%)" % r["scenario"],
                        "workers %.0f → %.0f MB, Redis %.1f → %.1f MB" % (
                            workers[0], workers[1], redis[0] / 2**20, redis[1] / 2**20), ok,
                        "met" if ok else "workers %.2fx, Redis %.2fx" % (workers[1] / workers[0], redis[1] / redis[0])))
    cap = find("capacity 18000")
    if cap:
        kb = _get(cap, "server.rss_per_stream_kb")
        if kb is not None:
            out.append(("≤ 12 KB server RSS per held stream at 18,000", "%.1f KB" % kb, kb <= 12, times(kb, 12)))
        back = cap.get("rss_back_within_20pct_s")
        watch = cap.get("after_close_rss_mb") or []
        base = _get(cap, "server.rss_baseline_mb")
        if watch and base:
            out.append(("after the 18,000 close, worker RSS within 20 % of the pre-wave baseline within 60 s",
                        "baseline %.0f MB; %s" % (base, "back after %s s" % back if back is not None
                                                  else "%.0f MB after %s s" % (watch[-1][1], watch[-1][0])),
                        back is not None and back <= 60, "met" if back is not None and back <= 60
                        else "%.2fx the baseline" % (watch[-1][1] / base)))
    pub = find("publish")
    wrk = [e for e in _extra_cache if e["system"] == "Ripple" and e["scenario"] == "publish (wrk)"]
    best = max([(pub.get("posts_per_s") or 0) if pub else 0] + [w.get("posts_per_s") or 0 for w in wrk])
    if pub or wrk:
        out.append(("publish path ≥ 4,000 POSTs/s with history on", "%s/s (best of load tool and wrk)" % _fmt(best),
                    best >= 4000, "met" if best >= 4000 else "%.0f%% of the target" % (100 * best / 4000)))
    return out


_extra_cache = []


def write_report(grid, prof, path):
    global _extra_cache
    _extra_cache = grid.extra
    results = grid.results
    now = datetime.datetime.now(datetime.timezone.utc)
    if getattr(grid, "finished", None):
        now = datetime.datetime.fromisoformat(grid.finished)
    git = getattr(grid, "report_git", None) or git_state(grid.args.ripple_root)
    mach = machine_description()
    ripple_vals = {}
    for r in results:
        if r.get("system") == "Ripple" and r.get("mode"):
            for label, value, _ in rows_for(r):
                ripple_vals[(r["scenario"], label)] = value
    lines = []
    w = lines.append
    w("# Benchmarks (issue 5)")
    w("")
    w("Generated by `python bench/run_all.py%s%s` — do not edit by hand; rerun it (`make bench`)." %
      (" --quick" if grid.quick else "", " --profile" if prof else ""))
    w("How Ripple's hot paths are built, what each change bought and what limits the figures "
      "below: [performance.md](performance.md).")
    w("")
    wall = getattr(grid, "wall_s", None) or (time.monotonic() - grid.started)
    partial = " (this run's: the other figures were kept from an earlier run, see the notes)" \
        if any(r.get("kept_from") for r in grid.results + grid.extra) else ""
    w("- **Date:** %s (UTC), grid wall time %.0f s%s" % (now.strftime("%Y-%m-%d %H:%M"), wall, partial))
    w("- **Machine:** %s, %s cores, %s GiB RAM, Linux %s, Python %s, open-file limit %s per process" % (
        mach["cpu"], mach["cores"], mach["memory_gib"], mach["kernel"], mach["python"], mach["nofile"]))
    def tree(g):
        return "commit `%s`%s" % (g["commit"][:12], (", tree dirty in: " + ", ".join(
            "`%s`" % p.strip() for p in g["dirty_paths"])) if g["dirty_paths"] else ", clean tree")
    start = getattr(grid, "git_start", git)
    if start == git:
        w("- **Ripple:** %s (the same at the start and the end of the grid)" % tree(git))
    else:
        w("- **Ripple:** at the start %s; at the end %s — servers started in between ran what "
          "was in the tree then" % (tree(start), tree(git)))
    w("- **Servers:** everything on 127.0.0.1 of this one machine, sharing its 2 cores with the load tool. "
      "Ripple and flask-sse: `gunicorn -c gunicorn.conf.py`, gevent, 2 workers; Redis: %s" % _redis_line(grid))
    w("  (AOF everysec, as `make run`), maxclients 19900, a fresh one per capacity run and per system; "
      "Ripple and flask-sse reach it on its unix socket (as `make run` does), the load tool's own "
      "Redis connections (the Redis rows, INFO) on loopback TCP. "
      "nchan: %s, 2 workers, memory store (nchan's default; it does not use Redis). "
      "Ripple runs with a publish token (server-to-server posts) and raised per-address stream limits." % _nchan_line())
    w("- **Client:** bench/loadtool.py (asyncio + uvloop, raw sockets; streams parsed after each run). "
      "Its own CPU is listed beside each figure; *client-limited* marks a run where one of its processes "
      "used > 90 % of a core, *noisy* one where other processes on the machine used > 0.3 cores.")
    others = sorted(o for o in ((r.get("machine_other_cores") if r.get("machine_other_cores") is not None
                                 else r.get("machine_other_cores_hold")) for r in results) if o is not None)
    if others:
        noisy = sum(1 for o in others if o > 0.3)
        w("- **Other load on the machine** (processes not part of the benchmark) during the runs: median "
          "%.2f cores, max %.2f; %d of %d runs above 0.3 cores are marked *noisy* below." % (
              others[len(others) // 2], others[-1], noisy, len(others)))
    w("")
    w("## Issue 5 targets (Ripple)")
    w("")
    w("| target | measured | met? | by how much |")
    w("|---|---|---|---|")
    for target, measured, ok, margin in targets(results):
        w("| %s | %s | %s | %s |" % (target, measured, "**yes**" if ok else "**no**", margin))
    w("")
    w("## Issue 20 targets (Ripple)")
    w("")
    w("Why a target is missed, with the profile: [performance.md](performance.md).")
    w("")
    w("| target | measured | met? | by how much |")
    w("|---|---|---|---|")
    for target, measured, ok, margin in issue20_targets(results):
        w("| %s | %s | %s | %s |" % (target, measured, "**yes**" if ok else "**no**", margin))
    w("")
    w("## Figures")
    w("")
    w("Ratio = this system's figure / Ripple's for the same scenario (for times and memory, < 1 means "
      "the peer is better; for rates, > 1 means the peer is better). Commands are listed below the table.")
    w("")
    w("| system | scenario | figure | value | ratio to Ripple | client CPU | notes | command | time (UTC) |")
    w("|---|---|---|---|---|---|---|---|---|")
    order = {s: i for i, s in enumerate(SYSTEM_ORDER)}

    def sort_key(r):
        mode_order = ["capacity", "latency", "throughput", "publish"]
        return (mode_order.index(r["mode"]) if r.get("mode") in mode_order else 9,
                _scenario_num(r["scenario"]), order.get(r["system"], 9))

    table = []
    for r in sorted([r for r in results if r.get("mode")], key=sort_key):
        cpu = client_cpu(r)
        note = flags(r)
        when = (r.get("started") or "")[11:19]
        for k, (label, value, text) in enumerate(rows_for(r)):
            base = ripple_vals.get((r["scenario"], label))
            ratio = "1" if r["system"] == "Ripple" else (
                "%.2f" % (value / base) if value is not None and base else "–")
            table.append(((sort_key(r)[:2], r["scenario"]), k, order.get(r["system"], 9),
                          "| %s | %s | %s | %s | %s | %s | %s | [%s](#%s) | %s |" % (
                              r["system"], r["scenario"], label, text, ratio, cpu, note, r["cmd"],
                              r["cmd"], when)))
    for *_, line in sorted(table, key=lambda t: t[:3]):
        w(line)
    for e in grid.extra:
        if e["scenario"] == "publish (wrk)":
            base = next((x.get("posts_per_s") for x in grid.extra
                         if x["system"] == "Ripple" and x["scenario"] == "publish (wrk)"), None)
            value = e.get("posts_per_s")
            ratio = "1" if e["system"] == "Ripple" else ("%.2f" % (value / base) if value and base else "–")
            w("| %s | publish (wrk, 16 conns) | POSTs/s | %s/s (p50 %s ms, p99 %s ms%s) | %s | wrk (C) "
              "| | [%s](#%s) | |" % (
                e["system"], _fmt(value), _fmt(e.get("p50_ms")), _fmt(e.get("p99_ms")),
                ", %d non-2xx" % e["non_2xx"] if e.get("non_2xx") else "", ratio, e["cmd"], e["cmd"]))
        else:
            base = next((x.get("posts_per_s") for x in grid.extra
                         if x["system"] == "Ripple" and x["scenario"] == "publish (wrk)"), None)
            value = e.get("publish_per_s")
            w("| Redis %s | %s | PUBLISH/s | %s/s (p50 %s ms, p99 %s ms) | %s (vs Ripple POSTs/s, wrk) "
              "| redis-benchmark (C) | | [%s](#%s) | |" % (
                e.get("version", ""), e["scenario"], _fmt(value), _fmt(e.get("p50_ms")), _fmt(e.get("p99_ms")),
                "%.1f" % (value / base) if value and base else "–", e["cmd"], e["cmd"]))
    w("")
    w("## Plots")
    w("")
    for name, title in (("latency-cdf.png", "Delivery latency CDF, 1,000 subscribers"),
                        ("rss-per-stream.png", "Server RSS per stream vs concurrent streams"),
                        ("deliveries-vs-subscribers.png", "Deliveries per second vs subscribers")):
        if (grid.img / name).exists():
            w("![%s](%s)" % (title, os.path.relpath(grid.img / name, Path(path).parent)))
            w("")
    if prof:
        w("## Where a Ripple worker spends its CPU (py-spy, throughput with 1,000 subscribers)")
        w("")
        w("Self and inclusive time of the hottest functions, %d samples of both workers during the "
          "measured part of the run (`self` of a socket call includes the kernel's work for it):" % prof["samples"])
        w("")
        w("| self | function | | inclusive | function |")
        w("|---|---|---|---|---|")
        for (s1, f1), (s2, f2) in zip(prof["self"], prof["inclusive"]):
            w("| %.1f %% | `%s` | | %.1f %% | `%s` |" % (s1, f1.replace("|", "\\|"), s2, f2.replace("|", "\\|")))
        w("")
    if grid.notes:
        w("## Notes from this run")
        w("")
        for n in grid.notes:
            w("- " + n)
        w("")
    w("## How to read the scenarios")
    w("")
    w("- **capacity N**: one run per system ramps through every N in turn on one fresh server and Redis "
      "(nothing closes in between; streams spread over top-N/200 rooms); at each N a probe message is "
      "posted to every room before and after a 2 s hold; *streams held* = streams that received the "
      "second probe (after up to 2 EventSource-like reconnect rounds for refused or dropped streams). "
      "Memory is the sum over the server's processes (master + workers; nginx master + workers) "
      "at the end of the hold minus the idle baseline after a 20-stream warm-up, divided by the streams "
      "held. Redis memory is reported separately (Ripple and flask-sse hold one Redis connection per stream).")
    w("- **latency S×R**: S subscribers in one room, messages posted at R per second by 4 sequential "
      "publishers in turn; each text carries its send time (ns) and each delivery is timed when the "
      "client read it. Warm-up messages (not counted) are posted until every subscriber has one. "
      "Out-of-order counts both a publisher's sequence going backwards and the server's message id "
      "going backwards on a stream.")
    w("- **throughput S**: 4 publishers post back to back for the duration (as fast as the server "
      "accepts posts); deliveries/s = messages delivered / (last delivery − first post); lost = expected "
      "deliveries (acknowledged posts × subscribers) not received within the drain timeout. Server CPU "
      "per delivery = utime+stime of all server processes over the run / deliveries.")
    w("- **publish**: no subscribers; 16 keep-alive connections post back to back (the load tool), "
      "and the same with wrk.")
    w("- **storm reload N / storm kill N** (bench/storm.py, issue 20): N streams in 10 rooms, one "
      "keep-alive publisher per room posting every 500 ms; once every stream has a warm-up message, "
      "SIGHUP to the master (a graceful reload: gunicorn's, nginx's) or, on a fresh server, SIGKILL "
      "to the worker holding the most connections. Each client reconnects as an EventSource does: "
      "after the `retry:` the server gave × (1 + U(0, 0.5)), with Last-Event-ID, again after every "
      "failure. *back* = time from the signal until a disrupted client's new stream delivered its "
      "first event (for Ripple the replay chunk with everything missed, then `ready`); *delivery p99 "
      "during the storm* covers the messages posted from the signal until every client was back "
      "(delivered live or replayed); lost / dup are counted per client against every acknowledged "
      "post of its room; Ripple's publishers send an Idempotency-Key with every post and send a post "
      "that got no answer (cut by the SIGKILL) once more at once with the same key, as its Python client "
      "does (*resent*; *failed* counts a post that failed again), the peers' publishers have no key and "
      "do not resend; posts *over 1 s* stalled (both tries together); ERROR lines are what the server logged from the "
      "signal on; memory before = just before the signal, after = --settle s after the storm (a "
      "killed worker's replacement is in the after figure).")
    w("- **Redis**: the same load tool modes on raw Redis SUBSCRIBE connections and PUBLISH: the floor "
      "of this machine and this client (a Python client reading 1,000 sockets spreads one message's "
      "deliveries over several ms by itself).")
    w("")
    w("## Commands")
    w("")
    w("Ports are the free ones chosen in that run; `bench/run_all.py` starts the servers and fills them in.")
    w("")
    for cid, line in grid.commands:
        w('<a id="%s"></a>**%s**: `%s`' % (cid, cid, line))
        w("")
    Path(path).write_text("\n".join(lines) + "\n")


def _scenario_num(s):
    nums = [int(x) for x in re.findall(r"\d+", s)]
    return tuple(nums) if nums else (0,)


def _redis_line(grid):
    for e in grid.extra:
        if e.get("version"):
            return "redis-server %s (`%s`)" % (e["version"], e.get("binary"))
    try:
        r = servers.RedisServer(grid.workdir)
        return "redis-server %s (`%s`)" % (r.version(), r.binary)
    except Exception:  # noqa: BLE001
        return "redis-server"


def _nchan_line():
    try:
        return servers.Nchan.version()
    except Exception:  # noqa: BLE001
        return "nginx + nchan"


# ------------------------------------------------------------------------------------------------
# Plots


def plots(grid):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    grid.img.mkdir(parents=True, exist_ok=True)
    colors = {"Ripple": "tab:blue", "flask-sse": "tab:orange", "nchan": "tab:green", "Redis": "tab:gray"}

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, rate in zip(axes, (10, 50)):
        for system in SYSTEM_ORDER:
            found = [r for r in grid.results if r.get("system") == system
                     and r.get("scenario") == "latency 1000x%d" % rate and r.get("cdf_ms")]
            if not found:
                continue
            pts = found[-1]["cdf_ms"]
            ax.plot([max(p[1], 0.01) for p in pts], [p[0] for p in pts], label=system,
                    color=colors.get(system), drawstyle="steps-post")
        ax.set_xscale("log")
        ax.set_xlabel("delivery latency (ms, log)")
        ax.set_title("1,000 subscribers × %d msg/s" % rate)
        ax.grid(True, which="both", alpha=0.3)
        ax.axhline(0.99, color="k", lw=0.5, ls=":")
    axes[0].set_ylabel("fraction of deliveries")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(grid.img / "latency-cdf.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for system in SYSTEM_ORDER:
        pts = sorted((r["connections"], _get(r, "server.rss_per_stream_kb"))
                     for r in grid.results if r.get("system") == system and r.get("mode") == "capacity"
                     and _get(r, "server.rss_per_stream_kb") is not None)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=system + " server",
                    color=colors.get(system))
        rpts = sorted((r["connections"], _get(r, "redis.used_memory_per_stream_kb"))
                      for r in grid.results if r.get("system") == system and r.get("mode") == "capacity"
                      and _get(r, "redis.used_memory_per_stream_kb") is not None)
        if rpts:
            ax.plot([p[0] for p in rpts], [p[1] for p in rpts], "x--", label=system + " Redis used_memory",
                    color=colors.get(system), alpha=0.6)
    ax.axhline(25, color="red", lw=0.8, ls=":", label="Ripple target 25 KB")
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("KB per stream over baseline")
    ax.set_xscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(grid.img / "rss-per-stream.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for system in SYSTEM_ORDER:
        pts = sorted((r["subscribers"], r.get("deliveries_per_s"))
                     for r in grid.results if r.get("system") == system and r.get("mode") == "throughput"
                     and "profiled" not in r.get("scenario", "") and r.get("deliveries_per_s"))
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=system, color=colors.get(system))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("subscribers in the room")
    ax.set_ylabel("deliveries per second")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(grid.img / "deliveries-vs-subscribers.png", dpi=110)
    plt.close(fig)


def _sigterm(signum, frame):
    raise SystemExit("terminated")  # so every server is stopped by the finally blocks


def main():
    import signal
    signal.signal(signal.SIGTERM, _sigterm)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short runs, capacity 1k/2k only")
    p.add_argument("--keep-from", help="a results JSON of an earlier run: systems not given in "
                                       "--systems keep its figures (e.g. rerun Ripple only)")
    p.add_argument("--report-only", metavar="RESULTS_JSON",
                   help="run nothing: write the report and plots again from a results JSON")
    p.add_argument("--systems", type=lambda s: s.split(","), default=["Ripple", "flask-sse", "nchan", "Redis"])
    p.add_argument("--no-18k", action="store_true", help="skip Ripple's 18,000-stream run")
    p.add_argument("--profile", action="store_true", help="py-spy a Ripple worker (adds ~20 s)")
    p.add_argument("--no-storm", action="store_true", help="skip the reconnect storms")
    p.add_argument("--only", choices=["storm", "signed-in"],
                   help="run only these scenarios (with --keep-from, the others keep their figures)")
    p.add_argument("--storm-size", type=int, default=10000,
                   help="streams in a (non-quick) reconnect storm")
    p.add_argument("--ripple-root", default=str(ROOT), help="the Ripple tree to run (default: this one)")
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--img", default=str(ROOT / "docs" / "img"), help="where the PNG plots go")
    p.add_argument("--results", default=str(ROOT / "bench" / "results" / "last-run.json"),
                   help="raw JSON of every run")
    p.add_argument("--quiet-cores", type=float, default=0.35,
                   help="before each run wait until the machine is this idle (busy cores)")
    p.add_argument("--quiet-wait", type=float, default=20.0, help="...for at most this many seconds")
    p.add_argument("--quiet-budget", type=float, default=120.0,
                   help="total seconds the whole grid may spend waiting for a quiet machine")
    args = p.parse_args()
    if args.quick:
        args.quiet_wait = min(args.quiet_wait, 5.0)
        args.quiet_budget = min(args.quiet_budget, 30.0)
    if args.report_only:
        kept = json.loads(Path(args.report_only).read_text())
        grid = Grid(args)
        grid.results, grid.extra = kept["results"], kept["extra"]
        grid.commands = [tuple(c) for c in kept.get("commands", [])]
        grid.notes = kept.get("notes", [])
        grid.git_start = kept.get("git_start") or kept.get("git")
        grid.report_git = kept.get("git")
        grid.finished = kept.get("finished")
        grid.wall_s = kept.get("wall_s")
        plots(grid)
        write_report(grid, kept.get("profile"), args.out)
        shutil.rmtree(grid.workdir, ignore_errors=True)
        log("wrote", args.out, "from", args.report_only)
        return
    grid = Grid(args)
    log("workdir", grid.workdir)
    if args.keep_from:
        # Figures of the systems not run now come from an earlier run's raw results.
        kept = json.loads(Path(args.keep_from).read_text())
        ids = {}
        for r in kept["results"] + kept["extra"]:
            rerun = r.get("system") in args.systems and (
                not args.only or r.get("scenario", "").startswith(args.only))
            if rerun or "profiled" in r.get("scenario", ""):
                continue
            old_cmd = r.get("cmd")
            if old_cmd not in ids:
                line = next((c for i, c in kept.get("commands", []) if i == old_cmd), None)
                ids[old_cmd] = grid.command_id(shlex.split(line)) if line else old_cmd
            r = dict(r, cmd=ids[old_cmd], kept_from=kept.get("finished"))
            (grid.results if "mode" in r else grid.extra).append(r)
        grid.notes.append("Figures of %s come from the run of %s (%s); %s%s were measured now." % (
            ", ".join(sorted({r["system"] for r in grid.results + grid.extra})), kept.get("finished"),
            args.keep_from, ", ".join(args.systems),
            " (scenarios '%s' only)" % args.only if args.only else ""))
    prof = None
    try:
        prof = grid.run()
    finally:
        try:
            plots(grid)
        except Exception as exc:  # noqa: BLE001
            grid.notes.append("plots failed: %s" % exc)
        write_report(grid, prof, args.out)
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(json.dumps({"results": grid.results, "extra": grid.extra,
                                                  "commands": grid.commands,
                                                  "finished": datetime.datetime.now(
                                                      datetime.timezone.utc).isoformat(timespec="seconds"),
                                                  "git_start": grid.git_start,
                                                  "wall_s": round(time.monotonic() - grid.started),
                                                  "profile": prof, "notes": grid.notes,
                                                  "git": git_state(args.ripple_root)}, indent=1))
        shutil.rmtree(grid.workdir, ignore_errors=True)
        log("wrote", args.out, "in %.0f s" % (time.monotonic() - grid.started))


if __name__ == "__main__":
    main()
