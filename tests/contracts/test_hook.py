"""The check every live test has (tests/conftest.py): it sees every frame on /ws/quotes/.

A stand-in server (the websockets package's) sends what the test wants, good
and bad; the check must flag the bad frames, whoever reads them, and leave
other paths alone.
"""

from __future__ import annotations

import json

import msgpack
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from tests.schema import server_messages_checked

HEARTBEAT = {"type": "heartbeat", "ts": 1_764_000_000_000_000}


async def frames_sent(path: str, frames: list[str | bytes]) -> list[str]:
    """Violations found while a client on ``path`` reads ``frames`` from a stand-in server."""

    async def handler(ws):  # type: ignore[no-untyped-def]
        for frame in frames:
            await ws.send(frame)

    with server_messages_checked() as violations:
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}{path}") as ws:
                async for _ in ws:  # iteration goes through recv, like every reader
                    pass
    return violations


async def test_valid_frames_pass_json_batch_and_msgpack(contract_violations):
    frames = [json.dumps(HEARTBEAT), json.dumps([HEARTBEAT, HEARTBEAT]), msgpack.packb(HEARTBEAT)]
    assert await frames_sent("/ws/quotes/?token=t", frames) == []
    assert contract_violations == []


async def test_a_message_outside_the_document_is_reported(contract_violations):
    frames = [json.dumps(HEARTBEAT), json.dumps({**HEARTBEAT, "surprise": 1}), b"\xc1"]
    found = await frames_sent("/ws/quotes/", frames)
    assert len(found) == 2
    assert "surprise" in found[0]
    assert "/ws/quotes/" in found[0]
    # The test's own session-wide check saw them too; this test wanted them.
    assert len(contract_violations) == 2
    contract_violations.clear()


async def test_other_paths_are_not_the_feeds(contract_violations):
    assert await frames_sent("/elsewhere/", [json.dumps({"anything": True})]) == []
    assert contract_violations == []
