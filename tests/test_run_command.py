"""The README's run command works from a clean checkout: venv, install, embedded Redis, serve."""
import os
import shutil
import signal
import subprocess
import urllib.request

import pytest

from .servers import ROOT, free_port, wait_until

pytestmark = pytest.mark.slow


def clean_checkout(target):
    """Copy what git would check out (tracked and new, unignored files), nothing else."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def test_make_run_serves_readyz_with_an_embedded_redis(tmp_path):
    checkout = tmp_path / "ripple"
    checkout.mkdir()
    clean_checkout(checkout)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "VIRTUAL_ENV")}
    env["PORT"] = str(port)
    log = open(tmp_path / "run.log", "wb")
    process = subprocess.Popen(["make", "run"], cwd=checkout, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)

    def ready():
        assert process.poll() is None, (tmp_path / "run.log").read_text()
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % port, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        wait_until(ready, 240, 0.5, "make run to serve /readyz")
        assert (checkout / "instance" / "appendonly.aof").exists() or (checkout / "instance" / "appendonlydir").exists()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
        log.close()
    # Redis runs in its own session, so only gunicorn's exit hook can have stopped it.
    assert not _redis_alive(checkout)


def _redis_alive(checkout):
    import socket
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(checkout / "instance" / "redis.sock"))
            return True
    except OSError:
        return False
