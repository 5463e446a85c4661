"""A loopback TCP relay in front of Gunicorn that a test can break like a failing network."""
import socket
import struct
import threading


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
