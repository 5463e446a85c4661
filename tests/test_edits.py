"""Edit and delete one's own message (issue 16): events on the room's log with their own ids,
the stored text replaced or removed, every route showing only the current state."""
import json
import uuid

import pytest

from app import create_app
from app.ops.services import services
from app.rooms import archive
from app.rooms.conversation import Person, Refused
from app.rooms.keys import RoomKeys
from app.web import changes
from app.web.changes import delete_message

from .sse import SSEStream
from .support import LIMITS_OFF, TOKEN, post
from .web import Browser


def events_url(server, room):
    return "%s/rooms/%s/events" % (server.url, room)


def signed_in(server, name="ann"):
    browser = Browser(server.url)
    assert browser.sign_in("%s-%s" % (name, uuid.uuid4().hex[:6])) == 200
    return browser


def edit(browser, room, message_id, text, **fields):
    status, _, body = browser.request("PATCH", "/rooms/%s/messages/%s" % (room, message_id),
                                      body={"text": text, **fields})
    return status, json.loads(body or b"{}")


def delete(browser, room, message_id):
    status, _, body = browser.request("DELETE", "/rooms/%s/messages/%s" % (room, message_id))
    return status, json.loads(body or b"{}")


def history(browser, room, query=""):
    status, _, body = browser.request("GET", "/rooms/%s/messages%s" % (room, query))
    assert status == 200
    return json.loads(body)["messages"]


def open_ready(server, room, headers=None):
    stream = SSEStream(events_url(server, room), headers)
    assert stream.status == 200
    _, before = stream.until("ready")
    return stream, before


@pytest.fixture
def ann(server):
    return signed_in(server, "ann")


def test_an_edit_replaces_the_text_and_is_marked_edited(server, room, ann):
    _, sent = ann.post(room, "helo")
    status, edited = edit(ann, room, sent["id"], "hello")
    assert status == 200
    assert edited["text"] == "hello" and edited["id"] == sent["id"] and edited["edited_ts"] >= sent["ts"]
    assert [(m["text"], bool(m.get("edited_ts"))) for m in history(ann, room)] == [("hello", True)]


def test_an_edit_reaches_open_streams_as_an_edit_event_with_its_own_cursor(server, room, ann):
    _, sent = ann.post(room, "first")
    stream, _ = open_ready(server, room)
    with stream:
        edit(ann, room, sent["id"], "first, corrected")
        event = stream.messages(1, name="edit")[0]
        assert event.id and event.id != sent["id"]
        data = event.json()
        assert data["message_id"] == sent["id"] and data["text"] == "first, corrected"
        assert data["id"] == event.id and data["edited_ts"]


def test_edit_and_delete_while_away_arrive_once_in_order_on_resume(server, room, ann):
    _, one = ann.post(room, "one")
    _, two = ann.post(room, "secret two")
    stream, _ = open_ready(server, room)
    with stream:
        ann.post(room, "three")
        cursor = stream.messages(1)[0].id
    edit(ann, room, one["id"], "one, edited")
    assert delete(ann, room, two["id"])[0] == 204
    _, four = ann.post(room, "four")
    resumed, before = open_ready(server, room, {"Last-Event-ID": cursor})
    with resumed:
        assert [(e.name, e.json().get("message_id") or e.json()["text"]) for e in before if e.name != "presence"] \
            == [("edit", one["id"]), ("delete", two["id"]), ("message", "four")]
        ids = [e.id for e in before]
        assert len(set(ids)) == len(ids) and "secret two" not in json.dumps([e.data for e in before])
        assert four["id"] == before[-1].id
    # Resumed from the last of them: nothing comes twice.
    again, before = open_ready(server, room, {"Last-Event-ID": four["id"]})
    with again:
        assert [e for e in before if e.name in ("edit", "delete", "message")] == []


