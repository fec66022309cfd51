"""Lookups that arrive together go to the database together: one thread hop, one query.

A storm of reconnecting clients subscribes thousands of times a second; each
subscribe used to read the instrument table in a thread hop of its own, with
a fresh database connection. A ``Coalesced`` lookup keeps at most one query
in flight per event loop; the lookups that arrive while it runs wait and go
out as the next query, for the union of their keys, and each gets its own
keys' answer. No answer is older than its request: a lookup never joins a
query that had already started when it was asked.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

V = TypeVar("V")

Fetch = Callable[[list[str]], Awaitable[dict[str, V]]]


class Coalesced(Generic[V]):
    def __init__(self, fetch: Fetch[V]) -> None:
        self.fetch = fetch
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue[V]] = (
            weakref.WeakKeyDictionary()
        )
        self.queries = 0

    async def __call__(self, keys: Iterable[str]) -> dict[str, V]:
        """``fetch``'s answer for ``keys`` (those it knows), from a query begun after this call."""
        wanted = list(keys)
        if not wanted:
            return {}
        loop = asyncio.get_running_loop()
        queue = self._loops.get(loop)
        if queue is None:
            queue = self._loops[loop] = _Queue(self)
        found = await queue.ask(wanted)
        return {k: found[k] for k in wanted if k in found}


class _Queue(Generic[V]):
    def __init__(self, owner: Coalesced[V]) -> None:
        self.owner = owner
        self.keys: dict[str, None] = {}
        self.future: asyncio.Future[dict[str, V]] | None = None
        self.runner: asyncio.Task[None] | None = None

    async def ask(self, keys: list[str]) -> dict[str, V]:
        if self.future is None:
            self.future = asyncio.get_running_loop().create_future()
        future = self.future
        self.keys.update(dict.fromkeys(keys))
        if self.runner is None or self.runner.done():
            self.runner = asyncio.create_task(self._drain(), name="coalesced-lookup")
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self.future is not None:
            keys, future = list(self.keys), self.future
            self.keys, self.future = {}, None
            self.owner.queries += 1
            try:
                found = await self.owner.fetch(keys)
            except Exception as exc:  # e.g. the database is away: each caller hears of it
                future.set_exception(exc)
                future.exception()  # retrieved: a caller that went away must not log it
            else:
                future.set_result(found)
