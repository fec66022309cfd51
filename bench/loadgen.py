"""The load generator: N client processes (bench/client.py) driven from the bench process.

Clients are dealt round-robin over ``procs`` processes, so one process can
hold thousands of connections and ``--procs 2`` can use both cores when
asked. The parent waits until every process has connected and subscribed its
clients, then sets one measurement window (absolute wall-clock times) for all
of them, so the server's CPU, sampled by the parent at the same two instants,
lines up with what the clients counted. Results are merged here.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from bench.client import WorkerConfig, worker_main
from bench.histogram import Histogram, merged
from bench.procs import CLIENT_CORE

SATURATED_SHARE = 0.9  # a client process busier than this per second of window is the limit
RESULT_GRACE_S = 30.0

ClientSpec = tuple[str, list[str]]


def assign_symbols(
    symbols: list[str], clients: int, per_client: int, *, seed: int = 1
) -> list[list[str]]:
    """``per_client`` distinct symbols for each client, every symbol used equally often.

    Clients take consecutive runs of a shuffled symbol list, reshuffled for each
    pass over it, so subscriber counts per symbol are even (to within one) and
    subscription sets vary from client to client as they would in real use.
    """
    if per_client > len(symbols):
        raise ValueError(f"{per_client} symbols per client but only {len(symbols)} symbols")
    rng = random.Random(seed)
    order: list[str] = []
    out: list[list[str]] = []
    for _ in range(clients):
        chosen: list[str] = []
        while len(chosen) < per_client:
            if not order:
                order = symbols[:]
                rng.shuffle(order)
            pick = order.pop()
            if pick not in chosen:
                chosen.append(pick)
            else:
                order.insert(0, pick)
        out.append(chosen)
    return out


class LoadGen:
    def __init__(
        self,
        clients: list[ClientSpec],
        *,
        procs: int = 1,
        mode: str = "stream",
        pin: bool = False,
        concurrency: int = 200,
        open_timeout_s: float = 30.0,
        client: str = "lean",
        rcvbuf: int = 0,
    ) -> None:
        procs = max(1, min(procs, len(clients) or 1))
        ctx = mp.get_context("spawn")
        self.pipes: list[Connection] = []
        self.workers: list[BaseProcess] = []
        for i in range(procs):
            cfg = WorkerConfig(
                mode=mode,
                clients=clients[i::procs],
                concurrency=max(1, concurrency // procs),
                open_timeout_s=open_timeout_s,
                core=CLIENT_CORE if pin else None,
                client=client,
                rcvbuf=rcvbuf,
            )
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(cfg, child), daemon=True)
            self.pipes.append(parent)
            self.workers.append(proc)
        self.total = len(clients)

    # --- lifecycle -------------------------------------------------------------------

    def start(self, timeout_s: float = 180.0) -> dict[str, Any]:
        """Start the processes; returns once every client connected or failed."""
        for proc in self.workers:
            proc.start()
        summaries = [self._expect(pipe, "ready", timeout_s) for pipe in self.pipes]
        return merge_connect(summaries)

    def stop(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(("stop",))
            except (BrokenPipeError, OSError):
                pass
        deadline = time.monotonic() + 15
        for pipe, proc in zip(self.pipes, self.workers, strict=True):
            if proc.pid is None:  # never started
                continue
            try:
                if pipe.poll(max(0.1, deadline - time.monotonic())):
                    pipe.recv()
            except (EOFError, OSError):
                pass
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()

    def __enter__(self) -> LoadGen:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- measuring ---------------------------------------------------------------------

    def open_window(self, start_us: int, end_us: int) -> None:
        for pipe in self.pipes:
            pipe.send(("window", start_us, end_us))

    def window_results(self) -> dict[str, Any]:
        return merge_stream([self._expect(p, "result", RESULT_GRACE_S) for p in self.pipes])

    def fire(self, at_us: int) -> None:
        """Storm mode: every process starts its handshakes at ``at_us``."""
        for pipe in self.pipes:
            pipe.send(("go", at_us))

    def storm_results(self, timeout_s: float) -> dict[str, Any]:
        summaries = [self._expect(p, "result", timeout_s) for p in self.pipes]
        out = merge_connect(summaries)
        out["connect_s"] = max(s["connect_s"] for s in summaries)
        out["client_cpu_s"] = sum(s["cpu_s"] for s in summaries)
        return out

    def _expect(self, pipe: Connection, kind: str, timeout_s: float) -> dict[str, Any]:
        if not pipe.poll(timeout_s):
            raise RuntimeError(f"load generator: no {kind!r} within {timeout_s:g} s")
        msg = pipe.recv()
        if msg[0] != kind:
            raise RuntimeError(f"load generator: expected {kind!r}, got {msg[0]!r}")
        result: dict[str, Any] = msg[1]
        return result


def merge_connect(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    failures: dict[str, int] = {}
    for s in summaries:
        for reason, n in s["failures"].items():
            failures[reason] = failures.get(reason, 0) + n
    hs = merged(Histogram.from_wire(s["handshakes"]) for s in summaries)
    return {
        "connected": sum(s["connected"] for s in summaries),
        "failures": failures,
        "connect_s": max((s["connect_s"] for s in summaries), default=0.0),
        "handshake_us": hs.summary(),
    }


def merge_stream(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Add up the processes' counters and histograms; keep the per-slice latency."""
    keys = ("deliveries", "frames", "gaps", "out_of_order", "snapshots", "heartbeats", "errors")
    out: dict[str, Any] = {k: sum(r[k] for r in results) for k in keys}
    n_slices = max(len(r["slices"]) for r in results)
    slices = [Histogram() for _ in range(n_slices)]
    for r in results:
        for i, wire in enumerate(r["slices"]):
            slices[i].merge(Histogram.from_wire(wire))
    total = merged(slices)
    window_s = results[0]["window_s"]
    out["window_s"] = window_s
    out["latency_us"] = total.summary()
    out["latency_p99_by_second_us"] = [h.percentile(99) for h in slices]
    out["latency_p99_thirds_us"] = thirds_p99(slices)
    out["statuses"] = sorted(s for r in results for s in r["statuses"])
    cpu = [r["cpu_s"] for r in results]
    out["client_cpu_s"] = sum(cpu)
    out["client_cpu_max_share"] = max(cpu) / window_s if window_s else 0.0
    out["client_saturated"] = out["client_cpu_max_share"] >= SATURATED_SHARE
    out["client_procs"] = len(results)
    lost: dict[str, int] = {}
    for r in results:
        for how, n in r.get("lost", {}).items():
            lost[how] = lost.get(how, 0) + n
    out["lost"] = dict(sorted(lost.items()))
    return out


def thirds_p99(slices: list[Histogram]) -> list[float | None]:
    """p99 of the first, middle and last third of the window (backlog growth shows here)."""
    n = len(slices)
    if n < 3:
        return [merged(slices).percentile(99)] * 3
    cuts = [0, n // 3, 2 * n // 3, n]
    return [merged(slices[cuts[i] : cuts[i + 1]]).percentile(99) for i in range(3)]
