"""Without JavaScript, Back brings the page before with the typed text put back: a form post of a
text its person sent just now, from another page, is asked about (409 sent_just_now) instead of
stored twice (app/web/api.py SentJustNow). And the registration script's read of an account's
sessions (app/web/opening.py). Written by helper-69's review."""
import json
import re
import urllib.parse
import uuid

from app.ops.services import services
from app.people import accounts
from app.web import opening

from .support import TOKEN
from .test_faststream import make_app
from .web import Browser

HTML = {"Accept": "text/html"}


def person(server, name):
    browser = Browser(server.url)
    assert browser.sign_in(name) == 200
    return browser


def form_post(browser, room, text, again=False, reply_to=None, headers=None):
    """A plain form's post from a fresh page (a new key), as Back then Send makes it."""
    form = {"text": text, "idempotency_key": uuid.uuid4().hex, "next": "/rooms/" + room}
    if again:
        form["again"] = "1"
    if reply_to:
        form["reply_to"] = reply_to
    status, _, body = browser.request("POST", "/rooms/%s/messages" % room, form=form,
                                      headers={**HTML, **(headers or {})})
    return status, body.decode()


def texts(browser, room):
    _, _, body = browser.request("GET", "/rooms/%s/messages?limit=100" % room,
                                 headers={"Accept": "application/json"})
    return [m["text"] for m in json.loads(body)["messages"]]


def test_the_question_is_asked_in_the_readers_language(server, room):
    ann = person(server, "zh" + room[-8:])
    assert form_post(ann, room, "你好")[0] == 303
    status, page = form_post(ann, room, "你好", headers={"Accept-Language": "zh-Hans"})
    assert status == 409
    assert "这条消息你刚刚发过" in page
    assert 'name="again" value="1"' in page


def test_someone_elses_post_of_the_same_text_is_not_told(server, room):
    ann, bob = person(server, "an" + room[-8:]), person(server, "bo" + room[-8:])
    assert form_post(ann, room, "same words")[0] == 303
    assert form_post(bob, room, "same words")[0] == 303  # nothing of ann's is revealed to bob


def test_a_busy_room_still_asks_about_the_same_text(server, room):
    # Whatever the traffic in between: the question reads the last two minutes, not a page.
    ann, bob = person(server, "an" + room[-8:]), person(server, "bo" + room[-8:])
    assert form_post(ann, room, "only once please")[0] == 303
    for i in range(25):
        assert bob.post(room, "chatter %d" % i)[0] == 201
    assert form_post(ann, room, "only once please")[0] == 409


def test_an_older_own_message_of_the_same_words_is_asked_about_too(server, room):
    # Back may reach any page of the last two minutes: "ok", "see you", then "ok" from another
    # page is asked about (its Send sends it).
    ann = person(server, "an" + room[-8:])
    assert form_post(ann, room, "ok")[0] == 303
    assert form_post(ann, room, "see you")[0] == 303
    assert form_post(ann, room, "ok")[0] == 409
    assert form_post(ann, room, "ok", again=True)[0] == 303


def test_sending_anyway_is_not_asked_again_after_another_refusal(server, room):
    # A refusal after "send it anyway" (here: too long) keeps the page's "again".
    ann = person(server, "an" + room[-8:])
    status, page = form_post(ann, room, "x" * 5000, again=True)
    assert status == 422 and 'name="again" value="1"' in page


def test_a_guests_registration_script_answers_no_sessions(redis_url, room, redis_client):
    ext = services(make_app(redis_url))
    sid, name = "s-" + room, "pg" + room[-8:]
    result = opening.admit_person_of(ext, name, sid, True, None, "guest:" + "0" * 16)
    assert result is not None and result[2] is None  # Lua false -> nil


def test_an_accounts_registration_script_reads_its_sessions_apart_path(redis_url, room, redis_client):
    ext = services(make_app(redis_url))
    account, sid, name = "b" * 24, "s-" + room, "pb" + room[-8:]
    redis_client.sadd(accounts.sessions_key(account), sid, "other")
    result = opening.admit_person_of(ext, name, sid, False, account, account)
    assert sorted(result[2]) == ["other", sid]


def test_an_accounts_registration_script_with_no_sessions_set(redis_url, room, redis_client):
    ext = services(make_app(redis_url))
    account, sid, name = "c" * 23 + room[-1], "s2-" + room, "pc" + room[-8:]
    redis_client.delete(accounts.sessions_key(account))
    result = opening.admit_person_of(ext, name, sid, False, account, account)
    assert result[2] == []  # SMEMBERS of a missing key: an empty array (the sidebar falls back)


def dm_form(browser, to, room, text, headers=None):
    form = {"text": text, "idempotency_key": uuid.uuid4().hex, "next": "/rooms/%s?with=%s" % (room, to)}
    status, _, body = browser.request("POST", "/users/%s/messages?room=%s" % (urllib.parse.quote(to), room),
                                      form=form, headers={**HTML, **(headers or {})})
    return status, body.decode()


def test_a_direct_messages_question_is_asked_in_the_readers_language(server, room):
    ann, bob = person(server, "an" + room[-8:]), person(server, "bo" + room[-8:])
    assert dm_form(ann, bob.name, room, "悄悄话")[0] == 303
    status, page = dm_form(ann, bob.name, room, "悄悄话", headers={"Accept-Language": "zh-Hans"})
    assert status == 409
    assert "这条消息你刚刚发过" in page
    assert 'name="again" value="1"' in page
    # bob sending ann the same words is not asked (the log holds ann's message to bob, not his)
    assert dm_form(bob, ann.name, room, "悄悄话")[0] == 303


