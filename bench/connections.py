"""Connection scenarios: idle memory, connect storms, and admin changes reaching clients.

- ``idle``: RSS per idle authenticated connection, (RSS with base + N) - (RSS
  with base) over N, read from /proc (VmRSS) of the process(es) holding them.
- ``storm``: N authenticated handshakes fired at once (``--concurrency`` at a
  time): time until every client has its ``welcome``, handshakes/s, refusals,
  and handshakes per second of server CPU. ``--tokens T`` spreads T distinct
  tokens over the clients (default 1: every client the same token).
- ``admin``: clients subscribed to a symbol; the bench halts and resumes it
  (feed: ``feeds.services`` in a Django helper process; reference: a line on
  its stdin) and times the ``status`` messages until every client has one.

Each runs the feed deployment and then the reference, as the other scenarios do.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench import procs
from bench.loadgen import LoadGen
from bench.point import cpu_figures, ms, sample_all
from bench.results import say
from bench.scenarios import ratio
from bench.servers import Deployment, Load, deployment

SETTLE_S = 2.0  # let the server collect garbage and finish handshakes before reading RSS
QUIET_LOAD = Load(symbols=1, rate=1.0)


def _servers(args: argparse.Namespace) -> list[str]:
    return [args.server, *([] if args.no_reference else ["reference"])]


def _with(server: str, args: argparse.Namespace, load: Load, body: Any) -> dict[str, Any]:
    dep = deployment(server, pin=args.pin, backlog=args.daphne_backlog)
    try:
        dep.up(load)
        result: dict[str, Any] = body(dep)
        result["commands"] = dict(dep.commands)
        return result
    finally:
        dep.close()


def _rss(dep: Deployment) -> int:
    return sum(procs.rss_kib(pid) for pid in dep.server_pids().values())


# --- idle ---------------------------------------------------------------------------


def idle(args: argparse.Namespace) -> dict[str, Any]:
    runs = {s: _with(s, args, QUIET_LOAD, lambda d: _idle_on(d, args)) for s in _servers(args)}
    summary = {
        s: {k: r[k] for k in ("connections", "connected", "kib_per_connection")}
        for s, r in runs.items()
    }
    if "reference" in runs:
        for s in runs:
            if s != "reference":
                summary[s]["ratio_to_reference"] = ratio(
                    runs[s]["kib_per_connection"], runs["reference"]["kib_per_connection"]
                )
    return {"servers": runs, "summary": summary}


def _idle_on(dep: Deployment, args: argparse.Namespace) -> dict[str, Any]:
    say(f"{dep.name}: {args.base} base connections, then {args.connections} more")
    base_clients = [(dep.urls[i % len(dep.urls)], []) for i in range(args.base)]
    more = [(dep.urls[i % len(dep.urls)], []) for i in range(args.connections)]
    with LoadGen(base_clients, mode="idle", pin=args.pin, client=args.client) as base:
        base.start()
        time.sleep(SETTLE_S)
        rss_base = _rss(dep)
        with LoadGen(
            more,
            procs=args.procs,
            mode="idle",
            pin=args.pin,
            concurrency=args.concurrency,
            client=args.client,
        ) as gen:
            connect = gen.start(timeout_s=600)
            time.sleep(SETTLE_S)
            rss_full = _rss(dep)
    per = (rss_full - rss_base) / max(1, connect["connected"])
    say(
        f"  {dep.name}: {connect['connected']}/{args.connections} connected in "
        f"{connect['connect_s']:.1f} s, RSS {rss_base} -> {rss_full} KiB: {per:.1f} KiB each; "
        f"failures {connect['failures']}"
    )
    return {
        "connections": args.connections,
        "base_connections": args.base,
        "connected": connect["connected"],
        "failures": connect["failures"],
        "connect_s": round(connect["connect_s"], 2),
        "rss_base_kib": rss_base,
        "rss_full_kib": rss_full,
        "kib_per_connection": round(per, 2),
    }


# --- storm --------------------------------------------------------------------------


def storm(args: argparse.Namespace) -> dict[str, Any]:
    runs = {s: _with(s, args, QUIET_LOAD, lambda d: _storm_on(d, args)) for s in _servers(args)}
    keys = (
        "handshakes",
        "connected",
        "refused",
        "all_connected_s",
        "handshakes_per_s",
        "handshakes_per_cpu_s",
    )
    summary = {s: {k: r[k] for k in keys} for s, r in runs.items()}
    if "reference" in runs:
        for s in runs:
            if s != "reference":
                summary[s]["ratio_to_reference"] = ratio(
                    runs[s]["all_connected_s"], runs["reference"]["all_connected_s"]
                )
    return {"servers": runs, "summary": summary}


def client_urls(dep: Deployment, n: int, tokens: int) -> list[str]:
    """``n`` client URLs over the deployment's servers, with ``tokens`` distinct tokens among them.

    The feed issues the extra tokens (each a knox row of the bench user); the
    reference takes any client with its one token, as it checks nothing else.
    """
    urls = [dep.urls[i % len(dep.urls)] for i in range(n)]
    token = getattr(dep, "token", "")
    helper = getattr(dep, "helper", None)
    if tokens <= 1 or not token or helper is None:
        return urls
    made = helper.call(cmd="tokens", n=tokens)["tokens"]
    return [url.replace(token, made[i % tokens]) for i, url in enumerate(urls)]


def _storm_on(dep: Deployment, args: argparse.Namespace) -> dict[str, Any]:
    urls = client_urls(dep, args.connections, args.tokens)
    clients = [(url, []) for url in urls]
    with LoadGen(
        clients,
        procs=args.procs,
        mode="storm",
        pin=args.pin,
        client=args.client,
        concurrency=args.concurrency,
        open_timeout_s=args.open_timeout,
    ) as gen:
        gen.start()
        pids = dep.pids()
        before = sample_all(pids)
        overflows = procs.listen_overflows()
        started = time.time()
        gen.fire(int((started + 0.2) * 1e6))
        out = gen.storm_results(timeout_s=args.open_timeout + 120)
        window = max(0.001, time.time() - started)
        cpu = cpu_figures(before, sample_all(pids), window)
        overflows = procs.listen_overflows() - overflows
    refused = sum(out["failures"].values())
    took = out["connect_s"]
    result = {
        "handshakes": args.connections,
        "tokens": args.tokens,
        "concurrency": args.concurrency,
        "connected": out["connected"],
        "refused": refused,
        "failures": out["failures"],
        "all_connected_s": round(took, 3),
        "handshakes_per_s": round(out["connected"] / took, 1) if took else None,
        # The server's own cost, which a machine shared with other work does not blur:
        # handshakes per second of server CPU (one core fully busy would manage this many).
        "handshakes_per_cpu_s": (
            round(out["connected"] / cpu["server_cpu_s"], 1) if cpu["server_cpu_s"] else None
        ),
        "handshake_us": out["handshake_us"],
        "client_cpu_s": round(out["client_cpu_s"], 3),
        # SYNs the kernel dropped on a full accept queue; each costs that client a 1 s retry.
        "listen_overflows": overflows,
        **cpu,
    }
    say(
        f"  {dep.name}: {out['connected']}/{args.connections} in {took:.2f} s "
        f"({result['handshakes_per_s']}/s, {result['handshakes_per_cpu_s']} per CPU-s), "
        f"p99 handshake {ms(out['handshake_us']['p99'])} ms, "
        f"failures {out['failures']}, listen-queue overflows {overflows}, "
        f"server CPU {cpu['server_cpu_s']} s"
    )
    return result


# --- admin --------------------------------------------------------------------------


def admin(args: argparse.Namespace) -> dict[str, Any]:
    load = Load(symbols=args.symbols, rate=args.rate)
    runs = {s: _with(s, args, load, lambda d: _admin_on(d, args)) for s in _servers(args)}
    summary = {
        s: {"worst_s": r["worst_s"], "median_s": r["median_s"], "complete": r["complete"]}
        for s, r in runs.items()
    }
    if "reference" in runs:
        for s in runs:
            if s != "reference":
                summary[s]["ratio_to_reference"] = ratio(
                    runs[s]["worst_s"], runs["reference"]["worst_s"]
                )
    return {"servers": runs, "summary": summary}


def _admin_on(dep: Deployment, args: argparse.Namespace) -> dict[str, Any]:
    symbol = dep.symbols[0]
    clients = [(dep.urls[i % len(dep.urls)], list(dep.symbols)) for i in range(args.clients)]
    changes: list[tuple[str, float]] = []
    with LoadGen(clients, procs=args.procs, pin=args.pin, client=args.client) as gen:
        gen.start()
        start = time.time() + 1.0
        span = args.repeat * 2 * args.gap + 1.0
        gen.open_window(int(start * 1e6), int((start + span) * 1e6))
        time.sleep(1.0)
        for _ in range(args.repeat):
            for state in ("halted", "trading"):
                changes.append((state, dep.halt(symbol, halted=state == "halted")))
                time.sleep(args.gap)
        seen = gen.window_results()
    reps = _status_delays(changes, seen["statuses"], symbol, args.clients)
    worst = [r["all_s"] for r in reps if r["all_s"] is not None]
    complete = len(worst) == len(reps)
    say(
        f"  {dep.name}: time to all {args.clients} clients: "
        + ", ".join(f"{r['state']} {r['all_s']} s ({r['received']} got it)" for r in reps)
    )
    return {
        "clients": args.clients,
        "symbol": symbol,
        "changes": reps,
        "complete": complete,
        "worst_s": max(worst) if complete and worst else None,
        "median_s": sorted(worst)[len(worst) // 2] if complete and worst else None,
    }


def _status_delays(
    changes: list[tuple[str, float]],
    statuses: list[tuple[int, str, str]],
    symbol: str,
    clients: int,
) -> list[dict[str, Any]]:
    """For each change, how long until the last of ``clients`` got its ``status``."""
    out = []
    bounds = [t for _, t in changes] + [float("inf")]
    for i, (state, t0) in enumerate(changes):
        got = [
            us / 1e6 - t0
            for us, sym, st in statuses
            if sym == symbol and st == state and t0 <= us / 1e6 < bounds[i + 1]
        ]
        got.sort()
        out.append(
            {
                "state": state,
                "received": len(got),
                "first_s": round(got[0], 4) if got else None,
                "median_s": round(got[len(got) // 2], 4) if got else None,
                "all_s": round(got[-1], 4) if len(got) >= clients else None,
            }
        )
    return out


SCENARIOS = {"idle": idle, "storm": storm, "admin": admin}
