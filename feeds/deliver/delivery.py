"""What the hub calls on a subscriber: shared by the WebSocket consumer and the SSE stream.

Both keep the same per-connection state: ``subs`` (symbol -> seq of the newest
quote handed on, ``None`` while its snapshot or replay is being read),
``_backlog`` (live quotes held back meanwhile), a ``throttle``, an ``outbox``
and a ``_subs_lock`` that serialises subscription changes. Only how they are
framed on the wire differs, and that lives in the outbox's writer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from feeds.core import protocol
from feeds.core.outbox import Outbox
from feeds.core.protocol import State
from feeds.core.throttle import Throttle

logger = logging.getLogger(__name__)


class Delivery:
    subs: dict[str, int | None]
    _backlog: dict[str, deque[tuple[int, str]]]
    _subs_lock: asyncio.Lock
    throttle: Throttle
    outbox: Outbox
    hub: Any
    conn_id: str
    kind: str

    def deliver_quote(self, symbol: str, seq: int, text: str) -> None:
        last = self.subs.get(symbol, -1)
        if last is None:  # its snapshot or replay is being read
            backlog = self._backlog.get(symbol)
            if backlog is not None:
                backlog.append((seq, text))
            return
        if last == -1 or seq <= last:
            return  # not subscribed, or not newer than what was sent
        self.subs[symbol] = seq
        throttled = self.throttle.entries
        if throttled and symbol in throttled:
            self.throttle.quote(symbol, seq, text, last)
        else:
            self.outbox.quote(symbol, seq, text, last)

    def deliver_status(self, symbol: str, text: str) -> None:
        if symbol in self.subs:
            self.throttle.flush(symbol)  # the quote before a halt goes out before the halt
            self.outbox.control(text)

    async def drop_revoked(self, symbols: list[str]) -> None:
        """Its user may no longer see ``symbols``: ``status`` ``revoked`` each, and no quote after."""
        async with self._subs_lock:
            leaving = [s for s in symbols if s in self.subs]
            for symbol in leaving:
                del self.subs[symbol]
                self._backlog.pop(symbol, None)
                self.outbox.forget(symbol)
                self.throttle.drop(symbol)
                self.outbox.control(protocol.status(symbol, State.REVOKED))
            if leaving and self.hub is not None:
                logger.info("%s %s: entitlement revoked for %s", self.kind, self.conn_id, ", ".join(leaving))
                await self.hub.leave(self, leaving)
