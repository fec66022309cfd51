"""A daphne of the SSE tests' own (short heartbeat, small per-user limit) and a staff token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.consumer.conftest import instruments, ticker, user  # noqa: F401 (fixtures, test_asgi)
from tests.faults.conftest import Feed, base_env, daphne, feed_server, set_quote_rates  # noqa: F401 (feed_server: a fixture)
from tests.redis.conftest import private_redis  # noqa: F401 (fixture, test_session_live)
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
