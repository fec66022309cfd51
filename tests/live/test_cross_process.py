"""The embedded default: a change from another process reaches the server's streams in a second.

Every process of the embedded default has its own in-memory channel layer,
so an operator's ``manage.py shell`` cannot reach the server's connections
through it; the control events go through the database (feeds/relay.py).
The periodic re-check is an hour away here, so only the relay can act in
time. PROTOCOL.md promises every server process within a second; the
assertion allows the test timeout factor on top, and prints the figure (-s).
"""

from __future__ import annotations

import asyncio
import time

import pytest
import websockets

from tests.entitlements.test_live import grant_script, revoked_at, subscribed_and_quoting
from tests.schema import decode_frame
from tests.servers import Server, free_port, manage
from tests.timeouts import timeout

pytestmark = pytest.mark.live

DEADLINE_S = 1.0


@pytest.fixture
def embedded(live_env):
    """One embedded-default server with entitlements on and the re-check an hour away."""
    env = {**live_env, "FEED_ENTITLEMENTS": "1", "FEED_AUTH_RECHECK_S": "3600"}
    user_token = manage(env, "feeduser", "relayed-bob").strip().splitlines()[-1]
    manage(env, "shell", "--no-imports", "-c", grant_script("relayed-bob"))
    srv = Server(env, free_port())
    srv.start()
    yield env, srv, user_token
    srv.stop()
    manage(
        env, "shell", "--no-imports", "-c",
        "from django.contrib.auth.models import User; "
        "User.objects.filter(username='relayed-bob').delete()",
    )


async def closed_at(ws, messages: list[dict]) -> tuple[websockets.ConnectionClosed, float]:
    """Add every message to ``messages`` until the connection closes; how it closed, and when."""
    try:
        while True:
            messages += decode_frame(await asyncio.wait_for(ws.recv(), timeout(10)))
    except websockets.ConnectionClosed as closed:
        return closed, time.time()


def shell(env: dict[str, str], code: str) -> float:
    """Run ``code`` in ``manage.py shell``; the time its transaction had committed."""
    out = manage(env, "shell", "--no-imports", "-c", f"import time; {code}; print(time.time())")
    return float(out.split()[-1])


async def test_a_licence_taken_away_in_a_shell_stops_the_stream_within_a_second(embedded):
    env, srv, user_token = embedded
    async with websockets.connect(f"{srv.ws_url}?token={user_token}") as ws:
        assert decode_frame(await asyncio.wait_for(ws.recv(), timeout(10)))[0]["type"] == "welcome"
        await subscribed_and_quoting(ws, ["AAPL", "EUR/USD"], "AAPL")
        watching = asyncio.create_task(revoked_at(ws, "AAPL"))  # the shell exits after its commit
        committed = await asyncio.to_thread(
            shell, env,
            "from feeds.models import Entitlement; "
            "Entitlement.objects.filter(user__username='relayed-bob', exchange='XNAS').delete()",
        )
        took = await watching - committed
        print(f"\nshell delete to status revoked: {took * 1000:.0f} ms")
        assert took < timeout(DEADLINE_S)
        await subscribed_and_quoting(ws, ["EUR/USD"], "EUR/USD")  # the rest streams on


async def test_a_user_disabled_in_a_shell_is_closed_4401_within_a_second(embedded):
    env, srv, user_token = embedded
    async with websockets.connect(f"{srv.ws_url}?token={user_token}") as ws:
        assert decode_frame(await asyncio.wait_for(ws.recv(), timeout(10)))[0]["type"] == "welcome"
        await subscribed_and_quoting(ws, ["EUR/USD"], "EUR/USD")
        messages: list[dict] = []
        watching = asyncio.create_task(closed_at(ws, messages))  # the shell exits after its commit
        committed = await asyncio.to_thread(
            shell, env,
            "from django.contrib.auth.models import User; "
            "u = User.objects.get(username='relayed-bob'); u.is_active = False; u.save()",
        )
        closed, at = await watching
        took = at - committed
        print(f"\nshell disable to close: {took * 1000:.0f} ms")
        assert closed.rcvd is not None
        assert closed.rcvd.code == 4401
        revoked = {"type": "error", "code": "unauthorized", "message": "credentials revoked"}
        assert messages[-1] == revoked
        assert took < timeout(DEADLINE_S)
