#!/usr/bin/env python3
"""Sign N people in to a Ripple server the way a browser does, and write their session cookies.

Each person: ``GET /session`` (a CSRF token and the session cookie), then ``POST /session`` with a
fresh name and ``X-CSRF-Token``: the server claims the name and answers with the signed-in
session cookie. The cookies, one ``Cookie`` header value per line, feed ``bench/loadtool.py
--cookie-file`` so the streams it opens are signed-in browsers' streams (presence, the session's
stream cap, the sidebar), not anonymous ones.

    python bench/signins.py --url http://127.0.0.1:PORT -n 3000 -o cookies.txt

Only loopback servers; bounded in count (-n ≤ 50,000) and time (--max-seconds). Prints one JSON
line: {"signed_in", "failed", "seconds", "per_s", "statuses"}; exit 1 if any sign-in failed.
"""
import argparse
import http.client
import json
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit


def _cookies(response, jar):
    for header in response.headers.get_all("Set-Cookie") or []:
        parsed = SimpleCookie()
        parsed.load(header)
        for name, morsel in parsed.items():
            jar[name] = morsel.value


def sign_in(host, port, name, timeout=30.0):
    """Sign ``name`` in over one keep-alive connection; return its Cookie header value.

    Raises RuntimeError with the status when the server refuses (e.g. 409 name taken, 429).
    """
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        jar = {}
        conn.request("GET", "/session", headers={"Accept": "application/json"})
        got = conn.getresponse()
        body = got.read()
        _cookies(got, jar)
        if got.status not in (200, 401):  # 401: not signed in yet, and the token to sign in with
            raise RuntimeError("GET /session %d" % got.status)
        token = json.loads(body)["csrf_token"]
        cookie = "; ".join("%s=%s" % kv for kv in jar.items())
        conn.request("POST", "/session", body=urlencode({"name": name}),
                     headers={"Content-Type": "application/x-www-form-urlencoded",
                              "Accept": "application/json", "X-CSRF-Token": token, "Cookie": cookie})
        done = conn.getresponse()
        done.read()
        _cookies(done, jar)
        if done.status != 200:
            raise RuntimeError("POST /session %d" % done.status)
        return "; ".join("%s=%s" % kv for kv in jar.items())
    finally:
        conn.close()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="the server's base URL (loopback only)")
    p.add_argument("-n", type=int, default=1000, help="people to sign in (at most 50,000)")
    p.add_argument("-o", "--out", required=True, help="file to write the cookies to")
    p.add_argument("--prefix", default="b" + uuid.uuid4().hex[:6], help="names are PREFIX-i")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--max-seconds", type=float, default=300)
    a = p.parse_args(argv)
    parts = urlsplit(a.url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1") or not 0 < a.n <= 50000:
        raise SystemExit("signins: a loopback URL and 0 < n <= 50,000 only")
    deadline = time.monotonic() + a.max_seconds
    statuses, lock = {}, threading.Lock()

    def one(i):
        if time.monotonic() > deadline:
            reason = "deadline"
        else:
            try:
                return sign_in(parts.hostname, parts.port or 80, "%s-%d" % (a.prefix, i))
            except (OSError, RuntimeError, ValueError, KeyError) as exc:
                reason = str(exc) if isinstance(exc, RuntimeError) else type(exc).__name__
        with lock:
            statuses[reason] = statuses.get(reason, 0) + 1
        return None

    t0 = time.monotonic()
    with ThreadPoolExecutor(a.concurrency) as pool:
        cookies = [c for c in pool.map(one, range(a.n)) if c]
    secs = time.monotonic() - t0
    with open(a.out, "w") as f:
        f.write("".join(c + "\n" for c in cookies))
    failed = a.n - len(cookies)
    print(json.dumps({"signed_in": len(cookies), "failed": failed, "seconds": round(secs, 2),
                      "per_s": round(len(cookies) / max(secs, 1e-9), 1), "statuses": statuses}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