def test_a_resume_from_before_the_message_gets_it_as_it_is_now_then_its_events(server, room, ann):
    stream, _ = open_ready(server, room)
    with stream:
        ann.post(room, "zero")
        cursor = stream.messages(1)[0].id
    _, sent = ann.post(room, "draft")
    edit(ann, room, sent["id"], "final")
    resumed, before = open_ready(server, room, {"Last-Event-ID": cursor})
    with resumed:
        got = [(e.name, e.json().get("text")) for e in before if e.name in ("message", "edit")]
        assert got == [("message", "final"), ("edit", "final")]


def test_a_deleted_text_is_nowhere(server, room, ann, redis_client):
    key = uuid.uuid4().hex
    _, sent = ann.post(room, "my password is hunter2", key=key)
    ann.post(room, "after")
    assert delete(ann, room, sent["id"])[0] == 204
    shown = history(ann, room)
    assert shown[0]["id"] == sent["id"] and shown[0]["deleted"] is True and shown[0]["text"] == ""
    # A retry of the original post (same idempotency key) answers the message as it is now.
    status, retried = ann.post(room, "my password is hunter2", key=key)
    assert status == 200 and retried["deleted"] is True and "hunter2" not in json.dumps(retried)
    # A fresh stream's backlog, the room page, and Redis itself.
    stream = SSEStream(events_url(server, room) + "?backlog=10")
    with stream:
        _, before = stream.until("ready")
        assert "hunter2" not in "".join(e.data for e in before)
    _, _, page = ann.request("GET", "/rooms/%s" % room)
    assert b"hunter2" not in page and b"message deleted" in page
    dump = []
    for key_name in redis_client.scan_iter("ripple:{r:%s}*" % room):
        kind = redis_client.type(key_name)
        if kind == "stream":
            dump.append(json.dumps(redis_client.xrange(key_name), ensure_ascii=False))
        elif kind == "zset":
            dump.append(json.dumps(redis_client.zrange(key_name, 0, -1), ensure_ascii=False))
        elif kind == "string":
            dump.append(redis_client.get(key_name))
    assert dump and "hunter2" not in "".join(dump)


def test_an_edited_text_is_what_a_retry_returns(server, room, ann):
    key = uuid.uuid4().hex
    _, sent = ann.post(room, "tpyo", key=key)
    edit(ann, room, sent["id"], "typo")
    status, retried = ann.post(room, "tpyo", key=key)
    assert status == 200 and retried["text"] == "typo" and retried["id"] == sent["id"]


def test_someone_elses_message_cannot_be_edited_or_deleted(server, room, ann):
    _, sent = ann.post(room, "mine")
    bob = signed_in(server, "bob")
    status, body = edit(bob, room, sent["id"], "yours now")
    assert (status, body["code"]) == (403, "not_yours_edit") and "your own" in body["error"]
    status, body = delete(bob, room, sent["id"])
    assert (status, body["code"]) == (403, "not_yours_delete")
    assert history(ann, room)[0]["text"] == "mine"


def test_unknown_and_malformed_ids_are_404(server, room, ann):
    ann.post(room, "here")
    for message_id in ("1-0", "not-an-id", "99999999999999-0"):
        status, body = edit(ann, room, message_id, "x")
        assert (status, body["code"]) == (404, "unknown_message"), message_id
        assert delete(ann, room, message_id)[0] == 404


def test_signed_out_people_are_told_to_sign_in(server, room, ann):
    _, sent = ann.post(room, "here")
    stranger = Browser(server.url)
    status, _, body = stranger.request("GET", "/session")
    stranger.token = json.loads(body)["csrf_token"]
    status, body = edit(stranger, room, sent["id"], "x")
    assert status == 401 and body["code"] == "signed_out"


def test_an_edit_is_checked_like_a_post(server, room, ann):
    _, sent = ann.post(room, "text")
    status, body = edit(ann, room, sent["id"], "   ")
    assert status == 422 and "empty" in body["error"]
    status, body = edit(ann, room, sent["id"], "x" * 5000)
    assert status == 422 and "too long" in body["error"]
    status, _, raw = ann.request("PATCH", "/rooms/%s/messages/%s" % (room, sent["id"]), body=["text"])
    assert status == 400


