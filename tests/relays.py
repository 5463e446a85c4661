"""A loopback TCP relay in front of Gunicorn that a test can break like a failing network."""
import queue
import socket
import struct
import threading
import time


class Relay:
    """Accepts on a free loopback port and forwards each connection both ways to ``target_port``.

    Two ways to fail, as real networks do:

    - ``cut()`` resets every relayed connection and refuses new ones until ``restore()``: a
      network error the browser sees at once. (``context.set_offline(True)`` only fails *new*
      requests and ``page.route`` only sees requests as they start: neither touches a stream
      that is already open.)
    - ``blackhole()`` stops forwarding in both directions without closing anything, until
      ``resume()``: a lost NAT mapping or a dead radio. Nobody is told; connections (new ones
      too: the listener still accepts) just go silent. What was sent meanwhile waits in the
      relay and the kernel's buffers and is delivered on ``resume()``, like a late packet.
    """

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.sockets = set()
        self.is_cut = False
        self.flowing = threading.Event()
        self.flowing.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self.lock:
                if self.is_cut:
                    _reset(client)
                    _reset(upstream)
                    continue
                self.sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source, sink):
        try:
            while True:
                self.flowing.wait()  # a blackhole reads nothing: the sender's buffers fill
                data = source.recv(65536)
                self.flowing.wait()  # and forwards nothing it had already read
                if not data:
                    break
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def cut(self):
        """Reset every relayed connection (the page sees a network error) and refuse new ones."""
        with self.lock:
            self.is_cut = True
            cut, self.sockets = self.sockets, set()
        for sock in cut:
            _reset(sock)

    def restore(self):
        with self.lock:
            self.is_cut = False

    def blackhole(self):
        """Stop forwarding anything, either way, on every connection: no reset, no close."""
        self.flowing.clear()

    def resume(self):
        self.flowing.set()

    def close(self):
        self.listener.close()
        self.resume()
        self.cut()


def _reset(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
        sock.shutdown(socket.SHUT_RD)  # wakes a thread blocked in recv() on it
    except OSError:
        pass
    sock.close()


class LaggingRelay:
    """Like ``Relay``, but a network (or a server) that is only slow: once ``lag`` is set, every
    byte from the server reaches the page ``lag`` seconds after it was sent, in order, nothing
    lost. ``requests`` lists (monotonic time, request line) of every request the page sent."""

    def __init__(self, target_port):
        self.target_port, self.lag, self.requests = target_port, 0.0, []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            upstream.settimeout(None)
            late = queue.Queue()
            for target, args in ((self._up, (client, upstream)), (self._read_down, (upstream, late)),
                                 (self._send_down, (late, client))):
                threading.Thread(target=target, args=args, daemon=True).start()

    def _up(self, source, sink):
        try:
            while data := source.recv(65536):
                line = data.split(b"\r\n", 1)[0]
                if line.split(b" ", 1)[0] in (b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"HEAD"):
                    self.requests.append((time.monotonic(), line.decode("latin-1")))
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _read_down(self, source, late):
        try:
            while data := source.recv(65536):
                late.put((time.monotonic() + self.lag, data))
        except OSError:
            pass
        late.put((time.monotonic() + self.lag, b""))

    @staticmethod
    def _send_down(late, sink):
        try:
            while True:
                due, data = late.get()
                time.sleep(max(0.0, due - time.monotonic()))  # its own thread: the reader reads on
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    return
                sink.sendall(data)
        except OSError:
            pass

    def close(self):
        self.listener.close()
