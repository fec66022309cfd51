"""One load-generator process: many WebSocket clients on one uvloop event loop.

Speaks docs/PROTOCOL.md the way any client would: ``?token=`` in the URL,
waits for ``welcome``, sends ``subscribe`` and waits for ``subscribed``, then
reads frames (one JSON object, or an array of them when the server batches).
Everything the process receives goes through one ``Recorder``, which counts
only inside the measurement window the parent sets, so connecting and warm-up
never blur the figures. The parent (bench/loadgen.py) drives the process over
a pipe: "ready" → window or go → "result" → stop.

Why the client does so little per message: it shares two cores with the
server it measures; its own CPU time is reported so a saturated client shows.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bench.histogram import Histogram
from bench.procs import pin_self, raise_nofile
from bench.wire import LeanConnection, lean_connect

SLICE_S = 1.0  # latency histograms per second of window: growth over the window shows
SLICE_PER_US = 1 / (SLICE_S * 1e6)
QUOTE_PREFIX = '{"type":"quote",'
_DIGITS = re.compile(r"\d+")
CLOSE_TIMEOUT_S = 5.0
MAX_FRAME_BYTES = 2**24  # batched frames of many quotes must not trip the client limit


@dataclass(slots=True)
class WorkerConfig:
    mode: str  # "stream" (subscribe and count), "idle" (connect and hold), "storm"
    clients: list[tuple[str, list[str]]]  # (url, symbols) per connection
    concurrency: int = 200  # handshakes in flight at once
    open_timeout_s: float = 30.0
    ready_timeout_s: float = 120.0
    core: int | None = None
    client: str = "lean"  # "lean" (bench/wire.py) or "asyncio" (websockets' asyncio API)
    rcvbuf: int = 0  # SO_RCVBUF of each connection (lean client); 0: kernel autotuning


@dataclass(slots=True)
class Recorder:
    start_us: int = 2**62
    end_us: int = 2**62
    deliveries: int = 0
    frames: int = 0
    gaps: int = 0
    out_of_order: int = 0
    snapshots: int = 0
    heartbeats: int = 0
    errors: int = 0
    statuses: list[tuple[int, str, str]] = field(default_factory=list)
    slices: list[Histogram] = field(default_factory=list)

    def set_window(self, start_us: int, end_us: int) -> None:
        self.start_us, self.end_us = start_us, end_us
        n = max(1, int((end_us - start_us) / 1e6 / SLICE_S + 0.999))
        self.slices = [Histogram() for _ in range(n)]

    def on_frame(self, text: str, last: dict[str, int]) -> None:
        now_us = time.time_ns() // 1000
        counting = self.start_us <= now_us < self.end_us
        if counting:
            self.frames += 1
        if text.startswith(QUOTE_PREFIX):  # the hot path: one quote, read without json.loads
            fields = read_quote(text)
            if fields is not None:
                self.on_quote(*fields, now_us, counting, last)
                return
        data = json.loads(text)
        for m in data if isinstance(data, list) else (data,):
            kind = m.get("type")
            if kind == "quote":
                self.on_quote(m["symbol"], m["seq"], m["ts"], now_us, counting, last)
            elif kind == "snapshot":
                last[m["symbol"]] = m["seq"]
                self.snapshots += 1
            elif kind == "status":
                self.statuses.append((now_us, m["symbol"], m["state"]))
            elif kind == "heartbeat":
                self.heartbeats += 1
            elif kind == "error":
                self.errors += 1

    def on_quote(
        self, symbol: str, seq: int, ts: int, now_us: int, counting: bool, last: dict[str, int]
    ) -> None:
        prev = last.get(symbol)
        if prev is None or seq > prev:
            last[symbol] = seq
        if not counting:
            return
        self.deliveries += 1
        self.slices[int((now_us - self.start_us) * SLICE_PER_US)].add(now_us - ts)
        if prev is not None:
            if seq > prev + 1:
                self.gaps += seq - prev - 1
            elif seq <= prev:
                self.out_of_order += 1

    def result(self) -> dict[str, Any]:
        return {
            "deliveries": self.deliveries,
            "frames": self.frames,
            "gaps": self.gaps,
            "out_of_order": self.out_of_order,
            "snapshots": self.snapshots,
            "heartbeats": self.heartbeats,
            "errors": self.errors,
            "statuses": self.statuses,
            "slices": [h.to_wire() for h in self.slices],
        }


def read_quote(text: str) -> tuple[str, int, int] | None:
    """``(symbol, seq, ts)`` of one quote's text, found by key; None if it looks unusual.

    json.loads of every frame was half the client's time per frame; finding three
    keys is a fifth of that. Anything unexpected goes back to json.loads.
    """
    try:
        i = text.index('"symbol":"') + 10
        symbol = text[i : text.index('"', i)]
        return symbol, _int_after(text, '"seq":'), _int_after(text, '"ts":')
    except ValueError:
        return None


def _int_after(text: str, key: str) -> int:
    found = _DIGITS.match(text, text.index(key) + len(key))
    if found is None:
        raise ValueError(key)
    return int(found.group())


class Worker:
    def __init__(self, cfg: WorkerConfig, pipe: Connection) -> None:
        self.cfg = cfg
        self.pipe = pipe
        self.rec = Recorder()
        self.sem = asyncio.Semaphore(cfg.concurrency)
        self.conns: list[ClientConnection | LeanConnection] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.failures: dict[str, int] = {}
        # Connections that ended after they had connected, by how (until ``stop``).
        self.lost: dict[str, int] = {}
        self.connected = 0
        self.settled = 0
        self.handshakes = Histogram()
        self.stopping = False
        self._all_settled = asyncio.Event()

    async def command(self) -> tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        msg: tuple[Any, ...] = await loop.run_in_executor(None, self.pipe.recv)
        return msg

    def _settle(self, reason: str | None) -> None:
        if reason is None:
            self.connected += 1
        else:
            self.failures[reason] = self.failures.get(reason, 0) + 1
        self.settled += 1
        if self.settled == len(self.cfg.clients):
            self._all_settled.set()

    async def open(
        self, url: str, symbols: list[str], last: dict[str, int]
    ) -> ClientConnection | LeanConnection:
        """Handshake, ``welcome``, and (with symbols) ``subscribe`` up to ``subscribed``."""
        ws: ClientConnection | LeanConnection
        if self.cfg.client == "lean":
            ws = await lean_connect(
                url,
                open_timeout_s=self.cfg.open_timeout_s,
                max_size=MAX_FRAME_BYTES,
                rcvbuf=self.cfg.rcvbuf,
            )
        else:
            ws = await connect(
                url,
                compression=None,
                ping_interval=None,
                open_timeout=self.cfg.open_timeout_s,
                max_size=MAX_FRAME_BYTES,
                user_agent_header=None,
            )
        self.conns.append(ws)
        welcome = json.loads(await ws.recv())
        if not isinstance(welcome, dict) or welcome.get("type") != "welcome":
            raise ProtocolMismatch(f"expected welcome, got {str(welcome)[:80]}")
        if symbols:
            request = json.dumps({"op": "subscribe", "symbols": symbols, "id": 1})
            if isinstance(ws, LeanConnection):
                ws.send(request)
            else:
                await ws.send(request)
            while True:
                text = str(await ws.recv())
                if '"error"' in text:
                    raise ProtocolMismatch(f"subscribe refused: {text[:120]}")
                self.rec.on_frame(text, last)
                if '"subscribed"' in text:
                    break
        return ws

    async def client(self, url: str, symbols: list[str]) -> None:
        last: dict[str, int] = {}
        try:
            async with self.sem:
                started = time.perf_counter()
                ws = await self.open(url, symbols, last)
                self.handshakes.add((time.perf_counter() - started) * 1e6)
        except Exception as exc:  # every failure is counted by kind, the rest go on
            self._settle(failure_reason(exc))
            return
        self._settle(None)
        on_frame = self.rec.on_frame
        if isinstance(ws, LeanConnection):
            ws.stream(lambda text: on_frame(text, last))
            await ws.closed
            how = ws.ended_by()
        else:
            try:
                async for text in ws:
                    on_frame(text if isinstance(text, str) else text.decode(), last)
            except ConnectionClosed:
                pass
            how = f"closed: {ws.close_code}" if ws.close_code is not None else "dropped"
        if not self.stopping:
            self.lost[how] = self.lost.get(how, 0) + 1

    def start_clients(self) -> None:
        self.tasks = [asyncio.create_task(self.client(u, s)) for u, s in self.cfg.clients]
        if not self.cfg.clients:
            self._all_settled.set()

    async def wait_settled(self) -> float:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self._all_settled.wait(), self.cfg.ready_timeout_s)
        except TimeoutError:
            pending = len(self.cfg.clients) - self.settled
            self.failures["not settled in time"] = pending
        return time.perf_counter() - started

    def summary(self, connect_s: float) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "failures": dict(self.failures),
            "connect_s": connect_s,
            "handshakes": self.handshakes.to_wire(),
        }

    async def measure(self, start_us: int, end_us: int) -> dict[str, Any]:
        self.rec.set_window(start_us, end_us)
        await _sleep_until_us(start_us)
        t0 = os.times()
        await _sleep_until_us(end_us)
        t1 = os.times()
        await asyncio.sleep(0.2)  # frames read just before the end are counted by then
        result = self.rec.result()
        result["cpu_s"] = (t1.user + t1.system) - (t0.user + t0.system)
        result["window_s"] = (end_us - start_us) / 1e6
        result["lost"] = dict(self.lost)
        return result

    async def close(self) -> None:
        self.stopping = True  # what ends from here on is ours, not lost
        if self.conns:
            await asyncio.wait(
                [asyncio.create_task(ws.close()) for ws in self.conns], timeout=CLOSE_TIMEOUT_S
            )
        for ws in self.conns:
            if isinstance(ws, LeanConnection):
                ws.abort()
            else:
                ws.transport.abort()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def run(self) -> None:
        if self.cfg.mode == "storm":
            self.pipe.send(("ready", self.summary(0.0)))
            _, fire_us = await self.command()
            await _sleep_until_us(fire_us)
            t0 = os.times()
            self.start_clients()
            connect_s = await self.wait_settled()
            t1 = os.times()
            summary = self.summary(connect_s)
            summary["cpu_s"] = (t1.user + t1.system) - (t0.user + t0.system)
            self.pipe.send(("result", summary))
        else:
            self.start_clients()
            self.pipe.send(("ready", self.summary(await self.wait_settled())))
        while True:
            msg = await self.command()
            if msg[0] == "window":
                self.pipe.send(("result", await self.measure(msg[1], msg[2])))
            elif msg[0] == "stop":
                break
        await self.close()
        self.pipe.send(("stopped",))


class ProtocolMismatch(Exception):
    """The server answered something PROTOCOL.md does not allow at that point."""


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, InvalidStatus):
        return f"refused: HTTP {exc.response.status_code}"
    if isinstance(exc, ConnectionClosed):
        code = exc.rcvd.code if exc.rcvd is not None else "none"
        return f"closed: {code}"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError):
        return f"os error: {exc.strerror or exc.__class__.__name__}"
    return f"{exc.__class__.__name__}: {str(exc)[:60]}"


async def _sleep_until_us(when_us: int) -> None:
    delay = when_us / 1e6 - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


def worker_main(cfg: WorkerConfig, pipe: Connection) -> None:
    """Entry point of a load-generator process (multiprocessing target)."""
    import uvloop

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    if cfg.core is not None:
        pin_self(cfg.core)
    raise_nofile()
    # Fewer, later cyclic collections: a full one over thousands of connections
    # pauses every client at once and shows up as server latency.
    gc.set_threshold(50_000, 20, 100)
    uvloop.run(Worker(cfg, pipe).run())
