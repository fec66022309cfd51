"""PNG plots for docs/PERFORMANCE.md, drawn with matplotlib from result documents.

One figure per load-stepping scenario: latency p50/p99 against offered load
(log scale) and delivered against offered, the feed and the reference on the
same axes, so the gap between them is what the eye sees first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on a build machine
import matplotlib.pyplot as plt

COLOURS = {
    "embedded": "tab:blue",
    "redis-pubsub": "tab:green",
    "redis-core": "tab:red",
    "redis-pubsub-2": "tab:olive",
    "redis-core-2": "tab:purple",
    "reference": "black",
}


def _series(points: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for p in points:
        lat = p["latency_us"]
        value = p[key] if key in p else lat.get(key)
        if value is not None:
            xs.append(p["offered"] / 1000)
            ys.append(value / 1000 if key in ("p50", "p99") else value)
    return xs, ys


def load_figure(doc: dict[str, Any], path: Path, *, what: str) -> Path:
    """Latency and delivered against offered, every server of ``doc`` on the same axes."""
    fig, (lat_ax, rate_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    top = 0.0
    for server, points in doc["servers"].items():
        colour = COLOURS.get(server, None)
        for key, style in (("p50", "--"), ("p99", "-")):
            xs, ys = _series(points, key)
            lat_ax.plot(xs, ys, style, marker="o", ms=3, color=colour, label=f"{server} {key}")
        xs, ys = _series(points, "delivered_per_s")
        rate_ax.plot(xs, [y / 1000 for y in ys], "-", marker="o", ms=3, color=colour, label=server)
        top = max([top, *xs, *(y / 1000 for y in ys)])
    for bound, label in ((10, "10 ms"), (100, "100 ms")):
        lat_ax.axhline(bound, color="grey", lw=0.6, ls=":")
        lat_ax.text(
            0.99,
            bound,
            label,
            fontsize=7,
            color="grey",
            va="bottom",
            ha="right",
            transform=lat_ax.get_yaxis_transform(),
        )
    lat_ax.set_yscale("log")
    lat_ax.set_xlabel(f"offered {what} (thousands/s)")
    lat_ax.set_ylabel("latency from ts to receipt (ms)")
    lat_ax.set_title("latency p50 (dashed) and p99")
    lat_ax.legend(fontsize=7)
    rate_ax.plot([0, top], [0, top], color="grey", lw=0.6, ls=":", label="delivered = offered")
    rate_ax.set_xlabel(f"offered {what} (thousands/s)")
    rate_ax.set_ylabel(f"delivered {what} (thousands/s)")
    rate_ax.set_title("delivered vs offered")
    rate_ax.legend(fontsize=7)
    pinned = "pinned: server core 0, client core 1" if doc["options"].get("pin") else "not pinned"
    fig.suptitle(f"{doc['scenario']} ({pinned}; {doc['started_utc']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cpu_figure(doc: dict[str, Any], path: Path) -> Path:
    """Server CPU per delivery against offered load, one line per server (layers)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for server, points in doc["servers"].items():
        xs = [p["offered"] / 1000 for p in points if p["server_cpu_per_delivery_us"]]
        ys = [p["server_cpu_per_delivery_us"] for p in points if p["server_cpu_per_delivery_us"]]
        ax.plot(xs, ys, "-", marker="o", ms=3, color=COLOURS.get(server), label=server)
    ax.set_xlabel("offered deliveries (thousands/s)")
    ax.set_ylabel("server-side CPU per delivery (µs)")
    ax.set_title("CPU per delivery: daphne + runticker + redis-server", fontsize=9)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
