"""``c100k``: 100,000 concurrent authenticated WebSocket connections on this one machine.

The feed runs as docs/DEPLOY.md's workers on one port (``deploy.cluster
--workers N``): N daphne processes sharing one listening port through
SO_REUSEPORT, Redis pubsub, one ``runticker``. N is the fewest processes
whose open-file limit (raised to the hard limit) holds the connections with
room to spare, at least ``--workers``. The load generator is several
processes, each connecting from loopback source addresses of its own
(bench/c100k_load.py): one process's descriptors and one address's ephemeral
ports would both run out long before 100,000.

Every connection authenticates with ``?token=`` (as every bench client does),
subscribes to one common symbol (the first) plus 0-4 others (1-5 in all, an
even spread), and then:

1. connect: all at once from one instant (``--concurrency`` handshakes in
   flight over all processes); time until the last has its ``subscribed``;
2. settle, then RSS of every server process (the workers summed; runticker
   and redis-server on their own), against the same before connecting;
3. halt the common symbol through ``feeds.services`` (bench/djangoctl.py, as
   the ``admin`` scenario does), resume it: time from the call until each
   connection has its ``status``;
4. a window of quotes at the ticker's rate (``--rate`` per symbol): latency
   ``receipt - ts`` per quote, and how many of the quotes the rate implies
   arrived.

The same then runs against bench/reference.py with as many processes on one
port (``--reuse-port``), as the other scenarios do. CPU of every process (the
servers, the load generator) is read from /proc over the connect phase and the
window, with the machine's load average: the two cores are shared by all of them.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import gcwatch, procs
from bench.c100k_load import C100kLoad, Plan, PlanError, plan, server_processes_needed
from bench.loadgen import ClientSpec
from bench.point import cpu_figures, ms, sample_all
from bench.results import say
from bench.scenarios import ratio
from bench.servers import Deployment, Load, ReferenceDeployment, WorkersDeployment
from deploy.procs import LISTEN_BACKLOG

CONNECTIONS = 100_000
SYMBOLS = 100
RATE = 0.05  # quotes/s per symbol: 100,000 x 3 subscriptions x 0.05 = 15,000 deliveries/s
MAX_PER_CLIENT = 5
MIN_WORKERS = 6
GC_WRITE_S = 0.6  # bench/gcwatch/ writes its figures twice a second
HEADROOM = 1.1  # SO_REUSEPORT hashes connections, it does not count them: room for the spread
# Memory the machine must have free per connection: server (≤ 32 KiB is the
# target), client (bench/wire.py's connection and its task) and both sockets
# in the kernel; plus each server process's start-up size.
NEED_KIB_PER_CONNECTION = 96
NEED_KIB_PER_PROCESS = 160 * 1024
TARGET_CONNECT_S = 120.0
TARGET_KIB = 32.0
TARGET_HALT_P99_S = 2.0
TARGET_QUOTE_P99_MS = 250.0
TARGET_SEQS_SEEN_PCT = 99.0  # as "sustained" in the other scenarios: at most 1 % conflated


# --- what the machine allows ----------------------------------------------------------------


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def port_range() -> tuple[int, int]:
    low, high = _read("/proc/sys/net/ipv4/ip_local_port_range").split()
    return int(low), int(high)


def meminfo_kib(field: str = "MemAvailable") -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def preflight(args: argparse.Namespace) -> tuple[int, Plan, dict[str, Any]]:
    """The worker count and the load plan, or a RuntimeError saying what the machine lacks."""
    nofile = procs.raise_nofile()  # the hard limit: what every process we start can raise to
    try:
        needed = server_processes_needed(int(args.connections * HEADROOM), nofile)
        workers = max(args.workers, needed)
        load = plan(
            args.connections,
            nofile=nofile,
            port_range=port_range(),
            procs=args.load_procs,
            sources_per_proc=args.sources_per_proc,
        )
    except PlanError as exc:
        raise RuntimeError(f"c100k: {exc}") from None
    somaxconn = int(_read("/proc/sys/net/core/somaxconn"))
    if somaxconn < LISTEN_BACKLOG:
        raise RuntimeError(
            f"c100k: net.core.somaxconn is {somaxconn}, below the workers' listen backlog of "
            f"{LISTEN_BACKLOG}: a connect burst overflows it (sysctl -w "
            f"net.core.somaxconn={LISTEN_BACKLOG})"
        )
    need = args.connections * NEED_KIB_PER_CONNECTION + 2 * workers * NEED_KIB_PER_PROCESS
    have = meminfo_kib()
    if have < need:
        raise RuntimeError(
            f"c100k: {args.connections:,} connections need about {need // 1024:,} MiB free "
            f"(servers, clients, kernel); MemAvailable is {have // 1024:,} MiB"
        )
    facts = {
        "nofile_hard": nofile,
        "ip_local_port_range": list(port_range()),
        "somaxconn": somaxconn,
        "mem_available_mib": have // 1024,
        "mem_total_mib": meminfo_kib("MemTotal") // 1024,
        "workers": workers,
        "load_procs": load.procs,
        "source_addresses": [a for s in load.sources for a in s],
    }
    conntrack = "/proc/sys/net/netfilter/nf_conntrack_max"
    if os.path.exists(conntrack):
        facts["nf_conntrack_max"] = int(_read(conntrack))
        if facts["nf_conntrack_max"] < args.connections * HEADROOM:
            say(
                f"c100k: warning: nf_conntrack_max is {facts['nf_conntrack_max']:,}; if "
                "connection tracking covers loopback here, connections past it are dropped"
            )
    return workers, load, facts


# --- the connections ------------------------------------------------------------------------


def subscriptions(
    connections: int, symbols: list[str], max_per: int, *, seed: int = 1
) -> list[list[str]]:
    """The common symbol (the first) plus 0 to ``max_per - 1`` distinct others per connection.

    Counts cycle 1, 2, ..., ``max_per``, so the mean is exact; the others are
    drawn at random without repeats, the same for every run with one seed.
    """
    common, others = symbols[0], symbols[1:]
    if max_per - 1 > len(others):
        raise ValueError(f"{max_per} symbols per connection but only {len(symbols)} symbols")
    rng = random.Random(seed)
    return [[common, *rng.sample(others, i % max_per)] for i in range(connections)]


def _machine_cpu() -> float:
    """Busy CPU seconds of the whole machine so far (all cores), from /proc/stat."""
    fields = _read("/proc/stat").splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / procs.CLOCK_TICKS


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _roles(pids: dict[str, int]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for role in pids:
        kind = role.rstrip("0123456789")
        kind = "servers" if kind in ("daphne", "reference") else kind
        out.setdefault(kind, []).append(role)
    return out


def _rss(pids: dict[str, int]) -> dict[str, int]:
    by_kind = _roles(pids)
    return {kind: sum(procs.rss_kib(pids[r]) for r in roles) for kind, roles in by_kind.items()}


def _shares(cpu: dict[str, Any], window_s: float, machine_s: float) -> dict[str, Any]:
    """Cores used per kind of process (servers, runticker, redis-server, load) and by the rest."""
    per: dict[str, float] = {}
    for role, figures in cpu["processes"].items():
        kind = _roles({role: 0}).popitem()[0]
        per[kind] = per.get(kind, 0.0) + figures["cpu_s"]
    ours = sum(per.values())
    out = {kind: round(s / window_s, 3) for kind, s in per.items()}
    out["others"] = round(max(0.0, machine_s - ours) / window_s, 3)
    return out


def _delays(
    changes: list[tuple[str, float]], statuses: list[tuple[int, str, str]], symbol: str, n: int
) -> list[dict[str, Any]]:
    """Per change: how many of the ``n`` connections got its ``status``, and when (s).

    A ``status`` counts for the latest change to its state before it arrived:
    a ``halted`` that arrives after the resume was called still times the halt.
    """
    out = []
    for i, (state, t0) in enumerate(changes):
        until = next((t for s, t in changes[i + 1 :] if s == state), float("inf"))
        got = sorted(
            us / 1e6 - t0
            for us, sym, st in statuses
            if sym == symbol and st == state and t0 <= us / 1e6 < until
        )
        out.append(
            {
                "state": state,
                "received": len(got),
                "all_received": len(got) >= n,
                "p50_s": _at(got, 0.5),
                "p99_s": _at(got, 0.99),
                "max_s": round(got[-1], 3) if got else None,
            }
        )
    return out


def _at(ordered: list[float], share: float) -> float | None:
    """The value below which ``share`` of the sorted ``ordered`` lie (None when empty)."""
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * share))], 3)


def _run_on(
    dep: Deployment,
    args: argparse.Namespace,
    clients: list[ClientSpec],
    load: Plan,
    gc_dir: Path,
) -> dict[str, Any]:
    rate_load = Load(symbols=args.symbols, rate=args.rate, batch=True)
    dep.up(rate_load)
    common = dep.symbols[0]
    clients = [(dep.urls[0], s) for _, s in clients]
    time.sleep(args.settle)
    pids = dep.pids()
    rss_before = _rss(pids)
    result: dict[str, Any] = {"loadavg_start": _loadavg(), "rss_before_kib": rss_before}
    say(f"{dep.name}: {len(clients):,} connections from {load.procs} load processes")
    with C100kLoad(
        clients,
        load,
        concurrency=args.concurrency,
        open_timeout_s=args.open_timeout,
        ready_timeout_s=args.connect_timeout,
    ) as gen:
        gen.start(timeout_s=180)
        every = {**pids, **gen.pids()}
        fire = time.time() + 0.5
        m0, before = _machine_cpu(), sample_all(every)
        gc_before = gcwatch.read(gc_dir, pids)
        gen.fire(int(fire * 1e6))
        out = gen.storm_results(timeout_s=args.connect_timeout + 60)
        took = time.time() - fire
        cpu = cpu_figures(before, sample_all(every), took)
        time.sleep(GC_WRITE_S)
        gc_connect = gcwatch.between(gc_before, gcwatch.read(gc_dir, pids), fire, fire + took)
        connect_cores = _shares(cpu, took, _machine_cpu() - m0)
        refused = sum(out["failures"].values())
        say(
            f"  {dep.name}: {out['connected']:,}/{len(clients):,} connected in "
            f"{out['connect_s']:.1f} s; failures {out['failures']}; cores {connect_cores}"
        )
        time.sleep(args.settle)
        rss_after = _rss(pids)
        connected = max(1, out["connected"])
        grown = rss_after["servers"] - rss_before["servers"]
        say(
            f"  {dep.name}: server RSS {rss_before['servers']:,} -> {rss_after['servers']:,} KiB, "
            f"{grown / connected:.1f} KiB per connection; all: {rss_after}"
        )
        changes = []
        halts_from, gc_before = time.time(), gcwatch.read(gc_dir, pids)
        for state in ("halted", "trading"):
            changes.append((state, dep.halt(common, halted=state == "halted")))
            time.sleep(args.gap)
        gc_halts = gcwatch.between(gc_before, gcwatch.read(gc_dir, pids), halts_from, time.time())
        start = time.time() + 1.0
        end = start + args.duration
        gen.open_window(int(start * 1e6), int(end * 1e6))
        time.sleep(max(0.0, start - time.time()))
        m0, before = _machine_cpu(), sample_all(every)
        gc_before = gcwatch.read(gc_dir, pids)
        time.sleep(max(0.0, end - time.time()))
        window_cpu = cpu_figures(before, sample_all(every), args.duration)
        time.sleep(GC_WRITE_S)
        gc_window = gcwatch.between(gc_before, gcwatch.read(gc_dir, pids), start, end)
        window_cores = _shares(window_cpu, args.duration, _machine_cpu() - m0)
        seen = gen.window_results()
    halts = _delays(changes, seen["statuses"], common, out["connected"])
    subs = sum(len(s) for _, s in clients[: out["connected"]]) if out["connected"] else 0
    expected = args.rate * subs * args.duration
    lat = seen["latency_us"]
    result.update(
        connections=len(clients),
        connected=out["connected"],
        refused=refused,
        failures=out["failures"],
        connect_s=round(out["connect_s"], 2),
        handshakes_per_s=round(out["connected"] / max(0.001, out["connect_s"]), 1),
        handshake_us=out["handshake_us"],
        connect_cores=connect_cores,
        rss_after_kib=rss_after,
        kib_per_connection=round(grown / connected, 2),
        total_kib_per_connection=round(rss_after["servers"] / connected, 2),
        halt_symbol=common,
        halts=halts,
        halt_p99_s=max((h["p99_s"] for h in halts if h["p99_s"] is not None), default=None),
        halt_complete=all(h["all_received"] for h in halts),
        subscriptions=subs,
        rate_per_symbol=args.rate,
        expected_per_s=round(expected / args.duration, 1),
        delivered_per_s=round(seen["deliveries"] / args.duration, 1),
        delivered_pct=round(100 * seen["deliveries"] / expected, 2) if expected else None,
        # Of the quotes each connection's seqs say were published while it listened.
        seqs_seen_pct=round(100 * seen["deliveries"] / (seen["deliveries"] + seen["gaps"]), 3)
        if seen["deliveries"]
        else None,
        gaps=seen["gaps"],
        # Connections that ended between their handshake and the window's end, by how.
        lost_after_connecting=seen["lost"],
        latency_us=lat,
        latency_p99_by_second_us=seen["latency_p99_by_second_us"],
        window_cores=window_cores,
        client_saturated=seen["client_saturated"],
        loadavg_end=_loadavg(),
        processes={"window": window_cpu["processes"], "connect": cpu["processes"]},
        # Garbage collection in the server processes, by phase (bench/gcwatch.py).
        gc={
            phase: {"servers": gcwatch.servers_total(per), "processes": per}
            for phase, per in (("connect", gc_connect), ("halts", gc_halts), ("window", gc_window))
        },
    )
    say(f"  {dep.name}: garbage collection in the servers, by phase: " + ", ".join(
        f"{phase} {figures['servers']}" for phase, figures in result["gc"].items()
    ))
    say(
        f"  {dep.name}: halt p99 {result['halt_p99_s']} s ({halts}); quotes "
        f"{result['delivered_per_s']:,}/s of {result['expected_per_s']:,}/s, p50 {ms(lat['p50'])} "
        f"p99 {ms(lat['p99'])} max {ms(lat['max'])} ms; cores {window_cores}; "
        f"lost after connecting {seen['lost'] or 'none'}"
    )
    return result


def log_problems(directory: Path, limit: int = 30) -> dict[str, Any]:
    """The servers' WARNING and ERROR lines (how many, and the first ``limit``), by log file."""
    out: dict[str, Any] = {}
    for log in sorted(directory.glob("*.log")):
        lines = [
            line.strip()
            for line in log.read_text(errors="replace").splitlines()
            if "WARNING" in line or "ERROR" in line or "Traceback" in line
        ]
        if lines:
            out[log.stem] = {"count": len(lines), "first": lines[:limit]}
    return out


