import random, threading, time, uuid
from tests.web import Browser
from tests.sse import SSEStream
from tests.conftest import post

def test_probe(server, room):
    streams = []
    for i in range(6):
        a = Browser(server.url)
        assert a.sign_in("p%d-" % i + uuid.uuid4().hex[:6]) == 200
        s = a.stream(room)
        s.until("ready")
        streams.append(s)
    watcher = SSEStream("%s/rooms/%s/events" % (server.url, room))
    watcher.until("ready")
    T = 60
    stop = time.monotonic() + T
    def publisher():
        while time.monotonic() < stop:
            post(server.url, room, "tick", user="bob")
            time.sleep(random.uniform(0.6, 1.1))
    threading.Thread(target=publisher, daemon=True).start()
    def drain(s):
        while time.monotonic() < stop:
            try: s.next(timeout=1)
            except TimeoutError: pass
    for s in streams: threading.Thread(target=drain, args=(s,), daemon=True).start()
    events = []
    while time.monotonic() < stop:
        try:
            e = watcher.next(timeout=max(0.1, stop - time.monotonic()))
        except TimeoutError:
            break
        if e and e.name == "presence":
            events.append((round(time.monotonic() - stop + T, 2), e.json()["action"], e.json()["name"], len(e.json()["online"])))
    print(events)
    print(open("/proc/loadavg").read())
