"""Room names in any script (issue 18): one rule, one canonical form, every entry point."""
import json
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest
from redis.crc import key_slot

from app.ops import cli
from app.rooms import keys

from .support import post
from .test_streams import open_ready
from .web import Browser

CHINESE = "技术交流"


def q(room):
    return urllib.parse.quote(room)


@pytest.fixture
def chinese_room(room):
    """A fresh room in Chinese per test (a fixed name would share history between tests)."""
    return CHINESE + room[-8:]


@pytest.mark.parametrize("name,canonical", [
    ("lobby", "lobby"), ("Lobby", "lobby"), ("ＬＯＢＢＹ", "lobby"), (CHINESE, CHINESE),
    ("café-2", "café-2"), ("Москва", "москва"), ("한국어_방", "한국어_방"), ("हिन्दी", "हिन्दी"), ("9lives", "9lives")])
def test_names_in_any_script_have_one_canonical_form(name, canonical):
    assert keys.canonical_room(name) == canonical
    assert keys.valid_room(canonical)


@pytest.mark.parametrize("name", [
    "a b", "a\u3000b", "a\u200bb", "\u202elobby", "lobby\u2066", "a\u00adb", "\u3164", "-x", "_x", "a.b", "a/b",
    "a" * 65, "", "lobby\n", "a\x00", "emoji🎉", "x\ufe0f"])
def test_invisible_spaced_or_punctuated_names_are_refused(name):
    assert keys.canonical_room(name) is None


def test_every_key_of_a_chinese_room_shares_one_cluster_slot():
    k = keys.RoomKeys(CHINESE)
    assert len({key_slot(n.encode()) for n in (k.log, k.channel, k.meta, k.online, k.idempotency("x"))}) == 1


def test_a_chinese_room_is_chatted_in_across_workers_and_resumed(server, chinese_room):
    streams = []
    try:
        while len({server.worker_of(s.local_port) for s in streams} - {None}) < 2:
            assert len(streams) < 40, "streams never reached both workers"
            streams.append(open_ready(server, q(chinese_room))[0])
        status, sent = post(server.url, q(chinese_room), "你好")
        assert status == 201 and sent["room"] == chinese_room
        for stream in streams:
            assert stream.messages(1)[0].json()["text"] == "你好"
        cursor = streams[0].last_id
    finally:
        for stream in streams:
            stream.close()
    missed = post(server.url, q(chinese_room), "错过的消息")[1]["id"]
    again, before = open_ready(server, q(chinese_room), headers={"Last-Event-ID": cursor})
    with again:
        assert [e.json()["id"] for e in before if e.name == "message"] == [missed]


def test_the_lobby_form_opens_a_chinese_room_and_lists_it(server, chinese_room):
    browser = Browser(server.url)
    status, headers, _ = browser.request("GET", "/go?room=" + q(chinese_room))
    assert status == 303 and headers["Location"].endswith("/rooms/" + q(chinese_room))
    status, _, page = browser.request("GET", "/rooms/" + q(chinese_room))
    assert status == 200 and chinese_room in page.decode()
    post(server.url, q(chinese_room), "第一条")
    _, _, lobby = browser.request("GET", "/")
    assert 'href="/rooms/%s"' % q(chinese_room) in lobby.decode()


@pytest.mark.parametrize("typed", ["a b", "zero\u200bwidth", "\u202eevil", "a/b"])
def test_the_lobby_refuses_a_bad_name_with_the_rule(server, typed):
    status, _, page = Browser(server.url).request("GET", "/go?room=" + q(typed))
    assert status == 400 and "any script" in page.decode()


def test_a_page_in_another_form_redirects_to_the_canonical_one(server, room):
    status, headers, _ = Browser(server.url).request("GET", "/rooms/%s?before=1-0" % room.upper())
    assert status == 301 and headers["Location"].endswith("/rooms/%s?before=1-0" % room)


def test_the_api_answers_for_the_canonical_room(server, room):
    status, sent = post(server.url, room.upper(), "shouted")
    assert status == 201 and sent["room"] == room
    with urllib.request.urlopen("%s/rooms/%s/messages" % (server.url, room.upper()), timeout=10) as r:
        assert [m["id"] for m in json.loads(r.read())["messages"]] == [sent["id"]]


def test_a_bad_name_on_the_api_gets_the_rule_sentence(server):
    status, body = post(server.url, q("a b"), "x")
    assert status == 400 and "any script" in body["error"]


def test_python_publish_takes_a_chinese_room(redis_url, chinese_room):
    stored = json.loads(cli.publish(chinese_room.upper(), "脚本", "bot", redis_url=redis_url))
    assert stored["room"] == chinese_room


def test_the_cli_refuses_a_bad_room_with_the_rule(redis_url):
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "publish", "a b", "x"],
                            env={"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "any script" in result.stderr
