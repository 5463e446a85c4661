"""What one POST costs the server, for each kind of post (issue 20's publish path).

    python bench/post_cost.py token          # a publish token's JSON post (the grid's publish scenario)
    python bench/post_cost.py wrk            # the same post, sent by wrk (a C client: less client CPU)
    python bench/post_cost.py browser        # a signed-in page's post: session cookie, multipart
                                             # FormData with the CSRF token and an idempotency key
    python bench/post_cost.py form           # a no-JS form: urlencoded, answered 303
    options: --seconds 4  --root TREE (another checkout, for before/after)  --strace  --monitor
             --spy PREFIX (py-spy raw profiles of both workers, PREFIX.<n>.txt)

Starts Redis (AOF on, the systems' unix socket) and a 2-worker Ripple exactly as the grid does
(bench/servers.py of TREE), posts with 16 keep-alive connections (bench/loadtool.py publish, or
wrk) into one room, and prints one JSON line: posts/s, worker CPU (utime+stime of both workers) and
Redis CPU per post, Redis commands per post (INFO commandstats deltas: commands run inside scripts
count too), with ``--monitor`` the commands sent by clients (MONITOR, script-inner ones left out),
with ``--strace`` the workers' syscalls per post (``sendto`` = Redis round trips + the answer).
Rates depend on what else runs on the machine; the per-post costs much less so.
"""
import argparse
import http.cookiejar
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
BOUNDARY = "----rippleBenchBoundary7MA4YWxkTrZu0gW"


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def command_stats(redis):
    stats = {}
    for line in redis.command("INFO", "commandstats").splitlines():
        found = re.match(r"cmdstat_(\S+):calls=(\d+),usec=(\d+)", line)
        if found:
            stats[found.group(1)] = int(found.group(2))
    return stats


