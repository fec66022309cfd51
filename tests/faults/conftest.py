"""Fault tests: real daphne / runticker processes, real Redis and PostgreSQL, raw sockets.

``feed_server`` starts an embedded-default daphne of the test's own (SQLite in
a temporary folder unless the test passes ``DATABASE_URL``), with a staff user
whose token also reads the process figures on ``/healthz`` (feeds/edges/health.py).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.redis.conftest import postgres_url, private_redis, redis_url  # noqa: F401 (fixtures)
from tests.servers import NO_HISTORY, Server, free_port, manage
from tests.timeouts import timeout

STAFF = "faultstaff"


@dataclass
class Feed:
    """A running server process and what a test needs to talk to it."""

    server: Server
    token: str
    env: dict[str, str]

    @property
    def port(self) -> int:
        return self.server.port

    def stats(self) -> dict:
        """The process figures of /healthz (staff only), whatever the health status."""
        request = urllib.request.Request(
            self.server.url + "/healthz", headers={"Authorization": f"Token {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout(10)) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 503: still a body with the figures
            body = json.loads(exc.read())
        return body["process"]

    def rss(self) -> int:
        """The server's resident set size in bytes, read from /proc."""
        assert self.server.proc is not None
        with open(f"/proc/{self.server.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def log(self) -> str:
        return "".join(self.server.log)


def base_env(var_dir, **extra: str) -> dict[str, str]:
    unset = ("REDIS_URL", "DATABASE_URL", "FEED_TICKER")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(MARKETFEED_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1", FEED_SEED="11")
    env.update({**NO_HISTORY, **extra})
    return env


def daphne(
    env: dict[str, str], port: int, *, ping_interval: int = 20, ping_timeout: int = 30
) -> Server:
    """daphne as run.py runs it, with these ping settings."""
    return Server(env, port, command=[
        sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
        "--ping-interval", str(ping_interval), "--ping-timeout", str(ping_timeout),
        "--websocket_timeout", "-1", "marketfeed.asgi:application",
    ])


def set_quote_rates(env: dict[str, str], rates: dict[str, float]) -> None:
    """Change instruments' quote rates in the database, before a server starts."""
    code = "from feeds.models import Instrument as I\n" + "".join(
        f"I.objects.filter(symbol={symbol!r}).update(quote_rate={rate!r})\n"
        for symbol, rate in rates.items()
    )
    manage(env, "shell", "-c", code)


@pytest.fixture
def feed_server(tmp_path) -> Iterator[Callable[..., Feed]]:
    """``start(env_extra=, rates=, ping_interval=, ping_timeout=, prepare=)`` -> a running Feed."""
    started: list[Server] = []

    def start(
        *, env_extra: dict[str, str] | None = None, rates: dict[str, float] | None = None,
        ping_interval: int = 20, ping_timeout: int = 30, prepare: str = "",
    ) -> Feed:
        env = base_env(tmp_path / f"var{len(started)}", **(env_extra or {}))
        manage(env, "migrate", "--noinput")
        token = manage(env, "feeduser", STAFF, "--password", "fault-pass-123", "--superuser")
        if rates:
            set_quote_rates(env, rates)
        if prepare:  # Python run in `manage.py shell` before the server starts
            manage(env, "shell", "-c", prepare)
        server = daphne(env, free_port(), ping_interval=ping_interval, ping_timeout=ping_timeout)
        started.append(server)
        server.start()
        return Feed(server=server, token=token.strip().splitlines()[-1], env=env)

    yield start
    for server in started:
        server.stop()
