"""The session cookie is sent only when it changed, or once it is due a fresh expiry: a browser
runs requests side by side (a page's stylesheet and icon, another tab's stream), and each cookie
an answer sends replaces the browser's. An answer that re-sent an unchanged session undid what a
request beside it had just written (a form post's flash, a sign-out, a sign-in in another tab)."""
import re
import time
import uuid
from email.utils import parsedate_to_datetime

import pytest

from app import create_app

from .sse import SSEStream
from .support import LIMITS_OFF, TOKEN, aged
from .test_rooms import create
from .web import Browser

HOUR = 3600


def signed_in(server, name):
    browser = Browser(server.url)
    assert browser.sign_in(name + "-" + str(time.monotonic_ns())[-6:]) == 200
    return browser


@pytest.fixture
def flask_app(redis_url):
    return create_app({"TESTING": True, "REDIS_URL": redis_url, "PUBLISH_TOKEN": TOKEN,
                       "SECRET_KEY": "test-secret", **LIMITS_OFF})


def flask_signed_in(app, name):
    """A test client signed in as ``name`` and a few characters more (its session freshly signed)."""
    client = app.test_client()
    token = client.get("/session").get_json()["csrf_token"]
    name = name + "-" + uuid.uuid4().hex[:6]
    assert client.post("/session", json={"name": name}, headers={"X-CSRF-Token": token}).status_code == 200
    return client


@pytest.mark.parametrize("path", ["/", "/static/style.css", "/static/favicon.svg", "/rooms/{room}",
                                  "/rooms/{room}/messages", "/session"])
def test_an_answer_to_an_unchanged_session_signed_moments_ago_sends_no_cookie(server, room, path):
    browser = signed_in(server, "ann")
    status, head, _ = browser.request("GET", path.format(room=room))
    assert status == 200 and head.get("Set-Cookie") is None


def test_a_stream_opened_with_a_session_signed_moments_ago_sends_no_cookie(server, room):
    browser = signed_in(server, "bo")
    stream = browser.stream(room)
    try:
        assert stream.status == 200 and stream.headers.get("Set-Cookie") is None
    finally:
        stream.close()


def test_a_stylesheet_and_icon_fetched_beside_a_sign_out_do_not_undo_it(server):
    # The page's files, asked for as it loaded, answered after the form's post (the flaky
    # test_a_member_leaves_a_private_room_without_javascript: its flash was gone).
    browser = signed_in(server, "cy")
    before = browser.cookie()  # what a request already on its way carries
    status, _, _ = browser.request("POST", "/session/leave", form={"csrf_token": browser.token})
    assert status == 303
    for path in ("/static/style.css", "/static/favicon.svg"):
        status, head, _ = Browser(server.url).request("GET", path, headers={"Cookie": before})
        assert status == 200 and head.get("Set-Cookie") is None, path
    assert b"You are signed out." in browser.request("GET", "/")[2]


def test_a_page_and_a_stream_opened_beside_a_form_post_keep_its_flash(server, room):
    browser = signed_in(server, "dee")
    assert create(browser, room)[0] == 201
    before = browser.cookie()  # another tab's requests, on their way
    status, _, _ = browser.request("POST", "/rooms/%s" % room,
                                   form={"_method": "DELETE", "confirm": "1", "csrf_token": browser.token})
    assert status == 303
    assert Browser(server.url).request("GET", "/", headers={"Cookie": before})[1].get("Set-Cookie") is None
    stream = SSEStream("%s/rooms/%s-b/events" % (server.url, room), {"Cookie": before})
    try:
        assert stream.status == 200 and stream.headers.get("Set-Cookie") is None
    finally:
        stream.close()
    assert ("#%s was deleted." % room).encode() in browser.request("GET", "/")[2]


def test_a_static_file_sends_no_cookie_and_does_not_vary_with_one(flask_app):
    client = flask_signed_in(flask_app, "di")
    client.set_cookie("session", aged(flask_app, client.get_cookie("session").value, 2 * HOUR))
    with client.get("/static/style.css") as answer:
        assert answer.status_code == 200 and "Set-Cookie" not in answer.headers
        assert "Cookie" not in answer.headers.get("Vary", "")


def test_a_session_signed_an_hour_ago_is_sent_again_unchanged_with_a_fresh_expiry(flask_app):
    client = flask_signed_in(flask_app, "ed")
    old = aged(flask_app, client.get_cookie("session").value, HOUR + 5)
    client.set_cookie("session", old)
    answer = client.get("/")
    sent = answer.headers["Set-Cookie"]
    value = re.match(r"session=([^;]+)", sent).group(1)
    loads = flask_app.session_interface.get_signing_serializer(flask_app).loads
    assert value != old and loads(value) == loads(old)
    expires = parsedate_to_datetime(re.search(r"Expires=([^;]+)", sent).group(1)).timestamp()
    assert abs(expires - (time.time() + flask_app.permanent_session_lifetime.total_seconds())) < 60


def test_a_shorter_lifetime_is_refreshed_after_a_tenth_of_it(redis_url):
    app = create_app({"TESTING": True, "REDIS_URL": redis_url, "PUBLISH_TOKEN": TOKEN, "SECRET_KEY": "test-secret",
                      "PERMANENT_SESSION_LIFETIME": 1000, **LIMITS_OFF})
    client = flask_signed_in(app, "fay")
    value = client.get_cookie("session").value
    client.set_cookie("session", aged(app, value, 90))
    assert "Set-Cookie" not in client.get("/").headers
    client.set_cookie("session", aged(app, value, 110))
    assert "Set-Cookie" in client.get("/").headers


@pytest.mark.parametrize("mode", ["cors", "same-origin", "no-cors"])
def test_a_scripts_fetch_refreshes_the_cookie_only_once_half_its_lifetime_is_gone(flask_app, mode):
    # A fetch or a stream runs beside the tab's form posts and other tabs' sign-ins: a page's
    # navigation refreshes it hourly, they only when a long-open tab would otherwise lose it.
    client = flask_signed_in(flask_app, "gil")
    value = client.get_cookie("session").value
    half = flask_app.permanent_session_lifetime.total_seconds() / 2
    client.set_cookie("session", aged(flask_app, value, 2 * HOUR))
    assert "Set-Cookie" not in client.get("/session", headers={"Sec-Fetch-Mode": mode}).headers
    assert "Set-Cookie" in client.get("/session", headers={"Sec-Fetch-Mode": "navigate"}).headers
    client.set_cookie("session", aged(flask_app, value, half + 60))
    assert "Set-Cookie" in client.get("/session", headers={"Sec-Fetch-Mode": mode}).headers

