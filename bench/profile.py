"""``--profile``: py-spy samples of the server processes over the measurement window.

A figure that misses its target needs the profile that explains it.
py-spy attaches to the running daphne / runticker / reference from outside, so
the server runs unmodified; it samples every thread (``--threads`` is implied
by the raw output) at 200 Hz and costs the sampled process little. The
result keeps only the top functions by own time and by inclusive time, as
shares of the samples, so it fits in the JSON result.
"""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import procs

PY_SPY = Path(sys.executable).with_name("py-spy")
RATE_HZ = 200
TOP = 25
PROFILED = ("daphne", "runticker", "reference")


class Profiler:
    def __init__(self, pids: dict[str, int], duration_s: float, out_dir: Path) -> None:
        self.files: dict[str, Path] = {}
        self.spies: list[subprocess.Popen[bytes]] = []
        for role, pid in pids.items():
            if not role.startswith(PROFILED) or not PY_SPY.exists():
                continue
            path = out_dir / f"py-spy-{role}.txt"
            cmd = [
                str(PY_SPY),
                "record",
                "--pid",
                str(pid),
                "--duration",
                f"{max(1, int(duration_s))}",
                "--rate",
                str(RATE_HZ),
                "--format",
                "raw",
                "--output",
                str(path),
                "--nonblocking",
            ]
            self.spies.append(
                procs.spawn(cmd, env={}, log=out_dir / f"py-spy-{role}.log", pin=False)
            )
            self.files[role] = path

    def results(self) -> dict[str, Any]:
        for spy in self.spies:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                procs.stop(spy)
        return {role: summarize(path) for role, path in self.files.items() if path.exists()}


def summarize(path: Path, top: int = TOP) -> dict[str, Any]:
    """Shares of samples by own time and inclusive time, from py-spy's raw (collapsed) output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return {"samples": 0}

    def shares(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * c / total, 1)) for f, c in counter.most_common(top)]

    return {"samples": total, "own_pct": shares(own), "inclusive_pct": shares(inclusive)}