def sign_in(base):
    """A guest session as the page makes one: (cookie header, CSRF token)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    json_only = {"Accept": "application/json"}
    try:
        asked = opener.open(urllib.request.Request(base + "/session", headers=json_only))
        token = json.loads(asked.read())["csrf_token"]
    except urllib.error.HTTPError as error:  # 401 when signed out, with a token to sign in with
        token = json.loads(error.read())["csrf_token"]
    answer = opener.open(urllib.request.Request(
        base + "/session", data=urllib.parse.urlencode({"name": "bench-poster"}).encode(),
        headers={"X-CSRF-Token": token, **json_only}, method="POST"))
    token = json.loads(answer.read())["csrf_token"]
    return "; ".join("%s=%s" % (c.name, c.value) for c in jar), token


def loadtool_args(mode, base, room, seconds, publish_token):
    args = ["publish", "--sub-url", base + "/rooms/{room}/events", "--pub-url", base + "/rooms/{room}/messages",
            "--room", room, "-p", "16", "-d", str(seconds), "--max-seconds", "120"]
    if mode == "token":
        return args + ["--pub-header", "Authorization: Bearer " + publish_token]
    cookie, csrf = sign_in(base)
    args += ["--pub-header", "Cookie: " + cookie]
    if mode == "browser":  # static/js/form.js: fetch(form.action, {body: new FormData(form), Accept: JSON})
        body = "".join('--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (BOUNDARY, name, value)
                       for name, value in (("csrf_token", csrf), ("text", "{text}"),
                                           ("idempotency_key", "k-{text}"))) + "--%s--\r\n" % BOUNDARY
        return args + ["--pub-content-type", "multipart/form-data; boundary=" + BOUNDARY, "--pub-body", body,
                       "--pub-header", "Accept: application/json"]
    body = "csrf_token=%s&text={text}&idempotency_key=k-{text}" % urllib.parse.quote(csrf)
    return args + ["--pub-content-type", "application/x-www-form-urlencoded", "--pub-body", body,
                   "--pub-header", "Accept: text/html"]


def run_wrk(base, room, seconds, publish_token, work):
    script = Path(work) / "post.lua"
    script.write_text('wrk.method = "POST"\nwrk.body = \'{"text": "wrk bench message", "user": "wrk"}\'\n'
                      'wrk.headers["Content-Type"] = "application/json"\n'
                      'wrk.headers["Authorization"] = "Bearer %s"\n' % publish_token)
    out = subprocess.run(["wrk", "-t", "1", "-c", "16", "-d", "%ds" % seconds, "-s", str(script),
                          base + "/rooms/%s/messages" % room], capture_output=True, text=True,
                         timeout=seconds + 60).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"posts": int(re.search(r"(\d+) requests in", out).group(1)),
            "posts_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "errors": {"non_2xx": int(non_2xx.group(1))} if non_2xx else None}


def run_loadtool(root, args):
    out = subprocess.run([sys.executable, str(Path(root) / "bench" / "loadtool.py")] + args, capture_output=True,
                         text=True, cwd=root, timeout=300)
    result = json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])
    errors = dict(result.get("errors") or {})
    posts = result.get("posts_ok") or 0
    if "http_303" in errors:  # a form post's success is a 303 (PRG)
        posts = errors.pop("http_303")
    return {"posts": posts, "posts_per_s": round(posts / float(result.get("duration") or 1), 1),
            "errors": errors or None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["token", "wrk", "browser", "form"])
    parser.add_argument("--root", default=str(HERE.parent), help="the Ripple tree to start (default: this one)")
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--strace", action="store_true")
    parser.add_argument("--monitor", action="store_true")
    parser.add_argument("--spy")
    opts = parser.parse_args()
    root = os.path.abspath(opts.root)
    sys.path.insert(0, root)
    from bench import servers  # the tree's own: its settings, its way of starting Ripple

    work = tempfile.mkdtemp(prefix="post-cost-")
    redis = servers.RedisServer(work).start()
    server = None
    helpers = []
    try:
        server = servers.Ripple(work, redis.system_url, root=root).start(timeout=90)
        base, room = server.url, "bench-cost-%s" % opts.mode
        urllib.request.urlopen(urllib.request.Request(  # the room exists before a browser posts in it
            base + "/rooms/%s/messages" % room, data=b'{"text":"first","user":"bench"}', method="POST",
            headers={"Authorization": "Bearer " + servers.PUBLISH_TOKEN, "Content-Type": "application/json"})).read()
        args = None if opts.mode == "wrk" else loadtool_args(opts.mode, base, room, opts.seconds,
                                                              servers.PUBLISH_TOKEN)
        workers = server.worker_pids()
        if opts.monitor:
            helpers.append(subprocess.Popen(["redis-cli", "-p", str(redis.port), "monitor"],
                                            stdout=open(os.path.join(work, "monitor.txt"), "w")))
        if opts.strace:
            helpers += [subprocess.Popen(["strace", "-c", "-o", os.path.join(work, "strace.%d" % pid), "-p", str(pid)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid in workers]
        if opts.spy:
            helpers += [subprocess.Popen(["py-spy", "record", "-r", "200", "-d", str(int(opts.seconds)), "-p", str(pid),
                                          "-f", "raw", "-o", "%s.%d.txt" % (opts.spy, i)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        for i, pid in enumerate(workers)]
        time.sleep(0.5 if helpers else 0)
        cpu_before = sum(cpu_seconds(pid) for pid in workers), cpu_seconds(redis.pid)
        stats_before = command_stats(redis)
        result = run_wrk(base, room, opts.seconds, servers.PUBLISH_TOKEN, work) if args is None \
            else run_loadtool(root, args)
        cpu_after = sum(cpu_seconds(pid) for pid in workers), cpu_seconds(redis.pid)
        stats_after = command_stats(redis)
        for helper in helpers:
            if helper.args[0] != "py-spy":
                helper.send_signal(2)
            helper.wait(60)
        posts = result["posts"] or 1
        calls = {name: count - stats_before.get(name, 0) for name, count in stats_after.items()}
        report = {"mode": opts.mode, "root": root, **result,
                  "worker_cpu_us_per_post": round((cpu_after[0] - cpu_before[0]) / posts * 1e6, 1),
                  "redis_cpu_us_per_post": round((cpu_after[1] - cpu_before[1]) / posts * 1e6, 1),
                  "redis_commands_per_post": {k: round(v / posts, 2) for k, v in sorted(calls.items())
                                              if v / posts >= 0.05},
                  "load_average": os.getloadavg()[0]}
        if opts.monitor:
            sent = {}
            for line in open(os.path.join(work, "monitor.txt")).read().splitlines():
                if '"' in line and "lua]" not in line:
                    name = line.split('"')[1].upper()
                    sent[name] = sent.get(name, 0) + 1
            report["client_commands_per_post"] = {k: round(v / posts, 2) for k, v in sent.items() if v / posts >= 0.05}
        if opts.strace:
            syscalls = {}
            for pid in workers:
                for line in open(os.path.join(work, "strace.%d" % pid)).read().splitlines():
                    fields = line.split()  # % time, seconds, usecs/call, calls, [errors,] syscall
                    if len(fields) in (5, 6) and fields[3].isdigit() and fields[-1] != "total":
                        syscalls[fields[-1]] = syscalls.get(fields[-1], 0) + int(fields[3])
            report["syscalls_per_post"] = {k: round(v / posts, 2) for k, v in sorted(syscalls.items())
                                           if v / posts >= 0.05}
        print(json.dumps(report))
    finally:
        for helper in helpers:
            if helper.poll() is None:
                helper.kill()
        if server is not None:
            server.stop()
        redis.stop()


if __name__ == "__main__":
    main()
