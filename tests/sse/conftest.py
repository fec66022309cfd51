"""A daphne of the SSE tests' own (short heartbeat, small per-user limit) and a staff token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.conftest import Feed, base_env, daphne, feed_server, set_quote_rates  # noqa: F401
from tests.servers import free_port, manage

LIMIT = 3  # connections per user on the SSE test server
QUIET = "KO"  # a symbol made nearly silent (one quote per 1000 s) for the heartbeat test


@pytest.fixture(scope="module")
def sse_feed(tmp_path_factory) -> Iterator[Feed]:
    env = base_env(
        tmp_path_factory.mktemp("sse-var"), FEED_HEARTBEAT_S="1",
        FEED_MAX_CONNECTIONS_PER_USER=str(LIMIT),
    )
    manage(env, "migrate", "--noinput")
    token = manage(env, "feeduser", "ssestaff", "--password", "sse-pass-123", "--superuser")
    set_quote_rates(env, {QUIET: 0.001})
    server = daphne(env, free_port())
    server.start()
    yield Feed(server=server, token=token.strip().splitlines()[-1], env=env)
    server.stop()
