"""Direct messages: they reach every stream of the recipient and the sender, nobody else's, and
resume on reconnect on the same cursor as the room."""
import uuid

from .support import TOKEN
from .test_accounts import account_holder
from .test_accounts import sign_in as account_sign_in
from .web import Browser


def person(server, prefix):
    browser = Browser(server.url)
    assert browser.sign_in("%s-%s" % (prefix, uuid.uuid4().hex[:6])) == 200
    return browser


def ready(stream):
    stream.until("ready")
    return stream


def test_a_direct_message_reaches_every_stream_of_both_people_and_no_one_else(server, room):
    ann, bob, eve = person(server, "ann"), person(server, "bob"), person(server, "eve")
    other_room = room + "-b"
    streams = {
        "ann": [ready(ann.stream(room)), ready(ann.stream(other_room))],
        "bob": [ready(bob.stream(room)), ready(bob.stream(other_room))],
        "eve": [ready(eve.stream(room)), ready(eve.stream(other_room))],
    }
    try:
        status, sent = ann.direct(bob.name, "just for you")
        assert status == 201 and sent["from"] == ann.name and sent["to"] == bob.name
        for who in ("ann", "bob"):
            for stream in streams[who]:
                event = stream.messages(1, name="direct")[0]
                assert event.json()["text"] == "just for you"
        # Eve's streams: the next thing they carry is a room message posted afterwards.
        assert ann.post(room, "public")[0] == 201
        for stream in streams["eve"][:1]:
            event, before = stream.until("message")
            assert event.json()["text"] == "public" and all(e.name != "direct" for e in before)
        assert all(e.name != "direct" for e in _drain(streams["eve"][1]))
    finally:
        for group in streams.values():
            for stream in group:
                stream.close()


def _drain(stream):
    events = []
    try:
        while True:
            event = stream.next(1.0)
            if event is None:
                return events
            events.append(event)
    except TimeoutError:
        return events


def test_direct_messages_resume_after_a_reconnect_with_no_gap_or_duplicate(server, room):
    ann, bob = person(server, "ann"), person(server, "bob")
    stream = ready(bob.stream(room))
    ann.direct(bob.name, "one")
    ann.post(room, "room one")
    first = stream.messages(1, name="direct")[0]
    stream.messages(1)
    stream.close()
    missed = [ann.direct(bob.name, "missed %d" % i)[1]["text"] for i in range(3)]
    ann.post(room, "room missed")
    with bob.stream(room, {"Last-Event-ID": stream.last_id}) as again:
        _, before = again.until("ready")
    assert [e.json()["text"] for e in before if e.name == "direct"] == missed
    assert [e.json()["text"] for e in before if e.name == "message"] == ["room missed"]
    assert first.json()["text"] == "one"


def test_a_key_reused_for_another_text_is_422_and_stores_nothing(server, room):
    ann, bob = person(server, "ann"), person(server, "bob")
    assert ann.direct(bob.name, "first", key="dm-1")[0] == 201
    assert ann.direct(bob.name, "first", key="dm-1")[0] == 200
    status, body = ann.direct(bob.name, "second", key="dm-1")
    assert status == 422 and body["code"] == "idempotency_key_reused"
    assert _replayed(bob, room) == ["first"]


def test_a_key_reused_for_someone_else_is_422_before_they_get_it(server, room):
    ann, bob, cy = person(server, "ann"), person(server, "bob"), person(server, "cy")
    assert ann.direct(bob.name, "hello", key="dm-2")[0] == 201
    status, body = ann.direct(cy.name, "hello", key="dm-2")
    assert status == 422 and body["code"] == "idempotency_key_reused"
    assert _replayed(cy, room) == []


def _replayed(browser, room):
    """The texts of the direct messages a fresh stream of ``browser`` replays."""
    with browser.stream(room) as stream:
        _, before = stream.until("ready")
    return [e.json()["text"] for e in before if e.name == "direct"]


def test_a_direct_message_to_someone_unknown_is_404(server):
    ann = person(server, "ann")
    status, body = ann.direct("nobody-" + uuid.uuid4().hex[:6], "hello?")
    assert status == 404 and body["error"]


def test_a_refusal_that_waiting_cannot_mend_says_no_retry_after(server):
    """A rate-limited view's answers carry the limiter's headers; Retry-After only where waiting
    helps (429, 503): a page would otherwise add "try again in N s" to "nobody by that name"."""
    ann = person(server, "ann")
    status, headers, _ = ann.request("POST", "/users/nobody-%s/messages" % uuid.uuid4().hex[:6],
                                     body={"text": "hello?"})
    assert status == 404 and "Retry-After" not in headers


def test_direct_messages_need_a_session(server):
    bob = person(server, "bob")
    stranger = Browser(server.url)
    status, _, _ = stranger.request("POST", "/users/%s/messages" % bob.name, body={"text": "hi"})
    assert status in (400, 401)


def test_the_publish_token_can_send_a_direct_message_as_a_service(server, room):
    bob = person(server, "bob")
    with ready(bob.stream(room)) as stream:
        status, _, _ = Browser(server.url).request(
            "POST", "/users/%s/messages" % bob.name, body={"text": "your build passed", "user": "ci"},
            headers={"Authorization": "Bearer " + TOKEN})
        assert status == 201
        assert stream.messages(1, name="direct")[0].json()["from"] == "ci"


def test_a_programs_key_reused_for_an_account_on_two_devices_stores_on_neither(server, room):
    # A program keeps no copy of its own: every device's log is checked before any stores it.
    first = account_holder(server, "dev")
    assert token_direct(server, first.name, "build 1 passed", "ci-k1") == 201
    devices = [first]
    for _ in range(5):  # more devices: the first one's log is then rarely the first one asked
        devices.append(Browser(server.url))
        assert account_sign_in(devices[-1], first.name)[0] == 200
    assert token_direct(server, first.name, "build 2 passed", "ci-k1") == 422
    for device in devices:
        assert "build 2 passed" not in _replayed(device, room)


def token_direct(server, name, text, key):
    status, _, _ = Browser(server.url).request(
        "POST", "/users/%s/messages" % name, body={"text": text, "user": "ci"},
        headers={"Authorization": "Bearer " + TOKEN, "Idempotency-Key": key})
    return status
