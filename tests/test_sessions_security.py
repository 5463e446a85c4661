"""Sessions and names hold against the attacks of issue 12 and the faults of issue 11, through
real Gunicorn (2 gevent workers) and real Redis: a sign-in rotates the session, a sign-out
revokes it everywhere and ends its streams, a refused request never touches the cookie, names
cannot hide invisible characters or impersonate a name in use, a name frees itself soon after
its holder leaves, and ``next`` never leaves the site."""
import copy
import http.server
import json
import re
import threading
import urllib.parse
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.people.names import Names, fold
from app.rooms import keys
from app.web import targets

from .servers import Gunicorn, wait_until
from .support import SERVER_ENV, TEST_HEARTBEAT, TOKEN, ready, streams_on_both_workers
from .web import Browser

GRACE = 3 * TEST_HEARTBEAT  # RIPPLE_NAME_GRACE_HEARTBEATS (3) heartbeats


def fresh(prefix="ann"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:6])


def person(server, prefix="ann"):
    browser = Browser(server.url)
    assert browser.sign_in(fresh(prefix)) == 200
    return browser


def copy_of(browser):
    """Another browser holding a copy of ``browser``'s cookies and CSRF token (a stolen or
    planted cookie)."""
    other = Browser(browser.base_url)
    for cookie in browser.jar:
        other.jar.set_cookie(copy.copy(cookie))
    other.token, other.name = browser.token, browser.name
    return other


def whoami(browser):
    status, _, body = browser.request("GET", "/session")
    return status, json.loads(body)


def sid_of(app, browser):
    cookie = next(c for c in browser.jar if c.name == "session")
    return app.session_interface.get_signing_serializer(app).loads(cookie.value)["sid"]


def until_end(stream, timeout=10):
    """Read to the end of the stream; return the events on the way (raise at the deadline)."""
    events = []
    while True:
        event = stream.next(timeout)
        if event is None:
            return events
        events.append(event)


def quiet_until(stream, marker_text, timeout=10):
    """Events before the room message ``marker_text`` (posted last, to bound a 'nothing came')."""
    event, before = stream.until("message", timeout)
    while event.json()["text"] != marker_text:
        more_event, more = stream.until("message", timeout)
        before += [event] + more
        event = more_event
    return before


def token_post(server, room, user, text="hi"):
    return Browser(server.url).request("POST", "/rooms/%s/messages" % room, body={"text": text, "user": user},
                                       headers={"Authorization": "Bearer " + TOKEN})


# -- 12.1: every sign-in is a new session --------------------------------------------------------

def test_signing_in_issues_a_new_session_and_a_planted_cookie_gets_nothing(server, room):
    attacker = person(server, "eve")
    planted = copy_of(attacker)          # the attacker's cookie, planted in the victim's browser
    victim = planted
    assert victim.sign_in(fresh("vic")) == 200
    assert victim.cookie() != attacker.cookie()
    assert whoami(attacker)[0] == 401    # the planted session ended when the victim signed in
    bob = person(server, "bob")
    with attacker.stream(room) as spy:
        spy.until("ready")
        assert bob.direct(victim.name, "for the victim only")[0] == 201
        assert bob.post(room, "marker")[0] == 201
        assert all(e.name != "direct" for e in quiet_until(spy, "marker"))


def test_the_next_person_on_a_shared_browser_sees_none_of_the_previous_ones_direct_messages(server, room):
    shared = person(server, "ann")
    bob = person(server, "bob")
    assert bob.direct(shared.name, "private to ann")[0] == 201
    assert shared.sign_in(fresh("cat")) == 200  # the next person, same browser, no sign-out
    with shared.stream(room) as stream:
        _, before = stream.until("ready")
    assert [e for e in before if e.name == "direct"] == []


def test_signing_in_again_ends_the_streams_of_the_previous_session(server, room):
    browser = person(server, "ann")
    with browser.stream(room) as old:
        old.until("ready")
        assert browser.sign_in(fresh("cat")) == 200
        event, _ = old.until("signed-out")
        assert event.json()["message"]
        assert until_end(old) == []


