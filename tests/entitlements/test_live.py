"""A revoked entitlement stops a real client's stream within a second (real daphne, real clients).

One server with the embedded default, revoked in its admin over HTTP; and two
servers on Redis, revoked from an operator's shell in a third process. The
periodic re-check is an hour away, so only the broadcast can act in time. The
second is the contract (PROTOCOL.md "Entitlements"); the assertion allows the
test timeout factor on top, and the measured figure is printed (``-s``).
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import requests
import websockets

from tests.redis.cluster import cluster_env, running_cluster
from tests.schema import decode_frame
from tests.servers import Server, free_port, manage
from tests.timeouts import timeout

pytestmark = pytest.mark.live

DEADLINE_S = 1.0


def grant_script(username: str) -> str:
    """A shell command entitling ``username`` to XNAS (AAPL) and to FX; prints the XNAS row's id."""
    return (
        "from django.contrib.auth.models import User; from feeds.models import Entitlement; "
        f"u = User.objects.get(username='{username}'); "
        "Entitlement.objects.create(user=u, asset_class='fx'); "
        "print(Entitlement.objects.create(user=u, exchange='XNAS').pk)"
    )


async def subscribed_and_quoting(ws, symbols: list[str], quoting: str) -> None:
    """Subscribe, then wait until a quote of ``quoting`` has arrived."""
    await ws.send(json.dumps({"op": "subscribe", "symbols": symbols, "id": 1}))
    while True:
        for msg in decode_frame(await asyncio.wait_for(ws.recv(), timeout(10))):
            assert msg["type"] != "error", msg
            if msg["type"] == "quote" and msg["symbol"] == quoting:
                return


async def revoked_at(ws, symbol: str, *, quiet_s: float = 2.0) -> float:
    """When the ``status`` ``revoked`` of ``symbol`` arrived.

    Then ``quiet_s`` must pass with no message of it.
    """
    while True:  # its quotes flow until the revocation lands
        msgs = decode_frame(await asyncio.wait_for(ws.recv(), timeout(10)))
        revoked = [
            i for i, m in enumerate(msgs) if m.get("symbol") == symbol and m["type"] == "status"
        ]
        if revoked:
            arrived = time.time()
            assert msgs[revoked[0]] == {"type": "status", "symbol": symbol, "state": "revoked"}
            after = msgs[revoked[0] + 1 :]
            break
    until = time.monotonic() + quiet_s
    while (left := until - time.monotonic()) > 0:
        try:
            after += decode_frame(await asyncio.wait_for(ws.recv(), left))
        except TimeoutError:
            break
    late = [m for m in after if m.get("symbol") == symbol]
    assert not late, "a message of it after the revocation"
    return arrived


@pytest.fixture
def entitled_server(live_env, token):
    env = {**live_env, "FEED_ENTITLEMENTS": "1", "FEED_AUTH_RECHECK_S": "3600"}
    user_token = manage(env, "feeduser", "entitled-alice").strip().splitlines()[-1]
    granted = manage(env, "shell", "--no-imports", "-c", grant_script("entitled-alice"))
    row = int(granted.split()[-1])
    srv = Server(env, free_port())
    srv.start()
    yield srv, user_token, row
    srv.stop()
    cleanup = (
        "from feeds.models import Entitlement; "
        "Entitlement.objects.filter(user__username='entitled-alice').delete()"
    )
    manage(env, "shell", "--no-imports", "-c", cleanup)


def admin_delete(base: str, row: int) -> float:
    """Log in as the live superuser and delete entitlement ``row`` in the admin.

    Returns the time just before the delete was sent.
    """
    http = requests.Session()
    http.get(f"{base}/admin/login/", timeout=timeout(10))
    login = {
        "username": "livetester",
        "password": "live-pass-123",
        "csrfmiddlewaretoken": http.cookies["csrftoken"],
    }
    referer = {"Referer": base}
    assert http.post(f"{base}/admin/login/", login, headers=referer, timeout=timeout(10)).ok
    form = {"post": "yes", "csrfmiddlewaretoken": http.cookies["csrftoken"]}
    before = time.time()
    response = http.post(
        f"{base}/admin/feeds/entitlement/{row}/delete/",
        form,
        headers=referer,
        timeout=timeout(10),
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text[:500]
    return before


async def test_an_admin_revocation_stops_the_stream_within_a_second(entitled_server):
    srv, user_token, row = entitled_server
    async with websockets.connect(f"{srv.ws_url}?token={user_token}") as ws:
        assert decode_frame(await asyncio.wait_for(ws.recv(), timeout(10)))[0]["type"] == "welcome"
        await subscribed_and_quoting(ws, ["AAPL", "EUR/USD"], "AAPL")
        deleted = await asyncio.to_thread(admin_delete, srv.url, row)
        took = await revoked_at(ws, "AAPL") - deleted
        print(f"\nadmin delete to status revoked: {took * 1000:.0f} ms")
        assert took < timeout(DEADLINE_S)
        # The other subscription streams on.
        await subscribed_and_quoting(ws, ["EUR/USD"], "EUR/USD")


@pytest.mark.redis
async def test_a_shell_revocation_stops_the_stream_on_every_server_within_a_second(
    redis_url, tmp_path
):
    env = cluster_env(redis_url, tmp_path, FEED_ENTITLEMENTS="1", FEED_AUTH_RECHECK_S="3600")
    with running_cluster(env) as (token, _ticker, servers):
        grant = grant_script("clusteruser")
        await asyncio.to_thread(manage, env, "shell", "--no-imports", "-c", grant)
        sockets = [await websockets.connect(f"{s.ws_url}?token={token}") for s in servers]
        try:
            for ws in sockets:
                first = decode_frame(await asyncio.wait_for(ws.recv(), timeout(10)))
                assert first[0]["type"] == "welcome"
                await subscribed_and_quoting(ws, ["AAPL", "EUR/USD"], "AAPL")
            delete = (
                "import time; from feeds.models import Entitlement; "
                "Entitlement.objects.filter(user__username='clusteruser', exchange='XNAS')"
                ".delete(); "
                "print(time.time())"
            )
            # Read from now on: the shell process takes a while to exit after its commit.
            watching = [asyncio.create_task(revoked_at(ws, "AAPL")) for ws in sockets]
            out = await asyncio.to_thread(manage, env, "shell", "--no-imports", "-c", delete)
            committed = float(out.split()[-1])
            arrivals = await asyncio.gather(*watching)
            took = [t - committed for t in arrivals]
            per_server = ", ".join(f"{t * 1000:.0f} ms" for t in took)
            print(f"\ncommit to status revoked, per server: {per_server}")
            assert max(took) < timeout(DEADLINE_S)
        finally:
            for ws in sockets:
                await ws.close()
