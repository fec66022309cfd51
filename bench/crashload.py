"""The crash storm's load generator: clients that stream, lose their server, and come back.

Each process holds a share of the clients on one uvloop event loop, each
client on one of the given source addresses (127.0.0.x: more than one when
the connections would run out of ephemeral ports to one server port). A
client connects, waits for ``welcome``, subscribes to its symbol and counts
as streaming once a ``quote`` (not the snapshot) arrives. When its
connection is lost it reconnects as docs/PROTOCOL.md advises and the Python
client does (``marketfeed_client.backoff.Backoff``: exponential back-off with
equal jitter, the first wait 0.25-0.5 s, reset once subscribed) and again
counts as healed at its first new ``quote``. The parent (bench/crash.py)
drives the processes over a pipe: "ready" once every client streams, then
("killed", t), ("status",) → lost and healed so far, as often as it likes,
("collect",) → "result" (one record per client that lost its connection)
and ("stop",). After "ready" nothing but the kill closes a connection, so
every loss is the kill's, however late a loaded machine notices it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from websockets.uri import parse_uri

from bench.procs import pin_self, raise_nofile
from bench.wire import LeanConnection
from marketfeed_client.backoff import Backoff

MAX_FRAME_BYTES = 2**20
QUOTE = '"type":"quote"'


@dataclass(slots=True)
class CrashLoadConfig:
    clients: list[tuple[str, str]]  # (url, symbol) per client
    sources: list[str]  # local addresses, dealt round-robin
    concurrency: int = 200  # handshakes in flight at once while the clients first connect
    open_timeout_s: float = 10.0
    ready_timeout_s: float = 600.0
    core: int | None = None
    seed: int = 1


@dataclass(slots=True)
class Record:
    lost_at: float
    welcomed_at: float | None = None
    quoted_at: float | None = None
    attempts: int = 0
    failures: dict[str, int] = field(default_factory=dict)


async def open_connection(url: str, source: str, timeout_s: float) -> LeanConnection:
    """TCP from ``source`` and the WebSocket handshake, within ``timeout_s``."""
    uri = parse_uri(url)
    loop = asyncio.get_running_loop()
    made: list[LeanConnection] = []

    def protocol() -> LeanConnection:
        conn = LeanConnection(url, MAX_FRAME_BYTES)
        made.append(conn)
        return conn

    async def handshake() -> LeanConnection:
        await loop.create_connection(protocol, uri.host, uri.port, local_addr=(source, 0))
        await made[0].opened
        return made[0]

    try:
        return await asyncio.wait_for(handshake(), timeout_s)
    except BaseException:
        for conn in made:
            conn.abort()
        raise


class CrashWorker:
    def __init__(self, cfg: CrashLoadConfig, pipe: Connection) -> None:
        self.cfg, self.pipe = cfg, pipe
        self.sem = asyncio.Semaphore(cfg.concurrency)
        self.streaming = 0
        self.first_failures: dict[str, int] = {}
        self.ready = asyncio.Event()
        self.killed_at: float | None = None
        self.records: list[Record] = []
        self.open: dict[int, LeanConnection] = {}
        self.stopping = False

    async def command(self) -> tuple[Any, ...]:
        msg: tuple[Any, ...] = await asyncio.get_running_loop().run_in_executor(
            None, self.pipe.recv
        )
        return msg

    async def stream_once(self, i: int, url: str, symbol: str, source: str) -> tuple[float, float]:
        """Connect, subscribe, wait for a quote; then return (welcomed, quoted) times."""
        conn = await open_connection(url, source, self.cfg.open_timeout_s)
        self.open[i] = conn
        try:
            welcome = json.loads(await asyncio.wait_for(conn.recv(), self.cfg.open_timeout_s))
            if welcome.get("type") != "welcome":
                raise RuntimeError(f"expected welcome, got {str(welcome)[:60]}")
            welcomed = time.time()
            conn.send(json.dumps({"op": "subscribe", "symbols": [symbol], "id": 1}))
            while True:  # subscribed and snapshot, then the first new quote
                text = await asyncio.wait_for(conn.recv(), self.cfg.open_timeout_s + 30)
                if '"type":"error"' in text:
                    raise RuntimeError(f"subscribe refused: {text[:80]}")
                if QUOTE in text:
                    return welcomed, time.time()
        except BaseException:
            conn.abort()
            self.open.pop(i, None)
            raise

    async def client(self, i: int, url: str, symbol: str) -> None:
        source = self.cfg.sources[i % len(self.cfg.sources)]
        backoff = Backoff(rng=random.Random(self.cfg.seed * 1_000_003 + i))
        record: Record | None = None
        first = True
        while not self.stopping:
            try:
                if first:
                    async with self.sem:
                        await self.stream_once(i, url, symbol, source)
                else:
                    welcomed, quoted = await self.stream_once(i, url, symbol, source)
                    if record is not None:
                        record.welcomed_at, record.quoted_at = welcomed, quoted
                        record = None
            except Exception as exc:
                reason = _reason(exc)
                failures = self.first_failures if record is None else record.failures
                failures[reason] = failures.get(reason, 0) + 1
                if record is not None:
                    record.attempts += 1
                await asyncio.sleep(backoff.next_delay())
                continue
            if first:
                first = False
                self.streaming += 1
                if self.streaming == len(self.cfg.clients):
                    self.ready.set()
            backoff.reset()
            conn = self.open[i]
            conn.stream(_ignore)
            await conn.closed
            self.open.pop(i, None)
            if self.stopping:
                return
            record = Record(lost_at=time.time(), attempts=1)
            self.records.append(record)  # after ready, only the kill closes connections
            await asyncio.sleep(backoff.next_delay())

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self.client(i, url, symbol))
            for i, (url, symbol) in enumerate(self.cfg.clients)
        ]
        started = time.time()
        try:
            await asyncio.wait_for(self.ready.wait(), self.cfg.ready_timeout_s)
        except TimeoutError:
            pass
        self.records.clear()  # losses before the kill are the start's, not the kill's
        self.pipe.send(
            ("ready", {
                "streaming": self.streaming,
                "connect_s": time.time() - started,
                "failures": dict(self.first_failures),
            })
        )
        t0 = os.times()
        while True:
            msg = await self.command()
            if msg[0] == "killed":
                self.killed_at = msg[1]
                t0 = os.times()
            elif msg[0] == "status":
                healed = sum(1 for r in self.records if r.quoted_at is not None)
                self.pipe.send(("status", {"lost": len(self.records), "healed": healed}))
            elif msg[0] == "collect":
                t1 = os.times()
                self.pipe.send(
                    ("result", {
                        "records": [
                            (r.lost_at, r.welcomed_at, r.quoted_at, r.attempts, r.failures)
                            for r in self.records
                        ],
                        "cpu_s": (t1.user + t1.system) - (t0.user + t0.system),
                        "streaming_before": self.streaming,
                    })
                )
            elif msg[0] == "stop":
                break
        self.stopping = True
        for conn in list(self.open.values()):
            conn.abort()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.pipe.send(("stopped",))


def _ignore(text: str) -> None:
    pass


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError):
        return f"os error: {exc.strerror or exc.__class__.__name__}"
    return f"{exc.__class__.__name__}: {str(exc)[:60]}"


def crash_worker_main(cfg: CrashLoadConfig, pipe: Connection) -> None:
    """Entry point of one load process (multiprocessing target)."""
    import uvloop

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if cfg.core is not None:
        pin_self(cfg.core)
    raise_nofile()
    gc.set_threshold(50_000, 20, 100)
    uvloop.run(CrashWorker(cfg, pipe).run())
