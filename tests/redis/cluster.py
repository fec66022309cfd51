"""A local scale-out cluster for live tests: one runticker and daphne processes on one Redis.

Or on Redis behind Sentinel: ``sentinel_group()`` starts a master, a replica and
one sentinel, and ``sentinel_env()`` points the processes at the sentinel.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator

from marketfeed.localredis import LocalRedis, LocalSentinel
from tests.servers import NO_HISTORY, Server, free_port, manage
from tests.timeouts import timeout


def cluster_env(redis_url: str, var_dir, **extra: str) -> dict[str, str]:
    """The environment of a scale-out process: this Redis, SQLite in ``var_dir``."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FEED_TICKER")}
    env.update(REDIS_URL=redis_url, MARKETFEED_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1")
    env.update({**NO_HISTORY, **extra})
    return env


@contextlib.contextmanager
def running_cluster(env: dict[str, str], *, servers: int = 2):
    """Migrate, make a user, start one runticker and ``servers`` daphne processes.

    Yields ``(token, ticker, [daphne...])``; every process is stopped afterwards.
    """
    manage(env, "migrate", "--noinput")
    token = manage(env, "feeduser", "clusteruser").strip().splitlines()[-1]
    ticker = Server(env, 0, ready="leader:", command=[sys.executable, "manage.py", "runticker"])
    daphnes = [Server(env, free_port(), ready="Listening on TCP address") for _ in range(servers)]
    procs = [ticker, *daphnes]
    try:
        for proc in procs:
            proc.start()
        yield token, ticker, daphnes
    finally:
        for proc in procs:
            proc.stop()


# Variables that would point a process at another Redis than the one a test gives it.
REDIS_VARIABLES = (
    "REDIS_URL", "REDIS_LAYER_URLS", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER",
    "REDIS_SENTINEL_PASSWORD", "DATABASE_URL", "FEED_TICKER",
)


def sentinel_env(sentinel: LocalSentinel, var_dir, **extra: str) -> dict[str, str]:
    """The environment of a scale-out process on the master ``sentinel`` names; no REDIS_URL."""
    env = {k: v for k, v in os.environ.items() if k not in REDIS_VARIABLES}
    env.update(
        REDIS_SENTINELS=f"{sentinel.host}:{sentinel.port}",
        REDIS_SENTINEL_MASTER=sentinel.master_name,
        MARKETFEED_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1",
    )
    env.update({**NO_HISTORY, **extra})
    return env


class Lines:
    """Every line a process printed, when it was read, and a wait for one that says something."""

    def __init__(self) -> None:
        self.read: list[tuple[float, str]] = []  # (time.monotonic(), line)
        self._changed = threading.Condition()

    @property
    def lines(self) -> list[str]:
        return [line for _, line in self.read]

    def __call__(self, line: str) -> None:
        with self._changed:
            self.read.append((time.monotonic(), line))
            self._changed.notify_all()

    def wait_for(self, says: Callable[[str], bool], seconds: float) -> float | None:
        """When the first line that ``says`` was read (monotonic), or None after ``seconds``."""
        def first() -> float | None:
            return next((t for t, line in self.read if says(line)), None)

        with self._changed:
            return self._changed.wait_for(first, seconds)


@contextlib.contextmanager
def sentinel_group(
    *, master_name: str = "mymaster", sentinel_command: list[str] | None = None,
    down_after_ms: int = 1000,
) -> Iterator[tuple[LocalRedis, LocalRedis, LocalSentinel, Lines]]:
    """A master, a replica of it and one sentinel (quorum 1) on free ports.

    Yields ``(master, replica, sentinel, the sentinel's lines)`` once the
    replica is in sync and the sentinel knows it, so a killed master can be
    replaced at once; all three are stopped afterwards.
    """
    replica_lines, sentinel_lines = Lines(), Lines()
    start = timeout(30)
    with contextlib.ExitStack() as stack:
        # A replica's first sync is diskless and waits 5 s for more replicas, by default.
        master = stack.enter_context(
            LocalRedis(start_timeout=start, args=("--repl-diskless-sync-delay", "0"))
        )
        replica = stack.enter_context(LocalRedis(
            start_timeout=start, on_line=replica_lines,
            args=("--replicaof", master.host, str(master.port)),
        ))
        # "Finished with success": the replica holds the master's data and follows it.
        synced = replica_lines.wait_for(lambda line: "sync: Finished with success" in line, start)
        assert synced is not None, "the replica did not sync:\n" + "\n".join(replica_lines.lines)
        sentinel = stack.enter_context(LocalSentinel(
            master.port, master_name=master_name, command=sentinel_command,
            down_after_ms=down_after_ms, start_timeout=start, on_line=sentinel_lines,
        ))
        # "+slave slave 127.0.0.1:PORT ...": the sentinel found the replica in the master's INFO.
        address = f" {replica.host}:{replica.port} "
        knows = sentinel_lines.wait_for(lambda line: "+slave " in line and address in line, start)
        lines = "\n".join(sentinel_lines.lines)
        assert knows is not None, "the sentinel did not find the replica:\n" + lines
        yield master, replica, sentinel, sentinel_lines
