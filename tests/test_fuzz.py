"""Bad input (issue 6): every bad request gets a clear 4xx JSON error or page, never a 5xx or a hang.

Three layers:
- Schemathesis fuzzes every operation of docs/openapi.yaml against the WSGI app in-process, as a
  server-to-server publisher, as a signed-in browser and anonymously: no 5xx, and statuses,
  content types, headers and bodies as documented. The event stream never ends, so it is left
  out there and fuzzed through a real Gunicorn instead, with a read deadline.
- Hypothesis properties for the message path: any text, name and room either round-trips
  exactly (blank lines around the text trimmed, as documented) or gets a 4xx with a JSON error.
- Explicit cases: invalid UTF-8 in forms, oversized headers against Gunicorn, hostile room and
  user names, out-of-range numbers.

Everything is derandomized and bounded so CI runs the same cases every time.
"""
import json
import socket
import time
import unicodedata
import urllib.parse
import uuid
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from app import create_app
from app.people import names
from app.rooms import keys

from .support import LIMITS_OFF, TOKEN, post

SPEC = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"
BEARER = {"Authorization": "Bearer " + TOKEN}
JSON = {"Accept": "application/json"}
HIGH = "100000 per minute"

# Hypothesis settings for the hand-written properties: the same cases on every run.
PROPERTY = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture])


# --- Schemathesis: the whole documented API, in-process ---------------------------------------

def _config(max_examples, security_parameters=True, **checks):
    """A Schemathesis config: deterministic, no example database, the checks that make sense here.

    positive_data_acceptance / negative_data_rejection are off: the schema cannot say "not only
    whitespace" or "no control characters", and names are trimmed before their length is
    checked, so both would report documented 4xx answers as failures.
    """
    enabled = {"positive_data_acceptance": False, "negative_data_rejection": False,
               "ignored_auth": False, **checks}
    return schemathesis.Config.from_dict({
        "generation": {"max-examples": max_examples, "deterministic": True, "database": "none",
                       "with-security-parameters": security_parameters},
        "checks": {name: {"enabled": on} for name, on in enabled.items()},
        # HTML error pages drop the Allow header of a 405 (test_html_405_carries_allow below);
        # JSON ones keep it and are checked.
        "operations": [{"include-tag": "pages", "checks": {"unsupported_method": {"enabled": False}}},
                       {"include-operation-id": "healthz",
                        "checks": {"unsupported_method": {"enabled": False}}}],
    })


def _load(config, only=None):
    """The documented operations but the stream; with ``only``, just those operation ids.

    (Selection by exclusion: with [[operations]] in the config, Schemathesis ORs an include()
    with its own filter, which then selects everything.)
    """
    schema = schemathesis.openapi.from_path(SPEC, config=config)
    ids = {op["operationId"] for item in schema.raw_schema["paths"].values()
           for method, op in item.items() if isinstance(op, dict) and "operationId" in op}
    drop = sorted(ids - set(only)) if only else []
    return schema.exclude(operation_id=["events", *drop])


# With the publish token every validation path is reached: the token skips CSRF and rate limits.
# Adding a webhook is left out: a fuzzed one would be live, POSTing the rest of the suite's events
# to generated URLs from every server on this Redis (its refusals are fuzzed anonymously below,
# its validation is tests/test_webhooks.py's).
publisher_schema = _load(_config(20)).exclude(operation_id=["addWebhook"])
# A signed-in browser: session cookie + CSRF header. Session writes are left out (a fuzzed
# sign-out or sign-in would change who the rest of the run posts as).
browser_schema = _load(_config(10, security_parameters=False),
                       only=["postMessage", "withdrawPost", "postDirect", "withdrawDirect", "whoami", "history"])
# No credentials (or generated, wrong ones): every write must be refused with a 4xx; a method a
# path lacks is its 405 with Allow (the CSRF check leaves requests no route serves alone).
anonymous_schema = _load(_config(8),
                         only=["postMessage", "withdrawPost", "postDirect", "withdrawDirect", "signIn", "signOut",
                               "signOutForm", "addWebhook", "removeWebhook", "enableWebhook", "listWebhooks"])


