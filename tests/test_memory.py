"""What a worker's memory runs on (gunicorn.conf.py): the C allocator, so a wave of streams
that closes can give its memory back (issue 20)."""
from pathlib import Path

from .servers import Gunicorn


def _environ(pid):
    return dict(item.split(b"=", 1) for item in Path("/proc/%d/environ" % pid).read_bytes().split(b"\0")
                if b"=" in item)


def test_the_workers_run_on_the_c_allocator(server):
    for pid in [server.process.pid, *server.worker_pids()]:  # the master restarted itself in place
        assert _environ(pid).get(b"PYTHONMALLOC") == b"malloc"


def test_an_allocator_chosen_by_the_operator_is_kept(redis_url, tmp_path):
    chosen = Gunicorn(tmp_path, redis_url=redis_url, workers=1, env={"PYTHONMALLOC": "pymalloc"}).start()
    try:
        for pid in [chosen.process.pid, *chosen.worker_pids()]:
            assert _environ(pid).get(b"PYTHONMALLOC") == b"pymalloc"
    finally:
        chosen.stop()
