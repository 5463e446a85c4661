"""Give back the memory a stream's Python frame stack no longer uses.

CPython 3.11+ keeps the frames of plain function calls on a per-thread "data stack": chunks of
16 KB or more, mapped with mmap, and greenlet gives every greenlet its own. A page of a chunk,
once touched, stays in the process's RSS for as long as the chunk lives, which for a stream is
its whole life; opening a stream goes ~50 frames deep (Flask, the limiter, redis-py) and leaves
two or three pages touched that its live loop, a few frames deep, never uses again: ~4-8 KB of
RSS per held stream (measured: 2,000 streams on 2 workers, RSS minus pymalloc and glibc's heap).

``release()`` tells the kernel (``madvise(MADV_DONTNEED)``) that the whole pages above the
current top of the running greenlet's chunk are free: they read as zeros if touched again,
which is all a frame slot above the top may be. It costs one system call, so a stream calls it
after its deep moments (the open, a heartbeat's Redis commands), not per delivery.

The chunk's address comes from the thread state (``datastack_chunk``, ``_top``, ``_limit``,
three consecutive pointers whose place differs between CPython versions): found once by
looking for them, and proven by watching the top move with the call depth. Nothing happens at
import: ``prepare()`` looks (gunicorn.conf.py's post_worker_init calls it; else the first
``release`` does), reading the thread state through /proc/self/mem so that a word that only
looks like a pointer costs an OSError, never a fault (the thread state may end where the
mapping does). Wherever that fails (another Python, no libc ``madvise``, not Linux)
``release`` does nothing.
"""
import ctypes
import ctypes.util
import os
import sys

MADV_DONTNEED = 4  # Linux
_WORD = ctypes.sizeof(ctypes.c_void_p)
_SCAN = 160  # words of the thread state searched (its size is ~40-80 words in 3.11-3.13)

_thread_state = ctypes.pythonapi.PyThreadState_Get
_thread_state.restype = ctypes.c_void_p


def _words(address, count):
    return (ctypes.c_size_t * count).from_address(address)


def _peek(mem, address, count):
    """Up to ``count`` words at ``address`` of this process, read through /proc/self/mem: fewer
    where the mapping ends, OSError where nothing is mapped; never a segmentation fault."""
    data = os.pread(mem, count * _WORD, address)
    return list(memoryview(data[:len(data) - len(data) % _WORD]).cast("N"))


def _candidates(page):
    """Word offsets in the thread state that look like (chunk, top, limit) right now."""
    mem = os.open("/proc/self/mem", os.O_RDONLY)
    try:
        state = _peek(mem, _thread_state(), _SCAN)  # the struct is smaller: read no further than mapped
        found = []
        for i in range(len(state) - 2):
            chunk, top, limit = state[i], state[i + 1], state[i + 2]
            # An mmap'd chunk is page-aligned; its header's second word is its size.
            if chunk and chunk % page == 0 and chunk < top <= limit and 16384 <= limit - chunk <= 1 << 26:
                try:
                    size = _peek(mem, chunk + _WORD, 1)
                except OSError:  # not a chunk: nothing mapped there
                    continue
                if size == [limit - chunk]:
                    found.append(i)
        return found
    finally:
        os.close(mem)


def _tops(offset, depth):
    if depth:
        return _tops(offset, depth - 1)
    return _words(_thread_state() + offset * _WORD, 2)[1]


def _locate(page):
    """The word offset of ``datastack_chunk`` in the thread state, or None."""
    if sys.implementation.name != "cpython" or sys.version_info < (3, 11) or not sys.platform.startswith("linux"):
        return None
    try:
        found = _candidates(page)
        if len(found) != 1:
            return None
        offset = found[0]
        # Proof: ten more frames move the top up, by at least a frame header each.
        shallow, deep = _tops(offset, 0), _tops(offset, 10)
        return offset if deep - shallow >= 10 * 4 * _WORD else None
    except (ValueError, OSError):
        return None


class _Releaser:
    """The located chunk fields (``offset``, None: release nothing) and libc's ``madvise``."""

    def __init__(self):
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self.offset = None
        libc_name = ctypes.util.find_library("c")
        self.madvise = None
        if libc_name:
            try:
                madvise = ctypes.CDLL(libc_name, use_errno=True).madvise
                madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
                madvise.restype = ctypes.c_int
                self.madvise = madvise
            except (OSError, AttributeError):
                pass
        if self.madvise is not None:
            self.offset = _locate(self.page)

    def release(self):
        """Free the running greenlet's unused frame-stack pages; return the bytes freed."""
        if self.offset is None:
            return 0
        chunk, top, limit = _words(_thread_state() + self.offset * _WORD, 3)
        start = (top + self.page - 1) & ~(self.page - 1)
        if not chunk <= top <= start < limit or limit % self.page:  # madvise rounds the length up
            return 0
        self.madvise(start, limit - start, MADV_DONTNEED)
        return limit - start


_releaser = None


def prepare():
    """Find the thread state's chunk fields (once per process; a forked worker inherits them).
    Call it at a worker's start, shallow; ``release`` calls it otherwise."""
    global _releaser
    if _releaser is not None:
        return _releaser
    _releaser = _Releaser()
    return _releaser


def release():
    """Free the running greenlet's frame-stack pages above its top (whole pages, never the
    chunk's header or a live frame); return the bytes freed (0 when unavailable)."""
    return (_releaser or prepare()).release()


def available():
    """Whether ``release`` can free anything on this interpreter (prepares when not yet done)."""
    return (_releaser or prepare()).offset is not None
