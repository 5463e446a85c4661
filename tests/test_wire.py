"""A stream's two sockets at the lowest level (app/delivery/wire.py, app/delivery/listener.py), on real sockets."""
import pytest
from gevent import socket as gsocket

from app.delivery import wire
from app.delivery.listener import ListenerFactory

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
        with a, b:
            wire.ClientWriter(a, chunked).write(b"hello")
            a.close()
            assert _read_to_eof(b) == expected


def test_a_write_that_times_out_shuts_the_socket_so_nothing_can_follow_the_cut_chunk():
    a, b = gsocket.socketpair()
    with a, b:
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
    with a:
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


def _tcp_pair():
    listener = gsocket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = gsocket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    return server, client


def _until(predicate, timeout=2.0):
    import gevent
    with gevent.Timeout(timeout, AssertionError("condition not met within %s s" % timeout)):
        while not predicate():
            gevent.sleep(0.01)


def test_a_client_watch_tells_a_half_close_from_a_close():
    ends = []
    server, client = _tcp_pair()
    watch = wire.ClientWatch(server, lambda: ends.append("gone"))
    try:
        client.shutdown(gsocket.SHUT_WR)  # half-close: still reading
        _until(lambda: watch.probe_due)
        server.sendall(b": probe\n\n")  # the stream's probe
        watch.probed()
        assert client.recv(100) == b": probe\n\n"
        import gevent
        gevent.sleep(1.5)  # every check after the probe: the half-closed client is still there
        assert ends == []
        client.close()  # now a full close: the next probe draws a reset
        server.sendall(b": probe\n\n")
        watch.probed()
        _until(lambda: ends == ["gone"])
    finally:
        watch.stop()
        server.close()


def test_a_client_watch_ends_a_reset_client_at_once():
    ends = []
    server, client = _tcp_pair()
    watch = wire.ClientWatch(server, lambda: ends.append("gone"))
    try:
        client.setsockopt(gsocket.SOL_SOCKET, gsocket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        client.close()  # linger 0: a reset, no FIN
        _until(lambda: ends == ["gone"])
        assert not watch.probe_due
    finally:
        watch.stop()
        server.close()
