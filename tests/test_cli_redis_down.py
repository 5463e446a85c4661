"""Operator commands: each group runs as its own process (`flask --app app <group> ...`: the entry
point the other tests' in-process runner skips), and every command meets an unreachable Redis
with one line and exit status 1, whichever of its steps meets it: never a traceback
(app/ops/cli_errors.py)."""
import pytest

from app import create_app
from app.ops.embedded_redis import EmbeddedRedis

from .servers import free_port
from .support import TOKEN, flask_process

COMMANDS = [
    ["accounts", "list"], ["accounts", "disable", "ann"], ["accounts", "enable", "ann"],
    ["tokens", "list"], ["tokens", "revoke", "feed-bot"],
    ["rooms", "list"], ["rooms", "show", "lobby"],
    ["webhooks", "list"],
    ["publish", "lobby", "hello", "--user", "ops"],
]


@pytest.fixture(scope="module")
def nowhere():
    """The app's CLI pointed at a port where nothing listens."""
    url = "redis://127.0.0.1:%d/0" % free_port()
    app = create_app({"TESTING": True, "REDIS_URL": url, "SECRET_KEY": "test-secret",
                      "REDIS_SOCKET_TIMEOUT": 1})
    return app.test_cli_runner(), url  # click 8.2+: stderr apart from output


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c[:2]) for c in COMMANDS])
def test_a_command_says_redis_is_unreachable_in_one_line(nowhere, args):
    runner, url = nowhere
    result = runner.invoke(args=args)
    assert result.exit_code == 1, (result.output, result.stderr, result.exception)
    assert result.stderr.startswith("error: Redis is unreachable at %s" % url), result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("group", ["accounts", "tokens", "rooms", "webhooks"])
def test_each_command_group_runs_as_an_operator_runs_it(redis_url, group):
    result = flask_process(redis_url, group, "list")
    assert result.returncode == 0 and "Traceback" not in result.stderr, (result.stdout, result.stderr)


def test_the_unreachable_redis_is_named_without_its_password():
    url = "redis://:hunter2@127.0.0.1:%d/0?password=hunter2&db=0" % free_port()
    app = create_app({"TESTING": True, "REDIS_URL": url, "SECRET_KEY": "test-secret",
                      "REDIS_SOCKET_TIMEOUT": 1})
    result = app.test_cli_runner().invoke(args=["rooms", "list"])
    assert result.exit_code == 1 and "hunter2" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: Redis is unreachable at redis://***@127.0.0.1:")
    assert "password=***&db=0" in result.stderr


def test_a_redis_cluster_none_of_whose_nodes_answers_is_one_line_too():
    # RedisCluster asks its nodes while the app is made, before any command's own handling.
    url = "redis+cluster://:hunter2@127.0.0.1:%d" % free_port()
    result = flask_process(url, "rooms", "list")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("Error: Redis is unreachable at redis+cluster://***@127.0.0.1:")
    assert "hunter2" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def guarded_redis(tmp_path_factory):
    """A Redis that asks for a password (the embedded server's way), for clients with a wrong one."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("guarded"), port=free_port(), appendonly=False,
                           password="the-right-one")
    server.start()
    yield server
    server.stop()


def test_a_wrong_redis_password_is_said_as_such_not_as_unreachable(guarded_redis):
    result = flask_process("redis://:wrong@127.0.0.1:%d/0" % guarded_redis.port, "rooms", "list")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: Redis at redis://***@127.0.0.1:%d/0 refused the password"
                                    % guarded_redis.port), result.stderr


def test_a_post_refused_by_redis_for_its_password_is_503_not_unconfirmed(guarded_redis, room):
    # The handshake failed before any command was sent: certainly nothing was stored.
    app = create_app({"TESTING": True, "REDIS_URL": "redis://:wrong@127.0.0.1:%d/0" % guarded_redis.port,
                      "SECRET_KEY": "test-secret", "PUBLISH_TOKEN": TOKEN, "REDIS_SOCKET_TIMEOUT": 1})
    answer = app.test_client().post("/rooms/%s/messages" % room, json={"text": "hi", "user": "bot"},
                                    headers={"Authorization": "Bearer " + TOKEN})
    assert answer.status_code == 503 and answer.get_json()["code"] == "unavailable", answer.get_data()
