"""Identity: nobody can post as someone else; CSRF on every browser write; the publish token."""
import json
import urllib.error
import urllib.request
import uuid

import pytest
from flask.sessions import SecureCookieSessionInterface

from app.people import identity

from .support import TOKEN


def fresh_name(prefix="ann"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:6])


def token_of(client):
    return client.get("/session").get_json()["csrf_token"]


def sign_in(client, name):
    return client.post("/session", json={"name": name}, headers={"X-CSRF-Token": token_of(client)})


def post(client, room, text, **extra):
    return client.post("/rooms/%s/messages" % room, json={"text": text, **extra},
                       headers={"X-CSRF-Token": token_of(client)})


def test_sign_in_returns_the_name_and_a_csrf_token(client):
    name = fresh_name()
    response = sign_in(client, name)
    assert response.status_code == 200
    assert response.get_json()["name"] == name and response.get_json()["csrf_token"]
    assert client.get("/session").get_json()["name"] == name


def test_not_signed_in_is_401_with_a_token_to_sign_in_with(client):
    response = client.get("/session")
    assert response.status_code == 401 and response.get_json()["csrf_token"]


def test_posting_without_a_session_is_401(client, room):
    response = post(client, room, "hi", user="anyone")
    assert response.status_code == 401 and "Sign in" in response.get_json()["error"]


def test_a_browser_cannot_choose_the_user_it_posts_as(client, room):
    name = fresh_name()
    sign_in(client, name)
    response = post(client, room, "hi", user="somebody-else")
    assert response.status_code == 201 and response.get_json()["user"] == name


def _full_width(name):
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in name)


@pytest.mark.parametrize("variant", [str.upper, _full_width], ids=["other-case", "full-width"])
def test_a_taken_name_cannot_be_claimed_in_another_case_or_width(app, variant):
    name = fresh_name()
    first, second = app.test_client(), app.test_client()
    assert sign_in(first, name).status_code == 200
    response = sign_in(second, variant(name))
    assert response.status_code == 409 and "taken" in response.get_json()["error"]


def test_signing_out_frees_the_name(app):
    name = fresh_name()
    first, second = app.test_client(), app.test_client()
    sign_in(first, name)
    assert first.delete("/session", headers={"X-CSRF-Token": token_of(first)}).status_code == 204
    assert sign_in(second, name).status_code == 200


def test_asking_who_one_is_before_signing_in_answers_401_with_a_code_and_a_token(client):
    response = client.get("/session", headers={"Accept": "application/json"})
    body = response.get_json()
    assert response.status_code == 401
    assert body["code"] == "unauthorized" and body["error"] and body["csrf_token"]


def test_a_forged_cookie_is_not_a_session(app, client, room):
    forged = SecureCookieSessionInterface().get_signing_serializer(
        type("A", (), {"secret_key": "not-the-key", "config": app.config})())
    client.set_cookie("session", forged.dumps({"name": "admin", "sid": "x"}))
    assert client.get("/session").status_code == 401
    assert post(client, room, "hi").status_code in (400, 401)  # its CSRF token is no good either


def test_a_stale_session_whose_name_was_taken_cannot_post(app, redis_client, room):
    name = fresh_name()
    stale, newcomer = app.test_client(), app.test_client()
    sign_in(stale, name)
    redis_client.delete(identity.Names.key(name))  # the claim expired while the tab slept
    assert sign_in(newcomer, name).status_code == 200
    response = post(stale, room, "am I still me?")
    assert response.status_code == 409 and "taken" in response.get_json()["error"]


def test_post_without_csrf_token_is_rejected(client, room):
    sign_in(client, fresh_name())
    response = client.post("/rooms/%s/messages" % room, json={"text": "hi"})
    assert response.status_code == 400 and "CSRF" in response.get_json()["error"]


@pytest.mark.parametrize("language, words", [("en", "publish token"), ("zh-CN", "发布令牌")])
def test_a_program_posting_with_no_token_at_all_is_told_how_to_authenticate(server, room, language, words):
    # Not "this page was out of date ... your text is kept": a curl without Authorization has no page.
    request = urllib.request.Request(
        "%s/rooms/%s/messages" % (server.url, room), data=json.dumps({"text": "hi"}).encode(), method="POST",
        headers={"Content-Type": "application/json", "Accept-Language": language})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    body = json.loads(refused.value.read())
    assert refused.value.code == 400 and body["code"] == "csrf"
    assert words in body["error"] and "Authorization: Bearer" in body["error"], body


def test_post_with_a_wrong_csrf_token_is_rejected(client, room):
    sign_in(client, fresh_name())
    response = client.post("/rooms/%s/messages" % room, json={"text": "hi"}, headers={"X-CSRF-Token": "forged"})
    assert response.status_code == 400


def test_form_post_without_csrf_token_is_rejected(client, room):
    sign_in(client, fresh_name())
    response = client.post("/rooms/%s/messages" % room, data={"text": "hi"})
    assert response.status_code == 400


def test_the_publish_token_may_name_any_user_without_csrf(client, room):
    response = client.post("/rooms/%s/messages" % room, json={"text": "deploy done", "user": "ci-bot"},
                           headers={"Authorization": "Bearer " + TOKEN})
    assert response.status_code == 201 and response.get_json()["user"] == "ci-bot"


def test_a_wrong_publish_token_gets_no_exemption(client, room):
    response = client.post("/rooms/%s/messages" % room, json={"text": "x", "user": "ci-bot"},
                           headers={"Authorization": "Bearer wrong"})
    # no exemption, no session: refused, and said to be the token's fault (not a missing CSRF token)
    assert response.status_code == 401 and response.get_json()["code"] == "token_invalid"


def test_session_cookie_is_httponly_and_samesite_lax(client):
    sign_in(client, fresh_name())
    cookie = client.get_cookie("session")
    assert cookie.http_only and cookie.same_site == "Lax" and not cookie.secure


def test_session_cookie_is_secure_over_https(app):
    client = app.test_client()
    client.get("/session", base_url="https://localhost")
    assert client.get_cookie("session", domain="localhost").secure


def test_secret_key_is_generated_once_and_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    fake = type("App", (), {"instance_path": str(tmp_path), "config": {}})()
    first, second = identity.load_secret_key(fake), identity.load_secret_key(fake)
    assert first == second and len(first) == 64
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("name", ["", "   ", "x" * 33, "a\u202eb", "tab\there"])
def test_bad_names_get_a_clear_error(client, name):
    response = sign_in(client, name)
    assert response.status_code == 422 and response.get_json()["error"]


def test_sign_in_form_with_a_taken_name_shows_the_error_and_keeps_the_name(app):
    name = fresh_name()
    sign_in(app.test_client(), name)
    browser = app.test_client()
    token = token_of(browser)
    response = browser.post("/session", data={"name": name.upper(), "next": "/rooms/x", "csrf_token": token})
    html = response.get_data(as_text=True)
    assert response.status_code == 409 and "taken" in html and 'value="%s"' % name.upper() in html


def test_sign_in_never_redirects_off_site(client):
    token = token_of(client)
    response = client.post("/session", data={"name": fresh_name(), "next": "//evil.example/", "csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == "/"


def test_a_form_post_refused_for_its_csrf_token_shows_the_room_with_the_text_kept(client, room):
    sign_in(client, fresh_name())
    response = client.post("/rooms/%s/messages" % room, data={"text": "my words", "csrf_token": "stale"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "my words</textarea>" in html and "CSRF" in html
