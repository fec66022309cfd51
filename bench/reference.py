"""The reference: a plain ``websockets`` server, the practical limit on this machine.

It does what the feed does, minus the framework: generates quotes for the same
symbols at the same Poisson rates, with messages of the same fields and size
as the feed's ``quote``, builds each quote's JSON text once and writes it to
every subscriber of that symbol with ``websockets.broadcast``. It accepts the
same URL (``?token=``), answers ``welcome``, ``subscribe`` → ``subscribed``
+ ``snapshot``, so the load generator talks to both the same way.

``--batch``: the quotes due in one loop turn go to each client as one JSON
array frame, built once per distinct subscription set, as the feed does with
``FEED_BATCH_FRAMES=1``. Lines on stdin, ``halt SYMBOL`` / ``resume SYMBOL``,
broadcast a ``status``: the floor for the admin scenario.

``--reuse-port``: several processes listen on one port (``SO_REUSEPORT``), as
the feed's workers do; each runs its own market with the same seed and rate,
and each gets the halt lines on its own stdin (bench/servers.py does both).

Run: ``python -m bench.reference --port P --symbols 10 --rate 50 --token T``.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import math
import random
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.http11 import Request, Response

MAX_IDLE_S = 0.25
CATCH_UP_LIMIT_S = 0.5  # as the feed's ticker: skip ahead after a stall
READY_LINE = "reference listening on"


def dump(obj: dict[str, object]) -> str:
    return json.dumps(obj, separators=(",", ":"))


@dataclass(slots=True)
class Book:
    symbol: str
    mid: float
    seq: int = 0
    volume: int = 100
    last: float = 100.0
    last_size: int = 100
    halted: bool = False
    text: str = ""


class Market:
    """Quotes of the feed's shape: a random walk on a 0.01 grid, lots of 100."""

    def __init__(self, symbols: list[str], rate: float, seed: int) -> None:
        self.rate = rate
        self.rng = random.Random(seed)
        self.books = {s: Book(symbol=s, mid=100.0) for s in symbols}
        now = time.time()
        self.heap = [(now + self.rng.expovariate(rate), s) for s in symbols]
        heapq.heapify(self.heap)

    def due(self, now: float) -> list[tuple[str, str]]:
        """``(symbol, text)`` of every quote due by ``now``, in time order (a symbol may recur)."""
        out = []
        ts = int(now * 1_000_000)
        while self.heap and self.heap[0][0] <= now:
            due, symbol = heapq.heappop(self.heap)
            book = self.books[symbol]
            if not book.halted:
                self._step(book, ts)
                out.append((symbol, book.text))
            nxt = max(due, now - CATCH_UP_LIMIT_S) + self.rng.expovariate(self.rate)
            heapq.heappush(self.heap, (nxt, symbol))
        return out

    def _step(self, book: Book, ts: int) -> None:
        rng = self.rng
        book.mid *= math.exp(rng.gauss(0.0, 1e-4))
        bid = math.floor(book.mid * 100 - 0.5) / 100
        ask = round(bid + 0.01 * rng.randint(1, 3), 2)
        if rng.random() < 0.3:
            book.last = bid if rng.random() < 0.5 else ask
            book.last_size = 100 * rng.randint(1, 10)
            book.volume += book.last_size
        book.seq += 1
        book.text = dump(
            {
                "type": "quote",
                "symbol": book.symbol,
                "seq": book.seq,
                "bid": round(bid, 2),
                "ask": ask,
                "bid_size": 100 * rng.randint(1, 20),
                "ask_size": 100 * rng.randint(1, 20),
                "last": book.last,
                "last_size": book.last_size,
                "volume": book.volume,
                "ts": ts,
            }
        )

    def next_due(self) -> float:
        return self.heap[0][0] if self.heap else time.time() + MAX_IDLE_S