def full_size(doc: dict[str, Any]) -> bool:
    """A run at the targets' size beside the reference: what docs/PERFORMANCE.md reports."""
    options = doc.get("options", {})
    return options.get("connections") == CONNECTIONS and not options.get("no_reference")


def verdicts(r: dict[str, Any]) -> dict[str, bool]:
    """Each c100k target, met or not, from one server's result."""
    p99 = r["latency_us"]["p99"]
    return {
        "all_connected": r["connected"] == r["connections"]
        and r["refused"] == 0
        and r["connect_s"] <= TARGET_CONNECT_S,
        "memory": r["kib_per_connection"] <= TARGET_KIB,
        "halt": r["halt_complete"] and (r["halt_p99_s"] or 1e9) <= TARGET_HALT_P99_S,
        "quotes": p99 is not None
        and p99 <= TARGET_QUOTE_P99_MS * 1000
        and (r["seqs_seen_pct"] or 0) >= TARGET_SEQS_SEEN_PCT,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    workers, load, facts = preflight(args)
    say(
        f"c100k: {args.connections:,} connections, {workers} server processes, "
        f"{load.procs} load processes from {len(facts['source_addresses'])} source addresses; "
        f"load average {_loadavg()}"
    )
    names = [f"B{i:03d}" for i in range(args.symbols)]  # bench/djangoctl.py's names
    clients: list[ClientSpec] = [
        ("", s) for s in subscriptions(args.connections, names, args.max_per_client)
    ]
    # Every process started from here accounts for its garbage collection (bench/gcwatch.py).
    gc_dir = Path(tempfile.mkdtemp(prefix="marketfeed-bench-gc-"))
    gcwatch.enable(gc_dir)
    if args.gc_pass_s is not None:  # the deployments copy this process's environment
        os.environ["FEED_GC_PASS_S"] = str(args.gc_pass_s)
    try:
        deps: list[Deployment] = [WorkersDeployment(workers)]
        if not args.no_reference:
            deps.append(ReferenceDeployment(pin=False, workers=workers))
        runs = {}
        for dep in deps:
            try:
                runs[dep.name] = _run_on(dep, args, clients, load, gc_dir)
                runs[dep.name]["commands"] = dict(dep.commands)
                runs[dep.name]["server_log_problems"] = log_problems(dep.dir)
            finally:
                dep.close()
    finally:
        gcwatch.disable()
        if args.gc_pass_s is not None:
            os.environ.pop("FEED_GC_PASS_S", None)
        shutil.rmtree(gc_dir, ignore_errors=True)
    summary: dict[str, Any] = {}
    keys = ("connected", "refused", "connect_s", "kib_per_connection", "halt_p99_s",
            "delivered_pct", "seqs_seen_pct")
    for name, r in runs.items():
        summary[name] = {k: r[k] for k in keys}
        summary[name]["quote_p99_us"] = r["latency_us"]["p99"]
        summary[name]["verdicts"] = verdicts(r)
    ref = runs.get("reference")
    if ref is not None:
        for name, r in runs.items():
            if name != "reference":
                summary[name]["ratio_to_reference"] = {
                    "connect_s": ratio(r["connect_s"], ref["connect_s"]),
                    "kib_per_connection": ratio(r["kib_per_connection"], ref["kib_per_connection"]),
                    "halt_p99_s": ratio(r["halt_p99_s"], ref["halt_p99_s"]),
                    "quote_p99_us": ratio(r["latency_us"]["p99"], ref["latency_us"]["p99"]),
                }
    return {"machine_limits": facts, "servers": runs, "summary": summary}


def add_parser(sub: Any, positive: Any) -> None:
    """The ``c100k`` sub-command's options (bench/cli.py registers it)."""
    p = sub.add_parser(
        "c100k", help="100,000 authenticated WebSocket connections over workers on one port"
    )
    p.add_argument("--connections", type=positive(int), default=CONNECTIONS)
    p.add_argument("--workers", type=positive(int), default=MIN_WORKERS,
                   help="server processes (more if the open-file limit needs them)")
    p.add_argument("--load-procs", type=positive(int), default=None,
                   help="load-generator processes (default: as few as the open-file limit allows)")
    p.add_argument("--sources-per-proc", type=positive(int), default=2,
                   help="loopback source addresses per load process (more if ports need them)")
    p.add_argument("--symbols", type=positive(int), default=SYMBOLS)
    p.add_argument("--max-per-client", type=positive(int), default=MAX_PER_CLIENT)
    p.add_argument("--rate", type=positive(float), default=RATE, help="quotes/s per symbol")
    # autobahn drops a handshake not done within 5 s (daphne's --websocket_connect_timeout):
    # more in flight than the workers finish in a few seconds only queues, then resets.
    # 600 (p99 2.2 s a handshake at 30,000) beat 240 by a quarter: the workers' batched
    # Redis and database reads get fuller; 1,200 gained 3 % more with a p99 of 3.4 s.
    p.add_argument("--concurrency", type=positive(int), default=600,
                   help="handshakes in flight, all load processes together")
    p.add_argument("--open-timeout", type=positive(float), default=60.0,
                   help="seconds one handshake may take")
    p.add_argument("--connect-timeout", type=positive(float), default=900.0,
                   help="seconds to wait for all connections")
    p.add_argument("--settle", type=positive(float), default=10.0,
                   help="seconds before reading RSS")
    p.add_argument("--gap", type=positive(float), default=5.0,
                   help="seconds after the halt and after the resume")
    p.add_argument("--duration", type=positive(float), default=30.0, help="quote window seconds")
    p.add_argument("--no-reference", action="store_true", help="skip the reference run")
    p.add_argument("--gc-pass-s", type=float, default=None,
                   help="FEED_GC_PASS_S for the workers (0: Python's own collector pace; "
                   "default: the setting's)")
    # Nothing is pinned: the servers alone need more processes than there are cores.
    p.set_defaults(pin=False)


SCENARIOS = {"c100k": run}
