"""gunicorn's answers with their head and first body bytes in one send (app/web/onesend.py),
written by gunicorn's own Response over a real socket pair."""
import socket

import pytest
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.parser import RequestParser

from app.web import onesend


class CountingSocket:
    """The server's end of the pair, counting what each send and sendall carried."""

    def __init__(self, sock):
        self.sock, self.sends = sock, []

    def send(self, data):
        self.sends.append(bytes(data))
        return self.sock.send(data)

    def sendall(self, data):
        self.sends.append(bytes(data))
        return self.sock.sendall(data)

    def __getattr__(self, name):
        return getattr(self.sock, name)


@pytest.fixture
def pair():
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


def answer_for(server, client, request, status, headers):
    client.sendall(request)
    cfg = Config()
    req = next(iter(RequestParser(cfg, server, ("127.0.0.1", 1))))
    counting = CountingSocket(server)
    answer, _ = wsgi.create(req, counting, ("127.0.0.1", 1), "127.0.0.1:0", cfg)
    write = answer.start_response(status, headers)
    return counting, onesend.gunicorn_answer(write)


def read_all(client):
    client.settimeout(5)
    out = b""
    while b"0\r\n\r\n" not in out and b"}" not in out:
        out += client.recv(65536)
    return out


def test_a_streams_head_and_first_chunk_are_one_send_and_the_rest_follow_in_chunks(pair):
    server, client = pair
    counting, answer = answer_for(server, client, b"GET /rooms/r/events HTTP/1.1\r\nHost: t\r\n\r\n",
                                  "200 OK", [("Content-Type", "text/event-stream")])
    body = onesend.FirstChunkWithHead(answer, iter([b"retry: 2000\n\n", b"data: x\n\n"]))
    for chunk in body:
        answer.write(chunk)
    answer.close()
    body.close()  # as gunicorn does: an iterator without close() is fine
    assert len(counting.sends) == 3  # head + first chunk, the second chunk, the last chunk
    assert counting.sends[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert counting.sends[0].endswith(b"\r\n\r\nD\r\nretry: 2000\n\n\r\n")
    received = read_all(client)
    assert received.endswith(b"\r\n\r\nD\r\nretry: 2000\n\n\r\n9\r\ndata: x\n\n\r\n0\r\n\r\n")


def test_a_streamed_body_is_closed_when_gunicorn_closes_it(pair):
    server, client = pair
    closed = []

    def stream():
        try:
            yield b"retry: 2000\n\n"
            yield b"data: x\n\n"
        finally:
            closed.append(True)

    _, answer = answer_for(server, client, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", "200 OK", [])
    body = onesend.FirstChunkWithHead(answer, stream())
    iter(body)
    body.close()
    assert closed == [True]


def test_a_whole_answer_leaves_with_its_head_in_one_send(pair):
    server, client = pair
    counting, answer = answer_for(server, client, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
                                  "201 Created", [("Content-Length", "2")])
    for chunk in onesend.WholeAnswer(answer, b"{}"):
        answer.write(chunk)
    assert len(counting.sends) == 1 and counting.sends[0].endswith(b"\r\n\r\n{}")
    assert read_all(client).endswith(b"\r\n\r\n{}")


def test_another_servers_write_is_not_gunicorns():
    assert onesend.gunicorn_answer(lambda data: None) is None
