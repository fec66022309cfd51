"""Fixtures for the deploy tests: a real Redis, and ``python -m deploy.cluster`` as a process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from marketfeed.localredis import LocalRedis
from tests.servers import NO_HISTORY, ROOT
from tests.timeouts import timeout


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """REDIS_URL when set, else a private redis-server for the whole session."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    with LocalRedis(start_timeout=timeout(30)) as redis:
        yield redis.url


def cluster_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without its database or Redis choice, plus ``extra``."""
    env = {
        k: v for k, v in os.environ.items()
        if k not in ("REDIS_URL", "DATABASE_URL", "FEED_TICKER", "MARKETFEED_VAR_DIR")
    }
    env.update(MARKETFEED_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1")
    env.update({**NO_HISTORY, **extra})
    return env


def run_cluster_command(
    args: Sequence[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m deploy.cluster`` to completion (for flag and preflight errors)."""
    return subprocess.run(
        [sys.executable, "-m", "deploy.cluster", *args], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=timeout(60),
    )


class ClusterProcess:
    """A running ``python -m deploy.cluster``, with its output kept and waitable line by line."""

    def __init__(self, args: Sequence[str], env: dict[str, str]) -> None:
        self.args, self.env = list(args), env
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self._changed = threading.Condition()
        self._ended = False

    def start(self) -> ClusterProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.cluster", *self.args], cwd=ROOT, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        return self

    def _pump(self) -> None:
        assert self.proc
        assert self.proc.stdout
        with self.proc.stdout:
            for line in self.proc.stdout:
                with self._changed:
                    self.lines.append(line.rstrip("\n"))
                    self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def mark(self) -> int:
        """A position in the output; wait_for(..., since=mark) looks only after it."""
        with self._changed:
            return len(self.lines)

    def wait_for(self, pattern: str, *, since: int = 0, seconds: float = 30) -> re.Match[str]:
        """The first line after ``since`` matching ``pattern``; fails if the cluster ends first."""
        regex = re.compile(pattern)
        checked = since

        def found() -> re.Match[str] | None:
            nonlocal checked
            for line in self.lines[checked:]:
                checked += 1
                if match := regex.search(line):
                    return match
            return None

        with self._changed:
            match = self._changed.wait_for(lambda: found() or self._ended, timeout(seconds))
        if not isinstance(match, re.Match):
            pytest.fail(f"no line matching {pattern!r}; output:\n" + "\n".join(self.lines[-80:]))
        return match

    def pids(self) -> dict[str, int]:
        """Every child's pid, as the cluster announced them (redis included when private)."""
        found: dict[str, int] = {}
        for line in list(self.lines):
            if m := re.search(r"started (\S+) \(pid (\d+)\)", line):
                found[m[1]] = int(m[2])
            elif m := re.search(r"private redis-server, pid (\d+)", line):
                found["redis"] = int(m[1])
        return found

    def wait_exit(self, seconds: float = 60) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout(seconds))
        with self._changed:  # the rest of the output, up to end of file
            self._changed.wait_for(lambda: self._ended, timeout(10))
        return code

    def terminate(self) -> int:
        """SIGTERM, as an operator would; returns the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.wait_exit()
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def alive(pid: int) -> bool:
    """True while a process with this pid exists (and is not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
