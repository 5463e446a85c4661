"""Smoke run of bench/loadtool.py at tiny sizes against the session's real Gunicorn + Redis."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .servers import Gunicorn
from .support import SERVER_ENV, TOKEN

ROOT = Path(__file__).resolve().parent.parent
LOADTOOL = ROOT / "bench" / "loadtool.py"


def _module():
    spec = importlib.util.spec_from_file_location("ripple_loadtool", LOADTOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(server, mode, *args, timeout=60):
    argv = [sys.executable, str(LOADTOOL), mode,
            "--sub-url", server.url + "/rooms/{room}/events",
            "--pub-url", server.url + "/rooms/{room}/messages",
            "--pub-header", "Authorization: Bearer " + TOKEN,
            "--server-pid", str(server.process.pid), "--max-seconds", "50", *map(str, args)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, "one JSON line expected, got:\n%s\nstderr:\n%s" % (proc.stdout, proc.stderr[-3000:])
    result = json.loads(lines[0])
    assert result["tool"] == "ripple-loadtool" and result["mode"] == mode
    for key in ("run", "started", "wall_s", "argv", "client_limited", "procs"):
        assert key in result, key
    return result, proc.returncode


def test_parsers_selftest():
    result = _module().selftest()
    assert result["ok"], result["failed"]


def test_sse_parser_line_endings_and_fields():
    lt = _module()
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = (b": comment\r\nevent: message\rid: 5-0\r\ndata: {\"a\":\r\ndata:  1}\n\n"
            b"retry: 3\n\ndata\n\n")
    framed = head + b"".join(b"%x\r\n%s\r\n" % (1, body[i:i + 1]) for i in range(len(body))) + b"0\r\n\r\n"
    chunks = [(i, framed[i:i + 3]) for i in range(0, len(framed), 3)]
    for parse in (lt.parse_events, lt.parse_events_fast):
        decoder, parser, events = parse(chunks)
        assert decoder.status == 200
        assert [(n, d, i) for n, d, i, _ in events] == [("message", b'{"a":\n 1}', b"5-0"),
                                                       ("message", b"", None)]
        assert parser.comments == 1


def _assert_clean(result, subscribers):
    assert result["subscribed"] == subscribers
    assert result["expected"] == result["messages_acked"] * subscribers > 0
    assert result["unique_received"] == result["expected"]
    assert result["lost"] == 0
    assert result["duplicates"] == 0
    assert result["out_of_order"] == 0
    assert result["id_out_of_order"] == 0
    assert result["publish_errors"] == {}
    lat = result["latency_ms"]
    assert lat["n"] == result["expected"]
    assert 0 <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert set(result["client_cpu"]) >= {"core_fraction_total", "core_fraction_max_proc", "limited"}
    assert result["server"]["procs"] == 3  # master + 2 workers
    assert result["server"]["cpu_s"] >= 0


def test_latency_smoke(server):
    result, code = run_tool(server, "latency", "-s", 5, "-m", 10, "--rate", 40)
    assert code == 0 and result["ok"]
    _assert_clean(result, 5)
    assert result["messages_acked"] == 10
    assert result["events_by_name"]["ready"] == 5
    # Reported, not judged: the workers' CPU times tick in 10 ms, and 50 deliveries (~1 ms of
    # work) may fall within one tick and read 0 (the benchmark's runs are long enough to count).
    assert result["server"]["cpu_us_per_delivery"] >= 0


def test_throughput_smoke(server):
    result, code = run_tool(server, "throughput", "-s", 3, "-d", 0.5, "-p", 2)
    assert code == 0 and result["ok"]
    _assert_clean(result, 3)
    assert result["deliveries_per_s"] > 0 and result["publishes_per_s"] > 0


def test_capacity_smoke(server, redis_url):
    result, code = run_tool(server, "capacity", "-n", 12, "--rooms", 3, "--hold", 0.3,
                            "--settle", 0.2, "--redis", redis_url)
    assert code == 0 and result["ok"]
    assert result["stayed_up"] == result["got_first_probe"] == 12
    srv = result["server"]
    assert srv["procs"] == 3
    assert srv["fds_held"] > 0 and srv["rss_held_mb"] > 0  # baselines move: streams of other tests end
    for key in ("rss_per_stream_kb", "pss_per_stream_kb", "fds_per_stream", "rss_baseline_mb"):
        assert isinstance(srv[key], (int, float)), key
    assert result["redis"]["connected_clients_held"] >= 12


def test_publish_smoke(server):
    result, code = run_tool(server, "publish", "-p", 2, "-d", 0.3)
    assert code == 0 and result["ok"]
    assert result["posts_ok"] > 0 and result["errors"] == {}
    assert result["post_latency_ms"]["n"] == result["posts_ok"]


@pytest.mark.parametrize("url", ["http://10.0.0.1:80/x", "http://example.com/x"])
def test_refuses_non_loopback_targets(url):
    proc = subprocess.run([sys.executable, str(LOADTOOL), "publish", "--pub-url", url, "-d", "0.1"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "non-loopback" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("how", ["hup", "kill-worker"])
def test_storm_smoke(redis_url, tmp_path, how):
    server = Gunicorn(tmp_path, redis_url=redis_url, workers=2, env=SERVER_ENV).start()
    try:
        argv = [sys.executable, str(ROOT / "bench" / "storm.py"),
                "--sub-url", server.url + "/rooms/{room}/events",
                "--pub-url", server.url + "/rooms/{room}/messages",
                "--pub-header", "Authorization: Bearer " + TOKEN, "--server-pid", str(server.process.pid),
                "--server-log", str(server.log_path), "--redis", redis_url, "-n", "40", "--rooms", "4",
                "--signal", how, "--before", "1", "--after", "1", "--settle", "1", "--max-seconds", "100",
                "--retry-key", "Idempotency-Key"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        server.stop()
    assert result["tool"] == "ripple-storm" and result["warm"] == 40
    assert result["lost"] == 0 and result["duplicates"] == 0 and result["never_back"] == 0
    assert result["disrupted"] == result["back_s"]["count"] > 0
    # A SIGKILL disrupts the killed worker's streams: the one holding the most, perhaps all 40.
    assert result["disrupted"] == 40 if how == "hup" else 0 < result["disrupted"] <= 40
    assert result["not_caught_up"] == 0
    assert result["before"]["redis"]["used_memory"] > 0 and result["after"]["server"]["rss_mb"] > 0
    # A post cut by the kill is sent again with its key: stored once, none failed.
    assert result["posts"]["failed"] == 0 and result["posts"]["resent_failed"] == 0
    if how == "hup":
        assert result["log"]["lines"] == 0
