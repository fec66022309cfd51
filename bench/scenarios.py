"""The streaming scenarios: quotes flowing to subscribed clients at an offered load.

Each runs the feed and then the reference on the same load points (never at
the same time: they would share the cores), and returns what goes into the
result file: the points per server and a summary with the feed/reference
ratios. Connection scenarios (idle, storm, admin) are in bench/connections.py.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from typing import Any

from bench.point import PointSpec, max_sustained, measure, sustained
from bench.results import say
from bench.servers import daphne_count, deployment

# A client that wants quotes, not history, keeps its receive buffer small: with
# the kernel's autotuning, a client that cannot keep up holds seconds of quotes
# in its own socket, where no server can conflate them.
OVERLOAD_RCVBUF = 65_536
P99_TIGHT_US = 10_000
P99_LOOSE_US = 100_000
SWEEP_OFFERED = (5_000, 10_000, 20_000, 40_000, 60_000, 80_000, 120_000, 160_000)
BATCH_OFFERED = (20_000, 40_000, 80_000, 120_000, 160_000, 200_000)
LAYERS_OFFERED = (10_000, 20_000, 40_000)
FAN146_OFFERED = 15_000

Summary = dict[str, Any]


def spec(args: argparse.Namespace, offered: float, **over: Any) -> PointSpec:
    fields = {
        "offered": offered,
        "clients": args.clients,
        "symbols": args.symbols,
        "per_client": args.per_client,
        "batch": False,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "procs": args.procs,
        "client": args.client,
        "rcvbuf": args.rcvbuf or 0,
        "profile": args.profile,
    }
    fields.update(over)
    return PointSpec(**fields)


def run_points(
    server: str,
    specs: list[PointSpec],
    *,
    pin: bool,
    stop_after: int = 0,
    backlog: int | None = None,
) -> list[dict[str, Any]]:
    """Measure ``specs`` in order on one deployment.

    Stops after ``stop_after`` points in a row that are not sustained at p99 <= 100 ms.
    """
    dep = deployment(server, pin=pin, backlog=backlog)
    points: list[dict[str, Any]] = []
    failed = 0
    try:
        for s in specs:
            point = measure(dep, s, pin=pin)
            points.append(point)
            failed = 0 if sustained(point, P99_LOOSE_US) else failed + 1
            if stop_after and failed >= stop_after:
                say(f"  {server}: {failed} points in a row past p99 100 ms; not loading it further")
                break
    finally:
        dep.close()
    return points


def ratio(feed: float | None, ref: float | None) -> float | None:
    if feed is None or ref is None or ref == 0:
        return None
    return round(feed / ref, 3)


def both(
    args: argparse.Namespace, servers: list[str], specs: list[PointSpec], stop_after: int = 0
) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for server in [*servers, *([] if args.no_reference else ["reference"])]:
        # Two daphne processes are one per core: nothing is pinned, and the load
        # generator shares both cores with them (the report says so).
        pin = args.pin and not two_servers(server)
        say(f"{server}:" + ("" if pin == args.pin else " (not pinned: one daphne per core)"))
        out[server] = run_points(
            server, specs, pin=pin, stop_after=stop_after, backlog=args.daphne_backlog
        )
    return out


def two_servers(server: str) -> bool:
    return daphne_count(server) == 2


def capacity_summary(runs: dict[str, list[dict[str, Any]]]) -> Summary:
    """Max sustained deliveries/s at both bounds, and CPU per delivery, with ratios."""
    summary: Summary = {}
    ref = runs.get("reference", [])
    for server, points in runs.items():
        summary[server] = {
            "max_sustained_p99_10ms": max_sustained(points, P99_TIGHT_US),
            "max_sustained_p99_100ms": max_sustained(points, P99_LOOSE_US),
            "cpu_per_delivery_us": cpu_at_common_load(points),
            "client_saturated_points": [p["offered"] for p in points if p["client_saturated"]],
        }
    if ref:
        r = summary["reference"]
        for server in runs:
            if server != "reference":
                s = summary[server]
                s["ratio_to_reference"] = {
                    k: ratio(s[k], r[k])
                    for k in (
                        "max_sustained_p99_10ms",
                        "max_sustained_p99_100ms",
                        "cpu_per_delivery_us",
                    )
                }
    return summary


def cpu_at_common_load(points: list[dict[str, Any]]) -> float | None:
    """CPU per delivery at the highest sustained point (fixed costs amortised, no overload)."""
    ok = [p for p in points if sustained(p, P99_LOOSE_US)]
    chosen = max(ok, key=lambda p: p["offered"]) if ok else (points[0] if points else None)
    return chosen["server_cpu_per_delivery_us"] if chosen else None


# --- the scenarios -----------------------------------------------------------------------


def sweep(args: argparse.Namespace) -> dict[str, Any]:
    specs = [spec(args, o) for o in (args.offered or SWEEP_OFFERED)]
    runs = both(args, [args.server], specs, stop_after=args.stop_after)
    return {"servers": runs, "summary": capacity_summary(runs)}


def batch(args: argparse.Namespace) -> dict[str, Any]:
    specs = [spec(args, o, batch=True) for o in (args.offered or BATCH_OFFERED)]
    runs = both(args, [args.server], specs, stop_after=args.stop_after)
    return {"servers": runs, "summary": capacity_summary(runs)}


def _one_point(args: argparse.Namespace, offered: float) -> dict[str, Any]:
    runs = both(args, [args.server], [spec(args, offered)])
    points = {server: pts[0] for server, pts in runs.items()}
    summary: Summary = {}
    for server, p in points.items():
        summary[server] = {
            "connected": p["connected"],
            "clients": p["clients"],
            "delivered_pct": p["delivered_pct"],
            "throughput_pct": p["throughput_pct"],
            "p50_us": p["latency_us"]["p50"],
            "p99_us": p["latency_us"]["p99"],
            "cpu_per_delivery_us": p["server_cpu_per_delivery_us"],
        }
    if "reference" in points:
        for server in points:
            if server != "reference":
                summary[server]["ratio_to_reference_p99"] = ratio(
                    summary[server]["p99_us"], summary["reference"]["p99_us"]
                )
    return {"servers": runs, "summary": summary}


def mix200(args: argparse.Namespace) -> dict[str, Any]:
    return _one_point(args, args.offered[0] if args.offered else 20_000)


def mix1000(args: argparse.Namespace) -> dict[str, Any]:
    return _one_point(args, args.offered[0] if args.offered else 50_000)


def overload(args: argparse.Namespace) -> dict[str, Any]:
    if args.rcvbuf is None:
        args.rcvbuf = OVERLOAD_RCVBUF
    result = _one_point(args, args.offered[0] if args.offered else 300_000)
    for server, points in result["servers"].items():
        p = points[0]
        first, _, last = p["latency_p99_thirds_us"]
        result["summary"][server].update(
            gaps=p["gaps"],
            conflated_pct=round(100 - p["delivered_pct"], 3),
            p99_first_third_us=first,
            p99_last_third_us=last,
            # A backlog shows as latency that keeps climbing across the window.
            backlog_growing=bool(first and last and last > 2 * first and last > P99_TIGHT_US),
        )
    return result


def layers(args: argparse.Namespace) -> dict[str, Any]:
    return _side_by_side(args, [spec(args, o) for o in (args.offered or LAYERS_OFFERED)])


def fan146(args: argparse.Namespace) -> dict[str, Any]:
    """146 clients x 21 of 21 symbols at 15,000/s: each layout beside the reference.

    CPU per delivery counts every server-side process (daphne, runticker,
    redis-server(s)), so the Redis layouts' figures include the bus.
    """
    offered = args.offered or [FAN146_OFFERED]
    rounds = []
    for n in range(getattr(args, "rounds", 1)):
        if n:
            say(f"round {n + 1}:")
        result = _side_by_side(args, [spec(args, o) for o in offered])
        table = result["summary"]["table"]
        ref = {t["offered"]: t["cpu_per_delivery_us"] for t in table if t["server"] == "reference"}
        emb = {t["offered"]: t["cpu_per_delivery_us"] for t in table if t["server"] == "embedded"}
        for t in table:
            t["cpu_ratio_to_reference"] = ratio(t["cpu_per_delivery_us"], ref.get(t["offered"]))
            t["cpu_ratio_to_embedded"] = ratio(t["cpu_per_delivery_us"], emb.get(t["offered"]))
        rounds.append(result)
    if len(rounds) == 1:
        return rounds[0]
    last = rounds[-1]  # the report's tables show one round; every round's ratios are kept
    last["summary"]["rounds"] = [r["summary"]["table"] for r in rounds]
    last["summary"]["median_ratios"] = median_ratios(last["summary"]["rounds"])
    for server, median in last["summary"]["median_ratios"].items():
        say(f"median of {len(rounds)} rounds, {server}: {median}")
    return last


def median_ratios(rounds: list[list[dict[str, Any]]]) -> dict[str, dict[str, float | None]]:
    """Per server (at the first offered load), the median over rounds of each round's ratios."""
    out: dict[str, dict[str, float | None]] = {}
    first = rounds[0][0]["offered"] if rounds and rounds[0] else None
    servers = [t["server"] for t in rounds[0] if t["offered"] == first] if rounds else []
    for server in servers:
        rows = [t for table in rounds for t in table if t["server"] == server]
        rows = [t for t in rows if t["offered"] == first]
        out[server] = {
            key: _median([t[key] for t in rows if t.get(key) is not None])
            for key in ("cpu_per_delivery_us", "cpu_ratio_to_embedded", "cpu_ratio_to_reference")
        }
    return out


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _side_by_side(args: argparse.Namespace, specs: list[PointSpec]) -> dict[str, Any]:
    runs = both(args, args.servers, specs)
    table = []
    for server, points in runs.items():
        for p in points:
            table.append(
                {
                    "server": server,
                    "offered": p["offered"],
                    "delivered_per_s": p["delivered_per_s"],
                    "p99_us": p["latency_us"]["p99"],
                    "cpu_per_delivery_us": p["server_cpu_per_delivery_us"],
                    "cpu_by_process_s": {r: v["cpu_s"] for r, v in p["processes"].items()},
                }
            )
    return {"servers": runs, "summary": {"table": table, **capacity_summary(runs)}}


def quick(args: argparse.Namespace) -> dict[str, Any]:
    """A smoke run for CI: fails (``ok`` False) only when delivery collapses."""
    result = _one_point(args, args.offered[0] if args.offered else 2_000)
    feed = result["summary"][args.server]
    problems = []
    if feed["connected"] < feed["clients"]:
        problems.append(f"{feed['clients'] - feed['connected']} clients failed to connect")
    if feed["delivered_pct"] < 90 or feed["throughput_pct"] < 50:
        problems.append(
            f"delivery collapsed: {feed['delivered_pct']} % of seqs, "
            f"{feed['throughput_pct']} % of offered"
        )
    if feed["p99_us"] is None or feed["p99_us"] > 1_000_000:
        problems.append(f"p99 {feed['p99_us']} µs > 1 s")
    result["ok"] = not problems
    result["problems"] = problems
    return result


SCENARIOS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "sweep": sweep,
    "batch": batch,
    "mix200": mix200,
    "mix1000": mix1000,
    "overload": overload,
    "layers": layers,
    "fan146": fan146,
    "quick": quick,
}