class Reference:
    def __init__(self, market: Market, token: str, batch: bool) -> None:
        self.market = market
        self.token = token
        self.batch = batch
        self.epoch = "ref0001"
        self.members: dict[str, set[ServerConnection]] = {s: set() for s in market.books}
        self.subs: dict[ServerConnection, frozenset[str]] = {}

    def check_token(self, conn: ServerConnection, request: Request) -> Response | None:
        query = parse_qs(urlsplit(request.path).query)
        if query.get("token", [""])[0] != self.token:
            return conn.respond(403, "bad token\n")
        return None

    async def handler(self, conn: ServerConnection) -> None:
        self.subs[conn] = frozenset()
        try:
            await conn.send(
                dump(
                    {
                        "type": "welcome",
                        "user": "bench",
                        "heartbeat_s": 15,
                        "max_symbols": 1000,
                        "protocol": 1,
                        "epoch": self.epoch,
                    }
                )
            )
            async for text in conn:
                await self.on_request(conn, text)
        finally:
            for symbol in self.subs.pop(conn, frozenset()):
                self.members[symbol].discard(conn)

    async def on_request(self, conn: ServerConnection, text: str | bytes) -> None:
        try:
            req = json.loads(text)
            op, rid = req.get("op"), req.get("id")
        except (ValueError, AttributeError):
            await conn.send(dump({"type": "error", "code": "bad_json", "message": "not JSON"}))
            return
        if op != "subscribe":
            await conn.send(
                dump(
                    {
                        "type": "error",
                        "id": rid,
                        "code": "bad_request",
                        "message": "the reference knows subscribe only",
                    }
                )
            )
            return
        symbols = list(dict.fromkeys(str(s).upper() for s in req.get("symbols", [])))
        unknown = [s for s in symbols if s not in self.members]
        if unknown or not symbols:
            await conn.send(
                dump(
                    {
                        "type": "error",
                        "id": rid,
                        "code": "unknown_symbol",
                        "message": "unknown",
                        "symbols": unknown,
                    }
                )
            )
            return
        for s in symbols:
            self.members[s].add(conn)
        self.subs[conn] = self.subs[conn] | frozenset(symbols)
        await conn.send(dump({"type": "subscribed", "id": rid, "symbols": symbols}))
        for s in symbols:
            book = self.market.books[s]
            if book.text:
                await conn.send('{"type":"snapshot","epoch":"' + self.epoch + '",' + book.text[16:])

    def publish(self, quotes: list[tuple[str, str]]) -> None:
        if not self.batch or len(quotes) == 1:
            for symbol, text in quotes:
                broadcast(self.members[symbol], text)
            return
        by_set: dict[frozenset[str], list[ServerConnection]] = {}
        touched = {c for symbol, _ in quotes for c in self.members[symbol]}
        for conn in touched:
            by_set.setdefault(self.subs.get(conn, frozenset()), []).append(conn)
        for symbols, conns in by_set.items():
            texts = [text for symbol, text in quotes if symbol in symbols]
            broadcast(conns, texts[0] if len(texts) == 1 else "[" + ",".join(texts) + "]")

    def set_halted(self, symbol: str, halted: bool) -> None:
        book = self.market.books.get(symbol)
        if book is not None:
            book.halted = halted
            state = "halted" if halted else "trading"
            broadcast(
                self.members[symbol], dump({"type": "status", "symbol": symbol, "state": state})
            )

    async def tick_loop(self) -> None:
        market = self.market
        while True:
            quotes = market.due(time.time())
            if quotes:
                self.publish(quotes)
            await asyncio.sleep(min(MAX_IDLE_S, max(0.0, market.next_due() - time.time())))


async def control_loop(ref: Reference) -> None:
    """``halt SYMBOL`` / ``resume SYMBOL`` lines on stdin."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        parts = line.decode().split()
        if len(parts) == 2 and parts[0] in ("halt", "resume"):
            ref.set_halted(parts[1].upper(), parts[0] == "halt")


async def amain(args: argparse.Namespace) -> None:
    symbols = [f"{args.prefix}{i:03d}" for i in range(args.symbols)]
    ref = Reference(Market(symbols, args.rate, args.seed), args.token, args.batch)
    async with serve(
        ref.handler,
        "127.0.0.1",
        args.port,
        process_request=ref.check_token,
        compression=None,
        ping_interval=20,
        ping_timeout=30,
        server_header=None,
        backlog=args.backlog,
        reuse_port=args.reuse_port,
    ):
        print(f"{READY_LINE} 127.0.0.1:{args.port}", flush=True)
        tasks = [asyncio.create_task(ref.tick_loop())]
        if args.control:
            tasks.append(asyncio.create_task(control_loop(ref)))
        await asyncio.gather(*tasks)


def parse_args(argv: Iterable[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.reference", description=__doc__.splitlines()[0]
    )
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--symbols", type=int, default=10)
    p.add_argument("--prefix", default="B")
    p.add_argument("--rate", type=float, default=10.0, help="quotes per second per symbol")
    p.add_argument("--token", required=True)
    p.add_argument("--batch", action="store_true")
    p.add_argument("--control", action="store_true", help="read halt/resume lines on stdin")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--backlog", type=int, default=100, help="listen backlog (asyncio's default)")
    p.add_argument(
        "--reuse-port",
        action="store_true",
        help="SO_REUSEPORT: several processes on one port, the kernel spreading connections",
    )
    return p.parse_args(list(argv))


def main(argv: Iterable[str] | None = None) -> int:
    import uvloop

    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        uvloop.run(amain(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