def test_the_same_direct_form_sent_twice_stores_once_unasked(server, room):
    ann, bob = person(server, "an" + room[-8:]), person(server, "bo" + room[-8:])
    form = {"text": "twice the same form", "idempotency_key": uuid.uuid4().hex, "next": "/rooms/" + room}
    path = "/users/%s/messages?room=%s" % (urllib.parse.quote(bob.name), room)
    assert ann.request("POST", path, form=form, headers=HTML)[0] == 303
    assert ann.request("POST", path, form=form, headers=HTML)[0] == 303
    _, _, body = ann.request("GET", "/rooms/%s?with=%s" % (room, bob.name), headers=HTML)
    conversation = body.decode().split("data-conversation", 1)[1]
    assert len(re.findall(r'class="text"[^>]*>twice the same form', conversation)) == 1


def test_the_same_room_form_sent_twice_stores_once_unasked(server, room):
    ann = person(server, "an" + room[-8:])
    form = {"text": "same form twice", "idempotency_key": uuid.uuid4().hex, "next": "/rooms/" + room}
    assert ann.request("POST", "/rooms/%s/messages" % room, form=form, headers=HTML)[0] == 303
    assert ann.request("POST", "/rooms/%s/messages" % room, form=form, headers=HTML)[0] == 303
    assert texts(ann, room) == ["same form twice"]


def test_a_reply_of_the_same_words_to_another_message_is_not_asked(server, room):
    ann, bob = person(server, "an" + room[-8:]), person(server, "bo" + room[-8:])
    first = bob.post(room, "q1")[1]["id"]
    second = bob.post(room, "q2")[1]["id"]
    assert form_post(ann, room, "yes", reply_to=first)[0] == 303
    assert form_post(ann, room, "yes", reply_to=second)[0] == 303
    assert form_post(ann, room, "yes", reply_to=second)[0] == 409


QUESTION = "You sent this message a moment ago."


def composer_of(page, action):
    """The composer form that posts to ``action`` (the room's, or a conversation's)."""
    start = page.index('action="%s"' % action)
    return page[start:page.index("</form>", start)]


def test_the_rooms_question_is_a_notice_not_an_error(server, room):
    ann = person(server, "an" + room[-8:])
    assert form_post(ann, room, "asked, not refused")[0] == 303
    status, page = form_post(ann, room, "asked, not refused")
    assert status == 409
    composer = composer_of(page, "/rooms/%s/messages" % room)
    assert re.search(r'<p class="note" role="status" data-note>%s' % QUESTION, composer)
    assert '<p class="error" role="alert" data-error hidden></p>' in composer


def test_a_direct_messages_question_is_a_notice_not_an_error(server, room):
    ann, bob = person(server, "an" + room[-8:]), person(server, "bo" + room[-8:])
    assert dm_form(ann, bob.name, room, "asked privately")[0] == 303
    status, page = dm_form(ann, bob.name, room, "asked privately")
    assert status == 409
    composer = composer_of(page, "/users/%s/messages?room=%s" % (urllib.parse.quote(bob.name), room))
    assert re.search(r'<p class="note" role="status" data-note>%s' % QUESTION, composer)
    assert '<p class="error" role="alert" data-error hidden></p>' in composer


def test_a_program_posting_a_form_without_accept_is_never_asked(server, room):
    # A session cookie and no Accept header: a program (a browser's form names text/html), so
    # it is answered as pages are (303), and the same text again is stored again, as JSON is.
    ann = person(server, "an" + room[-8:])
    for key in ("first", "second"):
        form = {"text": "a program's words", "idempotency_key": key + room}
        assert ann.request("POST", "/rooms/%s/messages" % room, form=form)[0] == 303
    assert texts(ann, room) == ["a program's words"] * 2


def test_a_form_post_asking_for_json_is_never_asked(server, room):
    ann = person(server, "an" + room[-8:])
    for key in ("first", "second"):
        form = {"text": "json please", "idempotency_key": key + room}
        status, _, _ = ann.request("POST", "/rooms/%s/messages" % room, form=form,
                                   headers={"Accept": "application/json"})
        assert status == 201
    assert texts(ann, room) == ["json please"] * 2


def test_a_form_post_with_a_bearer_token_is_never_asked(server, room):
    # The publish token, even beside a browser's session cookie and Accept: text/html.
    ann = person(server, "an" + room[-8:])
    for key in ("first", "second"):
        form = {"text": "a bot's words", "user": "bot", "idempotency_key": key + room}
        status, _, _ = ann.request("POST", "/rooms/%s/messages" % room, form=form,
                                   headers={**HTML, "Authorization": "Bearer " + TOKEN})
        assert status == 201
    assert texts(ann, room) == ["a bot's words"] * 2


def test_a_direct_form_post_asking_for_json_is_never_asked(server, room):
    ann, bob = person(server, "an" + room[-8:]), person(server, "bo" + room[-8:])
    path = "/users/%s/messages" % urllib.parse.quote(bob.name)
    for key in ("first", "second"):
        form = {"text": "json privately", "idempotency_key": key + room}
        assert ann.request("POST", path, form=form, headers={"Accept": "application/json"})[0] == 201


def test_a_program_posting_a_direct_form_without_accept_is_never_asked(server, room):
    ann, bob = person(server, "an" + room[-8:]), person(server, "bo" + room[-8:])
    path = "/users/%s/messages?room=%s" % (urllib.parse.quote(bob.name), room)
    for key in ("first", "second"):
        form = {"text": "a program, privately", "idempotency_key": key + room, "next": "/rooms/" + room}
        assert ann.request("POST", path, form=form)[0] == 303
