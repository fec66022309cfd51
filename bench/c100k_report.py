"""The c100k result in docs/PERFORMANCE.md: its rows of the targets table and its own section.

Kept apart from bench/report.py and bench/targets.py because a c100k result
is shaped differently from the other scenarios' (one deployment of many
processes per server, phases instead of load points).
"""

from __future__ import annotations

from typing import Any

from bench.c100k import (
    TARGET_CONNECT_S,
    TARGET_HALT_P99_S,
    TARGET_KIB,
    TARGET_QUOTE_P99_MS,
    TARGET_SEQS_SEEN_PCT,
    verdicts,
)

Row = tuple[str, str, str, str, str, str]


def _feed(doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    name = next(s for s in doc["servers"] if s != "reference")
    return name, doc["servers"][name]


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def _ratio(a: float | None, b: float | None, digits: int = 2) -> str:
    return f"{a / b:.{digits}f}x" if a is not None and b else "-"


def _ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:,.1f} ms"


def rows(doc: dict[str, Any]) -> list[Row]:
    """The four c100k targets, feed beside reference."""
    _, f = _feed(doc)
    r = doc["servers"].get("reference", {})
    ok = verdicts(f)
    n = f"{f['connections']:,}"

    def conn(x: dict[str, Any]) -> str:
        if not x:
            return "-"
        return f"{x['connected']:,} in {x['connect_s']} s, {x['refused']:,} not connected"

    def quotes(x: dict[str, Any]) -> str:
        if not x:
            return "-"
        if x["seqs_seen_pct"] is None:
            return "no quote arrived in the window"
        return (
            f"p99 {_ms(x['latency_us']['p99'])}, {x['seqs_seen_pct']} % of seqs, "
            f"{x['delivered_pct']} % of the rate's expectation"
        )

    def halt(x: dict[str, Any]) -> str:
        if not x:
            return "-"
        whole = "" if x["halt_complete"] else " (not all received)"
        return f"p99 {x['halt_p99_s']} s{whole}"

    return [
        (
            f"c100k: {n} connections",
            f"all connected within {TARGET_CONNECT_S:g} s, none refused",
            conn(f),
            conn(r),
            _ratio(f["connect_s"], r.get("connect_s"), 1),
            _verdict(ok["all_connected"]),
        ),
        (
            "c100k: server RSS per connection (all workers)",
            f"≤ {TARGET_KIB:g} KiB",
            f"{f['kib_per_connection']} KiB ({f['total_kib_per_connection']} KiB with the "
            "workers' start-up size)",
            f"{r['kib_per_connection']} KiB" if r else "-",
            _ratio(f["kib_per_connection"], r.get("kib_per_connection")),
            _verdict(ok["memory"]),
        ),
        (
            "c100k: halt of a symbol every connection holds",
            f"reaches all, p99 ≤ {TARGET_HALT_P99_S:g} s",
            halt(f),
            halt(r),
            _ratio(f["halt_p99_s"], r.get("halt_p99_s"), 1),
            _verdict(ok["halt"]),
        ),
        (
            "c100k: quotes at the ticker's rate",
            f"p99 ≤ {TARGET_QUOTE_P99_MS:g} ms, ≥ {TARGET_SEQS_SEEN_PCT:g} % of seqs seen",
            quotes(f),
            quotes(r),
            _ratio(f["latency_us"]["p99"], (r.get("latency_us") or {}).get("p99"), 1),
            _verdict(ok["quotes"]),
        ),
    ]


