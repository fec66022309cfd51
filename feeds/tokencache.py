"""The handshake's token cache: a token's digest to its user, at most a second old.

Why: a WebSocket or SSE handshake with a token used to cost a thread hop, a
fresh database connection and a query of its own; a storm of reconnecting
clients spent most of the server's core on that. Here a token checked within
the last ``MAX_AGE_S`` admits its handshake without leaving the event loop,
and the handshakes that do need the database (a token not seen yet, or seen
longer ago) wait together for one query per batch: at most one batch is in
flight per event loop, and whatever misses arrive meanwhile form the next.

Revocation (docs/SECURITY.md): an entry is dropped at once when this process
hears that its token or its user was revoked (``forget``: the ``auth.revoked``
event on the hub, and the revoking process's own commit), and any entry is
checked against the database again once it is older than ``MAX_AGE_S``, so
a lost event leaves a revoked token (deleted, changed, expired, or its user
disabled or deleted) working for at most that long. An entry's age counts
from when the query that found it *started*; a query that ran while a
revocation arrived is asked again rather than trusted. The token's expiry is
also compared at each use. Only live tokens of active users are kept (never a
refusal, so a flood of bad tokens cannot fill it), keyed by knox's digest,
never the token itself; at most ``MAX_ENTRIES`` entries, each dropped after
``KEEP_S`` without a fresh check.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

MAX_AGE_S = 1.0  # the longest a revocation can go unseen by a handshake
KEEP_S = 60.0
MAX_ENTRIES = 100_000
RETRIES = 3  # a batch asked again after revocations arrived mid-query, at most this often

# (digest -> token prefix) in, {digest: (user, expires_at wall time or None)} of the good ones out.
Fetch = Callable[[dict[str, str]], Awaitable[dict[str, tuple[Any, float | None]]]]


@dataclass(slots=True)
class Entry:
    user: Any
    user_key: str
    expires_at: float | None  # wall-clock seconds; None: never
    checked: float  # monotonic time the query that found it started


class TokenCache:
    """Process-wide entries; a batcher per event loop (``lookup`` runs on the caller's loop)."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.fetch, self.clock, self.wall = fetch, clock, wall
        self._entries: dict[str, Entry] = {}  # oldest check first
        self._by_user: dict[str, set[str]] = {}
        self._lock = threading.Lock()  # forget() may come from a request thread
        self.generation = 0  # bumped by every forget
        self._batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batcher] = (
            weakref.WeakKeyDictionary()
        )
        self.hits = self.misses = self.queries = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def lookup(self, digest: str, prefix: str) -> Any | None:
        """The user of the token with ``digest`` (its first characters ``prefix``), or None."""
        entry = self._entries.get(digest)
        if entry is not None and self.clock() - entry.checked <= MAX_AGE_S:
            if entry.expires_at is None or entry.expires_at > self.wall():
                self.hits += 1
                return entry.user
        self.misses += 1
        loop = asyncio.get_running_loop()
        batcher = self._batchers.get(loop)
        if batcher is None:
            batcher = self._batchers[loop] = _Batcher(self)
        return await batcher.ask(digest, prefix)

    def forget(self, *, token_digests: Iterable[str] = (), user_ids: Iterable[object] = ()) -> None:
        """Drop these tokens and every token of these users; thread-safe."""
        with self._lock:
            self.generation += 1
            for digest in token_digests:
                self._drop(digest)
            for user in user_ids:
                for digest in list(self._by_user.get(str(user), ())):
                    self._drop(digest)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()
            self._by_user.clear()

    def _drop(self, digest: str) -> None:
        entry = self._entries.pop(digest, None)
        if entry is not None:
            digests = self._by_user.get(entry.user_key)
            if digests is not None:
                digests.discard(digest)
                if not digests:
                    del self._by_user[entry.user_key]

    def store(self, found: dict[str, tuple[Any, float | None]], checked: float) -> None:
        """Keep what a query found (it started at ``checked``); drop what is too old or too many."""
        with self._lock:
            for digest, (user, expires_at) in found.items():
                self._drop(digest)  # re-inserted at the end: the dict stays in check order
                key = str(user.pk)
                self._entries[digest] = Entry(user, key, expires_at, checked)
                self._by_user.setdefault(key, set()).add(digest)
            horizon = self.clock() - KEEP_S
            while self._entries:
                oldest = next(iter(self._entries))
                if len(self._entries) <= MAX_ENTRIES and self._entries[oldest].checked >= horizon:
                    break
                self._drop(oldest)


class _Batcher:
    """One event loop's misses: one query in flight, the misses meanwhile become the next."""

    def __init__(self, cache: TokenCache) -> None:
        self.cache = cache
        self.queued: dict[str, str] = {}  # digest -> prefix
        self.waiting: dict[str, asyncio.Future[Any]] = {}
        self.runner: asyncio.Task[None] | None = None

    async def ask(self, digest: str, prefix: str) -> Any | None:
        future = self.waiting.get(digest)
        if future is None:
            future = self.waiting[digest] = asyncio.get_running_loop().create_future()
            self.queued[digest] = prefix
            if self.runner is None or self.runner.done():
                self.runner = asyncio.create_task(self._drain(), name="token-cache")
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        cache = self.cache
        attempts: dict[str, int] = {}
        while self.queued:
            batch, self.queued = self.queued, {}
            generation, started = cache.generation, cache.clock()
            cache.queries += 1
            try:
                found = await cache.fetch(batch)
            except Exception as exc:  # e.g. the database is away: each handshake hears of it
                for digest in batch:
                    self._settle(digest, exc=exc)
                continue
            if cache.generation != generation:
                # A revocation arrived while the query ran, which may have read the row before
                # it changed: ask again. After RETRIES the answer is used but not kept.
                again = {d: p for d, p in batch.items() if attempts.get(d, 0) < RETRIES}
                for digest in again:
                    attempts[digest] = attempts.get(digest, 0) + 1
                if again:
                    self.queued.update(again)
                    for digest in batch.keys() - again.keys():
                        self._settle(digest, user=found.get(digest, (None,))[0])
                    continue
            else:
                cache.store(found, started)
            for digest in batch:
                self._settle(digest, user=found.get(digest, (None,))[0])

    def _settle(self, digest: str, *, user: Any = None, exc: BaseException | None = None) -> None:
        future = self.waiting.pop(digest, None)
        if future is None or future.done():
            return
        if exc is not None:
            future.set_exception(exc)
            future.exception()  # retrieved: a handshake that went away must not log it
        else:
            future.set_result(user)
