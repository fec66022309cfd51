"""Result files: one JSON document per scenario run, under bench/results/.

Each file says what ran (the command, the options, the machine and the
package versions) next to what was measured, so docs/PERFORMANCE.md can be
regenerated from the files alone and a figure can always be traced back to
the run that produced it. Files stay small: histograms are summarised, no raw
samples are kept.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PACKAGES = (
    "daphne",
    "channels",
    "channels-redis",
    "redis",
    "websockets",
    "Twisted",
    "uvloop",
    "Django",
)


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=False
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    redis_version = ""
    try:
        out = subprocess.run(
            ["/usr/bin/redis-server", "--version"], capture_output=True, text=True, check=False
        )
        redis_version = next((w[2:] for w in out.stdout.split() if w.startswith("v=")), "")
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis_server": redis_version,
        "packages": versions,
    }


def command_line(argv: list[str]) -> str:
    return ".venv/bin/python -m bench " + " ".join(shlex.quote(a) for a in argv)


def write(scenario: str, argv: list[str], options: dict[str, Any], data: dict[str, Any]) -> Path:
    now = dt.datetime.now(dt.UTC)
    doc = {
        "scenario": scenario,
        "started_utc": now.isoformat(timespec="seconds"),
        "command": command_line(argv),
        "options": options,
        "machine": machine(),
        **data,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{scenario}-{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(doc, indent=1, default=_plain) + "\n")
    return path


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def newest(
    scenario: str, where: Callable[[dict[str, Any]], bool] | None = None
) -> dict[str, Any] | None:
    """The newest result of ``scenario`` (that ``where`` accepts), or None when none is."""
    for path in sorted(RESULTS_DIR.glob(f"{scenario}-*.json"), reverse=True):
        doc: dict[str, Any] = json.loads(path.read_text())
        if where is None or where(doc):
            doc["_file"] = path.name
            return doc
    return None


def say(text: str) -> None:
    """Progress for the person watching; results go to the JSON file."""
    print(text, file=sys.stderr, flush=True)
