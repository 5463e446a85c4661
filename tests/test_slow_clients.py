"""A client that stops reading is dropped after the send timeout; the others never wait for it."""
import socket

import pytest

from app.rooms.keys import RoomKeys

from .servers import Gunicorn, wait_until
from .sse import SSEStream
from .support import SERVER_ENV, post

pytestmark = pytest.mark.slow


@pytest.fixture
def own_server(redis_url, tmp_path):
    server = Gunicorn(tmp_path, redis_url=redis_url, workers=2,
                      env={**SERVER_ENV, "RIPPLE_SEND_TIMEOUT_SECONDS": "1",
                           # big messages, so the stalled client's buffers fill in few posts
                           "RIPPLE_MAX_MESSAGE_CHARS": "50000", "RIPPLE_MAX_CONTENT_LENGTH": "200000"}).start()
    yield server
    server.halt()


def test_a_stalled_reader_is_dropped_and_does_not_delay_others(own_server, redis_client, room):
    stalled = socket.create_connection(("127.0.0.1", own_server.port), timeout=10)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills fast
    stalled.sendall(b"GET /rooms/%s/events HTTP/1.1\r\nHost: x\r\n\r\n" % room.encode())
    channel = RoomKeys(room).channel
    wait_until(lambda: redis_client.pubsub_numsub(channel)[0][1] == 1, 10, message="stalled stream up")
    with SSEStream("%s/rooms/%s/events" % (own_server.url, room)) as healthy:
        healthy.until("ready")
        text = "x" * 49000
        for i in range(160):  # ~8 MB: past the kernel's socket buffers on both ends of loopback
            assert post(own_server.url, room, "%d %s" % (i, text))[0] == 201
            healthy.messages(1, timeout=5)  # the healthy reader keeps pace throughout
        # The stalled stream's write timed out: its subscription is gone, the healthy one stays.
        wait_until(lambda: redis_client.pubsub_numsub(channel)[0][1] == 1, 10, message="stalled stream dropped")
    stalled.close()