# -- 12.2 / 11.8: sign-out revokes the session everywhere ----------------------------------------

def test_a_copied_cookie_is_refused_after_sign_out(server, room):
    ann = person(server, "ann")
    bob = person(server, "bob")
    assert bob.direct(ann.name, "before sign-out")[0] == 201
    thief = copy_of(ann)
    assert ann.request("DELETE", "/session")[0] == 204
    assert whoami(thief)[0] == 401
    status, body = thief.post(room, "still me?")
    assert status == 401 and "Sign in" in body["error"]
    with thief.stream(room) as stream:
        _, before = stream.until("ready")
    assert [e.name for e in before if e.name in ("direct", "presence")] == []  # no DMs, not online
    assert Browser(server.url).sign_in(ann.name) == 200  # the name went with the session


def test_sign_out_ends_its_streams_on_every_worker_at_once(server, room):
    ann = person(server, "ann")
    streams = streams_on_both_workers(server, lambda: ready(ann.stream(room)))  # the session's cap: 10
    try:
        assert ann.request("DELETE", "/session")[0] == 204
        for stream in streams:
            stream.until("signed-out", timeout=5)
            assert until_end(stream, timeout=5) == []
    finally:
        for stream in streams:
            stream.close()


def test_a_stream_whose_session_ended_unseen_ends_at_its_next_heartbeat(server, app, redis_client, room):
    ann = person(server, "ann")
    with ann.stream(room) as stream:
        stream.until("ready")
        # The record goes without the word on the channel (as if this worker missed it).
        redis_client.delete(keys.PersonKeys(sid_of(app, ann)).session)
        stream.until("signed-out", timeout=10 * TEST_HEARTBEAT)
        assert until_end(stream) == []


def test_a_signed_out_session_never_claims_its_name_again(server, app, redis_client, room):
    ann = person(server, "ann")
    with ann.stream(room) as stream:
        stream.until("ready")
        assert ann.request("DELETE", "/session")[0] == 204
        stream.until("signed-out")
        until_end(stream)
    assert redis_client.get(Names.key(ann.name)) is None


# -- 12.3: a refused request never touches the session cookie ------------------------------------

def test_a_cross_site_form_post_sets_no_cookie(server, room):
    ann = person(server, "ann")
    stranger = Browser(server.url)  # a SameSite=Lax cookie is not sent on a cross-site POST
    status, headers, _ = stranger.request("POST", "/rooms/%s/messages" % room, form={"text": "hi"},
                                          headers={"Origin": "http://evil.example"})
    assert status == 400 and headers.get("Set-Cookie") is None
    assert ann.post(room, "still signed in")[0] == 201


@pytest.mark.parametrize("request_args", [
    ("POST", "/rooms/%s/messages", {"form": {"text": "hi", "csrf_token": "stale"}}),
    ("POST", "/rooms/%s/messages", {"body": "not an object"}),
    ("POST", "/session", {"form": {"name": "", "csrf_token": "stale"}}),
    ("GET", "/rooms/%s/messages?limit=0", {}),
], ids=["csrf", "bad-json", "sign-in-csrf", "bad-query"])
def test_an_error_answer_leaves_the_session_cookie_alone(server, room, request_args):
    ann = person(server, "ann")
    method, path, kwargs = request_args
    status, headers, _ = ann.request(method, path.replace("%s", room), **kwargs)
    assert status == 400 and headers.get("Set-Cookie") is None
    assert whoami(ann)[1]["name"] == ann.name


# -- 11.9: a name lives while its holder is here, and shortly after ------------------------------

def test_a_name_is_free_a_few_heartbeats_after_its_last_stream_closes(server, room):
    ann = person(server, "ann")
    with ann.stream(room) as stream:
        stream.until("ready")
    newcomer = Browser(server.url)
    wait_until(lambda: newcomer.sign_in(ann.name) == 200, timeout=GRACE + 10 * TEST_HEARTBEAT,
               interval=TEST_HEARTBEAT, message="the name to be free")


