"""A local scale-out cluster for live tests: one runticker and daphne processes on one Redis."""

from __future__ import annotations

import contextlib
import os
import sys

from tests.servers import Server, free_port, manage


def cluster_env(redis_url: str, var_dir, **extra: str) -> dict[str, str]:
    """The environment of a scale-out process: this Redis, SQLite in ``var_dir``."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FEED_TICKER")}
    env.update(REDIS_URL=redis_url, MARKETFEED_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1", **extra)
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
