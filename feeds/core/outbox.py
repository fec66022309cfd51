"""The per-connection outbox: what is waiting to be written to one client.

Policy, in one place:

- While the client keeps up (its transport buffer is below the high-water
  mark), every message is queued in arrival order and written at the next
  flush. A flush writes everything queued since the last one; with batching on,
  several messages go out as one JSON-array frame.
- While the client is slow (the transport said "pause"), quotes are
  *conflated*: only the newest quote per symbol is held, and a newer one
  replaces the held one and moves to the back, so the client later sees a
  ``seq`` gap, never a stale or reordered quote. Other messages (replies,
  status, heartbeats) are never dropped; they keep their place in the order.
  The held set is bounded by the number of symbols subscribed plus the control
  messages, which the request rate limit bounds.
- When the transport drains ("resume"), the held messages are queued in their
  order and flushed.
- A quote whose ``seq`` does not follow on from the last one of its symbol
  that the client was sent (a conflation here, a throttle or a lost quote
  upstream) gets ``"prev_seq"``: the seq the client had. That is decided when
  the quote is queued, so it holds for what the client really receives; every
  other quote keeps the shared text.

The outbox knows nothing of sockets. ``write`` puts a whole flush on the wire
at once where the transport can (every frame of it in one socket write) and
says whether it did; where it cannot, ``send`` writes frames one at a time,
asynchronously. Both are told whether the texts are single messages, which
may be shared with other clients, or a batch of this client's own.
``on_ready`` tells whoever flushes (the hub) that this outbox has work.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable

from feeds.core.protocol import with_prev_seq

Send = Callable[[str, bool], Awaitable[None]]  # (frame text, one shareable message?)
Write = Callable[[list[str], bool], bool]  # (frame texts, shareable?) -> written at once?
HeldQuote = tuple[int, str, int]  # (seq, text, seq of the symbol's last quote the client was sent)


def _cannot_write(texts: list[str], shared: bool) -> bool:
    return False


def _release(item: HeldQuote | str) -> str:
    """The text a held message goes out as: a quote after a gap gets its ``prev_seq``."""
    if isinstance(item, str):
        return item
    seq, text, prev = item
    return text if seq == prev + 1 else with_prev_seq(text, prev)


class Outbox:
    __slots__ = (
        "_batch_frames",
        "_control_keys",
        "_held",
        "_on_ready",
        "_queued",
        "_send",
        "_write",
        "conflated",
        "last_sent",
        "paused",
        "quotes_sent",
        "scheduled",
    )

    def __init__(
        self,
        *,
        send: Send,
        on_ready: Callable[[Outbox], None],
        batch_frames: bool,
        write: Write = _cannot_write,
    ) -> None:
        self._send = send
        self._write = write
        self._on_ready = on_ready
        self._batch_frames = batch_frames
        self._queued: list[str] = []
        # Insertion-ordered: symbol -> its newest quote, or int -> control text.
        self._held: dict[str | int, HeldQuote | str] = {}
        self._control_keys = itertools.count()
        self.paused = False
        self.scheduled = False
        self.conflated = 0  # quotes replaced while held: the client's seq gaps
        self.quotes_sent = 0  # quotes queued for the wire (feeds.edges.metrics: delivered)
        self.last_sent = time.monotonic()

    def quote(self, symbol: str, seq: int, text: str, prev: int) -> None:
        """Queue a quote, or hold it as the symbol's newest while the client is slow.

        ``prev``: the seq of the last quote or snapshot of ``symbol`` handed to
        this outbox before this one (0 for none).
        """
        if self.paused:
            held = self._held
            replaced = held.pop(symbol, None)
            if replaced is not None:
                self.conflated += 1
                prev = replaced[2]  # type: ignore[assignment]  # a symbol key holds a quote
            held[symbol] = (seq, text, prev)
            return
        self._queued.append(text if seq == prev + 1 else with_prev_seq(text, prev))
        self.quotes_sent += 1
        if not self.scheduled:
            self.scheduled = True
            self._on_ready(self)

    def control(self, text: str) -> None:
        """Queue a message that is never conflated (replies, status, heartbeat)."""
        if self.paused:
            self._held[next(self._control_keys)] = text
            return
        self._queued.append(text)
        if not self.scheduled:
            self.scheduled = True
            self._on_ready(self)

    def forget(self, symbol: str) -> None:
        """Drop a held quote of a symbol the client just unsubscribed from."""
        self._held.pop(symbol, None)

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        if self._held:
            held = self._held.values()
            self.quotes_sent += sum(1 for item in held if not isinstance(item, str))
            self._queued.extend(map(_release, held))
            self._held.clear()
        if self._queued and not self.scheduled:
            self.scheduled = True
            self._on_ready(self)

    @property
    def pending(self) -> int:
        """Messages waiting, queued or held."""
        return len(self._queued) + len(self._held)

    def flush(self) -> Awaitable[None] | None:
        """Write everything queued; called by the hub once per loop turn with work.

        Returns None when it is all written, or an awaitable that finishes the
        job when the transport needs the asynchronous path.
        """
        self.scheduled = False
        queued = self._queued
        if not queued:
            return None
        self._queued = []
        self.last_sent = time.monotonic()
        if self._batch_frames and len(queued) > 1:
            texts, shared = ["[" + ",".join(queued) + "]"], False
        else:
            texts, shared = queued, True
        if self._write(texts, shared):
            return None
        return self._send_each(texts, shared)

    async def _send_each(self, texts: list[str], shared: bool) -> None:
        for text in texts:
            await self._send(text, shared)
