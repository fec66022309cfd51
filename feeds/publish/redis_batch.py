"""Redis commands issued together go out together: one pipeline, one round trip.

A storm of reconnecting clients counts each connection against its user's
limit in Redis (``connection_acquire``), thousands a second. Sent one by one,
every command in flight holds a connection of the pool, so a burst of a
thousand handshakes opened a thousand Redis connections, a TCP connect each,
and that cost the surviving workers a quarter of their time. A ``Batched``
sender keeps at most one pipeline in flight per event loop; the commands that
arrive meanwhile wait and go out as the next pipeline (not a transaction: each
command stands alone, and each caller gets its own command's reply or error).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

from redis.asyncio.client import Pipeline, Redis

Command = Callable[[Pipeline], Any]  # queues one command on the pipeline it is given


class Batched:
    def __init__(self, client: Callable[[], Redis]) -> None:
        self.client = client
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = (
            weakref.WeakKeyDictionary()
        )
        self.pipelines = 0

    async def __call__(self, command: Command) -> Any:
        """``command``'s reply, sent in a pipeline begun after this call."""
        loop = asyncio.get_running_loop()
        queue = self._loops.get(loop)
        if queue is None:
            queue = self._loops[loop] = _Queue(self)
        return await queue.send(command)


class _Queue:
    def __init__(self, owner: Batched) -> None:
        self.owner = owner
        self.waiting: list[tuple[Command, asyncio.Future[Any]]] = []
        self.runner: asyncio.Task[None] | None = None

    async def send(self, command: Command) -> Any:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((command, future))
        if self.runner is None or self.runner.done():
            self.runner = asyncio.create_task(self._drain(), name="redis-batch")
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting, []
            self.owner.pipelines += 1
            try:
                pipe = self.owner.client().pipeline(transaction=False)
                for command, _ in batch:
                    command(pipe)
                replies = await pipe.execute(raise_on_error=False)
            except Exception as exc:  # Redis is away: every caller of this batch hears of it
                replies = [exc] * len(batch)
            for (_, future), reply in zip(batch, replies, strict=True):
                if future.done():
                    continue
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                    future.exception()  # retrieved: a caller that went away must not log it
                else:
                    future.set_result(reply)
