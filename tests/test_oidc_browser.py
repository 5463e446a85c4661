"""Signing in with OpenID Connect in real Chromium, JavaScript on and off: the room page's "Sign
in with ..." link, the local provider's own authorization page (oidc-provider-mock), and back in
the room signed in as the provider's user, ready to post."""
import pytest

from .browser import STATUS, browser, close_context, expect, send, unique  # noqa: F401 - fixtures
from .test_oidc import oidc_server, provider  # noqa: F401 - fixtures

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
def test_signing_in_through_the_provider_in_a_browser(browser, oidc_server, room, js):  # noqa: F811
    context = browser.new_context(base_url=oidc_server.url, java_script_enabled=js)
    context.set_default_timeout(10_000)
    errors = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(error))
        page.goto("/rooms/%s" % room)
        page.get_by_role("link", name="Sign in with Test Provider").click()
        sub = unique("dana")
        page.fill("input[name=sub]", sub)  # the provider's own page: who you are there
        page.get_by_role("button", name="Authorize").click()
        page.wait_for_url("**/rooms/%s" % room)
        expect(page.locator("[data-whoami]")).to_have_text(sub)  # no username claim: the sub
        expect(page.locator("[data-guest]")).to_have_count(0)
        if js:
            expect(page.locator(STATUS)).to_have_text("connected")
            send(page, "signed in with the provider")
        else:
            page.fill("#text", "signed in with the provider")
            page.locator("form[data-form] button[type=submit]").click()
        expect(page.locator("li.msg", has_text="signed in with the provider")).to_have_count(1)
        assert not errors
    finally:
        close_context(context)