def test_an_open_stream_keeps_its_name_and_the_409_says_they_are_here(server, redis_client, room):
    ann = person(server, "ann")
    claim = Names.key(ann.name)
    with ann.stream(room) as stream:
        stream.until("ready")
        redis_client.pexpire(claim, 300)  # as if the sign-in's idle window were nearly over
        wait_until(lambda: (redis_client.pttl(claim) or 0) > 600, timeout=10 * TEST_HEARTBEAT,
                   interval=0.05, message="the stream's heartbeat to refresh the claim")
        other = Browser(server.url)
        other.sign_in(fresh("x"))
        status, _, body = other.request("POST", "/session", body={"name": ann.name})
    assert status == 409 and "in use by someone else right now" in json.loads(body)["error"]


@pytest.fixture(scope="module")
def short_idle_server(redis_url, tmp_path_factory):
    """A server whose names are kept 3 s after their holder's last request (no stream)."""
    gunicorn = Gunicorn(tmp_path_factory.mktemp("idle"), redis_url=redis_url, workers=2,
                        env=dict(SERVER_ENV, RIPPLE_NAME_IDLE_SECONDS="3"))
    gunicorn.start()
    yield gunicorn
    gunicorn.halt()


def test_without_a_stream_a_name_is_kept_for_the_idle_window_then_freed(short_idle_server):
    ann = person(short_idle_server, "ann")  # JavaScript off: requests only, no stream
    other = Browser(short_idle_server.url)
    status, _, body = other.request("GET", "/session")
    other.token = json.loads(body)["csrf_token"]
    status, _, body = other.request("POST", "/session", body={"name": ann.name})
    error = json.loads(body)["error"]
    assert status == 409 and "kept for someone else who was here in the last" in error
    assert "right now" not in error  # they have no stream open: not "online"
    wait_until(lambda: other.sign_in(ann.name) == 200, timeout=10, interval=0.25,
               message="the name to be free after the idle window")


# -- 12.4: one name rule everywhere; no look-alikes; reserved names ------------------------------

BAD_NAMES = {
    "zero-width-space": "ann\u200b", "only-zero-width": "\u200b\u200c\u200d", "ideographic-blank": "\u3000",
    "braille-blank": "\u2800\u2800", "hangul-filler": "\u3164", "soft-hyphen": "an\u00adn",
    "word-joiner": "an\u2060n", "bom": "\ufeffann", "cgj": "a\u034fnn", "lone-variation-selector": "\ufe0f",
    "selector-on-a-letter": "ann\ufe0f", "tag-characters": "ann\U000e0041", "line-separator": "a\u2028b",
    "paragraph-separator": "a\u2029b", "private-use": "\ue000ann", "unassigned": "ann\u0378",
    "bidi-override": "a\u202eb", "mongolian-vowel-separator": "an\u180en", "combining-first": "\u0301ann",
    "zalgo": "a" + "\u0301" * 6, "newline": "a\nb", "zwj-between-letters": "a\u200db",
}