@pytest.fixture(scope="module")
def fuzz_app(redis_url):
    """The app under fuzz: rate limits out of reach, counted under their own key prefix."""
    return create_app({
        "TESTING": True, "REDIS_URL": redis_url, "PUBLISH_TOKEN": TOKEN, "SECRET_KEY": "test-secret",
        "RATELIMIT_KEY_PREFIX": "fuzz-" + uuid.uuid4().hex[:8],
        "POST_RATE_SESSION": HIGH, "POST_RATE_IP": HIGH, "SESSION_RATE_IP": HIGH,
        "STREAM_RATE_SESSION": HIGH, "STREAM_RATE_IP": HIGH, **LIMITS_OFF})


@pytest.fixture(scope="module")
def browser(fuzz_app):
    """A signed-in browser: (its test client, its CSRF token)."""
    client = fuzz_app.test_client()
    token = client.get("/session").get_json()["csrf_token"]
    response = client.post("/session", json={"name": "fuzz-" + uuid.uuid4().hex[:8]},
                           headers={"X-CSRF-Token": token})
    assert response.status_code == 200, response.get_data(as_text=True)
    yield client, response.get_json()["csrf_token"]
    client.delete("/session", headers={"X-CSRF-Token": response.get_json()["csrf_token"]})


@publisher_schema.parametrize()
def test_api_as_a_publisher(case, fuzz_app):
    response = case.call_and_validate(app=fuzz_app, headers=BEARER)
    event("%s %d" % (case.method, response.status_code))  # (--hypothesis-show-statistics)


@browser_schema.parametrize()
def test_api_as_a_signed_in_browser(case, fuzz_app, browser):
    client, token = browser
    response = case.call_and_validate(app=fuzz_app, session=client, headers={"X-CSRF-Token": token})
    event("%s %d" % (case.method, response.status_code))


@anonymous_schema.parametrize()
def test_api_without_credentials(case, fuzz_app):
    response = case.call_and_validate(app=fuzz_app)
    event("%s %d" % (case.method, response.status_code))
    if case.method in ("POST", "DELETE"):  # (the coverage phase also sends OPTIONS and the like)
        assert 400 <= response.status_code < 500, response.status_code


# --- Properties of the message path (Flask test client, real Redis) --------------------------

ANY_CHAR = st.characters(codec=None, exclude_categories=())  # every code point, surrogates too
NASTY = ["\x00", "\r\n", "\r", "\n", "\t", "\x0b", "\x1b[31m", "\x7f", "\x85", "\u2028", "\u202e",
         "\u2066", "\u200f", "\u061c", "\ufeff", "\ufffd", "\ud800", "\udfff", "\U0001f389", "e\u0301",
         " ", "\u3000", "字", "<script>", '"', "\\", "%00", "../", "{r:x}"]
TEXTS = st.one_of(
    st.text(ANY_CHAR, max_size=30),
    st.lists(st.sampled_from(NASTY) | st.text(max_size=4), max_size=10).map("".join),
    # Around the 2000-character limit, in 1-, 3- and 4-byte characters.
    st.builds(lambda ch, n: ch * n, st.sampled_from(["x", "字", "🎉", "\n"]), st.integers(1995, 2005)),
)
NAMES = st.one_of(st.text(ANY_CHAR, max_size=36),
                  st.lists(st.sampled_from(NASTY) | st.text(max_size=4), max_size=6).map("".join))
ROOMS = st.one_of(
    st.from_regex(r"[a-z0-9][a-z0-9_-]{0,63}", fullmatch=True),
    st.sampled_from(["技术交流", "Lobby", "ＬＯＢＢＹ", "café-2", "हिन्दी", "a\u200bb", "ㅤ"]),
    st.text(ANY_CHAR, max_size=70),
    st.sampled_from(["/", "a/b", "..", ".", "\x00", "a\x00", "\u202elobby", "Lobby", "lobby\n", "-x",
                     "a" * 65, "%2F", "?x=1", "#x"]),
)
BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def _unicode(s):
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def stored_text(text):
    """The documented rule: whitespace-only lines before the text and whitespace after it go."""
    lines = text.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    return "\n".join(lines).rstrip()


