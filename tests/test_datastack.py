"""Giving back a stream's unused frame-stack pages (app/delivery/datastack.py)."""
import subprocess
import sys
import threading
from pathlib import Path

import gevent
import pytest

from app.delivery import datastack

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(sys.version_info < (3, 11) or not sys.platform.startswith("linux"),
                                reason="CPython 3.11+ on Linux keeps frames on a data stack")


def _deep(depth, then):
    marker = ("frame", depth)  # a live local below the top: must survive the release
    if depth:
        result = _deep(depth - 1, then)
    else:
        result = then()
    assert marker == ("frame", depth)
    return result


def _in_greenlet(fn):
    return gevent.spawn(fn).get(timeout=10)


def test_the_thread_states_frame_stack_is_found_on_this_interpreter():
    assert datastack.available()


def test_the_pages_a_deep_call_left_behind_are_given_back():
    def stream():
        _deep(300, lambda: None)  # touches several pages, as opening a stream does
        return datastack.release()

    assert _in_greenlet(stream) >= 3 * 4096


def test_frames_below_the_top_keep_their_values_and_calls_go_on_after():
    def stream():
        freed = _deep(50, datastack.release)  # released from deep inside: 50 live frames below
        return freed, _deep(300, lambda: "again")  # the freed pages are used again (zeroed)

    freed, again = _in_greenlet(stream)
    assert freed > 0 and again == "again"



def test_importing_the_module_looks_at_nothing():
    # No import-time side effects: the thread state is searched at a worker's start (prepare).
    code = "import app.delivery.datastack as d, sys; sys.exit(d._releaser is not None)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60).returncode == 0


def test_the_worker_start_prepares_it_explicitly():
    assert "datastack.prepare()" in (ROOT / "gunicorn.conf.py").read_text()


def _checked(depth, then):
    """Recurse ``depth`` frames, each holding locals computed from its depth; return the sum of
    what every frame still holds after ``then()`` ran at the bottom (wrong if a page was zeroed)."""
    local = [depth] * 3
    name = "d%d" % depth
    below = _checked(depth - 1, then) if depth else then()
    assert local == [depth] * 3 and name == "d%d" % depth
    return below + local[0] + len(name)


def _expected(depth, bottom):
    return bottom + sum(d + len("d%d" % d) for d in range(depth + 1))


def test_many_greenlets_switching_while_deep_keep_every_frame():
    def stream(n):
        def bottom():
            datastack.release()
            gevent.sleep(0)  # the others run, release and recurse on their own chunks
            datastack.release()
            return n
        return _checked(40 + n % 7 * 30, bottom)

    greenlets = [gevent.spawn(stream, n) for n in range(60)]
    gevent.joinall(greenlets, timeout=30, raise_error=True)
    assert [g.value for g in greenlets] == [_expected(40 + n % 7 * 30, n) for n in range(60)]


def test_generators_suspended_across_a_release_resume_intact():
    def counting(start):
        total = start
        while True:
            total += yield total

    def stream():
        gens = [counting(i) for i in range(5)]
        for gen in gens:
            next(gen)
        results = []

        def bottom():
            datastack.release()
            gevent.sleep(0)
            return sum(gen.send(1) for gen in gens)

        results.append(_checked(120, bottom))
        datastack.release()
        results.append(_checked(200, lambda: sum(gen.send(2) for gen in gens)))
        return results

    assert _in_greenlet(stream) == [_expected(120, 15), _expected(200, 25)]


def test_a_thread_releasing_beside_the_main_threads_greenlets_spoils_neither():
    results = {}

    def released_then(value):
        datastack.release()
        gevent.sleep(0)  # in the thread: a pause of no length
        return value

    def thread():
        results["thread"] = [_checked(150, lambda: released_then(7)) for _ in range(50)]

    def stream():
        return [_checked(150, lambda: released_then(3)) for _ in range(50)]

    worker = threading.Thread(target=thread)  # a real thread (gevent.monkey is not applied here)
    worker.start()
    mine = _in_greenlet(stream)
    worker.join(30)
    assert mine == [_expected(150, 3)] * 50 and results["thread"] == [_expected(150, 7)] * 50


def test_deep_recursion_after_a_release_computes_the_same():
    def stream():
        datastack.release()
        return [_checked(400, lambda: datastack.release() and 0) for _ in range(3)]  # a second chunk

    assert _in_greenlet(stream) == [_expected(400, 0)] * 3


@pytest.mark.parametrize("code", [
    # Under gevent's monkey patches a greenlet is no "main thread" to the threading module.
    "from gevent import monkey; monkey.patch_all()\n"
    "import sys, gevent\n"
    "from app.delivery import datastack\n"
    "sys.exit(0 if gevent.spawn(datastack.available).get() else 1)\n",
    # A thread's state is allocated apart from the runtime's: read safely all the same.
    "import sys, threading\n"
    "from app.delivery import datastack\n"
    "found = []\n"
    "t = threading.Thread(target=lambda: found.append(datastack.available())); t.start(); t.join()\n"
    "sys.exit(0 if found == [True] else 1)\n",
], ids=["a gevent-patched greenlet", "a thread"])
def test_it_is_found_from_wherever_it_is_first_needed(code):
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60).returncode == 0
