"""The c100k load generator: many processes, each connecting from its own 127.0.0.x addresses.

One client process can hold no more connections than its open-file limit,
and one source address no more than the ephemeral port range (the kernel
picks a local port per connection to the same server address and port). So
the connections are split over several processes and, within each, over
several loopback source addresses (127.0.0.2, 127.0.0.3, ...: the whole
127.0.0.0/8 answers on ``lo``): each socket is bound to its source address
before it connects. ``plan`` is that split, pure and tested
(tests/unit/test_c100k_plan.py); ``C100kLoad`` runs it with the bench's own
client (bench/client.py, bench/wire.py), in its storm mode: every process
starts its handshakes at one instant the parent sets, so "all connected
within N s" is measured from one start for all of them.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import multiprocessing as mp
import signal
import socket
from dataclasses import dataclass
from multiprocessing.connection import Connection

from websockets.uri import parse_uri

from bench.client import MAX_FRAME_BYTES, ProtocolMismatch, Worker, WorkerConfig
from bench.loadgen import ClientSpec, LoadGen
from bench.procs import raise_nofile
from bench.wire import LeanConnection

# Descriptors a process keeps for itself besides its connections (pipes, the
# event loop, imported modules' files): the rest of its limit is for sockets.
FD_RESERVE = 200
# Ports of the ephemeral range one source address is allowed to use: the rest
# stay free for anything else on the machine (and for TIME_WAIT leftovers).
PORT_SHARE = 0.85
FIRST_SOURCE = 2  # 127.0.0.2: 127.0.0.1 is where the servers listen


class PlanError(ValueError):
    """The machine cannot hold the connections asked for; the message says why."""


@dataclass(frozen=True, slots=True)
class Plan:
    """How ``connections`` are split: ``counts[i]`` for process i, from ``sources[i]``."""

    connections: int
    counts: list[int]
    sources: list[list[str]]

    @property
    def procs(self) -> int:
        return len(self.counts)


def source_address(index: int) -> str:
    """127.0.0.2, 127.0.0.3, ... 127.0.1.0, ...: the ``index``-th loopback source address."""
    n = FIRST_SOURCE + index
    if n >= 2**24 - 1:
        raise PlanError("more source addresses than 127.0.0.0/8 holds")
    return f"127.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def per_process_limit(nofile: int) -> int:
    """Connections one process can hold with an open-file limit of ``nofile``."""
    return max(0, nofile - FD_RESERVE)


def ports_per_source(port_range: tuple[int, int]) -> int:
    low, high = port_range
    return int((high - low + 1) * PORT_SHARE)


def plan(
    connections: int,
    *,
    nofile: int,
    port_range: tuple[int, int],
    procs: int | None = None,
    sources_per_proc: int | None = None,
) -> Plan:
    """Split ``connections`` over processes and source addresses.

    At least enough processes for the open-file limit (``procs`` may ask for
    more), connections dealt as evenly as possible (counts differ by at most
    one), and enough source addresses in each process that none needs more
    local ports than ``ports_per_source``. No address is shared by two
    processes, so a process's ports are its own to count.
    """
    if connections <= 0:
        raise PlanError("no connections to make")
    cap = per_process_limit(nofile)
    if cap <= 0:
        raise PlanError(
            f"an open-file limit of {nofile} leaves no room for connections "
            f"(each process keeps {FD_RESERVE}); raise the hard limit (ulimit -Hn)"
        )
    ports = ports_per_source(port_range)
    if ports <= 0:
        raise PlanError(f"the ephemeral port range {port_range} is empty")
    need = math.ceil(connections / cap)
    if procs is not None and procs < need:
        raise PlanError(
            f"{connections:,} connections need at least {need} load processes at "
            f"{cap:,} each (open-file limit {nofile}); {procs} asked for"
        )
    n = procs or need
    base, extra = divmod(connections, n)
    counts = [base + (1 if i < extra else 0) for i in range(n)]
    per = max(sources_per_proc or 1, math.ceil(max(counts) / ports))
    sources = [[source_address(i * per + k) for k in range(per)] for i in range(n)]
    return Plan(connections=connections, counts=counts, sources=sources)


def deal(clients: list[ClientSpec], p: Plan) -> list[list[ClientSpec]]:
    """``clients`` cut into ``p.counts`` consecutive slices, one per process."""
    if len(clients) != p.connections:
        raise ValueError(f"{len(clients)} clients for a plan of {p.connections}")
    out, at = [], 0
    for n in p.counts:
        out.append(clients[at : at + n])
        at += n
    return out


def server_processes_needed(connections: int, nofile: int) -> int:
    """Server processes that can hold ``connections`` at ``nofile`` open files each."""
    cap = per_process_limit(nofile)
    if cap <= 0:
        raise PlanError(f"an open-file limit of {nofile} leaves no room for connections")
    return math.ceil(connections / cap)


# --- the client processes ---------------------------------------------------------------------


class SourcedWorker(Worker):
    """bench/client.py's worker, with each socket bound to one of its source addresses first."""

    def __init__(self, cfg: WorkerConfig, pipe: Connection, sources: list[str]) -> None:
        super().__init__(cfg, pipe)
        self.sources = sources
        self._next = 0
        self._gave_up = False

    async def open(
        self, url: str, symbols: list[str], last: dict[str, int]
    ) -> LeanConnection:  # type: ignore[override]
        """Connect, ``welcome``, ``subscribed``: all within ``open_timeout_s``, or a failure.

        A server that accepts and then never answers must not hold a slot of
        ``concurrency`` for ever: the clients behind it would never start.
        """
        if self._gave_up:
            raise TimeoutError("not settled in time")
        source = self.sources[self._next % len(self.sources)]
        self._next += 1
        opening = self._open(url, source, symbols, last)
        return await asyncio.wait_for(opening, self.cfg.open_timeout_s)

    async def _open(
        self, url: str, source: str, symbols: list[str], last: dict[str, int]
    ) -> LeanConnection:
        ws = await self._connect(url, source)
        try:
            if '"welcome"' not in await ws.recv():
                raise ProtocolMismatch("expected welcome")
            if symbols:
                ws.send(json.dumps({"op": "subscribe", "symbols": symbols, "id": 1}))
                while True:
                    text = await ws.recv()
                    if '"type":"error"' in text:
                        raise ProtocolMismatch(f"subscribe refused: {text[:120]}")
                    self.rec.on_frame(text, last)
                    if '"subscribed"' in text:
                        break
        except BaseException:
            ws.abort()
            raise
        self.conns.append(ws)
        return ws

    async def wait_settled(self) -> float:
        """As the base class; clients not yet connected by then stop trying.

        Otherwise their handshakes would go on during the measurements that follow.
        """
        took = await super().wait_settled()
        self._gave_up = True
        # The connections' objects live until the end: out of every later collection, so
        # that no full collection of this process pauses its reading and counts as latency.
        gc.collect()
        gc.freeze()
        return took

    async def _connect(self, url: str, source: str) -> LeanConnection:
        uri = parse_uri(url)
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.bind((source, 0))
            await loop.sock_connect(sock, (uri.host, uri.port))
        except BaseException:
            sock.close()
            raise
        _, conn = await loop.create_connection(
            lambda: LeanConnection(url, MAX_FRAME_BYTES), sock=sock
        )
        await conn.opened
        return conn


