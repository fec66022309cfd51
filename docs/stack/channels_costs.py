"""Three things Channels does that the feed works around, shown in-process.

    .venv/bin/python -m docs.stack.channels_costs

1. Origin: Channels' ``AllowedHostsOriginValidator`` and the feed's
   ``feeds.auth.OriginValidator``, each in front of an application that
   accepts every WebSocket, with no ``Origin`` header, a foreign one and the
   feed's own.
2. Dispatch: what ``AsyncConsumer.dispatch`` awaits before every handler,
   ``aclose_old_connections()`` (``sync_to_async(close_old_connections)``),
   timed per message and checked for running on another thread.
3. The in-memory layer: ``channels.layers.InMemoryChannelLayer`` against the
   embedded default's ``feeds.publish.layers.LocalChannelLayer``: time per
   ``group_send`` to a group of 1 and of 100 members, and how many of 200
   messages published in one loop pass a receiver could take at its first
   turn (1 means the publisher yielded to it after every message).

docs/STACK.md quotes its output.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketfeed.settings")

import django

django.setup()

from channels.db import aclose_old_connections  # noqa: E402
from channels.layers import InMemoryChannelLayer  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from channels.testing import WebsocketCommunicator  # noqa: E402
from django import db  # noqa: E402

from feeds.auth import OriginValidator  # noqa: E402
from feeds.publish.layers import LocalChannelLayer  # noqa: E402

QUOTE = {"type": "quote", "symbol": "AAPL", "seq": 1, "text": '{"type":"quote","symbol":"AAPL"}'}
CAPACITY = 100_000  # no channel fills up here (both layers default to 100)


async def accept_all(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def handshake(app: Any, origin: bytes | None) -> str:
    headers = [(b"host", b"127.0.0.1:8000")] + ([(b"origin", origin)] if origin is not None else [])
    communicator = WebsocketCommunicator(app, "/ws/quotes/", headers=headers)
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    return "accepted" if connected else "refused"


async def origins() -> None:
    print("1. WebSocket handshake, by Origin header")
    cases = [("no Origin", None), ("http://evil.example", b"http://evil.example"),
             ("http://127.0.0.1:8000", b"http://127.0.0.1:8000")]
    for name, app in (("AllowedHostsOriginValidator", AllowedHostsOriginValidator(accept_all)),
                      ("feeds.auth.OriginValidator", OriginValidator(accept_all))):
        results = [f"{label}: {await handshake(app, origin)}" for label, origin in cases]
        print(f"   {name:30} " + "; ".join(results))


async def dispatch_hop(n: int = 5000) -> None:
    threads: set[int] = set()
    original = db.close_old_connections

    def noting_thread(**kwargs: Any) -> None:
        threads.add(threading.get_ident())
        original(**kwargs)

    db.close_old_connections = noting_thread
    import channels.db

    channels.db.close_old_connections = noting_thread
    await aclose_old_connections()  # the executor's thread exists from here on
    start = time.perf_counter()
    for _ in range(n):
        await aclose_old_connections()
    hop = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for _ in range(n):
        await asyncio.sleep(0)
    turn = (time.perf_counter() - start) / n
    other = threading.get_ident() not in threads
    print("\n2. What AsyncConsumer.dispatch awaits before each handler")
    print(f"   aclose_old_connections(): {hop * 1e6:.1f} µs per message over {n:,},"
          f" on another thread: {other}; one bare loop turn: {turn * 1e6:.1f} µs")


async def group_send_cost(layer_class: type, members: int, messages: int = 2000) -> float:
    layer = layer_class(capacity=CAPACITY)
    for _ in range(members):
        await layer.group_add("quotes.AAPL", await layer.new_channel())
    start = time.perf_counter()
    for _ in range(messages):
        await layer.group_send("quotes.AAPL", QUOTE)
    return (time.perf_counter() - start) / messages


async def first_turn_batch(layer_class: type, messages: int = 200) -> int:
    layer = layer_class(capacity=CAPACITY)
    hub = await layer.new_channel()
    await layer.group_add("quotes.AAPL", hub)
    first_batch: list[int] = []

    async def receiver() -> None:
        await layer.receive(hub)
        queue = layer.channels.get(hub)
        first_batch.append(1 + (queue.qsize() if queue is not None else 0))

    task = asyncio.create_task(receiver())
    await asyncio.sleep(0)
    for seq in range(messages):
        await layer.group_send("quotes.AAPL", {**QUOTE, "seq": seq})
    await task
    return first_batch[0]


async def layers() -> None:
    print("\n3. group_send: µs per message (group of 1 / of 100);"
          " messages a receiver finds at its first turn")
    for layer_class in (InMemoryChannelLayer, LocalChannelLayer):
        one = await group_send_cost(layer_class, 1)
        hundred = await group_send_cost(layer_class, 100, messages=200)
        batch = await first_turn_batch(layer_class)
        print(f"   {layer_class.__module__}.{layer_class.__name__}: {one * 1e6:.1f} / "
              f"{hundred * 1e6:.0f} µs; {batch} of 200 at its first turn")


async def main() -> None:
    await origins()
    await dispatch_hop()
    await layers()


if __name__ == "__main__":
    asyncio.run(main())