def valid_text(text):
    """The documented rule: not only whitespace, no controls but \\t \\n \\r, and <= 2000
    characters once blank lines around it are trimmed (stored_text)."""
    return (bool(text.strip()) and _unicode(text) and len(stored_text(text)) <= 2000
            and not any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in text))


def valid_name(name):
    """1-32 characters after trimming, no control or bidi characters, and the name rule of issue
    12 (app/people/names.py: nothing invisible, no separators, private-use or unassigned code points;
    tests/test_sessions_security.py pins its classes one by one)."""
    name = name.strip()
    return (0 < len(name) <= 32 and _unicode(name)
            and not any(unicodedata.category(c) == "Cc" or c in BIDI for c in name)
            and names.problem(name) is None)


def quote(segment):
    return urllib.parse.quote(segment, safe="", errors="surrogatepass")


def assert_json_error(response):
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data()[:300])
    body = response.get_json(silent=True)
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], \
        response.get_data()[:300]


def stored(client, room, message_id):
    """Read one message back from history by its id."""
    ms, seq = message_id.split("-")
    page = client.get("/rooms/%s/messages?before=%s-%d&limit=1" % (room, ms, int(seq) + 1))
    assert page.status_code == 200, page.get_data()[:300]
    return page.get_json()["messages"][0]


@settings(PROPERTY, max_examples=100)
@given(text=TEXTS, user=NAMES, room=ROOMS, raw_utf8=st.booleans())
@example(text="\ud800", user="ann", room="lobby", raw_utf8=False)
@example(text="\ud800", user="ann", room="lobby", raw_utf8=True)
@example(text="a\x00b", user="ann", room="lobby", raw_utf8=True)
@example(text="line\r\nline\rline\n", user=" ann ", room="lobby", raw_utf8=True)
@example(text="\u202eevil\u202c", user="ann", room="lobby", raw_utf8=False)
@example(text="x" * 2000, user="a" * 32, room="a" * 64, raw_utf8=True)
@example(text="ok", user="a\u202eb", room="lobby", raw_utf8=True)
def test_any_json_post_round_trips_exactly_or_gets_a_4xx(fuzz_app, text, user, room, raw_utf8):
    client = fuzz_app.test_client()
    payload = {"text": text, "user": user}
    if raw_utf8:  # UTF-8 as is; a lone surrogate then becomes invalid UTF-8 on the wire
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogatepass")
    else:  # \uXXXX escapes: a lone surrogate arrives as valid JSON for an invalid string
        body = json.dumps(payload).encode()
    response = client.post("/rooms/%s/messages" % quote(room), data=body,
                           content_type="application/json", headers=BEARER)
    canonical = keys.canonical_room(room)  # "Lobby" posts to "lobby"
    if canonical and valid_text(text) and valid_name(user):
        assert response.status_code == 201, (response.status_code, response.get_data()[:300])
        message = response.get_json()
        assert (message["text"], message["user"], message["room"]) == (stored_text(text), user.strip(), canonical)
        assert stored(client, canonical, message["id"]) == message
    else:
        assert_json_error(response)


@settings(PROPERTY, max_examples=50)
@given(text=st.text(st.characters(codec="utf-8"), max_size=30) | TEXTS.filter(_unicode),
       user=NAMES.filter(_unicode), multipart=st.booleans())