def test_a_deleted_message_cannot_be_edited_and_deleting_twice_is_harmless(server, room, ann):
    _, sent = ann.post(room, "going")
    assert delete(ann, room, sent["id"])[0] == 204
    assert delete(ann, room, sent["id"])[0] == 204
    status, body = edit(ann, room, sent["id"], "back")
    assert (status, body["code"]) == (409, "deleted")


def test_the_same_text_again_changes_nothing(server, room, ann):
    _, sent = ann.post(room, "same")
    status, body = edit(ann, room, sent["id"], "same")
    assert status == 200 and "edited_ts" not in body


def test_an_edit_from_an_older_version_to_another_text_is_refused_and_changes_nothing(server, room, ann):
    # The phone's edit waited offline (it started from the unedited message) while the laptop edited.
    _, sent = ann.post(room, "draft")
    _, laptop = edit(ann, room, sent["id"], "laptop's text", base_edited_ts=0)
    status, body = edit(ann, room, sent["id"], "phone's text", base_edited_ts=0)
    assert (status, body["code"]) == (409, "edit_conflict") and "changed elsewhere" in body["error"]
    assert history(ann, room)[0]["text"] == "laptop's text"
    assert history(ann, room)[0]["edited_ts"] == laptop["edited_ts"]


def test_a_conflict_answers_with_the_text_and_version_the_message_has_now(server, room, ann):
    _, sent = ann.post(room, "draft")
    _, laptop = edit(ann, room, sent["id"], "laptop's text", base_edited_ts=0)
    status, body = edit(ann, room, sent["id"], "phone's text", base_edited_ts=0)
    assert status == 409
    assert (body["text"], body["edited_ts"]) == ("laptop's text", laptop["edited_ts"])


def test_an_edit_from_the_current_version_is_stored(server, room, ann):
    _, sent = ann.post(room, "draft")
    _, first = edit(ann, room, sent["id"], "first", base_edited_ts=None)  # null: not edited yet
    status, second = edit(ann, room, sent["id"], "second", base_edited_ts=first["edited_ts"])
    assert status == 200 and history(ann, room)[0]["text"] == "second"


def test_a_retry_of_an_edit_that_landed_is_no_conflict_with_itself(server, room, ann):
    _, sent = ann.post(room, "draft")
    _, landed = edit(ann, room, sent["id"], "final", base_edited_ts=0)  # its answer lost on the way
    status, again = edit(ann, room, sent["id"], "final", base_edited_ts=0)
    assert status == 200 and again["text"] == "final" and again["edited_ts"] == landed["edited_ts"]


def test_without_a_base_the_last_edit_wins_as_before(server, room, ann):
    _, sent = ann.post(room, "draft")
    edit(ann, room, sent["id"], "laptop's text")
    status, body = edit(ann, room, sent["id"], "phone's text")
    assert status == 200 and history(ann, room)[0]["text"] == "phone's text"


@pytest.mark.parametrize("base", [-1, 1.5, "12", True, [0], 2 ** 53])
def test_a_base_that_is_no_edited_ts_is_400(server, room, ann, base):
    _, sent = ann.post(room, "draft")
    status, body = edit(ann, room, sent["id"], "edited", base_edited_ts=base)
    assert (status, body["code"]) == (400, "bad_base") and history(ann, room)[0]["text"] == "draft"


