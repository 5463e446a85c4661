"""After a burst, a Redis command pool keeps only its most recently used idle connections
(app/ops/topology.py shed_idle; a worker sheds after a wave of streams closes): real Redis,
counted in its own client list."""
import uuid

import pytest
import redis

from app.ops import topology

from .servers import wait_until


@pytest.fixture
def named_pool(redis_url):
    """A command pool whose connections carry one client name, so Redis can count them."""
    name = "shed-" + uuid.uuid4().hex[:8]
    pool = topology.blocking_pool(redis_url, 20, 0.5, client_name=name)  # 0.5 s: a full pool says so soon
    yield pool, name
    pool.disconnect()


def open_in_redis(redis_client, name):
    return sum(1 for client in redis_client.client_list() if client.get("name") == name)


def until_open_in_redis(redis_client, name, count):
    """Redis sees a closed connection go a moment later: wait for its client list to say ``count``."""
    wait_until(lambda: open_in_redis(redis_client, name) == count, 5, 0.02, "%d connections named %s" % (count, name))
    return True


def burst(pool, n):
    """``n`` connections checked out at once, each used, then all given back."""
    taken = [pool.get_connection() for _ in range(n)]
    for conn in taken:
        conn.send_command("PING")
        assert conn.read_response() in (b"PONG", "PONG")
    for conn in taken:
        pool.release(conn)
    return taken


def test_a_pool_grown_by_a_burst_keeps_only_its_most_recently_used_idle_connections(named_pool, redis_client):
    pool, name = named_pool
    taken = burst(pool, 12)
    assert open_in_redis(redis_client, name) == 12
    assert topology.shed_idle(pool, keep=4) == 8
    assert until_open_in_redis(redis_client, name, 4)
    # the last four given back are the ones kept, and the next checkout takes the latest
    assert pool.get_connection() is taken[-1]


def test_a_shed_pool_opens_connections_again_up_to_its_bound(named_pool, redis_client):
    pool, name = named_pool
    burst(pool, 12)
    topology.shed_idle(pool, keep=2)
    burst(pool, 20)  # its whole bound: nothing lost of the pool's capacity
    assert until_open_in_redis(redis_client, name, 20)  # the closed ones gone, the new ones there
    with pytest.raises(redis.ConnectionError):  # and no more than it
        [pool.get_connection() for _ in range(21)]


def test_connections_in_use_are_never_shed(named_pool, redis_client):
    pool, name = named_pool
    burst(pool, 8)
    held = [pool.get_connection() for _ in range(3)]
    assert topology.shed_idle(pool, keep=1) == 4
    for conn in held:
        conn.send_command("PING")
        assert conn.read_response() in (b"PONG", "PONG")
    assert until_open_in_redis(redis_client, name, 4)