@example(text="a\r\nb\r\n", user="ann", multipart=False)
@example(text="a\r\nb\r\n", user="ann", multipart=True)
@example(text="a+b%20c&d=e", user="x&y=z", multipart=False)
def test_any_form_post_round_trips_or_gets_a_4xx(fuzz_app, text, user, multipart):
    """A form (fetch, so JSON back): stored as typed, CRLF as LF, blank lines around trimmed."""
    client = fuzz_app.test_client()
    room = "fuzz-form"
    fields = {"text": text, "user": user}
    if multipart:
        response = client.post("/rooms/%s/messages" % room, data=fields,
                               content_type="multipart/form-data", headers={**BEARER, **JSON})
    else:
        response = client.post("/rooms/%s/messages" % room, data=urllib.parse.urlencode(fields),
                               content_type="application/x-www-form-urlencoded",
                               headers={**BEARER, **JSON})
    typed = text.replace("\r\n", "\n")
    if valid_text(typed) and valid_name(user):
        assert response.status_code == 201, (response.status_code, response.get_data()[:300])
        message = response.get_json()
        assert (message["text"], message["user"]) == (stored_text(typed), user.strip())
        assert stored(client, room, message["id"]) == message
    else:
        assert_json_error(response)


@settings(PROPERTY, max_examples=40)
@given(name=NAMES, text=TEXTS)
@example(name="/", text="hi")
@example(name="..", text="hi")
@example(name="a\x00b", text="hi")
@example(name="\u202eann", text="hi")
@example(name="Ｆｕｚｚ", text="hi")
def test_a_browser_signs_in_with_any_name_and_posts_as_it_or_gets_a_4xx(fuzz_app, name, text):
    client = fuzz_app.test_client()
    token = client.get("/session").get_json()["csrf_token"]
    response = client.post("/session", json={"name": name}, headers={"X-CSRF-Token": token})
    if not valid_name(name):
        assert_json_error(response)
        return
    if response.status_code == 409 or fuzz_app.extensions["ripple"].names.is_reserved(name):
        assert_json_error(response)  # held by someone (another test's name), or the service's
        return
    assert response.status_code == 200, (response.status_code, response.get_data()[:300])
    token = response.get_json()["csrf_token"]
    try:
        sent = client.post("/rooms/fuzz-browser/messages", json={"text": text, "user": "someone-else"},
                           headers={"X-CSRF-Token": token})
        if valid_text(text):
            assert sent.status_code == 201, (sent.status_code, sent.get_data()[:300])
            assert (sent.get_json()["text"], sent.get_json()["user"]) == (stored_text(text), name.strip())
        else:
            assert_json_error(sent)
    finally:
        assert client.delete("/session", headers={"X-CSRF-Token": token}).status_code == 204


@settings(PROPERTY, max_examples=30)
@given(text=TEXTS, key=st.none() | st.text(ANY_CHAR.filter(lambda c: c not in "\r\n"), max_size=140))
def test_any_direct_message_is_delivered_or_gets_a_4xx(fuzz_app, browser, text, key):
    """A direct message to someone online, with any text and any idempotency key."""
    client, _ = browser
    recipient = client.get("/session").get_json()["name"]
    headers = dict(BEARER)
    if key is not None:
        try:
            key.encode("latin-1")
        except UnicodeEncodeError:
            key = key.encode("utf-8", "surrogatepass").decode("latin-1")  # as raw header bytes
        headers["Idempotency-Key"] = key
    response = fuzz_app.test_client().post(
        "/users/%s/messages" % quote(recipient), json={"text": text, "user": "fuzz-bot"},
        headers=headers)
    key_ok = not key or (len(key) <= 128 and key.isascii() and key.isprintable())
    if valid_text(text) and key_ok:
        assert response.status_code in (200, 201), (response.status_code, response.get_data()[:300])
        assert response.get_json()["to"] == recipient
    else:
        assert_json_error(response)


# --- The event stream through a real Gunicorn, with a read deadline ---------------------------

READ_DEADLINE = 5.0  # seconds for a whole answer; a stream's first events come at once


