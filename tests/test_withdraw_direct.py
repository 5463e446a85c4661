"""Withdrawing a direct message whose attempt got no answer (POST /users/<name>/withdrawals): as
for a room's post (test_withdrawals), the attempt a stalled network still held must reach no one
when it arrives. A direct message is stored in every recipient device's log and then the
sender's, in different slots: an attempt claims its key in the sender's slot first, and the
withdrawal decides there (app/rooms/store.py claim_direct). Real Gunicorn and real Redis."""
import json
from urllib.parse import quote

import pytest

from .test_accounts import account_holder
from .test_accounts import sign_in as account_sign_in
from .test_direct import _replayed, person, token_direct
from .web import Browser


def withdraw(browser, name, key, **kw):
    """``browser``'s person withdraws their direct message to ``name`` keyed ``key``: (status, headers, JSON)."""
    status, headers, body = browser.request("POST", "/users/%s/withdrawals" % quote(name),
                                            body={"idempotency_key": key}, **kw)
    return status, headers, json.loads(body or b"{}")


@pytest.fixture
def ann(server):
    return person(server, "ann")


@pytest.fixture
def bob(server):
    return person(server, "bob")


def test_a_direct_message_withdrawn_before_it_arrives_reaches_no_one(ann, bob, room):
    assert withdraw(ann, bob.name, "dm-late")[::2] == (200, {"withdrawn": True})
    status, body = ann.direct(bob.name, "held by a stalled network", key="dm-late")  # arrives now
    assert (status, body["code"]) == (409, "withdrawn")
    assert _replayed(bob, room) == []
    assert _replayed(ann, room) == []  # nor the sender's own copy


def test_every_later_attempt_is_refused_and_a_new_key_is_a_new_message(ann, bob, room):
    assert withdraw(ann, bob.name, "dm-2")[0] == 200
    assert ann.direct(bob.name, "again", key="dm-2")[1]["code"] == "withdrawn"
    assert ann.direct(bob.name, "again", key="dm-2b")[0] == 201
    assert _replayed(bob, room) == ["again"]


def test_withdrawing_a_stored_direct_message_answers_409_with_the_senders_copy(ann, bob):
    status, stored = ann.direct(bob.name, "got through", key="dm-3")
    assert status == 201
    status, _, body = withdraw(ann, bob.name, "dm-3")
    assert (status, body["code"], body["message"]["id"]) == (409, "already_sent", stored["id"])
    assert (body["message"]["text"], body["message"]["to"]) == ("got through", bob.name)
    assert ann.direct(bob.name, "got through", key="dm-3") == (200, stored)  # a retry still finds it


def test_an_attempt_storing_it_right_now_is_asked_about_again_shortly(ann, bob, redis_client):
    # An attempt past its claim, on its way through the recipients' logs, its copy not stored
    # yet: made so from a stored one by forgetting what its key stored.
    stored = ann.direct(bob.name, "on its way", key="dm-4")[1]
    claim = next(key for key in redis_client.scan_iter("ripple:{u:*}:*:claimed", count=1000)
                 if redis_client.get(key[:-len(":claimed")]) == stored["id"])
    redis_client.delete(claim[:-len(":claimed")])
    status, headers, body = withdraw(ann, bob.name, "dm-4")
    assert (status, body["code"], headers["Retry-After"]) == (503, "withdraw_in_flight", "1")
    assert body["error"]
    # Its claim is older than CLAIM_SECONDS (its worker died on the way, or it failed): bob's
    # log may hold it, so it is never said withdrawn.
    _age(redis_client, claim)
    status, _, body = withdraw(ann, bob.name, "dm-4")
    assert (status, body["code"]) == (409, "withdraw_unknown") and body["error"]


def test_a_withdrawal_reaches_every_device_of_an_account(server, ann, room):
    first = account_holder(server, "dev")
    second = Browser(server.url)
    assert account_sign_in(second, first.name)[0] == 200
    assert withdraw(ann, first.name, "dm-5")[0] == 200
    assert ann.direct(first.name, "to both devices", key="dm-5")[1]["code"] == "withdrawn"
    for device in (first, second):
        assert _replayed(device, room) == []


