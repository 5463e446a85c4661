"""A private room answers a non-member exactly as a name that is no room answers, on every route
of a room (issue 15's leftover), through real Gunicorn (2 gevent workers) and real Redis.

The routes come from app.url_map, so a new route is walked too. Each is asked the same request
twice by the same stranger (signed out, a guest, an account holder): once for a private room
with a topic and a message, once for a name nobody used; status, body and headers must match.
The only exceptions are the routes where a free name is, by design, an empty public room anyone
may start (app/web/gate.py: its page, history, stream, presence, typing, the first post,
following it, its messages' routes where every id is unknown); there the private room still
answers its 404 "There is no room with that name.", and shows nothing.
"""
import re

import pytest

from app import create_app

from .test_accounts import account_holder
from .test_rooms import create, new_room, strangers

# (endpoint, method): a free name is an empty public room anyone may start here (by design).
EMPTY_PUBLIC_ROOM = {
    ("pages.room", "GET"), ("api.history", "GET"), ("api.events", "GET"), ("api.room_presence", "GET"),
    ("api.typing", "POST"), ("api.post_message", "POST"), ("api.withdraw_post", "POST"), ("reading.mark_read", "PUT"),
    ("reading.show_room", "PUT"), ("reading.hide_room", "DELETE"), ("reading.room_form", "POST"),
    ("conversation.edit_message", "PATCH"), ("conversation.edit_form", "POST"),
    ("conversation.remove_message", "DELETE"), ("conversation.delete_form", "POST"),
    ("conversation.delete_page", "GET"), ("conversation.reaction", "PUT"),
    ("conversation.reaction", "DELETE"), ("conversation.reaction_form", "POST"),
}
# Headers that differ between any two requests.
VOLATILE = {"date", "x-request-id", "set-cookie", "content-length", "server", "x-ratelimit-remaining",
            "x-ratelimit-reset"}  # the limiter counts each request
FILL = {"message_id": "1700000000000-0", "emoji": "%F0%9F%91%8D", "name": "nobody",
        "user": "nobody", "invite_id": "0123456789abcdef"}
EXTRA_QUERIES = {"pages.room": ["", "?at=1700000000000-0", "?before=1700000000000-0"],
                 "api.history": ["", "?after=0-0", "?around=1700000000000-0"]}


def room_routes():
    """(endpoint, method, path with <room> left in) of every route of a room."""
    app = create_app({"TESTING": True, "REDIS_URL": "redis://127.0.0.1:1/0", "SECRET_KEY": "x"})
    for rule in app.url_map.iter_rules():
        if "<room>" not in rule.rule:
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "<room>" if m.group(1) == "room" else FILL[m.group(1)], rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for query in EXTRA_QUERIES.get(rule.endpoint, [""]) if method == "GET" else [""]:
                yield rule.endpoint, method, path + query


def shown(answer, room):
    """An answer as compared: status, headers but the volatile ones, the body with the room's
    name and per-request tokens blanked."""
    status, headers, body = answer
    text = body.decode("utf-8", "replace").replace(room, "<room>")
    text = re.sub(r'(csrf[-_]token"?\s*(?:content|value)=")[^"]*', r"\1", text)
    text = re.sub(r'nonce="[^"]*"', 'nonce=""', text)
    kept = sorted((k.lower(), re.sub(r"'nonce-[^']*'", "", v).replace(room, "<room>"))
                  for k, v in headers.items() if k.lower() not in VOLATILE)
    # The limiter's window runs on between two requests: its Retry-After may tick by a second.
    kept = [(k, "<s>" if k == "retry-after" and status != 429 else v) for k, v in kept]
    return status, kept, text


@pytest.fixture(scope="module")
def private_room(server):
    owner = account_holder(server, "own")
    room = new_room("hid")
    assert create(owner, room, "private", "quarterly plans")[0] == 201
    assert owner.post(room, "the secret plan")[0] == 201
    return room


@pytest.mark.parametrize("who", ["signed out", "guest", "account"])
def test_every_route_answers_a_private_room_as_it_answers_no_room(server, private_room, who):
    stranger, free = strangers(server)[who], new_room("free")
    walked = 0
    for endpoint, method, path in room_routes():
        body = None if method == "GET" else {}
        hidden = stranger.request(method, path.replace("<room>", private_room), body=body)
        assert b"secret plan" not in hidden[2] and b"quarterly" not in hidden[2], (method, path)
        if endpoint == "api.events":  # a free name's stream stays open: its refusal is enough
            assert hidden[0] == 404, (method, path, hidden[0])
            continue
        nothing = stranger.request(method, path.replace("<room>", free), body=body)
        if (endpoint, method) in EMPTY_PUBLIC_ROOM and shown(hidden, private_room) != shown(nothing, free):
            a, b = shown(hidden, private_room), shown(nothing, free)
            assert hidden[0] == 404 and b"There is no room with that name." in hidden[2], (
                method, path, set(a[1]) ^ set(b[1]), a[0], b[0], a[2] == b[2])
            continue
        assert shown(hidden, private_room) == shown(nothing, free), (who, method, path)
        walked += 1
    assert walked >= 20
