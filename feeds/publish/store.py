"""The quote store: the latest quote and sequence number of every symbol.

The ticker writes it (``save``) before it publishes, so whatever a server
reads from the store is never older than a quote already on its way; servers
read it for snapshots and the REST API. ``epoch`` names the numbering of
``seq``: a fresh store starts a new epoch, and sequence numbers restart with it.
The ticker hands its epoch to every ``save``, so a store that lost its data
under a running ticker gets the same epoch back and the numbering goes on.

In scale-out the store also holds the ticker's leader lease: ``save`` takes a
*fence*, the lease holder's name, and refuses (``Fenced``) a ticker that is no
longer the leader, so two tickers never both publish a quote.

The store also keeps a *resume ring*: the last ``ring`` quotes of every symbol
(``FEED_RESUME_RING``), written in the same step as the latest quote, so a
client that reconnects with ``since`` gets the quotes it missed (``replay``)
instead of a snapshot. Seqs in a ring run on by one; a seq that does not follow
on (numbering restarted with a new epoch) starts the ring afresh.

Two backends with one interface: ``MemoryStore`` for the embedded default (the
ticker lives in the same process) and ``RedisStore`` for scale-out.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Iterable
from typing import Protocol

# (symbol, seq, quote text) as the ticker saves them.
SavedQuote = tuple[str, int, str]

# Quotes kept per symbol for resume when the setting is not given (FEED_RESUME_RING).
DEFAULT_RING = 256


def missed_since(
    newest_first: Iterable[tuple[int, str]], after: int, newest: int
) -> list[str] | None:
    """The texts of a ring's quotes above ``after``, oldest first; None if they are not all there.

    ``newest`` is the symbol's latest seq (0: no quote yet): a client at it has
    missed nothing (``[]``), one beyond it counts in another numbering (None).
    Otherwise the ring must run from ``newest`` down to ``after + 1`` by ones; a
    break in the run (an older numbering left behind by a reset) ends it, so
    quotes of another epoch are never handed out.
    """
    if after >= newest:
        return [] if after == newest else None
    found: list[str] = []
    expected = newest
    for seq, text in newest_first:
        if seq != expected:
            break
        found.append(text)
        if seq == after + 1:
            return found[::-1]
        expected = seq - 1
    return None


def new_epoch() -> str:
    return secrets.token_hex(4)


class Fenced(Exception):
    """A save by a ticker that no longer holds the leader lease."""


class QuoteStore(Protocol):
    async def epoch(self) -> str:
        """The current epoch, creating one if the store is fresh."""
        ...

    async def save(
        self, quotes: list[SavedQuote], *, epoch: str | None = None, fence: str | None = None
    ) -> str:
        """Record these quotes as the latest of their symbols; returns the store's epoch.

        ``epoch`` is the one to set if the store has none (a store that lost its
        data under a running ticker); ``fence`` the lease the writer holds:
        raises ``Fenced`` (and saves nothing) when someone else holds it.
        """
        ...

    async def latest(self, symbols: Iterable[str]) -> dict[str, tuple[int, str]]:
        """``{symbol: (seq, quote_text)}`` for those of ``symbols`` that have a quote."""
        ...

    async def snapshot(self, symbols: Iterable[str]) -> tuple[dict[str, tuple[int, str]], str]:
        """``latest(symbols)`` and then ``epoch()``, read together (one round trip in Redis)."""
        ...

    async def replay(self, since: dict[str, int]) -> dict[str, list[str] | None]:
        """For each symbol, its ring's quote texts with a seq above ``since[symbol]``, in seq order.

        ``[]`` when nothing is newer (a symbol without any quote yet is at seq
        0); None when the ring no longer reaches back to ``since[symbol] + 1``,
        ``since`` is ahead of the newest seq, or the ring is off. Whether the
        caller's seqs belong to the current epoch is the caller's check.
        """
        ...

    async def connection_acquire(self, user_key: str, conn_id: str, limit: int) -> bool:
        """Count a connection against its user's limit; False (and no count) when over it."""
        ...

    async def connection_release(self, user_key: str, conn_id: str) -> None:
        """Forget a connection counted by ``connection_acquire``."""
        ...

    async def ping(self) -> None:
        """Raise if the store cannot be reached."""
        ...


class MemoryStore:
    """Process-local store for the embedded default. Not shared between processes."""

    def __init__(self, *, ring: int = DEFAULT_RING) -> None:
        self._epoch = new_epoch()
        self._latest: dict[str, tuple[int, str]] = {}
        self._connections: dict[str, set[str]] = {}
        self.ring = ring
        # symbol -> (seq, text) of its last ``ring`` quotes, oldest first.
        self._rings: dict[str, deque[tuple[int, str]]] = {}

    async def epoch(self) -> str:
        return self._epoch

    async def save(
        self, quotes: list[SavedQuote], *, epoch: str | None = None, fence: str | None = None
    ) -> str:
        latest = self._latest
        for symbol, seq, text in quotes:
            latest[symbol] = (seq, text)
        if self.ring:
            self._remember(quotes)
        return self._epoch

    def _remember(self, quotes: list[SavedQuote]) -> None:
        rings = self._rings
        for symbol, seq, text in quotes:
            ring = rings.get(symbol)
            if ring is None or (ring and ring[-1][0] != seq - 1):  # new, or numbering restarted
                ring = rings[symbol] = deque(maxlen=self.ring)
            ring.append((seq, text))

    async def replay(self, since: dict[str, int]) -> dict[str, list[str] | None]:
        return {symbol: self._replay_one(symbol, after) for symbol, after in since.items()}

    def _replay_one(self, symbol: str, after: int) -> list[str] | None:
        if not self.ring:
            return None
        newest = self._latest.get(symbol, (0, ""))[0]
        return missed_since(reversed(self._rings.get(symbol, ())), after, newest)

    async def latest(self, symbols: Iterable[str]) -> dict[str, tuple[int, str]]:
        latest = self._latest
        return {symbol: latest[symbol] for symbol in symbols if symbol in latest}

    async def snapshot(self, symbols: Iterable[str]) -> tuple[dict[str, tuple[int, str]], str]:
        return await self.latest(symbols), self._epoch

    async def connection_acquire(self, user_key: str, conn_id: str, limit: int) -> bool:
        conns = self._connections.setdefault(user_key, set())
        if len(conns) >= limit:
            return False
        conns.add(conn_id)
        return True

    async def connection_release(self, user_key: str, conn_id: str) -> None:
        conns = self._connections.get(user_key)
        if conns is not None:
            conns.discard(conn_id)
            if not conns:
                del self._connections[user_key]

    async def ping(self) -> None:
        return None