def test_the_withdrawal_is_the_senders_own(ann, bob, server, room):
    assert withdraw(person(server, "cy"), bob.name, "dm-shared")[0] == 200
    assert ann.direct(bob.name, "mine", key="dm-shared")[0] == 201
    assert _replayed(bob, room) == ["mine"]


def test_a_withdrawal_needs_a_key_and_a_session_and_a_possible_name(ann, bob, server):
    status, _, body = ann.request("POST", "/users/%s/withdrawals" % quote(bob.name), body={})
    assert (status, json.loads(body)["code"]) == (400, "missing_idempotency_key")
    assert withdraw(Browser(server.url), bob.name, "k")[0] in (400, 401)  # no session, no CSRF token
    assert withdraw(ann, "x" * 200, "k")[0] == 404


def test_a_tokens_direct_message_cannot_be_withdrawn(server, bob):
    from .support import TOKEN
    status, _, body = Browser(server.url).request(
        "POST", "/users/%s/withdrawals" % quote(bob.name), body={"idempotency_key": "ci-1", "user": "ci"},
        headers={"Authorization": "Bearer " + TOKEN})
    assert (status, json.loads(body)["code"]) == (409, "withdraw_unavailable")
    assert token_direct(server, bob.name, "still sent", "ci-1") == 201


def _age(redis_client, claim):
    """Make ``claim`` (a direct message's claim key) older than CLAIM_SECONDS, its ttl kept."""
    from app.rooms.store import CLAIM_SECONDS
    redis_client.set(claim, int(redis_client.time()[0]) - CLAIM_SECONDS - 1, keepttl=True)


def _session_tag(redis_client, name):
    """The Redis hash tag of the session whose person is ``name`` (keys.PersonKeys.tag)."""
    for key in redis_client.scan_iter("ripple:{u:*}:session", count=1000):
        value = redis_client.get(key)
        if value and json.loads(value).get("name") == name:
            return key[:-len(":session")]
    raise AssertionError("no session of %s" % name)


def test_an_attempt_that_failed_after_the_recipient_stored_it_is_never_withdrawn(ann, bob, room,
                                                                                redis_client):
    # No worker dies: an attempt stores the recipient's copy, and then the sender's copy fails
    # (a Redis error in the sender's slot; with RIPPLE_REPLICA_ACKS, NotReplicated on the
    # recipient's log does the same). The page is answered 5xx, the person presses "Don't send",
    # and the withdrawal is asked again (503 withdraw_in_flight) until the claim lapses.
    tag = _session_tag(redis_client, ann.name)
    redis_client.set(tag + ":dm", "not a stream")  # the sender's own copy fails (WRONGTYPE)
    status, _ = ann.direct(bob.name, "delivered, then failed", key="dm-6")
    assert status >= 500
    redis_client.delete(tag + ":dm")
    assert _replayed(bob, room) == ["delivered, then failed"]  # bob has it
    status, headers, body = withdraw(ann, bob.name, "dm-6")
    assert (status, body["code"]) == (503, "withdraw_in_flight")
    for claim in redis_client.scan_iter(tag + ":idem:*:claimed", count=1000):
        _age(redis_client, claim)  # CLAIM_SECONDS (60 s) later, as the page keeps asking
    status, _, body = withdraw(ann, bob.name, "dm-6")
    # "withdrawn: true" would tell ann that nothing reached anyone: bob has it.
    assert (status, body["code"]) == (409, "withdraw_unknown"), body
    assert ann.direct(bob.name, "delivered, then failed", key="dm-6")[0] == 201  # a retry completes it
    assert _replayed(bob, room) == ["delivered, then failed"]  # once
    assert withdraw(ann, bob.name, "dm-6")[2]["code"] == "already_sent"
