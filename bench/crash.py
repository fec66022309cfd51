"""``crashstorm``: a worker of a cluster is SIGKILLed; how long until its clients stream again.

The scale-out shape of docs/DEPLOY.md on one port: a private redis-server,
one ``runticker`` and N daphne workers (``deploy.serve`` with the cluster's
command line), each listening on a socket of its own on that port
(``deploy.procs.listeners``: SO_REUSEPORT), as ``run.py cluster --workers N``
starts them; not through ``deploy.cluster`` itself, whose supervisor stops
the whole cluster when one child dies. Every client has a token of its own
(the realistic storm: each reconnecting handshake is a token the surviving
worker has not seen) and streams one symbol.

Once every client streams, the worker holding the most connections (counted
from /proc, `deploy.procs.established_by_pid`) is SIGKILLed. Its clients
see the connection drop, reconnect with back-off and jitter
(bench/crashload.py), land on the surviving workers, subscribe again, and
count as healed at their first new ``quote``. The figure is the time from
the kill until the last of them is healed (target: 10 s). The reference is
the same number of plain-``websockets`` processes on one port
(``bench/reference.py --reuse-port``), the same clients, the same kill.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import procs
from bench.connections import client_urls
from bench.crashload import CrashLoadConfig, crash_worker_main
from bench.djangoctl import symbol_names
from bench.reference import READY_LINE
from bench.results import say
from bench.servers import (
    DAPHNE_READY,
    REFERENCE_BACKLOG,
    REFERENCE_TOKEN,
    Deployment,
    FeedDeployment,
    Helper,
    Load,
    base_env,
    probe,
)
from deploy.procs import daphne_command, established_by_pid, listeners

SETTLE_S = 2.0
QUIET_S = 3.0  # no new loss for this long, and every lost client healed: the storm is over
TARGET_S = 10.0


class FeedCluster(FeedDeployment):
    """Redis, runticker and ``workers`` daphne processes on one port."""

    def __init__(self, workers: int, *, pin: bool) -> None:
        super().__init__("redis-pubsub", pin=pin)
        self.name = "feed"
        self.workers = workers
        self.port = 0

    def up(self, load: Load) -> None:
        env = dict(self.env, FEED_BATCH_FRAMES="0", FEED_TICKER="external")
        self.helper = Helper(self.env, self.dir / "djangoctl.log")
        self.token = self.helper.call(cmd="setup", symbols=load.symbols, rate=load.rate)["token"]
        self.symbols = symbol_names(load.symbols)
        self.start("runticker", [sys.executable, "manage.py", "runticker"], env)
        self.port = procs.free_port()
        sockets = listeners("127.0.0.1", self.port, self.workers)
        try:
            for number, sock in enumerate(sockets, start=1):
                cmd = daphne_command(sys.executable, "127.0.0.1", self.port, fd=sock.fileno())
                self._start_with_fd(f"worker{number}", cmd, env, sock.fileno())
        finally:
            for sock in sockets:  # each worker holds its own now
                sock.close()
        for number in range(1, self.workers + 1):
            self.wait_log(f"worker{number}", DAPHNE_READY)
        self.urls = [f"ws://127.0.0.1:{self.port}/ws/quotes/?token={self.token}"]
        probe(self.urls[0], self.symbols[0])

    def _start_with_fd(self, role: str, cmd: list[str], env: dict[str, str], fd: int) -> None:
        """``start`` for a worker that inherits its listening socket ``fd``."""
        if self.pin:
            cmd = ["taskset", "-c", str(procs.SERVER_CORE), *cmd]
        log = self.dir / f"{role}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                cmd, cwd=procs_root(), env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, pass_fds=(fd,),
                preexec_fn=procs._child_setup,  # its own process group, the file limit raised
            )
        procs._children.append(proc)  # ended by procs.kill_all like every other child
        self.running[role] = proc
        self.commands[role] = " ".join(
            ".venv/bin/python" if c == sys.executable else c for c in cmd
        )

    def worker_pids(self) -> dict[str, int]:
        return {r: p for r, p in self.pids().items() if r.startswith("worker")}


class ReferenceCluster(Deployment):
    """``workers`` plain-``websockets`` reference processes on one port (SO_REUSEPORT)."""

    name = "reference"

    def __init__(self, workers: int, *, pin: bool) -> None:
        super().__init__(pin=pin)
        self.workers = workers
        self.port = 0

    def up(self, load: Load) -> None:
        self.port = procs.free_port()
        self.symbols = symbol_names(load.symbols)
        for number in range(1, self.workers + 1):
            self.start(
                f"worker{number}",
                [
                    sys.executable, "-m", "bench.reference", "--port", str(self.port),
                    "--symbols", str(load.symbols), "--rate", f"{load.rate:g}",
                    "--token", REFERENCE_TOKEN, "--backlog", str(REFERENCE_BACKLOG),
                    "--reuse-port", "--seed", str(number),
                ],
                base_env(self.dir / "var"),
            )
        for number in range(1, self.workers + 1):
            self.wait_log(f"worker{number}", READY_LINE)
        self.urls = [f"ws://127.0.0.1:{self.port}/ws/quotes/?token={REFERENCE_TOKEN}"]
        probe(self.urls[0], self.symbols[0])

    def worker_pids(self) -> dict[str, int]:
        return {r: p for r, p in self.pids().items() if r.startswith("worker")}


def procs_root() -> Path:
    return Path(__file__).resolve().parent.parent


class CrashLoad:
    """The client processes (bench/crashload.py), clients dealt round-robin."""

    def __init__(self, clients: list[tuple[str, str]], args: argparse.Namespace) -> None:
        ctx = mp.get_context("spawn")
        self.pipes, self.workers = [], []
        n = max(1, min(args.procs, len(clients)))
        sources = [f"127.0.0.{i}" for i in range(1, args.sources + 1)]
        for i in range(n):
            cfg = CrashLoadConfig(
                clients=clients[i::n],
                sources=sources,
                concurrency=max(1, args.concurrency // n),
                core=procs.CLIENT_CORE if args.pin else None,
                seed=i + 1,
            )
            parent, child = ctx.Pipe()
            self.pipes.append(parent)
            self.workers.append(
                ctx.Process(target=crash_worker_main, args=(cfg, child), daemon=True)
            )

    def __enter__(self) -> CrashLoad:
        for proc in self.workers:
            proc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(("stop",))
            except OSError:
                pass
        for proc in self.workers:
            proc.join(20)
            if proc.is_alive():
                proc.kill()
                proc.join()

    def expect(self, kind: str, timeout_s: float) -> list[dict[str, Any]]:
        out = []
        for pipe in self.pipes:
            if not pipe.poll(timeout_s):
                raise RuntimeError(f"crash load: no {kind!r} within {timeout_s:g} s")
            msg = pipe.recv()
            if msg[0] != kind:
                raise RuntimeError(f"crash load: expected {kind!r}, got {msg[0]!r}")
            out.append(msg[1])
        return out

    def killed(self, at: float) -> None:
        for pipe in self.pipes:
            pipe.send(("killed", at))

    def status(self) -> tuple[int, int]:
        """(lost, healed) so far, over all processes."""
        for pipe in self.pipes:
            pipe.send(("status",))
        got = self.expect("status", timeout_s=60)
        return sum(s["lost"] for s in got), sum(s["healed"] for s in got)

    def wait_healed(self, deadline: float, quiet_s: float = QUIET_S) -> None:
        """Until every client that lost its connection streams again, and no loss is new.

        Not until /proc's count of the killed worker's connections have come
        back: on a loaded machine that count can include connections whose
        clients had already given up on them.
        """
        seen, since = -1, time.time()
        while time.time() < deadline:
            lost, healed = self.status()
            if lost != seen:
                seen, since = lost, time.time()
            elif lost and healed == lost and time.time() - since >= quiet_s:
                return
            time.sleep(0.2)

    def collect(self) -> list[dict[str, Any]]:
        for pipe in self.pipes:
            pipe.send(("collect",))
        return self.expect("result", timeout_s=60)


def run(args: argparse.Namespace) -> dict[str, Any]:
    load = Load(symbols=args.symbols, rate=args.rate)
    runs: dict[str, Any] = {}
    kinds: list[tuple[str, Any]] = [("feed", FeedCluster), ("reference", ReferenceCluster)]
    for name, kind in kinds[:1] if args.no_reference else kinds:
        dep = kind(args.workers, pin=args.pin)
        try:
            dep.up(load)
            runs[name] = _crash_on(dep, load, args)
            runs[name]["commands"] = dict(dep.commands)
        finally:
            dep.close()
    keys = ("clients", "killed_worker_held", "lost", "healed", "all_healed_s", "p99_healed_s")
    summary = {s: {k: r[k] for k in keys} for s, r in runs.items()}
    for s in summary:
        summary[s]["met"] = runs[s]["all_healed_s"] is not None and (
            runs[s]["all_healed_s"] <= TARGET_S
        )
    return {"servers": runs, "summary": summary}


def _crash_on(dep: Any, load: Load, args: argparse.Namespace) -> dict[str, Any]:
    say(f"{dep.name}: {args.workers} workers on port {dep.port}, {args.clients} clients")
    urls = client_urls(dep, args.clients, args.clients if args.distinct_tokens else 1)
    symbols = dep.symbols
    clients = [(url, symbols[i % len(symbols)]) for i, url in enumerate(urls)]
    load_before = os.getloadavg()
    with CrashLoad(clients, args) as gen:
        ready = gen.expect("ready", timeout_s=900)
        streaming = sum(r["streaming"] for r in ready)
        connect_s = max(r["connect_s"] for r in ready)
        say(f"  {dep.name}: {streaming}/{args.clients} streaming after {connect_s:.1f} s")
        if streaming < args.clients:
            failures = Counter()
            for r in ready:
                failures.update(r["failures"])
            raise RuntimeError(f"{dep.name}: only {streaming} clients streaming ({dict(failures)})")
        time.sleep(SETTLE_S)
        pids = dep.worker_pids()
        held = established_by_pid(pids, dep.port)
        victim = max(held, key=lambda w: held[w])
        load_at_kill = os.getloadavg()
        killed_at = time.time()
        os.kill(pids[victim], signal.SIGKILL)
        gen.killed(killed_at)
        gen.wait_healed(killed_at + args.heal_timeout)
        results = gen.collect()
        survivors = {w: p for w, p in pids.items() if w != victim}
        after = established_by_pid(survivors, dep.port)
    records = [rec for r in results for rec in r["records"]]
    healed = sorted(q - killed_at for _, _, q, _, _ in records if q is not None)
    welcomed = sorted(w - killed_at for _, w, _, _, _ in records if w is not None)
    failures: Counter[str] = Counter()
    for *_, f in records:
        failures.update(f)
    lost = len(records)
    complete = lost > 0 and len(healed) == lost
    result = {
        "workers": args.workers,
        "clients": args.clients,
        "distinct_tokens": args.distinct_tokens,
        "symbols": load.symbols,
        "rate_per_symbol": load.rate,
        "connect_s": round(connect_s, 2),
        "held_by_worker": held,
        "killed_worker": victim,
        "killed_worker_held": held[victim],
        "lost": lost,
        "healed": len(healed),
        "all_healed_s": round(healed[-1], 3) if complete else None,
        "p50_healed_s": _pct(healed, 50),
        "p90_healed_s": _pct(healed, 90),
        "p99_healed_s": _pct(healed, 99),
        "all_welcomed_s": round(welcomed[-1], 3) if welcomed and len(welcomed) == lost else None,
        "reconnect_attempts_max": max((a for *_, a, _ in records), default=0),
        "reconnect_failures": dict(failures),
        "survivors_hold_after": after,
        "client_cpu_s": round(sum(r["cpu_s"] for r in results), 2),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_at_kill": [round(x, 2) for x in load_at_kill],
    }
    say(
        f"  {dep.name}: killed {victim} holding {held[victim]} of {held}; "
        f"{len(healed)}/{lost} streaming again, all within {result['all_healed_s']} s "
        f"(p50 {result['p50_healed_s']} s, p99 {result['p99_healed_s']} s), "
        f"failures {dict(failures)}; load average at the kill {result['loadavg_at_kill']}"
    )
    return result


def _pct(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(len(values) * pct / 100))], 3)


def add_parser(sub: Any, positive: Any) -> None:
    """The ``crashstorm`` sub-command's options (bench/cli.py registers it)."""
    p = sub.add_parser(
        "crashstorm", help="SIGKILL one worker of a cluster: time until its clients stream again"
    )
    p.add_argument("--pin", action="store_true", help="servers on core 0, clients on core 1")
    p.add_argument("--workers", type=positive(int), default=4, help="daphne workers on one port")
    p.add_argument("--clients", type=positive(int), default=10_000)
    p.add_argument("--symbols", type=positive(int), default=20)
    p.add_argument("--rate", type=positive(float), default=2.0, help="quotes/s per symbol")
    p.add_argument("--procs", type=positive(int), default=4, help="load-generator processes")
    p.add_argument(
        "--sources", type=positive(int), default=4, help="client source addresses 127.0.0.1-N"
    )
    p.add_argument(
        "--concurrency", type=positive(int), default=400, help="first connects in flight, in all"
    )
    p.add_argument("--heal-timeout", type=positive(float), default=120.0)
    p.add_argument(
        "--shared-token", dest="distinct_tokens", action="store_false",
        help="every client the same token (default: a token per client)",
    )
    p.add_argument("--no-reference", action="store_true", help="skip the reference run")


SCENARIOS = {"crashstorm": run}
