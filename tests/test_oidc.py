"""Signing in with OpenID Connect against a real local provider (the oidc-provider-mock package
serves one), through real Gunicorn (2 gevent workers) and real Redis: the authorization-code
flow with PKCE, the provider's sub as the stable id."""
import json
import re
import urllib.parse
import urllib.request
import uuid
import warnings

import pytest
from authlib.deprecate import AuthlibDeprecationWarning  # its import sets an "always" filter for them

with warnings.catch_warnings():  # the provider package still imports authlib.jose (deprecated)
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)  # ahead of Authlib's own filter
    from oidc_provider_mock import User, run_server_in_thread

from .servers import Gunicorn
from .support import SERVER_ENV
from .web import Browser

# The provider (in this process, on a thread) calls Authlib APIs that Authlib now deprecates.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def provider():
    dana = User(sub="fixed-user", claims={"preferred_username": "Dana OIDC"})
    with run_server_in_thread(user_claims=[dana]) as server:
        yield "http://127.0.0.1:%d" % server.server_port


@pytest.fixture(scope="module")
def oidc_server(redis_url, tmp_path_factory, provider):
    env = dict(SERVER_ENV, RIPPLE_OIDC_ISSUER=provider, RIPPLE_OIDC_CLIENT_ID="ripple-test",
               RIPPLE_OIDC_CLIENT_SECRET="ripple-test-secret", RIPPLE_OIDC_NAME="Test Provider")
    gunicorn = Gunicorn(tmp_path_factory.mktemp("oidc"), redis_url=redis_url, workers=2, env=env)
    gunicorn.start()
    yield gunicorn
    gunicorn.halt()


def provider_says_yes(location, sub):
    """What a person does at the provider: pick who they are and allow; return the redirect back."""
    request = urllib.request.Request(location, method="POST", data=urllib.parse.urlencode({"sub": sub}).encode(),
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})

    class Stop(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None
    try:
        with urllib.request.build_opener(Stop()).open(request, timeout=10) as response:
            raise AssertionError("the provider did not redirect: %d" % response.status)
    except urllib.error.HTTPError as answer:
        with answer:  # closes the connection
            assert answer.code in (302, 303), answer.read()[:500]
            return answer.headers["Location"]


def sign_in_through_the_provider(server, sub, next_path="/rooms/lobby"):
    browser = Browser(server.url)
    status, headers, _ = browser.request("GET", "/oidc/login?next=" + urllib.parse.quote(next_path))
    assert status == 302, status
    assert "code_challenge_method=S256" in headers["Location"]
    back = provider_says_yes(headers["Location"], sub)
    assert back.startswith(server.url + "/oidc/callback?")
    status, headers, body = browser.request("GET", back[len(server.url):])
    return browser, status, headers


def test_the_sign_in_form_offers_the_provider(oidc_server):
    _, _, page = Browser(oidc_server.url).request("GET", "/")
    assert "Sign in with Test Provider" in page.decode()


def test_signing_in_through_the_provider_makes_a_token_session_with_its_sub(oidc_server):
    sub = "person-" + uuid.uuid4().hex[:6]
    browser, status, headers = sign_in_through_the_provider(oidc_server, sub)
    assert status == 303 and headers["Location"].endswith("/rooms/lobby")
    status, _, body = browser.request("GET", "/session", headers={"Accept": "application/json"})
    me = json.loads(body)
    assert status == 200 and (me["id"], me["kind"]) == (sub, "token")


def test_the_providers_username_becomes_the_display_name(oidc_server):
    browser, status, _ = sign_in_through_the_provider(oidc_server, "fixed-user")
    assert status == 303
    _, _, body = browser.request("GET", "/session", headers={"Accept": "application/json"})
    assert json.loads(body)["name"] == "Dana OIDC"


def test_a_callback_with_a_forged_state_is_refused(oidc_server):
    status, _, body = Browser(oidc_server.url).request("GET", "/oidc/callback?code=x&state=forged")
    assert status == 400 and re.search(rb"did not work", body)


def test_without_a_provider_there_is_no_button_and_no_route(server):
    _, _, page = Browser(server.url).request("GET", "/")
    assert "Sign in with" not in page.decode()
    assert Browser(server.url).request("GET", "/oidc/login")[0] == 404


def test_a_provider_user_is_no_guest_and_has_no_password_here(oidc_server):
    browser, _, _ = sign_in_through_the_provider(oidc_server, "person-" + uuid.uuid4().hex[:6])
    _, _, page = browser.request("GET", "/account")
    page = page.decode()
    assert "data-guest" not in page and "signed in through another service" in page
    assert "Change your password" not in page
    _, _, body = browser.request("GET", "/session", headers={"Accept": "application/json"})
    browser.token = json.loads(body)["csrf_token"]
    status, _, body = browser.request("POST", "/account/password", body={"current": "x" * 12, "new": "y" * 12})
    assert status == 403 and "no password to change" in json.loads(body)["error"]
