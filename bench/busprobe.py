"""``python -m bench.busprobe``: what one quote costs the Redis layout, process by process.

Starts a Redis deployment (``--server``, default ``redis-pubsub``: a private
redis-server, ``manage.py runticker``, one daphne) with ``--symbols``
instruments quoting at ``--rate`` each, subscribes one client to all of them
(so the daphne's hub is in every group), and over a window of ``--seconds``
reads

- the CPU of each server-side process per quote the client received
  (runticker: generating, saving and publishing; redis-server; daphne: the
  hub's receive plus one delivery);
- Redis's ``INFO stats`` byte counters and ``INFO commandstats`` calls per
  quote: what the bus moves per quote, in and out.

Not pinned: it measures per-quote constants, not latency. docs/SCALING.md
derives capacities from them. Writes ``bench/results/busprobe-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import threading
import time
from typing import Any

import redis
from websockets.sync.client import connect

from bench import procs
from bench.results import RESULTS_DIR, machine, say
from bench.servers import FeedDeployment, Load


def _client(url: str, symbols: list[str], count: list[int], stop: threading.Event) -> None:
    with connect(url, compression=None, max_size=None, user_agent_header=None) as ws:
        ws.send(json.dumps({"op": "subscribe", "symbols": symbols, "id": 1}))
        while not stop.is_set():
            try:
                text = str(ws.recv(timeout=0.5))
            except TimeoutError:
                continue
            count[0] += text.count('"type":"quote"')


def _redis_counters(client: redis.Redis) -> dict[str, Any]:
    stats, commands = client.info("stats"), client.info("commandstats")
    return {
        "in": stats["total_net_input_bytes"],
        "out": stats["total_net_output_bytes"],
        "calls": {name.removeprefix("cmdstat_"): c["calls"] for name, c in commands.items()},
    }


def probe(server: str, symbols: int, rate: float, seconds: float) -> dict[str, Any]:
    dep = FeedDeployment(server, pin=False)
    stop, count = threading.Event(), [0]
    try:
        dep.up(Load(symbols=symbols, rate=rate))
        reader = threading.Thread(
            target=_client, args=(dep.urls[0], dep.symbols, count, stop), daemon=True
        )
        reader.start()
        time.sleep(3)  # subscribed, snapshots sent, the hub in every group
        bus = redis.Redis.from_url(dep.env["REDIS_URL"])
        pids = dep.pids()
        cpu0 = {r: procs.sample(p) for r, p in pids.items()}
        red0, got0, t0, load0 = _redis_counters(bus), count[0], time.time(), os.getloadavg()[0]
        time.sleep(seconds)
        cpu1 = {r: procs.sample(p) for r, p in pids.items()}
        red1, got1, window = _redis_counters(bus), count[0], time.time() - t0
        bus.close()
        quotes = got1 - got0
        if not quotes:
            raise RuntimeError("no quote arrived in the window")
        calls = {
            name: round((n - red0["calls"].get(name, 0)) / quotes, 3)
            for name, n in red1["calls"].items()
            if n != red0["calls"].get(name, 0) and name != "info"
        }
        return {
            "server": server,
            "symbols": symbols,
            "rate_per_symbol": rate,
            "window_s": round(window, 2),
            "load_average_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
            "quotes": quotes,
            "quotes_per_s": round(quotes / window, 1),
            "cpu_ms_per_s": {
                r: round((cpu1[r].cpu_s - cpu0[r].cpu_s) * 1e3 / window, 1) for r in pids
            },
            "cpu_us_per_quote": {
                r: round((cpu1[r].cpu_s - cpu0[r].cpu_s) * 1e6 / quotes, 1) for r in pids
            },
            "redis_in_bytes_per_quote": round((red1["in"] - red0["in"]) / quotes, 1),
            "redis_out_bytes_per_quote": round((red1["out"] - red0["out"]) / quotes, 1),
            "redis_calls_per_quote": calls,
            "commands": dict(dep.commands),
        }
    finally:
        stop.set()
        dep.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.busprobe", description=__doc__)
    parser.add_argument("--server", default="redis-pubsub")
    parser.add_argument("--symbols", type=int, default=21)
    parser.add_argument(
        "--rate", type=float, nargs="+", default=[15_000 / (146 * 21), 50.0],
        help="quotes/s per symbol, one window each (default: fan146's rate, then 50)",
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    procs.raise_nofile()
    started = dt.datetime.now(dt.UTC)
    try:
        points = []
        for rate in args.rate:
            point = probe(args.server, args.symbols, rate, args.seconds)
            say(json.dumps({k: v for k, v in point.items() if k != "commands"}))
            points.append(point)
    finally:
        procs.kill_all()
    doc = {
        "scenario": "busprobe",
        "started_utc": started.isoformat(timespec="seconds"),
        "command": ".venv/bin/python -m bench.busprobe " + " ".join(argv),
        "options": vars(args),
        "machine": machine(),
        "points": points,
    }
    path = RESULTS_DIR / f"busprobe-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    say(f"-> bench/results/{path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
