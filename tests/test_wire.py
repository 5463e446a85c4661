"""A stream's two sockets at the lowest level (app/wire.py, app/listener.py), on real sockets."""
import pytest
from gevent import socket as gsocket

from app import wire
from app.listener import ListenerFactory

from .servers import wait_until


def _read_to_eof(sock):
    sock.settimeout(5)
    data = b""
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return data
        data += chunk


def test_writes_are_framed_as_http_chunks_or_left_plain():
    for chunked, expected in ((True, b"5\r\nhello\r\n"), (False, b"hello")):
        a, b = gsocket.socketpair()
        wire.ClientWriter(a, chunked).write(b"hello")
        a.close()
        assert _read_to_eof(b) == expected


def test_a_write_that_times_out_shuts_the_socket_so_nothing_can_follow_the_cut_chunk():
    a, b = gsocket.socketpair()
    a.settimeout(0.2)  # the stream's send timeout; b never reads
    writer = wire.ClientWriter(a, chunked=True)
    with pytest.raises(wire.ClientLost):
        for _ in range(1000):
            writer.write(b"x" * 65536)
    assert writer.broken
    with pytest.raises(OSError):
        a.sendall(b"0\r\n\r\n")  # what gunicorn writes when the response ends
    data = _read_to_eof(b)  # what arrived before the cut, then the end: no closing chunk
    assert data and not data.endswith(b"0\r\n\r\n")


def test_a_write_to_a_closed_client_is_client_lost():
    a, b = gsocket.socketpair()
    b.close()
    writer = wire.ClientWriter(a, chunked=False)
    with pytest.raises(wire.ClientLost):
        for _ in range(100):  # the first send may still be buffered
            writer.write(b"y" * 65536)


def test_a_listener_pings_redis_only_after_a_silent_tick(redis_url):
    listener = ListenerFactory(redis_url, 2).open(["t-ping"])
    try:
        listener.tick()  # the subscription's confirmation was heard: no PING
        assert listener.ping_sent is None
        listener.tick()  # silent since the last tick: PING
        assert listener.ping_sent is not None
        wait_until(lambda: listener.drain() == [] and listener.ping_sent is None, 5, message="PONG")
        listener.tick()  # the PONG counts as hearing from Redis
        assert listener.ping_sent is None
    finally:
        listener.close()