def raw_http(server, request, deadline=READ_DEADLINE):
    """Send raw request bytes; return (status, headers, body bytes).

    Reads until the connection closes, or for an event stream until its ``ready`` event has
    arrived. Raises AssertionError when nothing conclusive arrives before the deadline (a hang).
    """
    end = time.monotonic() + deadline
    data = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=deadline) as sock:
        sock.sendall(request)
        while True:
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep and b"text/event-stream" in head.lower() and b"\nevent: ready\n" in dechunk(rest):
                break
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no complete answer within %.1f s: %r" % (deadline, data[-300:]))
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:  # Gunicorn closes with the rest of a huge request unread
                chunk = b""
            except socket.timeout:
                continue
            if not chunk:
                break
            data += chunk
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, "no complete response head: %r" % data[:300]
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        rest = dechunk(rest)
    return status, headers, rest


def dechunk(body):
    """The payload of the complete chunks of a (possibly still arriving) chunked body."""
    out = b""
    while True:
        size_line, sep, rest = body.partition(b"\r\n")
        if not sep:
            return out
        size = int(size_line.split(b";")[0], 16)
        if size == 0 or len(rest) < size + 2:
            return out
        out += rest[:size]
        body = rest[size + 2:]


def sse_events(payload):
    """Parse event-stream bytes into (retry, [(event, id, data)]) up to the last complete event."""
    retry, events = None, []
    for block in payload.decode("utf-8").split("\n\n")[:-1]:
        fields = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            fields.setdefault(name, value[1:] if value.startswith(" ") else value)
        if "retry" in fields:
            retry = int(fields["retry"])
        if "event" in fields:
            events.append((fields["event"], fields.get("id"), fields.get("data")))
    return retry, events


def stream_request(room, query="", last_event_id=None):
    lines = [b"GET /rooms/%s/events%s HTTP/1.1" % (room.encode(), query.encode()),
             b"Host: 127.0.0.1", b"Accept: text/event-stream", b"Connection: close"]
    if last_event_id is not None:
        lines.append(b"Last-Event-ID: " + last_event_id)
    return b"\r\n".join(lines) + b"\r\n\r\n"


@pytest.fixture(scope="module")
def stream_room(server):
    """A room with five messages: (name, their ids oldest first)."""
    room = "fuzz-" + uuid.uuid4().hex[:12]
    ids = []
    for i in range(5):
        status, body = post(server.url, room, "m%d" % i)
        assert status == 201
        ids.append(body["id"])
    return room, ids


@pytest.fixture
def quiet_log(server):
    """Fail the test if Gunicorn logged an unhandled error while it ran."""
    start = server.log_path.stat().st_size
    yield
    with open(server.log_path, "rb") as log:
        log.seek(start)
        new = log.read().decode("utf-8", "replace")
    assert "Traceback" not in new and "Error handling request" not in new, new[-3000:]


_ID = st.integers(0, 2**64 + 1)
CURSORS = st.one_of(
    st.none(),
    st.integers(0, 4).map(lambda i: ("known", i)),                     # a real message id
    st.tuples(_ID, _ID).map(lambda p: ("raw", b"%d-%d" % p)),          # any id, some too large
    st.tuples(_ID, _ID, _ID, _ID).map(lambda p: ("raw", b"%d-%d.%d-%d" % p)),
    st.sampled_from([b"0-0", b"18446744073709551615-18446744073709551615", b"-1-0", b"1-0.",
                     b".1-0", b"1-0.x", b" 1-0 ", b"1e3-0", b"\xff\xfe", "\u202e1-0".encode(),
                     b"9" * 5000, b"%00"]).map(lambda b: ("raw", b)),
    st.binary(max_size=80).filter(lambda b: b"\r" not in b and b"\n" not in b).map(lambda b: ("raw", b)),
)
BACKLOGS = st.one_of(st.none(), st.integers(-3, 205).map(str),
                     st.sampled_from(["", "x", "1.5", " 3", "+2", "٣", "5_0", "9" * 40, "10**9", "%00"]),
                     st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=5))


def _backlog_ok(raw):
    try:
        return 0 <= int(raw) <= 200
    except ValueError:
        return False


