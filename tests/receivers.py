"""A real webhook receiver for tests: a threaded http.server on a free loopback port.

Each request is recorded (arrival time, headers, raw body, the sender's port) and answered by
``answer(request) -> (status, headers, body)``, which a test sets; it may block (a hanging
endpoint) until ``release`` is set.
"""
import http.server
import json
import threading
import time
from dataclasses import dataclass, field

from .servers import free_port


@dataclass
class Received:
    at: float
    headers: dict
    body: bytes
    port: int
    number: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def delivery(self):
        return self.headers.get("Ripple-Delivery-Id")


def ok(_request):
    return 200, {}, b""


class Receiver:
    def __init__(self, answer=ok):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d/hook" % self.port
        self.answer = answer
        self.received = []
        self.lock = threading.Lock()
        self.release = threading.Event()  # a hanging answer waits for this
        self.open = 0  # requests being answered right now
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    request = Received(time.monotonic(), dict(self.headers), body, self.client_address[1],
                                       len(receiver.received))
                    receiver.received.append(request)
                    receiver.open += 1
                try:
                    status, headers, payload = receiver.answer(request)
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the sender gave up (its deadline, or a killed worker)
                finally:
                    with receiver.lock:
                        receiver.open -= 1

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def requests(self, delivery=None):
        with self.lock:
            return [r for r in self.received if delivery is None or r.delivery == delivery]

    def hang(self, seconds=60):
        """An answer that holds the request until ``release`` (or ``seconds``), then 200."""
        def answer(_request):
            self.release.wait(seconds)
            return 200, {}, b""
        return answer