def test_the_conflicts_sentence_is_in_the_readers_language(server, room, ann):
    _, sent = ann.post(room, "draft")
    edit(ann, room, sent["id"], "laptop's text")
    status, _, body = ann.request("PATCH", "/rooms/%s/messages/%s" % (room, sent["id"]),
                                  body={"text": "phone's text", "base_edited_ts": 0},
                                  headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    answer = json.loads(body)
    assert (status, answer["code"]) == (409, "edit_conflict") and "已在别处被修改" in answer["error"]


def test_a_conflicting_form_edit_comes_back_with_the_sentence_and_the_typed_text(server, room, ann):
    _, sent = ann.post(room, "draft")
    edit(ann, room, sent["id"], "laptop's text")
    status, _, page = ann.request("POST", "/rooms/%s/messages/%s/edit" % (room, sent["id"]),
                                  form={"text": "typed on the old page", "base_edited_ts": "0",
                                        "csrf_token": ann.token}, headers={"Accept": "text/html"})
    assert status == 409 and b"changed elsewhere" in page
    assert b"typed on the old page</textarea>" in page and b"laptop&#39;s text" in page
    assert history(ann, room)[0]["text"] == "laptop's text"


def test_the_edit_form_carries_the_version_it_shows(server, room, ann):
    _, sent = ann.post(room, "draft")
    _, edited = edit(ann, room, sent["id"], "edited")
    _, _, page = ann.request("GET", "/rooms/%s" % room, headers={"Accept": "text/html"})
    assert ('name="base_edited_ts" value="%d"' % edited["edited_ts"]).encode() in page


def test_the_edit_window_closes(redis_url, room):
    app = create_app({"TESTING": True, "REDIS_URL": redis_url, "PUBLISH_TOKEN": TOKEN,
                      "SECRET_KEY": "test-secret", "EDIT_WINDOW_SECONDS": 0, **LIMITS_OFF})
    with app.app_context():
        store, conversation = services(app).store, services(app).conversation
        sent = json.loads(store.publish(room, "ann", "late", uid="u1")[0])
        with pytest.raises(Refused) as refused:
            conversation.edit(room, sent["id"], Person("ann", "u1"), "later", 2000)
        assert refused.value.status == 409 and refused.value.code == "edit_window"
        assert "can no longer be edited" in str(refused.value)
        conversation.delete(room, sent["id"], Person("ann", "u1"))  # deleting has no window


@pytest.mark.parametrize("seconds, language, said", [
    (5, "en", "messages can be edited for 5 seconds after sending."),
    (900, "en", "messages can be edited for 15 minutes after sending."),
    (5400, "en", "messages can be edited for 90 minutes after sending."),
    (5, "zh-Hans", "5秒"),
])
def test_the_edit_windows_sentence_says_its_length_in_the_readers_words(redis_url, room, seconds, language, said):
    # With RIPPLE_EDIT_WINDOW_SECONDS=5 it said "0.0833333 minutes".
    app = create_app({"TESTING": True, "REDIS_URL": redis_url, "PUBLISH_TOKEN": TOKEN,
                      "SECRET_KEY": "test-secret", "EDIT_WINDOW_SECONDS": seconds, **LIMITS_OFF})
    with app.app_context():
        archive.import_lines(services(app).redis, room, ['{"id": "1000-0", "user": "ann", "text": "old", "uid": "u1"}'])
        with pytest.raises(Refused) as refused:
            services(app).conversation.edit(room, "1000-0", Person("ann", "u1"), "later", 2000)
    with app.test_request_context(headers={"Accept-Language": language}):
        answer = changes._refused(room, refused.value, False)
        assert answer.status_code == 409 and answer.get_json()["code"] == "edit_window"
        assert said in answer.get_json()["error"]


def test_an_administrator_may_delete_anyones_message_with_a_reason(redis_url, room):
    app = create_app({"TESTING": True, "REDIS_URL": redis_url, "SECRET_KEY": "test-secret", **LIMITS_OFF})
    with app.app_context():
        store = services(app).store
        sent = json.loads(store.publish(room, "ann", "spam", uid="u1")[0])
        with pytest.raises(Refused):
            delete_message(room, sent["id"], Person("bob", "u2"))
        delete_message(room, sent["id"], Person("root", "u3", admin=True), reason="spam")
        found, _ = store.page(room)
        assert json.loads(found[0])["deleted"] is True
        entries, _, _ = store.replay(RoomKeys(room), after=(0, 0))
        assert json.loads(entries[-1][1])["reason"] == "spam" and entries[-1][2] == "delete"


def test_history_pages_count_messages_not_change_events(server, room, ann):
    sent = [ann.post(room, "m%d" % i)[1] for i in range(5)]
    for _ in range(3):
        for message in sent[:4]:
            edit(ann, room, message["id"], "m-%s" % uuid.uuid4().hex[:4])
    page = history(ann, room, "?limit=3")
    assert [m["id"] for m in page] == [m["id"] for m in sent[2:]]
    older = history(ann, room, "?limit=3&before=%s" % sent[2]["id"])
    assert [m["id"] for m in older] == [m["id"] for m in sent[:2]]
    around = history(ann, room, "?limit=3&around=%s" % sent[2]["id"])
    assert [m["id"] for m in around] == [m["id"] for m in sent[1:4]]


def test_forms_edit_and_delete_without_javascript(server, room, ann):
    _, sent = ann.post(room, "form text")
    status, headers, _ = ann.request("POST", "/rooms/%s/messages/%s/edit" % (room, sent["id"]),
                                     form={"text": "form text, edited", "csrf_token": ann.token},
                                     headers={"Accept": "text/html"})
    assert status == 303 and headers["Location"].endswith("/rooms/%s#m-%s" % (room, sent["id"]))
    _, _, page = ann.request("GET", "/rooms/%s" % room, headers={"Accept": "text/html"})
    assert b"form text, edited" in page and b"(edited)" in page
    status, headers, _ = ann.request("POST", "/rooms/%s/messages/%s/delete" % (room, sent["id"]),
                                     form={"csrf_token": ann.token, "confirm": "1"},
                                     headers={"Accept": "text/html"})
    assert status == 303 and headers["Location"].endswith("/rooms/%s#m-%s" % (room, sent["id"]))
    _, _, page = ann.request("GET", "/rooms/%s" % room, headers={"Accept": "text/html"})
    assert b"form text" not in page and b"message deleted" in page


def delete_form(browser, room, message_id, language="en", **fields):
    return browser.request("POST", "/rooms/%s/messages/%s/delete" % (room, message_id),
                           form={"csrf_token": browser.token, **fields},
                           headers={"Accept": "text/html", "Accept-Language": language})


def test_a_delete_form_asks_first_and_deletes_nothing_until_confirmed(server, room, ann):
    _, sent = ann.post(room, "keep me unless I say so")
    status, headers, _ = delete_form(ann, room, sent["id"])  # a mis-tap on "Delete message"
    asking = "/rooms/%s/messages/%s/delete" % (room, sent["id"])
    assert status == 303 and headers["Location"].endswith(asking)  # PRG: a reload asks again
    assert [m["text"] for m in history(ann, room)] == ["keep me unless I say so"]
    status, _, page = ann.request("GET", asking, headers={"Accept": "text/html"})
    assert status == 200
    assert b"Delete this message?" in page and b"keep me unless I say so" in page
    assert b'name="confirm" value="1"' in page and b"Yes, delete it" in page
    assert ('href="/rooms/%s#m-%s"' % (room, sent["id"])).encode() in page  # Cancel: back to it
    assert ann.name.encode() in page and b"Sign out" in page  # who is signed in, as on every page
    status, _, _ = delete_form(ann, room, sent["id"], confirm="1")
    assert status == 303
    assert [m.get("deleted") for m in history(ann, room)] == [True]


def test_the_delete_question_page_speaks_chinese(server, room, ann):
    _, sent = ann.post(room, "要删掉的话")
    status, _, page = ann.request("GET", "/rooms/%s/messages/%s/delete" % (room, sent["id"]),
                                  headers={"Accept": "text/html", "Accept-Language": "zh-CN"})
    page = page.decode()
    assert status == 200 and "删除这条消息？" in page and "确定删除" in page and "取消" in page
    assert "Delete" not in page.replace("/delete", "")  # nothing left in English but the URL


def test_asking_to_delete_someone_elses_message_is_refused_at_once(server, room, ann):
    _, sent = ann.post(room, "ann's own")
    bob = signed_in(server, "bob")
    status, _, page = bob.request("GET", "/rooms/%s/messages/%s/delete" % (room, sent["id"]),
                                  headers={"Accept": "text/html"})
    assert status == 403 and b"You can only delete your own messages." in page
    status, _, page = bob.request("GET", "/rooms/%s/messages/9-9/delete" % room, headers={"Accept": "text/html"})
    assert status == 404 and b"There is no such message in this room" in page


def test_a_program_posting_the_delete_form_for_json_deletes_at_once(server, room, ann):
    _, sent = ann.post(room, "scripted")
    status, _, _ = ann.request("POST", "/rooms/%s/messages/%s/delete" % (room, sent["id"]),
                               form={"csrf_token": ann.token}, headers={"Accept": "application/json"})
    assert status == 204
    assert [m.get("deleted") for m in history(ann, room)] == [True]


def test_a_refused_form_shows_the_room_page_with_the_sentence(server, room, ann):
    _, sent = ann.post(room, "ann's")
    bob = signed_in(server, "bob")
    status, _, page = bob.request("POST", "/rooms/%s/messages/%s/delete" % (room, sent["id"]),
                                  form={"csrf_token": bob.token}, headers={"Accept": "text/html"})
    assert status == 403 and b"You can only delete your own messages." in page


def test_token_posts_keep_working_beside_edits(server, room, ann):
    _, sent = ann.post(room, "by ann")
    edit(ann, room, sent["id"], "by ann, edited")
    status, body = post(server.url, room, "by the bot")
    assert status == 201
    assert [m["text"] for m in history(ann, room)] == ["by ann, edited", "by the bot"]


def test_refusals_are_in_the_readers_language_with_a_stable_code(server, room, ann):
    _, sent = ann.post(room, "mine")
    bob = signed_in(server, "bob")
    status, _, body = bob.request("PATCH", "/rooms/%s/messages/%s" % (room, sent["id"]), body={"text": "x"},
                                  headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    answer = json.loads(body)
    assert (status, answer["code"]) == (403, "not_yours_edit") and answer["error"] == "你只能编辑自己的消息。"


def test_a_deleted_text_quoted_by_replies_is_kept_nowhere(server, room, ann, redis_client):
    _, sent = ann.post(room, "the code is 4711\nmore")
    bob = signed_in(server, "bob")
    _, _, body = bob.request("POST", "/rooms/%s/messages" % room, body={"text": "noted", "reply_to": sent["id"]})
    reply = json.loads(body)
    assert reply["reply_to"]["text"] == "the code is 4711"
    bob.request("PUT", "/rooms/%s/messages/%s/reactions/%s" % (room, reply["id"], "%F0%9F%91%8D"))  # now a changed one
    _, _, body = bob.request("POST", "/rooms/%s/messages" % room, body={"text": "again", "reply_to": sent["id"]})
    stream = SSEStream(events_url(server, room))
    with stream:
        ready, _ = stream.until("ready")
        assert delete(ann, room, sent["id"])[0] == 204
        assert stream.messages(1, name="delete")[0].json()["message_id"] == sent["id"]
    dump = []
    for key_name in redis_client.scan_iter("ripple:{r:%s}*" % room):
        kind = redis_client.type(key_name)
        if kind == "stream":
            dump.append(json.dumps(redis_client.xrange(key_name), ensure_ascii=False))
        elif kind == "zset":
            dump.append(json.dumps(redis_client.zrange(key_name, 0, -1), ensure_ascii=False))
    assert "code is 4711" not in "".join(dump)  # its words: digits alone occur in ids and timestamps
    quotes = [m["reply_to"] for m in history(ann, room) if "reply_to" in m]
    assert quotes == [{"id": sent["id"], "user": ann.name, "text": "", "deleted": True}] * 2
    resumed, before = open_ready(server, room, {"Last-Event-ID": ready.id})
    with resumed:
        assert [e.name for e in before if e.name not in ("presence",)] == ["delete"]  # the scrub made no event