@settings(PROPERTY, max_examples=100)
@given(cursor=CURSORS, backlog=BACKLOGS, in_query=st.booleans())
@example(cursor=("raw", b"18446744073709551615-18446744073709551615"), backlog=None, in_query=False)
@example(cursor=("raw", b"18446744073709551615-18446744073709551615"), backlog="3", in_query=True)
@example(cursor=("raw", b"0-0"), backlog=None, in_query=True)
@example(cursor=("raw", b"9" * 10240), backlog=None, in_query=False)
@example(cursor=None, backlog="-1", in_query=False)
@example(cursor=None, backlog="3", in_query=False)
@example(cursor=("known", 2), backlog="200", in_query=False)
def test_a_stream_answers_any_cursor_and_backlog_at_once(server, stream_room, quiet_log, cursor,
                                                         backlog, in_query):
    """200 with retry, the messages owed and a ready event carrying the head cursor; or a 4xx."""
    room, ids = stream_room
    raw = None
    if cursor is not None:
        raw = ids[cursor[1]].encode() if cursor[0] == "known" else cursor[1]
    query = {}
    if backlog is not None:
        query["backlog"] = backlog
    if raw is not None and in_query:
        query["last_event_id"] = raw
    qs = ("?" + urllib.parse.urlencode(query)) if query else ""
    status, headers, body = raw_http(server, stream_request(room, qs, None if in_query else raw))
    event("status %d" % status)
    assert status == 200 or 400 <= status < 500, (status, body[:300])
    if backlog is not None and not _backlog_ok(backlog):
        assert 400 <= status < 500, "a bad backlog %r was accepted" % backlog
    if status != 200:
        return
    assert headers["content-type"].startswith("text/event-stream")
    retry, events = sse_events(body)
    assert retry is not None and retry > 0
    names = [name for name, _, _ in events]
    assert names[-1] == "ready" and set(names[:-1]) <= {"message", "dropped"}, names
    assert events[-1][1] == ids[-1], "ready must carry the room's head cursor"
    sent = [event_id for name, event_id, _ in events if name == "message"]
    assert sent == sorted(sent, key=lambda i: tuple(map(int, i.split("-"))))
    parsed = None
    if raw is not None:  # as the server reads it: a header as Latin-1, a query as UTF-8
        parsed = keys.parse_cursor(raw.decode("utf-8", "replace") if in_query else raw.decode("latin-1"))
    if parsed is not None:  # resumed: exactly what came after the cursor
        after = [i for i in ids if keys.parse_stream_id(i) > parsed[0]]
        assert sent == after
        event("resumed, %d owed" % len(after))
    elif backlog is not None:  # fresh (or a malformed cursor, which means "now")
        assert sent == (ids[-int(backlog):] if int(backlog) else [])
    else:
        assert sent == []


# --- Explicit cases ---------------------------------------------------------------------------

INVALID_UTF8_FORMS = [
    pytest.param("application/x-www-form-urlencoded", b"text=caf%E9+%FF%FE&user=bob",
                 id="urlencoded-escaped"),
    pytest.param("application/x-www-form-urlencoded", b"text=caf\xe9&user=bob", id="urlencoded-raw"),
    pytest.param("multipart/form-data; boundary=b",
                 b'--b\r\nContent-Disposition: form-data; name="text"\r\n\r\ncaf\xe9\r\n'
                 b'--b\r\nContent-Disposition: form-data; name="user"\r\n\r\nbob\r\n--b--\r\n',
                 id="multipart"),
]


@pytest.mark.parametrize("content_type,body", INVALID_UTF8_FORMS)
def test_invalid_utf8_in_a_form_body_is_400_and_not_stored(fuzz_app, content_type, body):
    client = fuzz_app.test_client()
    room = "fuzz-utf8-" + uuid.uuid4().hex[:8]
    response = client.post("/rooms/%s/messages" % room, data=body, content_type=content_type,
                           headers={**BEARER, **JSON})
    assert client.get("/rooms/%s/messages" % room).get_json()["messages"] == []
    assert response.status_code == 400 and response.get_json()["error"]


