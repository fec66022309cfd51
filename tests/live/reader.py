"""A WebSocket client that keeps up, beside the slow ones the live tests make."""

from __future__ import annotations

import asyncio
import json

import websockets

from tests.schema import decode_frame


class Reader:
    """Subscribes to ``symbols`` and reads everything: the newest seq per symbol, a count.

    ``gapless``: a client that keeps up must never see a ``prev_seq`` (a marked gap);
    with it set, one fails the reader's task.
    """

    def __init__(self, symbols: list[str], *, gapless: bool = False) -> None:
        self.symbols = symbols
        self.gapless = gapless
        self.latest: dict[str, int] = {}
        self.count = 0
        self.arrived = asyncio.Event()

    async def run(self, url: str) -> None:
        async with websockets.connect(url, max_queue=None) as ws:
            await ws.send(json.dumps({"op": "subscribe", "symbols": self.symbols, "id": 1}))
            async for frame in ws:
                for msg in decode_frame(frame):
                    if msg["type"] == "quote":
                        assert not (self.gapless and "prev_seq" in msg), msg
                        self.latest[msg["symbol"]] = msg["seq"]
                        self.count += 1
                        self.arrived.set()

    async def wait_for(self, n: int) -> None:
        while self.count < n:
            self.arrived.clear()
            await self.arrived.wait()
