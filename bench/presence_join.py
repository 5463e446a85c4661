"""What a stream's presence join costs Redis, by room size (issue 20): Redis CPU per join.

Starts its own Redis, loads ``--root``'s ``app.people.presence.Presence`` (compare two trees with
the same command), fills a room with SIZE people online (one connection each, signed in), then
joins ``--joins`` more people into it the way a signed-in stream does (the join and its
snapshot, one script), and prints ONE JSON line per size: Redis CPU per join (µs: used_cpu_user +
used_cpu_sys of the server over the joins; the load tool's own round trips are in it too, the
same for every tree) and the time Redis counted inside EVALSHA per call (µs; a wall time: only as
good as the machine is quiet).

    python bench/presence_join.py --root . --sizes 50,200,1000,5000
Only 127.0.0.1; every loop is bounded; Redis is stopped by pid at the end.
"""
import argparse
import importlib
import json
import sys
import tempfile
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import servers  # noqa: E402


def redis_cpu(client):
    info = client.info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default=str(servers.ROOT), help="the checkout whose presence code to load")
    p.add_argument("--sizes", default="50,200,1000,5000", help="people online before the joins, per run")
    p.add_argument("--joins", type=int, default=300)
    p.add_argument("--list-max", type=int, default=200, help="RIPPLE_PRESENCE_LIST_MAX")
    a = p.parse_args()
    sys.path.insert(0, str(Path(a.root).resolve()))
    presence_module = importlib.import_module("app.people.presence")
    server = servers.RedisServer(tempfile.mkdtemp(prefix="ripple-presence-join-")).start()
    try:
        client = redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
        presence = presence_module.Presence(client, heartbeat=15, grace=5, max_per_session=10,
                                            list_max=a.list_max, batch_ms=1000)
        presence._flush_later = lambda room: None  # no gevent loop here; the batches just wait
        for size in [int(s) for s in a.sizes.split(",")]:
            room = "join-%d" % size
            for i in range(size):
                presence.join(room, "here%06d" % i, "sid", presence.new_conn())
            client.config_resetstat()
            cpu = redis_cpu(client)
            for i in range(a.joins):
                presence.join(room, "new%06d" % i, "sid", presence.new_conn(), snapshot=True)
            cpu = redis_cpu(client) - cpu
            evalsha = client.info("commandstats").get("cmdstat_evalsha", {})
            print(json.dumps({"root": str(Path(a.root).resolve()), "online_before": size, "joins": a.joins,
                              "redis_cpu_us_per_join": round(1e6 * cpu / a.joins, 1),
                              "evalsha_us_per_call": evalsha.get("usec_per_call")}))
        client.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