@pytest.mark.parametrize("content_type,body", [
    ("application/x-www-form-urlencoded", b"name=caf\xe9"),
    ("application/x-www-form-urlencoded", b"name=caf%E9"),
    ("multipart/form-data; boundary=b",
     b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\ncaf\xe9\r\n--b--\r\n'),
], ids=["urlencoded-raw", "urlencoded-escaped", "multipart"])
def test_invalid_utf8_in_a_sign_in_form_is_never_a_5xx(fuzz_app, content_type, body):
    client = fuzz_app.test_client()
    token = client.get("/session").get_json()["csrf_token"]
    response = client.post("/session", data=body, content_type=content_type,
                           headers={"X-CSRF-Token": token})
    # 400: the form is not UTF-8 (replies.require_utf8_form sees the bytes past the CSRF check)
    assert response.status_code in (200, 303, 400, 409, 422), response.status_code
    client.delete("/session", headers={"X-CSRF-Token": token})


def test_a_10kb_last_event_id_is_refused_by_gunicorn(server, stream_room, quiet_log):
    status, _, body = raw_http(server, stream_request(stream_room[0], "", b"9" * 10240))
    assert status == 431, (status, body[:200])


def test_a_last_event_id_under_gunicorns_limit_means_now(server, stream_room, quiet_log):
    room, ids = stream_room
    status, _, body = raw_http(server, stream_request(room, "", b"1-0" + b"x" * 7000))
    assert status == 200
    _, events = sse_events(body)
    assert [(name, event_id) for name, event_id, _ in events] == [("ready", ids[-1])]


@pytest.mark.parametrize("path", ["/healthz", "/rooms/lobby/messages", "/rooms/lobby/events"])
def test_a_10kb_header_is_refused_by_gunicorn(server, quiet_log, path):
    request = (b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Junk: %s\r\n\r\n"
               % (path.encode(), b"a" * 10240))
    status, _, body = raw_http(server, request)
    assert status == 431, (status, body[:200])


def test_a_10kb_query_is_refused_by_gunicorn(server, stream_room, quiet_log):
    status, _, _ = raw_http(server, stream_request(stream_room[0], "?last_event_id=" + "9" * 10240))
    assert status == 414


def test_a_bad_backlog_on_the_real_server_is_400(server, stream_room, quiet_log):
    status, headers, body = raw_http(server, stream_request(stream_room[0], "?backlog=-1"))
    assert status == 400 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"]


BAD_ROOMS = ["a/b", "..", ".", "%00", "a%00b", "%01", "%1b", "%7f", "lobby%0a", "%09lobby",
             "%e2%80%ae" + "lobby", "lobby%e2%80%8f", "%c2%85", "%ff", "lob%20by", "-lobby", "a" * 65,
             "lob%e2%80%8bby", "%e3%85%a4"]


@pytest.mark.parametrize("method,template", [
    ("POST", "/rooms/%s/messages"), ("GET", "/rooms/%s/messages"), ("GET", "/rooms/%s/presence"),
    ("GET", "/rooms/%s/events"),
])
@pytest.mark.parametrize("room", BAD_ROOMS)
def test_bad_room_names_get_a_json_4xx(fuzz_app, method, template, room):
    response = fuzz_app.test_client().open(template % room, method=method, headers=BEARER,
                                           json={"text": "hi", "user": "ann"})
    assert_json_error(response)
    assert response.status_code in (400, 404)


@pytest.mark.parametrize("room", BAD_ROOMS)
def test_bad_room_names_get_a_404_page(fuzz_app, room):
    response = fuzz_app.test_client().get("/rooms/%s" % room)
    assert response.status_code == 404
    if "/" in room:  # /rooms/a/b is no route at all, and under /rooms/ that is API: JSON
        assert_json_error(response)
    else:
        assert response.mimetype == "text/html"


@pytest.mark.parametrize("room", ["", "%2F"])
@pytest.mark.parametrize("template", ["/rooms/%s/messages", "/rooms/%s/presence", "/rooms/%s/events"])
def test_an_empty_room_segment_gets_a_json_4xx(fuzz_app, room, template):
    assert_json_error(fuzz_app.test_client().get(template % room))


BAD_NAMES = ["a\x00b", "\x01ann", "ann\x1b[0m", "ann\x7f", "a\x85b", "\u202eann", "ann\u2066",
             "\u200fann", "a\tb", "a\nb", "", "   ", "x" * 33]
ODD_BUT_VALID_NAMES = ["/", "..", "a/b", "%00", "{x}", "<b>", " ann-%s "]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_user_names_get_a_4xx_everywhere(fuzz_app, name):
    client = fuzz_app.test_client()
    token = client.get("/session").get_json()["csrf_token"]
    signed = client.post("/session", json={"name": name}, headers={"X-CSRF-Token": token})
    assert_json_error(signed)
    assert signed.status_code == 422
    posted = client.post("/rooms/fuzz-names/messages", json={"text": "hi", "user": name}, headers=BEARER)
    assert_json_error(posted)
    assert posted.status_code == 422
    direct = client.post("/users/%s/messages" % quote(name), json={"text": "hi", "user": "bot"},
                         headers=BEARER)
    assert_json_error(direct)
    assert direct.status_code in (404, 405)


@pytest.mark.parametrize("name", ODD_BUT_VALID_NAMES)
def test_odd_but_valid_user_names_work(fuzz_app, name):
    if "%s" in name:
        name = name % uuid.uuid4().hex[:6]
    client = fuzz_app.test_client()
    posted = client.post("/rooms/fuzz-names/messages", json={"text": "hi", "user": name}, headers=BEARER)
    assert posted.status_code == 201 and posted.get_json()["user"] == name.strip()
    token = client.get("/session").get_json()["csrf_token"]
    signed = client.post("/session", json={"name": name}, headers={"X-CSRF-Token": token})
    assert signed.status_code in (200, 409), signed.get_data()
    if signed.status_code == 200:
        token = signed.get_json()["csrf_token"]
        recipient = quote(name.strip())
        direct = client.post("/users/%s/messages" % recipient, json={"text": "note to self"},
                             headers={"X-CSRF-Token": token})
        # The route takes a path, so a name with "/" (sent as %2F or as is) reaches its holder.
        assert direct.status_code == 201 and direct.get_json()["to"] == name.strip()
        assert client.delete("/session", headers={"X-CSRF-Token": token}).status_code == 204


@pytest.mark.parametrize("path", [
    "/rooms/lobby/events?backlog=-1", "/rooms/lobby/events?backlog=" + str(10**9),
    "/rooms/lobby/messages?limit=" + str(10**9), "/rooms/lobby/messages?limit=10**9",
    "/rooms/lobby/messages?limit=-1", "/rooms/lobby/messages?before=99999999999999999999999-0",
])
def test_out_of_range_numbers_are_400(fuzz_app, path):
    response = fuzz_app.test_client().get(path)
    assert response.status_code == 400 and response.get_json()["error"]


@pytest.mark.parametrize("path", ["/rooms/lobby/messages?before=0-0", "/rooms/lobby/messages?before=0-00"])
def test_history_before_the_first_possible_id_is_empty(fuzz_app, path):
    # Was a 503: Redis refuses the interval "(0-0" and every Redis error meant "unavailable".
    response = fuzz_app.test_client().get(path)
    assert response.status_code == 200 and response.get_json()["messages"] == []


def test_a_stream_resumed_from_the_largest_id_gets_ready(server, stream_room, quiet_log):
    # Was an unhandled ResponseError after the retry line: the stream died before "ready" and a
    # browser reconnected with the same cursor forever.
    room, ids = stream_room
    status, _, body = raw_http(server, stream_request(
        room, "", b"18446744073709551615-18446744073709551615"))
    assert status == 200
    _, events = sse_events(body)
    assert [(name, event_id) for name, event_id, _ in events] == [("ready", ids[-1])]


@pytest.mark.parametrize("path", ["/", "/healthz", "/rooms/lobby"])
def test_html_405_carries_allow(fuzz_app, path):
    response = fuzz_app.test_client().open(path, method="TRACE")
    assert response.status_code == 405 and "GET" in response.headers.get("Allow", "")
