"""Delivery: one SSE stream's life, from its Redis pub/sub socket to the client's socket.

Owns the stream relay (``stream``: registration, replay, the live loop, gap repair), the stream's
position in its logs and the rules that move it (``position``), the per-stream Redis listener read
with hiredis (``listener``), the waits and client writes at the socket level (``wire``), SSE
framing (``sse``) and the frame-stack pages a held stream gives back (``datastack``). It is the
hot path: hand-written where a profile proved it pays.

May import: the standard library, gevent, redis-py/hiredis, ``app.rooms`` (keys), ``app.people``
(presence, names) and ``app.ops`` (topology) — never Flask or Werkzeug, directly or through what
it imports (tests/test_layout.py keeps it so). Flask-facing code hands it plain values.
"""
