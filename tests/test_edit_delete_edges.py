"""Edits and deletions at their edges (issue 16): a deleted message's earlier edits, ids that only
look like ids. Real Gunicorn (2 workers) and real Redis."""
import json
import urllib.parse

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
        assert "4321" not in replayed and "1234" not in replayed
        assert [e.name for e in before if e.name in ("message", "edit", "delete")] == ["message", "message", "delete"]
    # Nor is it stored: the room's log holds no event carrying it.
    entries = redis_client.xrange("ripple:{r:%s}:log" % room)
    assert entries and "4321" not in json.dumps(entries, ensure_ascii=False)


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
