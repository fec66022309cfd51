"""Watchlists on the Redis layout: a write on one server reaches a follower on another.

Through the channel layer's servers' control group, within a second
(PROTOCOL.md "Watchlists"); the helpers are the live test's.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.live.test_watchlists_live import DEADLINE_S, follow, pushed, rest, welcomed
from tests.redis.cluster import cluster_env, running_cluster
from tests.timeouts import timeout

pytestmark = [pytest.mark.redis, pytest.mark.live]


async def test_a_change_on_one_server_reaches_a_follower_on_another(redis_url, tmp_path):
    """The Redis layout: the write on server 0, the follower on server 1."""
    env = cluster_env(redis_url, tmp_path)
    with running_cluster(env) as (token, _ticker, servers):
        follower = await welcomed(servers[1].ws_url, token)
        try:
            assert await follow(follower) == []
            sent = time.time()  # the commit is later: this overstates the delay
            status, made = await asyncio.to_thread(
                rest, servers[0].url, token, "POST", "/api/watchlists/",
                {"name": "Across", "symbols": ["AAPL"]},
            )
            assert status == 201, made
            lists, arrived = await pushed(follower)
            print(f"\nREST on one server to watchlists on the other: "
                  f"{(arrived - sent) * 1000:.0f} ms")
            assert lists == [made]
            assert arrived - sent < timeout(DEADLINE_S)
        finally:
            await follower.close()
