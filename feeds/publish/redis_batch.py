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

Command = Callable[[Pipeline], Any]  # queues its commands on the pipeline it is given


class Batched:
    def __init__(self, client: Callable[[], Redis]) -> None:
        self.client = client
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = (
            weakref.WeakKeyDictionary()
        )
        self.pipelines = 0

    async def __call__(self, command: Command, *, replies: int = 1) -> Any:
        """``command``'s reply, sent in a pipeline begun after this call.

        A command that queues ``replies`` > 1 commands gets their replies as a
        list, in order, or the first error among them.
        """
        loop = asyncio.get_running_loop()
        queue = self._loops.get(loop)
        if queue is None:
            queue = self._loops[loop] = _Queue(self)
        return await queue.send(command, replies)


class _Queue:
    def __init__(self, owner: Batched) -> None:
        self.owner = owner
        self.waiting: list[tuple[Command, int, asyncio.Future[Any]]] = []
        self.runner: asyncio.Task[None] | None = None

    async def send(self, command: Command, replies: int) -> Any:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((command, replies, future))
        if self.runner is None or self.runner.done():
            self.runner = asyncio.create_task(self._drain(), name="redis-batch")
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting, []
            expected = sum(count for _, count, _ in batch)
            self.owner.pipelines += 1
            try:
                pipe = self.owner.client().pipeline(transaction=False)
                for command, _, _ in batch:
                    command(pipe)
                replies = await pipe.execute(raise_on_error=False)
            except Exception as exc:  # Redis is away: every caller of this batch hears of it
                replies = [exc] * expected
            if len(replies) != expected:  # a command queued more or fewer than it said
                replies = [RuntimeError(f"{len(replies)} replies for {expected}")] * expected
            start = 0
            for _, count, future in batch:
                mine, start = replies[start : start + count], start + count
                if future.done():
                    continue
                error = next((r for r in mine if isinstance(r, Exception)), None)
                if error is not None:
                    future.set_exception(error)
                    future.exception()  # retrieved: a caller that went away must not log it
                else:
                    future.set_result(mine[0] if count == 1 else mine)
