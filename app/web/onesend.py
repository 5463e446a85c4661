"""gunicorn's answers with their head and first body bytes in one send, not two.

gunicorn writes an answer's head and then each body chunk with a send of its own. For a
~300-byte answer, or a stream's first chunk (its ``retry:``), the second send is one more
syscall, TCP segment and wake-up of the client per request (~2-3 % of a post's or a stream
open's worker CPU under py-spy: docs/performance.md). Here gunicorn's own ``write`` runs (the
head as gunicorn builds it, its framing, byte counts and bookkeeping) into a holder, and the
holder's bytes leave in one ``send``; a failed send raises OSError from gunicorn's loop, as its
own write would.
"""
from gunicorn.http.wsgi import Response as GunicornResponse


def gunicorn_answer(write):
    """The gunicorn Response behind ``write`` (the callable start_response returned), or None
    under another server."""
    answer = getattr(write, "__self__", None)
    return answer if isinstance(answer, GunicornResponse) else None


def send_with_head(answer, data):
    """Have gunicorn ``answer`` write body bytes ``data`` (its head first while unsent) and put
    what it wrote on the wire in one send (the rest, should the kernel take less, by
    ``sendall``). Raises OSError when the client is gone."""
    sock = answer.sock
    held = _Held()
    answer.sock = held
    try:
        answer.write(data)
    finally:
        answer.sock = sock
    out = b"".join(held.parts)
    # One send takes a few hundred bytes whole; gevent's sendall would first ask the kernel
    # for SO_SNDBUF (a getsockopt per answer: ~2 % of a post's CPU under py-spy).
    sent = sock.send(out)
    if sent < len(out):
        sock.sendall(memoryview(out)[sent:])


class WholeAnswer:
    """A whole answer's body (bytes) for gunicorn to iterate: it leaves with the head."""

    __slots__ = ("answer", "body")

    def __init__(self, answer, body):
        self.answer, self.body = answer, body

    def __iter__(self):
        send_with_head(self.answer, self.body)
        return iter(())


class FirstChunkWithHead:
    """A streamed body (a generator of bytes) whose first chunk leaves with the head; gunicorn
    iterates the rest and closes the generator as it would have."""

    __slots__ = ("answer", "body")

    def __init__(self, answer, body):
        self.answer, self.body = answer, body

    def __iter__(self):
        first = next(self.body, None)
        if first is not None:
            send_with_head(self.answer, first)
        return self.body

    def close(self):
        close = getattr(self.body, "close", None)  # WSGI: only if the body has one
        if close is not None:
            close()


class _Held:
    """Stands in for the client socket while gunicorn writes: keeps the bytes."""

    __slots__ = ("parts",)

    def __init__(self):
        self.parts = []

    def sendall(self, data):
        self.parts.append(data)
