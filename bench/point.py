"""One load point: start a server for a load, connect the clients, measure one window.

Offered load is ``clients x symbols per client x quote rate``: every client
subscribes to ``per_client`` of ``symbols`` instruments, each quoting at the
same Poisson rate, so the per-symbol rate is derived from the offered
deliveries/s. Server-side CPU is read from /proc for every server process
(daphne(s), runticker, redis-server, or the reference) at the two instants
that bound the clients' window.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from bench import procs
from bench.loadgen import LoadGen, assign_symbols
from bench.profile import Profiler
from bench.results import say
from bench.servers import Deployment, Load

MAX_QUOTE_RATE = 10_000  # the Instrument model's limit per symbol
SUSTAINED_THROUGHPUT_PCT = 95.0  # delivered/s within 5 % of offered (Poisson noise)
SUSTAINED_DELIVERED_PCT = 99.0  # at most 1 % of the quotes conflated away


@dataclass(frozen=True, slots=True)
class PointSpec:
    offered: float  # deliveries per second, all clients together
    clients: int
    symbols: int
    per_client: int
    batch: bool = False
    warmup_s: float = 3.0
    duration_s: float = 10.0
    procs: int = 1
    client: str = "lean"
    profile: bool = False
    rcvbuf: int = 0  # each client socket's SO_RCVBUF; 0: the kernel's autotuning

    @property
    def rate(self) -> float:
        """Quotes per second per symbol that offer this load."""
        return self.offered / (self.clients * self.per_client)

    def check(self) -> None:
        if self.per_client > self.symbols:
            raise ValueError(f"--per-client {self.per_client} exceeds --symbols {self.symbols}")
        if not 0.001 <= self.rate <= MAX_QUOTE_RATE:
            raise ValueError(
                f"offered {self.offered:g}/s with {self.clients} clients x {self.per_client} "
                f"symbols needs {self.rate:g} quotes/s per symbol; the feed allows 0.001 "
                f"to {MAX_QUOTE_RATE}"
            )


def sample_all(pids: dict[str, int]) -> dict[str, procs.ProcSample]:
    return {role: procs.sample(pid) for role, pid in pids.items()}


def cpu_figures(
    before: dict[str, procs.ProcSample], after: dict[str, procs.ProcSample], window_s: float
) -> dict[str, Any]:
    per = {}
    for role, s1 in after.items():
        cpu = s1.cpu_s - before[role].cpu_s
        per[role] = {
            "cpu_s": round(cpu, 3),
            "cores": round(cpu / window_s, 3),
            "rss_kib": s1.rss_kib,
        }
    total = sum(p["cpu_s"] for p in per.values())
    return {
        "server_cpu_s": round(total, 3),
        "server_cores": round(total / window_s, 3),
        "processes": per,
    }


def measure(dep: Deployment, spec: PointSpec, *, pin: bool) -> dict[str, Any]:
    """Run one point on ``dep`` (started here, stopped at the end) and return its figures."""
    spec.check()
    dep.up(Load(symbols=spec.symbols, rate=spec.rate, batch=spec.batch))
    try:
        subs = assign_symbols(dep.symbols, spec.clients, spec.per_client)
        clients = [(dep.urls[i % len(dep.urls)], s) for i, s in enumerate(subs)]
        with LoadGen(
            clients, procs=spec.procs, pin=pin, client=spec.client, rcvbuf=spec.rcvbuf
        ) as gen:
            connect = gen.start()
            if connect["failures"]:
                say(
                    f"  {dep.name}: {spec.clients - connect['connected']} clients failed: "
                    f"{connect['failures']}"
                )
            if not connect["connected"]:
                raise RuntimeError(f"{dep.name}: no client could connect: {connect['failures']}")
            start = time.time() + spec.warmup_s
            end = start + spec.duration_s
            gen.open_window(int(start * 1e6), int(end * 1e6))
            pids = dep.pids()
            time.sleep(max(0.0, start - time.time()))
            before = sample_all(pids)
            spy = Profiler(pids, spec.duration_s, dep.dir) if spec.profile else None
            time.sleep(max(0.0, end - time.time()))
            after = sample_all(pids)
            seen = gen.window_results()
            profile = spy.results() if spy else None
    finally:
        dep.down()
    point = figures(spec, connect, seen, cpu_figures(before, after, spec.duration_s))
    point["pinned"] = pin
    point["commands"] = dict(dep.commands)
    if profile is not None:
        point["profile"] = profile
    say(line(dep.name, point))
    return point


def figures(
    spec: PointSpec, connect: dict[str, Any], seen: dict[str, Any], cpu: dict[str, Any]
) -> dict[str, Any]:
    window = seen["window_s"]
    deliveries, gaps = seen["deliveries"], seen["gaps"]
    delivered_per_s = deliveries / window
    point: dict[str, Any] = {
        **asdict(spec),
        "rate_per_symbol": round(spec.rate, 3),
        "subscribers_per_symbol": round(spec.clients * spec.per_client / spec.symbols, 2),
        "connected": connect["connected"],
        "connect_failures": connect["failures"],
        "deliveries": deliveries,
        "delivered_per_s": round(delivered_per_s, 1),
        "throughput_pct": round(100 * delivered_per_s / spec.offered, 2),
        "delivered_pct": round(100 * deliveries / (deliveries + gaps), 3) if deliveries else 0.0,
        "gaps": gaps,
        "out_of_order": seen["out_of_order"],
        "frames": seen["frames"],
        "quotes_per_frame": round(deliveries / seen["frames"], 3) if seen["frames"] else None,
        "latency_us": seen["latency_us"],
        "latency_p99_thirds_us": seen["latency_p99_thirds_us"],
        "latency_p99_by_second_us": seen["latency_p99_by_second_us"],
        "heartbeats": seen["heartbeats"],
        "errors": seen["errors"],
        "client_cpu_s": round(seen["client_cpu_s"], 3),
        "client_cpu_max_share": round(seen["client_cpu_max_share"], 3),
        "client_saturated": seen["client_saturated"],
        "client_procs": seen["client_procs"],
        **cpu,
    }
    point["server_cpu_per_delivery_us"] = (
        round(cpu["server_cpu_s"] * 1e6 / deliveries, 2) if deliveries else None
    )
    point["deliveries_per_core_s"] = (
        round(deliveries / cpu["server_cpu_s"], 1) if cpu["server_cpu_s"] else None
    )
    return point


def sustained(point: dict[str, Any], p99_limit_us: float) -> bool:
    """Delivered what was offered, without conflation, within the latency bound."""
    p99 = point["latency_us"]["p99"]
    return (
        point["connected"] == point["clients"]
        and point["throughput_pct"] >= SUSTAINED_THROUGHPUT_PCT
        and point["delivered_pct"] >= SUSTAINED_DELIVERED_PCT
        and p99 is not None
        and p99 <= p99_limit_us
    )


def max_sustained(points: list[dict[str, Any]], p99_limit_us: float) -> float | None:
    ok = [p["delivered_per_s"] for p in points if sustained(p, p99_limit_us)]
    return max(ok) if ok else None


def ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:.2f}"


def line(name: str, p: dict[str, Any]) -> str:
    lat = p["latency_us"]
    sat = " CLIENT SATURATED" if p["client_saturated"] else ""
    return (
        f"  {name:>15} offered {p['offered']:>9,.0f}/s delivered {p['delivered_per_s']:>9,.0f}/s "
        f"({p['delivered_pct']:.1f} % of seqs) p50 {ms(lat['p50'])} p99 {ms(lat['p99'])} "
        f"max {ms(lat['max'])} ms  cpu/delivery {p['server_cpu_per_delivery_us']} µs "
        f"server {p['server_cores']:.2f} cores client {p['client_cpu_max_share']:.2f}{sat}"
    )
