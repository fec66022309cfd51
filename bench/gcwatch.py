"""What garbage collection cost each benchmark process in a phase (``bench/gcwatch/``).

``enable(directory)`` makes every Python process started afterwards from
this one account for its collections; ``read(directory, pids)`` and
``between(before, after, since, until)`` give, per process role, the CPU
time spent collecting and the collections that held the process over 20 ms
between two readings.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

HOOK_DIR = Path(__file__).with_name("gcwatch")


def enable(directory: Path) -> None:
    """Account collections in every process started after this call."""
    os.environ["BENCH_GC_DIR"] = str(directory)
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(HOOK_DIR) + (os.pathsep + path if path else "")


def disable() -> None:
    os.environ.pop("BENCH_GC_DIR", None)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p != str(HOOK_DIR)]
    if parts:
        os.environ["PYTHONPATH"] = os.pathsep.join(parts)
    else:
        os.environ.pop("PYTHONPATH", None)


def read(directory: Path, pids: dict[str, int]) -> dict[str, Any]:
    """Each role's figures so far (a role whose process wrote none is left out)."""
    out = {}
    for role, pid in pids.items():
        try:
            out[role] = json.loads((directory / f"gc-{pid}.json").read_text())
        except (OSError, ValueError):
            continue
    return out


def between(
    before: dict[str, Any], after: dict[str, Any], since: float, until: float
) -> dict[str, Any]:
    """Per role: collecting CPU seconds by generation, and pauses over 20 ms, in the phase."""
    per = {}
    for role, now in after.items():
        then = before.get(role, {"cpu_s": [0.0] * 3, "collections": [0] * 3})
        pauses = [p for p in now["long"] if since <= p[0] <= until]
        per[role] = {
            "cpu_s": [round(a - b, 3) for a, b in zip(now["cpu_s"], then["cpu_s"], strict=True)],
            "collections": [
                a - b for a, b in zip(now["collections"], then["collections"], strict=True)
            ],
            "over_20ms": len(pauses),
            "longest_wall_ms": max((p[2] for p in pauses), default=0.0),
            "longest_cpu_ms": max((p[3] for p in pauses), default=0.0),
        }
    return per


def servers_total(per: dict[str, Any]) -> dict[str, Any]:
    """The server processes (daphne workers, or the reference's) summed."""
    servers = [v for k, v in per.items() if k.startswith(("daphne", "reference"))]
    return {
        "cpu_s": round(sum(sum(v["cpu_s"]) for v in servers), 2),
        "full_cpu_s": round(sum(v["cpu_s"][2] for v in servers), 2),
        "over_20ms": sum(v["over_20ms"] for v in servers),
        "longest_wall_ms": max((v["longest_wall_ms"] for v in servers), default=0.0),
        "longest_cpu_ms": max((v["longest_cpu_ms"] for v in servers), default=0.0),
    }
