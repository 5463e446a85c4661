"""Bad input to the routes of issues 15, 17 and 19 is a clear 4xx, never a 500 (review): real
Gunicorn (2 gevent workers), real Redis, the operator's publish token for the webhook admin API."""
import json
import urllib.error
import urllib.request

import pytest

from app.people import reading

from .support import TOKEN
from .test_rooms import guest, new_room


def call(base, method, path, body=None):
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method=method,
                                     headers={"Authorization": "Bearer " + TOKEN,
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.mark.parametrize("body", [
    {"url": "http://[::1"},                      # an IPv6 address left open
    {"url": "http://hooks.example/\x00"},        # a control character
    {"url": "http://hooks.example/", "rooms": 5},
    {"url": "http://hooks.example/", "rooms": ["ops", 7]},
    {"url": "http://hooks.example/", "rooms": {"a": 1}},
    # Empty is no default: an empty room list matches no room, not every room (the CLI's
    # --rooms '' is refused too), and an empty event list asks for no event at all.
    {"url": "http://hooks.example/", "rooms": []},
    {"url": "http://hooks.example/", "rooms": ""},
    {"url": "http://hooks.example/", "rooms": False},
    {"url": "http://hooks.example/", "events": []},
    {"url": "http://hooks.example/", "events": ""},
    {"url": "http://hooks.example/", "events": 0},
])
def test_a_webhook_with_a_malformed_url_or_room_list_is_refused_with_a_sentence(server, body):
    status, said = call(server.url, "POST", "/admin/webhooks", body)
    assert status == 400, said
    assert said["error"] and said["code"] == "invalid"


def test_a_webhook_without_events_or_rooms_gets_messages_from_every_room(server):
    status, said = call(server.url, "POST", "/admin/webhooks",
                        {"url": "http://hooks.example/", "events": None, "rooms": None})
    assert status == 201, said
    assert (said["events"], said["rooms"]) == (["message"], ["*"])
    assert call(server.url, "DELETE", "/admin/webhooks/" + said["id"])[0] == 200


def test_a_persons_sidebar_keys_stay_bounded_however_many_rooms_they_show_or_hide(server, redis_client):
    person = guest(server, "many")
    for _ in range(reading.MAX_ROOMS + 60):
        assert person.request("PUT", "/me/rooms/%s" % new_room("show"))[0] == 204
    for _ in range(reading.MAX_HIDDEN + 20):
        assert person.request("DELETE", "/me/rooms/%s" % new_room("hide"))[0] == 204
    tags = [key[:-len(":read")] for key in redis_client.scan_iter(match="ripple:{p:*}:read", count=1000)]
    assert tags
    assert max(redis_client.zcard(tag + ":rooms") for tag in tags) <= reading.MAX_ROOMS
    assert max(redis_client.hlen(tag + ":read") for tag in tags) <= reading.MAX_ROOMS + reading.READ_SLACK
    assert max(redis_client.scard(tag + ":hidden") for tag in tags) <= reading.MAX_HIDDEN
