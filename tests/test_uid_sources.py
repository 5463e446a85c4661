"""Stable ids (``uid``) are namespaced by who vouched for the person: the same ``sub`` from a JWT,
a trusted proxy's header and an OpenID Connect provider, or an OIDC sub equal to an account's
id, is different people, who cannot edit or delete each other's messages. Real Gunicorn (2
gevent workers), real Redis, a real local OpenID provider."""
import json
import uuid

import pytest

from .servers import Gunicorn
from .support import LIMITS_OFF, SERVER_ENV
from .test_accounts import account_holder, token
from .test_jwt_sessions import AUDIENCE, SECRET, bearer, make_token
from .test_oidc import oidc_server, provider, sign_in_through_the_provider  # noqa: F401 - fixtures
from .web import Browser

PROXY_HEADER = "X-Forwarded-User"
# The local OpenID provider (on a thread here) calls Authlib APIs that Authlib now deprecates.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def both_server(redis_url, tmp_path_factory):
    """Tokens from the host application and a trusted proxy's user header, on one service."""
    env = dict(SERVER_ENV, RIPPLE_JWT_SECRET=SECRET, RIPPLE_JWT_AUDIENCE=AUDIENCE,
               RIPPLE_TRUSTED_PROXIES="1", RIPPLE_TRUSTED_USER_HEADER=PROXY_HEADER)
    gunicorn = Gunicorn(tmp_path_factory.mktemp("uid-sources"), redis_url=redis_url, workers=2, env=env)
    gunicorn.start()
    yield gunicorn
    gunicorn.halt()


class Proxied:
    """A person the proxy names on every request (with the CSRF token of their session)."""

    def __init__(self, server, user):
        self.browser, self.headers = Browser(server.url), {PROXY_HEADER: user}
        status, _, body = self.browser.request("GET", "/session", headers=self.headers)
        assert status == 200
        self.me = json.loads(body)
        self.browser.token = self.me["csrf_token"]

    def request(self, method, path, body=None):
        status, _, raw = self.browser.request(method, path, body=body, headers=self.headers)
        return status, json.loads(raw or b"{}")


class Bearer:
    """A host application's user presenting their JWT on every request."""

    def __init__(self, server, sub):
        self.browser = Browser(server.url)
        self.signed, self.claims = make_token(sub=sub, name="jwt-" + uuid.uuid4().hex[:6])

    def request(self, method, path, body=None):
        status, _, raw = self.browser.request(method, path, body=body, headers=bearer(self.signed))
        return status, json.loads(raw or b"{}")


def alice():
    return "alice-" + uuid.uuid4().hex[:6]


def test_a_jwt_user_and_a_proxy_user_with_the_same_sub_have_different_uids(both_server, room):
    same = alice()
    jwt_user, proxy_user = Bearer(both_server, same), Proxied(both_server, same)
    status, from_jwt = jwt_user.request("POST", "/rooms/%s/messages" % room, {"text": "from the token"})
    assert status == 201 and from_jwt["uid"] == "jwt:" + same
    status, from_proxy = proxy_user.request("POST", "/rooms/%s/messages" % room, {"text": "from the proxy"})
    assert status == 201 and from_proxy["uid"] == "proxy:" + same


def test_a_jwt_user_cannot_edit_or_delete_the_message_of_a_proxy_user_with_the_same_sub(both_server, room):
    same = alice()
    jwt_user, proxy_user = Bearer(both_server, same), Proxied(both_server, same)
    _, sent = proxy_user.request("POST", "/rooms/%s/messages" % room, {"text": "mine"})
    path = "/rooms/%s/messages/%s" % (room, sent["id"])
    status, body = jwt_user.request("PATCH", path, {"text": "yours now"})
    assert (status, body["code"]) == (403, "not_yours_edit")
    status, body = jwt_user.request("DELETE", path)
    assert (status, body["code"]) == (403, "not_yours_delete")
    assert proxy_user.request("PATCH", path, {"text": "still mine"})[0] == 200


def test_a_proxy_user_cannot_edit_or_delete_the_message_of_a_jwt_user_with_the_same_sub(both_server, room):
    same = alice()
    jwt_user, proxy_user = Bearer(both_server, same), Proxied(both_server, same)
    _, sent = jwt_user.request("POST", "/rooms/%s/messages" % room, {"text": "mine"})
    path = "/rooms/%s/messages/%s" % (room, sent["id"])
    status, body = proxy_user.request("PATCH", path, {"text": "yours now"})
    assert (status, body["code"]) == (403, "not_yours_edit")
    status, body = proxy_user.request("DELETE", path)
    assert (status, body["code"]) == (403, "not_yours_delete")
    assert jwt_user.request("DELETE", path)[0] == 204


def test_the_session_says_the_source_given_id_and_the_uid_messages_carry(both_server):
    same = alice()
    me = Proxied(both_server, same).me
    assert (me["id"], me["uid"], me["kind"]) == (same, "proxy:" + same, "token")
    status, me = Bearer(both_server, same).request("GET", "/session")
    assert status == 200 and (me["id"], me["uid"], me["kind"]) == (same, "jwt:" + same, "token")


def test_an_oidc_user_whose_sub_is_an_accounts_id_cannot_delete_its_message(oidc_server, room):  # noqa: F811
    owner = account_holder(oidc_server)
    account_id = token(owner)[1]["id"]
    _, sent = owner.post(room, "the account's words")
    assert sent["uid"] == account_id
    impostor, status, _ = sign_in_through_the_provider(oidc_server, account_id)
    assert status == 303
    me = token(impostor)[1]
    assert (me["id"], me["uid"]) == (account_id, "oidc:" + account_id)
    status, _, body = impostor.request("DELETE", "/rooms/%s/messages/%s" % (room, sent["id"]))
    assert (status, json.loads(body)["code"]) == (403, "not_yours_delete")
    status, _, _ = impostor.request("PATCH", "/rooms/%s/messages/%s" % (room, sent["id"]), body={"text": "mine"})
    assert status == 403


TOO_LONG = "a" * 5000 + "." + "b" * 5000 + ".c"  # a JWT's shape, over jwts.MAX_TOKEN_CHARS


def too_long_said(status, found):
    return (status == 400 and found["code"] == "token_too_long" and "too long" in found["error"]
            and "string" not in found["error"])


def test_a_token_over_the_size_limit_is_refused_as_too_long_on_exchange(both_server):
    browser = Browser(both_server.url)
    token(browser)
    status, _, body = browser.request("POST", "/session", body={"token": TOO_LONG})
    assert too_long_said(status, json.loads(body))


def test_a_bearer_token_over_the_size_limit_is_refused_as_too_long(redis_url):
    # Through the app itself: Gunicorn's own header limit (8190 bytes) answers a longer header
    # line before Ripple sees it; a server in front with a larger limit passes it on.
    from app import create_app
    app = create_app({"TESTING": True, "REDIS_URL": redis_url, "SECRET_KEY": "test-secret",
                      "JWT_SECRET": SECRET, "JWT_AUDIENCE": AUDIENCE, **LIMITS_OFF})
    answer = app.test_client().get("/session", headers=bearer(TOO_LONG))
    assert too_long_said(answer.status_code, answer.get_json())