@pytest.mark.parametrize("name", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
def test_sign_in_refuses_invisible_separator_control_private_and_unassigned_names(server, name):
    browser = Browser(server.url)
    assert browser.sign_in(name) == 422


@pytest.mark.parametrize("name", ["Zoë", "李小龙", "👨\u200d👩\u200d👧 fam", "❤\ufe0f ann", "Ann Lee",
                                  "कृष्ण", "مهر\u200cناز"], ids=["latin", "han", "emoji-zwj", "emoji-vs16",
                                                              "space", "devanagari", "persian-zwnj"])
def test_real_names_in_any_script_are_accepted(server, name):
    assert Browser(server.url).sign_in("%s %s" % (name, uuid.uuid4().hex[:4])) == 200


@pytest.mark.parametrize("name", ["ann\u200b", "\u2800", "a\u2028b"], ids=["zwsp", "blank", "separator"])
def test_token_posts_apply_the_same_rule(server, room, name):
    status, _, body = token_post(server, room, name)
    assert status == 422 and json.loads(body)["error"]


def test_the_cli_applies_the_same_rule(app, room):
    result = app.test_cli_runner().invoke(args=["publish", room, "hi", "--user", "ann\u200b"])
    assert result.exit_code == 2 and "invisible" in result.output


@pytest.mark.parametrize("swap", [("a", "\u0430"), ("o", "\u03bf"), ("m", "rn"), ("l", "1")],
                         ids=["cyrillic-a", "greek-omicron", "rn-for-m", "one-for-l"])
def test_a_look_alike_of_a_name_in_use_is_taken(server, swap):
    real, fake = swap
    name = "%s%s-%s" % (real, real, uuid.uuid4().hex[:4].replace(real, "x"))
    ann = Browser(server.url)
    assert ann.sign_in(name) == 200
    impostor = Browser(server.url)
    impostor.sign_in("x-" + uuid.uuid4().hex[:4])
    status, _, body = impostor.request("POST", "/session", body={"name": name.replace(real, fake)})
    error = json.loads(body)["error"]
    assert status == 409 and "looks the same as “%s”" % name in error


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=12))
def test_the_form_names_are_compared_in_is_a_fixed_point(name):
    """Two names collide when their folded forms are equal: folding again changes nothing."""
    assert fold(fold(name)) == fold(name)


def test_a_direct_message_to_a_look_alike_reaches_the_one_who_holds_the_name(server):
    ann = person(server, "ann")
    bob = person(server, "bob")
    status, sent = bob.direct(ann.name.replace("a", "\u0430"), "hi")
    assert status == 201 and sent["to"] == ann.name


@pytest.mark.parametrize("name", ["system", "Admin", "ripple", "\u0430dmin", "ROOT", "moderator"])
def test_browsers_cannot_take_the_services_names(server, name):
    browser = Browser(server.url)
    status, _, body = browser.request("GET", "/session")
    browser.token = json.loads(body)["csrf_token"]
    status, _, body = browser.request("POST", "/session", body={"name": name})
    assert status == 422 and "reserved" in json.loads(body)["error"]


def test_server_sent_messages_are_marked_and_shown_marked(server, room):
    status, _, body = token_post(server, room, "system", "maintenance at noon")
    assert status == 201 and json.loads(body)["bot"] is True
    ann = person(server, "ann")
    status, sent = ann.post(room, "a person")
    assert status == 201 and "bot" not in sent
    status, _, page = Browser(server.url).request("GET", "/rooms/%s" % room)
    html = page.decode()
    assert 'data-bot' in html and html.count("data-bot") == 1


def test_the_cli_default_sender_is_marked(app, room):
    result = app.test_cli_runner().invoke(args=["publish", room, "deployed"])
    assert result.exit_code == 0 and json.loads(result.output)["bot"] is True


# -- 12.13: next never leaves the site -------------------------------------------------------------

HOSTILE_NEXT = [
    "//evil.example/", "/\t/evil.example/", "/\n/evil.example/", "/\r\n/evil.example", "/\\evil.example",
    "\\\\evil.example", "/\\/evil.example", "https://evil.example", "http:evil.example", "javascript:alert(1)",
    "  //evil.example", "\x00//evil.example", "/\x00/evil.example", "/%0a/evil", "///evil.example",
    "/\u2028/evil.example", "/\u200b/evil.example", "/ /evil.example", "\t//evil.example", "%2F%2Fevil.example",
    "data:text/html,x", "/\x7f/evil.example", "/\u3000/evil.example", "/\ufeff/evil.example", "x" * 5000,
    "/rooms/x\r\nSet-Cookie: a=b",
]


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_sign_in_never_redirects_off_site(server, target):
    browser = Browser(server.url)
    status, _, body = browser.request("GET", "/session")
    browser.token = json.loads(body)["csrf_token"]
    status, headers, _ = browser.request("POST", "/session", form={"name": fresh(), "next": target,
                                                                   "csrf_token": browser.token})
    assert status == 303
    location = urllib.parse.urlsplit(urllib.parse.urljoin(server.url + "/", headers["Location"]))
    assert location.netloc == urllib.parse.urlsplit(server.url).netloc
    assert "Set-Cookie" not in headers["Location"]


