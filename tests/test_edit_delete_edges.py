"""Edits and deletions at their edges (issue 16): a deleted message's earlier edits, ids that only
look like ids. Real Gunicorn (2 workers) and real Redis."""
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from .test_edits import delete, edit, history, open_ready, signed_in


@pytest.fixture
def ann(server):
    return signed_in(server, "ann")


def test_a_deleted_messages_edited_text_comes_back_through_no_replay(server, room, ann, redis_client):
    stream, _ = open_ready(server, room)
    with stream:
        ann.post(room, "before it")
        cursor = stream.messages(1)[0].id
    _, sent = ann.post(room, "my pin is 1234")
    assert edit(ann, room, sent["id"], "my pin is 4321, sorry")[0] == 200
    ann.post(room, "after it")
    assert delete(ann, room, sent["id"])[0] == 204
    # A client that was away since before the edit: the message (deleted) and the deletion,
    # never the edit's text.
    resumed, before = open_ready(server, room, {"Last-Event-ID": cursor})
    with resumed:
        replayed = "".join(e.data for e in before)
        assert "pin is 4321" not in replayed and "pin is 1234" not in replayed  # words: digits occur in ids
        assert [e.name for e in before if e.name in ("message", "edit", "delete")] == ["message", "message", "delete"]
    # Nor is it stored: the room's log holds no event carrying it.
    entries = redis_client.xrange("ripple:{r:%s}:log" % room)
    assert entries and "pin is 4321" not in json.dumps(entries, ensure_ascii=False)


def test_a_resume_from_between_the_edit_and_the_deletion_gets_the_deletion_once(server, room, ann):
    _, sent = ann.post(room, "draft")
    stream, _ = open_ready(server, room)
    with stream:
        edit(ann, room, sent["id"], "draft, edited")
        cursor = stream.messages(1, name="edit")[0].id
    delete(ann, room, sent["id"])
    resumed, before = open_ready(server, room, {"Last-Event-ID": cursor})
    with resumed:
        changes = [(e.name, e.json()["message_id"]) for e in before if e.name in ("message", "edit", "delete")]
        assert changes == [("delete", sent["id"])]


@pytest.mark.parametrize("message_id", ["١٢-٣", "１-０", "𝟏-𝟎"])
def test_ids_in_other_digits_are_unknown_messages_not_an_outage(server, room, ann, message_id):
    ann.post(room, "here")
    path = "/rooms/%s/messages/%s" % (room, urllib.parse.quote(message_id))
    for method, body in (("PATCH", {"text": "x"}), ("DELETE", None)):
        status, _, answer = ann.request(method, path, body=body)
        assert (status, json.loads(answer)["code"]) == (404, "unknown_message"), method
    status, _, _ = ann.request("PUT", path + "/reactions/%F0%9F%91%8D")
    assert status == 404
    assert [m["text"] for m in history(ann, room)] == ["here"]


def reply(browser, room, text, reply_to, key=None):
    status, _, body = browser.request("POST", "/rooms/%s/messages" % room, body={"text": text, "reply_to": reply_to},
                                      headers={"Idempotency-Key": key} if key else {})
    return status, json.loads(body or b"{}")


def test_a_resume_quotes_a_deleted_message_as_deleted(server, room, ann):
    bob = signed_in(server, "bob")
    stream, _ = open_ready(server, room)
    with stream:
        ann.post(room, "before them")
        cursor = stream.messages(1)[0].id
    _, original = ann.post(room, "the door code is 2468")
    assert reply(bob, room, "thanks", original["id"])[0] == 201
    assert delete(ann, room, original["id"])[0] == 204
    resumed, before = open_ready(server, room, {"Last-Event-ID": cursor})
    with resumed:
        # Its words, not its digits: "2468" can be part of an id or a timestamp (it was, once).
        assert "door code" not in "".join(e.data for e in before)
        quoted = [e.json()["reply_to"] for e in before if e.name == "message" and e.json().get("reply_to")]
        assert quoted == [{"id": original["id"], "user": ann.name, "text": "", "deleted": True}]


def test_a_resume_and_a_retried_reply_quote_an_edited_message_as_it_is_now(server, room, ann):
    stream, _ = open_ready(server, room)
    with stream:
        ann.post(room, "before them")
        cursor = stream.messages(1)[0].id
    _, original = ann.post(room, "meet at 5")
    key = uuid.uuid4().hex
    reply(ann, room, "ok", original["id"], key)
    edit(ann, room, original["id"], "meet at 6")
    resumed, before = open_ready(server, room, {"Last-Event-ID": cursor})
    with resumed:
        quoted = [e.json()["reply_to"]["text"] for e in before if e.name == "message" and e.json().get("reply_to")]
        assert quoted == ["meet at 6"]
    # A retry of the reply (same idempotency key) answers it as it is now, quote included.
    status, retried = reply(ann, room, "ok", original["id"], key)
    assert status == 200 and retried["reply_to"]["text"] == "meet at 6"


def test_a_retried_reply_answers_the_stored_reply_after_its_original_was_deleted(server, room, ann):
    _, original = ann.post(room, "the original")
    key = uuid.uuid4().hex
    status, first = reply(ann, room, "my answer", original["id"], key)
    assert status == 201
    assert delete(ann, room, original["id"])[0] == 204
    # The first answer was lost on the way: the retry must say it is stored, not "deleted".
    status, retried = reply(ann, room, "my answer", original["id"], key)
    assert status == 200 and retried["id"] == first["id"] and retried["reply_to"]["deleted"] is True
    assert [m["text"] for m in history(ann, room)] == ["", "my answer"]
    # A new reply (another key) to the deleted message is still refused.
    status, refused = reply(ann, room, "another", original["id"], uuid.uuid4().hex)
    assert (status, refused["code"]) == (409, "deleted")


@pytest.mark.parametrize("body", [b"text=caf%E9", b"text=caf\xe9"], ids=["escaped", "raw"])
def test_a_browsers_form_that_is_not_utf8_is_400_and_changes_nothing(server, room, ann, body):
    # A browser's form carries its CSRF token: checking it parses the form first, and the
    # UTF-8 rule must still see the bytes that came (not werkzeug's repaired text).
    _, sent = ann.post(room, "as typed")
    form = body + b"&csrf_token=" + ann.token.encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    for path in ("/rooms/%s/messages/%s/edit" % (room, sent["id"]), "/rooms/%s/messages" % room):
        status, _, answer = _raw_post(ann, path, form, headers)
        assert status == 400 and json.loads(answer)["error"], path
    assert [m["text"] for m in history(ann, room)] == ["as typed"]


def _raw_post(browser, path, data, headers):
    request = urllib.request.Request(browser.base_url + path, data=data, method="POST", headers=headers)
    try:
        with browser.opener.open(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()
