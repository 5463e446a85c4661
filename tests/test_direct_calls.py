"""Scripts and read transactions sent on a plain client's pooled connections without redis-py's
per-command layers (app/ops/topology.py run_script, run_transaction): the same replies and the
same errors as redis-py's own calls."""
import uuid

import pytest
import redis

from app.ops import topology


@pytest.fixture
def client(redis_url):
    made = topology.command_client(redis_url, 4, 5)
    yield made
    topology.close_client(made)


@pytest.fixture
def key():
    return "test:direct:" + uuid.uuid4().hex


def filled(client, key):
    client.xadd(key + ":log", {"a": "1"}, id="1-1")
    client.xadd(key + ":log", {"b": "2"}, id="2-1")
    client.zadd(key + ":z", {"x": 1.5, "y": 2})
    client.hset(key + ":h", mapping={"f": "v"})


def reads(client, key):
    pipe = client.pipeline(transaction=True)
    pipe.xrange(key + ":log", "-", "+")
    pipe.zrange(key + ":z", 0, -1, withscores=True)
    pipe.hgetall(key + ":h")
    pipe.exists(key + ":h", key + ":none")
    pipe.get(key + ":none")
    return pipe


def test_a_read_transaction_answers_as_redis_pys_execute(client, key):
    filled(client, key)
    expected = reads(client, key).execute()
    pipe = reads(client, key)
    assert topology.run_transaction(topology.plain_pool(client), pipe) == expected
    assert expected[0] == [("1-1", {"a": "1"}), ("2-1", {"b": "2"})] and expected[1] == [("x", 1.5), ("y", 2.0)]


def test_an_empty_transaction_sends_nothing(client):
    assert topology.run_transaction(topology.plain_pool(client), client.pipeline(transaction=True)) == []


def test_an_error_reply_inside_the_transaction_is_raised_and_the_connection_serves_on(client, key):
    filled(client, key)
    pipe = client.pipeline(transaction=True)
    pipe.get(key + ":none")
    pipe.get(key + ":z")  # WRONGTYPE, answered by EXEC
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        topology.run_transaction(topology.plain_pool(client), pipe)
    assert client.hget(key + ":h", "f") == "v"


def test_a_command_refused_before_exec_is_raised_and_its_connection_dropped(client, key):
    pool = topology.plain_pool(client)
    pipe = client.pipeline(transaction=True)
    pipe.execute_command("NO-SUCH-COMMAND", key)
    pipe.get(key)
    with pytest.raises(redis.ResponseError):
        topology.run_transaction(pool, pipe)
    assert client.set(key, "after") and client.get(key) == "after"  # no reply left to misread


def test_a_script_redis_lost_is_loaded_and_run(client, key):
    script = client.register_script("return redis.call('INCR', KEYS[1]) + tonumber(ARGV[1])")
    pool = topology.plain_pool(client)
    assert topology.run_script(pool, script, [key], [10]) == 11
    client.script_flush()
    assert topology.run_script(pool, script, [key], [10]) == 12
    assert client.get(key) == "2"  # each call ran it once


def test_a_scripts_error_reply_is_raised(client, key):
    script = client.register_script("return redis.error_reply('refused here')")
    with pytest.raises(redis.ResponseError, match="refused here"):
        topology.run_script(topology.plain_pool(client), script, [key], [])


def test_sentinel_and_cluster_clients_keep_redis_pys_path(redis_url):
    assert topology.plain_pool(redis.RedisCluster.__new__(redis.RedisCluster)) is None
    sentinel_like = redis.Redis(connection_pool=redis.sentinel.SentinelConnectionPool(
        "service", redis.sentinel.Sentinel([("127.0.0.1", 1)])))
    assert topology.plain_pool(sentinel_like) is None
