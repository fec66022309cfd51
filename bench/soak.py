"""Soak: stalled clients for 30 s at 1,000 quotes/s, then 1,000 dead peers, on a real daphne.

    .venv/bin/python -m bench.soak [--stall-s 30] [--stalled 10] [--peers 1000]
                                   [--ping-interval 20] [--ping-timeout 30]

The long variant of tests/faults/test_slow_client.py and test_dead_peers.py.
One embedded-default daphne (SQLite in a temporary folder) with ten symbols at
100 quotes/s each:

1. *Stalled clients*: ``--stalled`` raw sockets with a 4 KiB receive buffer
   subscribe to the ten symbols and stop reading for ``--stall-s`` seconds,
   while one client keeps reading. Figures: the server's RSS before and after,
   its longest outbox, the reading client's lag (p50/p99/max) during the stall,
   and, once the stalled clients read again, how many quotes each got, how
   long it took to catch up, and how stale its first quote after the stall
   was (the reading client had seen newer ones).
2. *Dead peers*: ``--peers`` connections subscribe, then all stop reading
   (no pong, no FIN). Figures: the time until the server has dropped them
   all, and its open WebSockets, subscriptions, Python objects and RSS before,
   while open, and after.

Prints the figures and writes them to ``bench/results/soak-<UTC stamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import websockets

from tests.faults.conftest import STAFF, Feed, base_env, daphne, set_quote_rates
from tests.faults.rawws import RawClient
from tests.faults.test_dead_peers import Peers
from tests.faults.test_slow_client import RATE_PER_SYMBOL, SYMBOLS
from tests.schema import decode_frame
from tests.servers import free_port, manage

RESULTS = Path(__file__).resolve().parent / "results"
MIB = 2**20
# The stall begins once the reader has had this many quotes: the feed is flowing.
WARM_QUOTES = 1000


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--stall-s", type=float, default=30.0, help="how long the stalled clients read nothing"
    )
    parser.add_argument("--stalled", type=int, default=10, help="stalled clients")
    parser.add_argument("--peers", type=int, default=1000, help="dead peers")
    parser.add_argument("--ping-interval", type=int, default=20, help="daphne --ping-interval (s)")
    parser.add_argument("--ping-timeout", type=int, default=30, help="daphne --ping-timeout (s)")
    parser.add_argument(
        "--socket-buffer", type=int, default=0,
        help="FEED_SOCKET_BUFFER_BYTES (0: Linux autotuning, up to 4 MiB of a stall in the kernel)",
    )
    return parser.parse_args()


def start(var: Path, args: argparse.Namespace) -> Feed:
    env = base_env(
        var, FEED_MAX_CONNECTIONS_PER_USER=str(args.peers + args.stalled + 10),
        FEED_SOCKET_BUFFER_BYTES=str(args.socket_buffer),
    )
    manage(env, "migrate", "--noinput")
    token = manage(env, "feeduser", STAFF, "--superuser").strip().splitlines()[-1]
    set_quote_rates(env, {s: RATE_PER_SYMBOL for s in SYMBOLS})
    server = daphne(
        env, free_port(), ping_interval=args.ping_interval, ping_timeout=args.ping_timeout
    )
    server.start()
    return Feed(server=server, token=token, env=env)


class Reader:
    def __init__(self) -> None:
        self.quotes: list[tuple[float, str, int, float]] = []  # (monotonic, symbol, seq, lag s)
        self.latest: dict[str, int] = {}
        self.warm = asyncio.Event()  # set at WARM_QUOTES quotes

    async def run(self, url: str) -> None:
        async with websockets.connect(url, max_queue=None) as ws:
            await ws.send(json.dumps({"op": "subscribe", "symbols": SYMBOLS, "id": 1}))
            async for frame in ws:
                now, now_us = time.monotonic(), time.time_ns() // 1000
                for msg in decode_frame(frame):
                    if msg["type"] == "quote":
                        lag_s = (now_us - msg["ts"]) / 1e6
                        self.quotes.append((now, msg["symbol"], msg["seq"], lag_s))
                        self.latest[msg["symbol"]] = msg["seq"]
                if len(self.quotes) >= WARM_QUOTES:
                    self.warm.set()


async def stalled_client(feed: Feed) -> RawClient:
    client = RawClient(feed.port, feed.token, rcvbuf=4096)
    await client.connect()
    client.send({"op": "subscribe", "symbols": SYMBOLS, "id": 1})
    await client.until(lambda m: m.get("id") == 1)
    return client


async def catch_up(client: RawClient, targets: dict[str, int]) -> dict:
    """Read until every symbol reached ``targets``; what the client saw on the way."""
    started = time.monotonic()
    received, first_behind, behind = 0, None, set(SYMBOLS)
    try:
        async for msg in client.messages():
            if msg["type"] != "quote":
                continue
            received += 1
            if first_behind is None:  # how many quotes older than the newest the first one was
                first_behind = targets[msg["symbol"]] - msg["seq"]
            if msg["seq"] >= targets[msg["symbol"]]:
                behind.discard(msg["symbol"])
                if not behind:
                    break
    except (ConnectionError, asyncio.IncompleteReadError):
        pass  # dropped: a stall longer than the ping timeout is a dead peer
    return {
        "received": received,
        "catch_up_s": round(time.monotonic() - started, 2),
        "caught_up": not behind,
        "close_code": client.close_code,
        "first_quote_behind_by": first_behind,
    }


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def stall_phase(feed: Feed, args: argparse.Namespace) -> dict:
    reader = Reader()
    reading = asyncio.create_task(reader.run(feed.server.ws_url + f"?token={feed.token}"))
    try:
        stalled = await asyncio.gather(*(stalled_client(feed) for _ in range(args.stalled)))
        await reader.warm.wait()
        rss_before, began = feed.rss(), time.monotonic()
        await asyncio.sleep(args.stall_s)  # the stall is the measurement
        rss_after, stats = feed.rss(), await asyncio.to_thread(feed.stats)
        during = [q for q in reader.quotes if q[0] >= began]
        targets = dict(reader.latest)
        caught = await asyncio.gather(*(catch_up(c, targets) for c in stalled))
    finally:
        reading.cancel()
    for client in stalled:
        client.abort()
    lags = [q[3] for q in during]
    return {
        "stall_s": args.stall_s,
        "socket_buffer_bytes": args.socket_buffer,
        "stalled_clients": args.stalled,
        "quotes_per_s": round(len(during) / args.stall_s),
        "quotes_during_stall": len(during),
        "rss_before_mib": round(rss_before / MIB, 2),
        "rss_after_mib": round(rss_after / MIB, 2),
        "rss_growth_kib": round((rss_after - rss_before) / 1024),
        "longest_outbox": stats["outbox_pending_max"],
        "reader_lag_ms": {
            "p50": round(statistics.median(lags) * 1000, 1),
            "p99": round(quantile(lags, 0.99) * 1000, 1),
            "max": round(max(lags) * 1000, 1),
        },
        "stalled_after": caught,
    }


async def dead_peer_phase(feed: Feed, args: argparse.Namespace) -> dict:
    before = await asyncio.to_thread(feed.stats)
    opened_at = time.monotonic()
    peers = await Peers(feed, args.peers).open()
    open_s = time.monotonic() - opened_at
    peak = await asyncio.to_thread(feed.stats)
    stopped = peers.abandon()
    first_drop = None
    while True:
        stats = await asyncio.to_thread(feed.stats)
        if first_drop is None and stats["websockets"] < args.peers:
            first_drop = time.monotonic() - stopped
        if stats["websockets"] == 0 and stats["subscriptions"] == 0:
            break
        await asyncio.sleep(0.25)
    all_dropped = time.monotonic() - stopped
    peers.cut()
    # daphne and autobahn let go of their last references a few seconds after the drop.
    settle_deadline = time.monotonic() + 30
    while True:
        after = await asyncio.to_thread(feed.stats)
        settled = after["python_objects"] - before["python_objects"] < 5000
        if settled or time.monotonic() > settle_deadline:
            break
        await asyncio.sleep(0.5)
    keys = ("websockets", "connections", "subscriptions", "layer_groups", "python_objects")
    return {
        "peers": args.peers,
        "ping_interval_s": args.ping_interval,
        "ping_timeout_s": args.ping_timeout,
        "open_s": round(open_s, 1),
        "first_dropped_after_s": round(first_drop or 0.0, 2),
        "all_dropped_after_s": round(all_dropped, 2),
        "objects_settled_after_s": round(time.monotonic() - stopped, 1),
        "before": {k: before[k] for k in keys} | {"rss_mib": round(before["rss_bytes"] / MIB, 1)},
        "open": {k: peak[k] for k in keys} | {"rss_mib": round(peak["rss_bytes"] / MIB, 1)},
        "after": {k: after[k] for k in keys} | {"rss_mib": round(after["rss_bytes"] / MIB, 1)},
    }


async def main(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="marketfeed-soak-") as var:
        feed = start(Path(var), args)
        try:
            return {
                "stalled": await stall_phase(feed, args),
                "dead_peers": await dead_peer_phase(feed, args),
                "server_exit_ok": feed.server.proc.poll() is None,
            }
        finally:
            feed.server.stop()


def run() -> int:
    args = arguments()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    figures = {
        "scenario": "soak", "stamp": stamp, "cpus": os.cpu_count(), **asyncio.run(main(args))
    }
    text = json.dumps(figures, indent=2)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"soak-{stamp}.json"
    path.write_text(text + "\n")
    print(f"written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run())