def test_a_local_next_is_kept(server):
    browser = Browser(server.url)
    status, _, body = browser.request("GET", "/session")
    browser.token = json.loads(body)["csrf_token"]
    status, headers, _ = browser.request("POST", "/session", form={
        "name": fresh(), "next": "/rooms/general?x=1", "csrf_token": browser.token})
    assert status == 303 and headers["Location"] == "/rooms/general?x=1"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from("/\\\t\n\r :.@%?#ab\x00\x7f\u2028\u200b\u3000é"), max_size=12)
       | st.text(max_size=20))
def test_local_targets_are_always_same_origin_paths(target):
    result = targets.local(target, "/")
    assert result.isascii() and result.isprintable() and "\\" not in result
    assert result.startswith("/") and not result.startswith("//")
    # What a browser resolves it to (WHATWG: the same as urljoin once no tab, newline or
    # backslash is left) stays on this origin.
    resolved = urllib.parse.urlsplit(urllib.parse.urljoin("https://ripple.example/room", result))
    assert (resolved.scheme, resolved.netloc) == ("https", "ripple.example")


# -- 12.3 in a real browser: another site's form post cannot sign a person out ------------------

@pytest.fixture
def other_site(server, room):
    """A page on another site (``localhost``, while Ripple is ``127.0.0.1``) holding a form that
    posts to the room, as any website could."""
    page = ('<!doctype html><form method="post" action="%s/rooms/%s/messages">'
            '<input name="text" value="from elsewhere"><button>Win a prize</button></form>'
            % (server.url, room)).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield "http://localhost:%d/" % httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.browser
def test_a_cross_site_form_post_in_a_browser_leaves_the_person_signed_in(server, room, other_site, chromium):
    from playwright.sync_api import expect

    from .browser import close_context
    name = fresh()
    context = chromium.new_context()
    try:
        context.set_default_timeout(10_000)
        page = context.new_page()
        page.goto("%s/rooms/%s" % (server.url, room))
        page.fill("#name", name)
        page.get_by_role("button", name="Start chatting").click()
        expect(page.locator("[data-whoami]")).to_have_text(name)
        # The signed payload (without its timestamp and signature: a request of the page may
        # refresh those meanwhile) is the session's content.
        def session_payload():
            return [c["value"].rsplit(".", 2)[0] for c in context.cookies() if c["name"] == "session"]
        before = session_payload()
        page.goto(other_site)
        with page.expect_response(lambda r: r.request.method == "POST") as refused:
            page.get_by_role("button", name="Win a prize").click()
        assert refused.value.status == 400  # no cookie came along (SameSite=Lax): no CSRF token
        assert refused.value.headers.get("set-cookie") is None
        assert session_payload() == before
        page.goto("%s/rooms/%s" % (server.url, room))
        expect(page.locator("[data-whoami]")).to_have_text(name)
    finally:
        close_context(context)


def test_a_same_origin_post_without_a_session_gets_a_working_one(server, room):
    """A stale page of ours (its session ended in another tab, JavaScript off): the refused form's
    answer starts a session, so the sign-in form it shows works on the next try; no loop of 400s."""
    browser = Browser(server.url)
    status, headers, page = browser.request("POST", "/rooms/%s/messages" % room,
                                            form={"text": "hello?", "csrf_token": "stale"},
                                            headers={"Origin": server.url})
    assert status == 400 and headers.get("Set-Cookie")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.decode()).group(1)
    status, _, _ = browser.request("POST", "/session", form={"name": fresh(), "csrf_token": token},
                                   headers={"Origin": server.url})
    assert status == 303
