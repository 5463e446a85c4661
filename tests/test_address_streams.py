"""AddressStreams (app/people/addresses.py): one worker's streams per client address in Redis."""
import gevent
import redis as redis_py

from app.people import addresses


def held(redis_client, address):
    return sorted(redis_client.zrange(addresses.key(address), 0, -1))


def stream_that_ends_without_release(streams, address, conn):
    greenlet = gevent.spawn(streams.keep, address, conn)
    greenlet.join()
    return greenlet


def test_a_released_stream_leaves_its_address_with_the_next_flush(redis_url, redis_client):
    streams = addresses.AddressStreams(redis_py.Redis.from_url(redis_url), limit=10, heartbeat=15)
    address = "192.0.2.%d" % (id(streams) % 200)
    assert streams.admit(address, "conn-a")
    streams.release()
    streams.flush()
    assert held(redis_client, address) == []


def test_a_stream_that_ended_without_release_leaves_at_the_next_refresh(redis_url, redis_client):
    streams = addresses.AddressStreams(redis_py.Redis.from_url(redis_url), limit=10, heartbeat=15)
    address = "198.51.100.%d" % (id(streams) % 200)
    redis_client.zadd(addresses.key(address), {"conn-b": 2**40})
    stream_that_ends_without_release(streams, address, "conn-b")
    streams.flush()  # a round of releases only: the open streams are not walked
    assert held(redis_client, address) == ["conn-b"]
    streams.flush(refresh=True)
    assert held(redis_client, address) == [] and streams.mine == {}