def load_main(cfg: WorkerConfig, pipe: Connection, sources: list[str]) -> None:
    """Entry point of one c100k load process (multiprocessing target)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    raise_nofile()
    gc.set_threshold(50_000, 20, 100)
    import uvloop  # bench/requirements.txt: the tests import this module without it

    uvloop.run(SourcedWorker(cfg, pipe, sources).run())


class C100kLoad(LoadGen):
    """LoadGen's parent side (start, fire, window, stop) over ``SourcedWorker`` processes."""

    def __init__(
        self,
        clients: list[ClientSpec],
        p: Plan,
        *,
        concurrency: int,
        open_timeout_s: float,
        ready_timeout_s: float,
    ) -> None:
        ctx = mp.get_context("spawn")
        self.pipes = []
        self.workers = []
        for share, sources in zip(deal(clients, p), p.sources, strict=True):
            cfg = WorkerConfig(
                mode="storm",
                clients=share,
                concurrency=max(1, concurrency // p.procs),
                open_timeout_s=open_timeout_s,
                ready_timeout_s=ready_timeout_s,
            )
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=load_main, args=(cfg, child, sources), daemon=True)
            self.pipes.append(parent)
            self.workers.append(proc)
        self.total = len(clients)

    def pids(self) -> dict[str, int]:
        return {f"load{i + 1}": w.pid for i, w in enumerate(self.workers) if w.pid is not None}
