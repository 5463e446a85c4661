"""Giving back a stream's unused frame-stack pages (app/delivery/datastack.py)."""
import sys

import gevent
import pytest

from app.delivery import datastack

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