def section(doc: dict[str, Any]) -> str:
    """The run's figures per server: phases, memory by process, how the cores were shared."""
    limits = doc["machine_limits"]
    m = doc["machine"]
    memory = f"{limits['mem_total_mib'] / 1024:.0f} GiB, " if "mem_total_mib" in limits else ""
    out = [
        f"`{doc['command']}`: {m['cpu_model']}, {m['cores']} cores, {memory}"
        f"Linux {m['kernel']}, Python {m['python']}. Both cores are shared by everything: "
        "the server processes, runticker, redis-server, the load generator and anything else "
        "running (\"others\" below, from /proc/stat); the load average says how busy the "
        "machine was.",
        "",
        f"Open-file hard limit {limits['nofile_hard']:,}, ephemeral ports "
        f"{limits['ip_local_port_range'][0]}-{limits['ip_local_port_range'][1]}, "
        f"somaxconn {limits['somaxconn']}, {limits['mem_available_mib']:,} MiB available; "
        f"{limits['workers']} server processes, {limits['load_procs']} load processes from "
        f"{len(limits['source_addresses'])} source addresses "
        f"({limits['source_addresses'][0]}-{limits['source_addresses'][-1]}). Nothing pinned.",
        "",
        "| | " + " | ".join(doc["servers"]) + " |",
        "| --- | " + " | ".join("---:" for _ in doc["servers"]) + " |",
    ]
    runs = list(doc["servers"].values())

    def row(label: str, cell: Any) -> None:
        out.append(f"| {label} | " + " | ".join(str(cell(r)) for r in runs) + " |")

    row("connected", lambda r: f"{r['connected']:,} / {r['connections']:,}")
    row("refused or failed", lambda r: f"{r['refused']} {r['failures'] or ''}".strip())
    row("all connected after", lambda r: f"{r['connect_s']} s")
    row("handshakes/s", lambda r: f"{r['handshakes_per_s']:,}")
    row("handshake p99", lambda r: _ms(r["handshake_us"]["p99"]))
    row("server RSS before → after", lambda r: f"{r['rss_before_kib']['servers'] // 1024:,} → "
        f"{r['rss_after_kib']['servers'] // 1024:,} MiB")
    row("server RSS per connection", lambda r: f"{r['kib_per_connection']} KiB")
    row("runticker / redis-server RSS", lambda r: " / ".join(
        f"{r['rss_after_kib'][k] // 1024:,} MiB" for k in ("runticker", "redis-server")
        if k in r["rss_after_kib"]) or "-")
    for i, state in enumerate(("halted", "trading")):
        row(f"`status` {state}: p50 / p99 / last", lambda r, i=i: (
            f"{r['halts'][i]['p50_s']} / {r['halts'][i]['p99_s']} / {r['halts'][i]['max_s']} s"
            f" ({r['halts'][i]['received']:,})"))
    row("quotes: expected / delivered per s", lambda r: f"{r['expected_per_s']:,.0f} / "
        f"{r['delivered_per_s']:,.0f}")
    row("seqs seen", lambda r: f"{r.get('seqs_seen_pct')} %")
    if all("lost_after_connecting" in r for r in runs):  # recorded since it existed
        row("lost after connecting", lambda r: ", ".join(
            f"{n:,} {how}" for how, n in r["lost_after_connecting"].items()) or "none")
    row("quote latency p50 / p99 / max", lambda r: " / ".join(
        _ms(r["latency_us"][k]) for k in ("p50", "p99", "max")))
    row("cores while connecting", lambda r: _cores(r["connect_cores"]))
    row("cores in the quote window", lambda r: _cores(r["window_cores"]))
    if all("gc" in r for r in runs):  # bench/gcwatch.py, in runs since it existed
        for phase, label in (("connect", "while connecting"), ("window", "in the quote window")):
            row(f"garbage collection {label}: servers' CPU / longest pause", lambda r, p=phase: (
                f"{r['gc'][p]['servers']['cpu_s']} s / "
                f"{r['gc'][p]['servers']['longest_wall_ms']:,.0f} ms"))
    row("load average at start / end", lambda r: f"{r['loadavg_start'][0]} / {r['loadavg_end'][0]}")
    return "\n".join(out)


def _cores(shares: dict[str, float]) -> str:
    order = ("servers", "runticker", "redis-server", "load", "others")
    return ", ".join(f"{k} {shares[k]:.2f}" for k in order if k in shares)
