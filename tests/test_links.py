"""Links in messages (issue 16): http(s) URLs are links, safe; nothing else is markup."""
import pytest

from app.web.links import linkify

A = '<a href="%s" rel="noopener noreferrer nofollow ugc" target="_blank">%s</a>'


def test_a_url_becomes_a_link_and_the_rest_stays_text():
    assert str(linkify("see https://example.com/x now")) == "see %s now" % (A % ("https://example.com/x", "https://example.com/x"))


def test_query_strings_are_escaped_in_href_and_text():
    url = "https://example.com/a?b=1&c=2"
    escaped = "https://example.com/a?b=1&amp;c=2"
    assert str(linkify(url)) == A % (escaped, escaped)


@pytest.mark.parametrize("text, url", [
    ("(see http://example.com/x).", "http://example.com/x"),
    ("go to https://en.wikipedia.org/wiki/Foo_(bar), ok", "https://en.wikipedia.org/wiki/Foo_(bar)"),
    ("https://example.com!", "https://example.com"),
])
def test_trailing_punctuation_stays_text(text, url):
    html = str(linkify(text))
    assert 'href="%s"' % url in html


@pytest.mark.parametrize("text", [
    "javascript:alert(1)", "JAVASCRIPT:alert(document.cookie)", "data:text/html,<script>alert(1)</script>",
    "ftp://example.com/file", "http://", "https://",
])
def test_other_schemes_and_bare_schemes_are_never_links(text):
    assert "<a" not in str(linkify(text))


@pytest.mark.parametrize("text", [
    'https://x.example/"><script>alert(1)</script>',
    "https://x.example/'onmouseover=alert(1)",
    "<img src=x onerror=alert(1)> https://x.example/",
    "https://x.example/<b>bold</b>",
])
def test_no_markup_gets_through(text):
    html = str(linkify(text))
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "onmouseover=" not in html.split(">", 1)[0]


def test_room_pages_render_links(client, room):
    from .conftest import TOKEN
    client.post("/rooms/%s/messages" % room, json={"text": "docs at https://example.com/docs. javascript:alert(1)",
                                                  "user": "bot"}, headers={"Authorization": "Bearer " + TOKEN})
    page = client.get("/rooms/%s" % room, headers={"Accept": "text/html"}).get_data(as_text=True)
    assert A % ("https://example.com/docs", "https://example.com/docs") + ". javascript:alert(1)" in page
