"""What tests share besides fixtures: the test servers' settings and a publisher's post.

Test modules import these from here (``from .support import post``); fixtures stay in
conftest.py, which pytest loads by itself.
"""
import copy
import functools
import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

TEST_HEARTBEAT = 0.5  # seconds: dead streams are found quickly, tests stay short
TOKEN = "test-publish-token"  # the server-to-server publish token the test servers accept
# Environment of every test Gunicorn: short heartbeats, and limits high enough that a test
# opening hundreds of streams from one address is not throttled (test_limits checks limits).
SERVER_ENV = {
    "RIPPLE_HEARTBEAT_SECONDS": str(TEST_HEARTBEAT), "RIPPLE_PUBLISH_TOKEN": TOKEN,
    "SECRET_KEY": "test-secret", "RIPPLE_STREAM_RATE_IP": "100000 per minute",
    "RIPPLE_STREAM_RATE_SESSION": "100000 per minute", "RIPPLE_POST_RATE_IP": "100000 per minute",
    "RIPPLE_POST_RATE_SESSION": "100000 per minute", "RIPPLE_SESSION_RATE_IP": "100000 per minute",
    "RIPPLE_PRESENCE_GRACE_SECONDS": "1", "RIPPLE_MAX_STREAMS_PER_ADDRESS": "100000",
    "RIPPLE_READ_RATE_IP": "100000 per minute", "RIPPLE_ROOM_CREATE_RATE_IP": "100000 per minute",
    "RIPPLE_ROOM_CREATE_RATE_SESSION": "100000 per minute", "RIPPLE_SIGNIN_RATE_IP": "100000 per minute",
    "RIPPLE_ACCOUNT_CREATE_RATE_IP": "100000 per minute",
}


# The same for apps made in the test process (limits live in the shared Redis, across tests).
# Sign-ins too: every in-process client is 127.0.0.1, and 30 a minute from all the tests of one
# process ran out when many such tests came together (a 429 for test_identity's sign-in).
LIMITS_OFF = {"READ_RATE_IP": "100000 per minute", "ROOM_CREATE_RATE_IP": "100000 per minute",
              "ROOM_CREATE_RATE_SESSION": "100000 per minute", "SESSION_RATE_IP": "100000 per minute"}


def post(base_url, room, text, user="ann", key=None, timeout=10):
    """POST a JSON message as a server-to-server publisher; return (status, body as dict)."""
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + TOKEN}
    if key:
        headers["Idempotency-Key"] = key
    request = urllib.request.Request(
        "%s/rooms/%s/messages" % (base_url, urllib.parse.quote(room, safe="%")), method="POST", headers=headers,
        data=json.dumps({"text": text, "user": user}).encode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def streams_on_both_workers(server, open_ready, most=8, rounds=3):
    """Ready streams on both of ``server``'s workers (``open_ready()`` opens one and waits for
    its "ready"). Opened two at a time: while one worker takes a connection the other takes the
    next (opened one after another, an idle worker may win every accept). At most ``most`` open
    at once (a session's cap), in up to ``rounds`` rounds (a busy machine, the other test
    process's, can leave one worker winning every accept for a while); fails the test if every
    round's streams landed on one worker. The caller closes them."""
    from concurrent.futures import ThreadPoolExecutor  # only the few tests that need it

    opened = 0
    with ThreadPoolExecutor(2) as pool:
        for _ in range(rounds):
            streams = []
            while len(streams) < most:
                streams += list(pool.map(lambda _: open_ready(), range(2)))
                if len({server.worker_of(s.local_port) for s in streams} - {None}) == 2:
                    return streams
            opened += len(streams)
            for stream in streams:
                stream.close()
    raise AssertionError("%d streams, all on one worker" % opened)


def ready(stream):
    """``stream`` once its "ready" event came (tests.sse.SSEStream)."""
    stream.until("ready")
    return stream


def spy_handed_on(monkeypatch, middleware, keep):
    """The requests a fast-path middleware class (app/web/fastpost.py, faststream.py) hands on
    to Flask: a list that gets ``keep(environ)`` for each (nothing when that is None)."""
    seen = []
    original = middleware.__call__

    def spy(self, environ, start_response):
        nxt = self.next

        def handed(env, start):
            kept = keep(env)
            if kept is not None:
                seen.append(kept)
            return nxt(env, start)
        self.next = handed
        try:
            return original(self, environ, start_response)
        finally:
            self.next = nxt
    monkeypatch.setattr(middleware, "__call__", spy)
    return seen


@functools.lru_cache(maxsize=8)
def _cli_app(redis_url):
    from app import create_app
    return create_app({"TESTING": True, "REDIS_URL": redis_url, "SECRET_KEY": "test-secret"})


def flask_cli(redis_url, *args, stdin=None):
    """Run ``flask --app app ARGS`` against the Redis at ``redis_url``, in this process: the
    real commands through click's runner, without a new interpreter's 2-4 s start each (one
    test per command group runs the real process: test_cli_redis_down.py). Returns a
    subprocess.CompletedProcess (returncode, stdout, stderr as text)."""
    result = _cli_app(redis_url).test_cli_runner().invoke(args=list(args), input=stdin)
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


def flask_process(redis_url, *args):
    """``flask --app app ARGS`` in a process of its own, as an operator runs it."""
    return subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args],
                          env={"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin", "SECRET_KEY": "test-secret"},
                          capture_output=True, text=True, timeout=60)


def aged(app, cookie_value, seconds):
    """The same session's cookie value, signed ``seconds`` ago."""
    serializer = copy.copy(app.session_interface.get_signing_serializer(app))
    signed_at = int(time.time() - seconds)

    class Earlier(serializer.signer):
        def get_timestamp(self):
            return signed_at
    serializer.signer = Earlier
    return serializer.dumps(app.session_interface.get_signing_serializer(app).loads(cookie_value))
