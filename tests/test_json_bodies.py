"""One mistake, one answer (report h48, B2 and C4): every route that takes a JSON body answers
the same status and code for the same broken body, with a sentence that says what is wrong
(app/web/bodies.py reads them all)."""
import pytest

from .support import TOKEN

AUTH = {"Authorization": "Bearer " + TOKEN}
BROKEN = b'{"text":'
DEEP = b'{"text": "x", "deep": ' + b"[" * 5000 + b"]" * 5000 + b"}"
LONG_NUMBER = b'{"text": "x", "n": ' + b"1" * 10000 + b"}"
NOT_AN_OBJECT = b'["text"]'


@pytest.fixture
def routes(client, room):
    """(method, path) of JSON routes, and the token's message there to edit."""
    posted = client.post("/rooms/%s/messages" % room, json={"text": "hi", "user": "bot"}, headers=AUTH)
    assert posted.status_code == 201
    return [("POST", "/rooms/%s/messages" % room), ("PATCH", "/rooms/%s/messages/%s" % (room, posted.get_json()["id"])),
            ("PUT", "/rooms/%s/read" % room), ("PATCH", "/rooms/%s" % room)]


@pytest.mark.parametrize("raw, sentence", [
    (BROKEN, "The body is not valid JSON (UTF-8)."),
    (b'{"text": "\xff"}', "The body is not valid JSON (UTF-8)."),
    (DEEP, "The JSON body is nested too deeply."),
    (LONG_NUMBER, "A number in the JSON body is too long."),
    (NOT_AN_OBJECT, "The body must be a JSON object."),
])
def test_a_broken_json_body_is_400_bad_body_on_every_json_route(client, routes, raw, sentence):
    for method, path in routes:
        answer = client.open(path, method=method, data=raw, headers={"Content-Type": "application/json", **AUTH})
        assert (answer.status_code, answer.get_json()) == (400, {"error": sentence, "code": "bad_body"}), path


def test_a_body_sent_as_plain_text_is_415_unsupported_type_on_every_json_route(client, routes):
    for method, path in routes:
        answer = client.open(path, method=method, data=b'{"text": "x"}', headers={"Content-Type": "text/plain", **AUTH})
        assert answer.status_code == 415, path
        assert answer.get_json()["code"] == "unsupported_type", path


@pytest.mark.parametrize("raw", [b"", b"{}", b'{"user": "bot"}'])
def test_a_post_or_edit_without_text_is_told_the_text_is_missing(client, routes, raw):
    for method, path in routes[:2]:  # the routes that take a text
        answer = client.open(path, method=method, data=raw, headers={"Content-Type": "application/json", **AUTH})
        assert answer.get_json() == {"error": 'Message text is missing: send it as "text".', "code": "text_missing"}
        assert answer.status_code == 400, path


@pytest.mark.parametrize("disposition", ['form-data; name="\r"', "form-data", 'form-data; filename="a.txt"'])
@pytest.mark.parametrize("token", [True, False])
def test_a_multipart_part_without_a_name_is_400_bad_body_not_a_crash(client, room, disposition, token):
    # Werkzeug keys such a part None; the CSRF check (and anything that reads the form's names)
    # met it as a name. Found by schemathesis (tests/test_fuzz.py).
    body = ("--xx\r\nContent-Disposition: %s\r\n\r\nnull\r\n--xx\r\n"
            'Content-Disposition: form-data; name="text"\r\n\r\nhi\r\n--xx--\r\n' % disposition).encode()
    answer = client.post("/rooms/%s/messages" % room, data=body, content_type="multipart/form-data; boundary=xx",
                         headers={**(AUTH if token else {}), "Accept": "application/json"})
    assert answer.status_code == 400 and answer.get_json()["code"] == "bad_body"
    assert "needs a name" in answer.get_json()["error"]
