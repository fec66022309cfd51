"""A token revoked anywhere closes its connections on every server process (Redis layer)."""

from __future__ import annotations

import asyncio

import pytest
import websockets

from tests.redis.cluster import cluster_env, running_cluster
from tests.schema import decode_frame
from tests.servers import manage
from tests.timeouts import timeout

pytestmark = [pytest.mark.redis, pytest.mark.live]


async def until_closed(ws) -> list[dict]:
    """Every message up to the close."""
    seen: list[dict] = []

    async def read_on() -> None:
        while True:
            seen.extend(decode_frame(await asyncio.wait_for(ws.recv(), timeout(10))))

    with pytest.raises(websockets.ConnectionClosed):
        await read_on()
    return seen


async def test_deleting_a_token_closes_its_connections_on_both_servers_with_4401(
    redis_url, tmp_path
):
    # The re-check an hour away: only the broadcast can close them in time.
    env = cluster_env(redis_url, tmp_path, FEED_AUTH_RECHECK_S="3600")
    with running_cluster(env) as (token, _ticker, servers):
        sockets = [await websockets.connect(f"{s.ws_url}?token={token}") for s in servers]
        try:
            for ws in sockets:
                first = decode_frame(await asyncio.wait_for(ws.recv(), timeout(10)))
                assert first[0]["type"] == "welcome"
            # An operator's shell on another machine: its own process, the shared Redis.
            revoke = (
                "from knox.models import AuthToken; from feeds.auth import token_digest; "
                f"AuthToken.objects.filter(digest=token_digest('{token}')).delete()"
            )
            await asyncio.to_thread(manage, env, "shell", "--no-imports", "-c", revoke)
            for ws in sockets:
                seen = await until_closed(ws)
                assert [m["code"] for m in seen if m["type"] == "error"] == ["unauthorized"]
                assert ws.close_code == 4401
        finally:
            for ws in sockets:
                await ws.close()
