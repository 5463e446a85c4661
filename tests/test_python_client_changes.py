"""The Python client's typed change events (issue 16): edit, delete and reaction on a live stream."""
import json
import time
import uuid

from ripple_client import Client, Delete, Edit, Message, Reaction, Ready

from .web import Browser


def test_a_subscription_yields_edits_deletions_and_reactions_typed(server, room):
    ann = Browser(server.url)
    assert ann.sign_in("ann-%s" % uuid.uuid4().hex[:6]) == 200
    _, sent = ann.post(room, "draft")
    client = Client(server.url)
    with client.subscribe(room, last_event_id="0-0") as subscription:
        seen, changed = [], False
        deadline = time.monotonic() + 20
        for event in subscription:
            assert time.monotonic() < deadline, seen
            if isinstance(event, Ready) and not changed:
                changed = True
                ann.request("PATCH", "/rooms/%s/messages/%s" % (room, sent["id"]), body={"text": "final"})
                ann.request("PUT", "/rooms/%s/messages/%s/reactions/%%F0%%9F%%8E%%89" % (room, sent["id"]))
                ann.request("DELETE", "/rooms/%s/messages/%s" % (room, sent["id"]))
            if isinstance(event, (Message, Edit, Reaction, Delete)):
                seen.append(event)
            if isinstance(event, Delete):
                break
    message, edit, reaction, deletion = seen
    assert message.id == sent["id"] and message.text == "draft"
    assert (edit.message_id, edit.text) == (sent["id"], "final") and edit.cursor
    assert (reaction.emoji, reaction.on, reaction.reactions["🎉"]["count"]) == ("🎉", True, 1)
    assert deletion.message_id == sent["id"] and deletion.by == ann.name
    assert json.loads(json.dumps(deletion.data))["message_id"] == sent["id"]
