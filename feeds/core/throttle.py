"""Per-subscription throttles of one connection (PROTOCOL.md, "Throttle").

A throttled symbol gets at most one update per interval, always the newest: a
quote that arrives while its symbol is within its interval is held, replacing
any quote held before, and goes out when the interval is over. One timer per
connection, armed for the earliest due symbol, releases whatever is due; no
task or timer per symbol. Unthrottled symbols never come here: the consumer
checks ``entries`` first, so the hot path pays one dictionary test.

Released quotes go to ``release`` (the outbox) with the seq the client had
before them, so a quote that skips others carries ``prev_seq`` there. Plain
Python: the clock and the timer are injected.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Protocol

Release = Callable[[str, int, str, int], None]  # (symbol, seq, text, prev seq)


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


CallAt = Callable[[float, Callable[[], None]], TimerHandle]


class _Entry:
    __slots__ = ("due", "held", "interval")

    def __init__(self, interval: float, due: float) -> None:
        self.interval = interval
        self.due = due  # clock time from which the next update may go out
        self.held: tuple[int, str, int] | None = None  # (seq, text, prev seq)


class Throttle:
    def __init__(self, *, clock: Callable[[], float], call_at: CallAt, release: Release) -> None:
        self._clock = clock
        self._call_at = call_at
        self._release = release
        self.entries: dict[str, _Entry] = {}
        self._heap: list[tuple[float, str]] = []  # (due, symbol) of held quotes; stale ones skipped
        self._timer: TimerHandle | None = None
        self._timer_at = float("inf")

    def set(self, symbol: str, interval_ms: int, *, wait: bool = True) -> None:
        """Throttle ``symbol`` to one update per ``interval_ms`` (0: none), replacing its throttle.

        A held quote is dropped (a snapshot or a resume supersedes it); ``wait``
        counts what the client was just sent as an update, so the next one waits
        a whole interval.
        """
        self.entries.pop(symbol, None)
        if interval_ms > 0:
            interval = interval_ms / 1000
            self.entries[symbol] = _Entry(interval, self._clock() + interval if wait else 0.0)

    def restart(self, symbol: str) -> None:
        """A snapshot of ``symbol`` went out: drop its held quote and start a new interval."""
        entry = self.entries.get(symbol)
        if entry is not None:
            entry.held = None
            entry.due = self._clock() + entry.interval

    def drop(self, symbol: str) -> None:
        """Forget ``symbol``'s throttle and its held quote (unsubscribe)."""
        self.entries.pop(symbol, None)

    def quote(self, symbol: str, seq: int, text: str, prev: int) -> None:
        """A quote of a throttled symbol: out now if its interval is over, else held."""
        entry = self.entries[symbol]
        if entry.held is not None:
            entry.held = (seq, text, entry.held[2])
            return
        now = self._clock()
        if now >= entry.due:
            entry.due = now + entry.interval
            self._release(symbol, seq, text, prev)
            return
        entry.held = (seq, text, prev)
        heapq.heappush(self._heap, (entry.due, symbol))
        if entry.due < self._timer_at:
            self._arm(entry.due)

    def flush(self, symbol: str) -> None:
        """Send ``symbol``'s held quote now (a status of the symbol must not overtake it)."""
        entry = self.entries.get(symbol)
        if entry is not None and entry.held is not None:
            self._send(symbol, entry, self._clock())

    def close(self) -> None:
        """The connection is gone: cancel the timer and forget everything."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, float("inf")
        self.entries.clear()
        self._heap.clear()

    def _send(self, symbol: str, entry: _Entry, now: float) -> None:
        assert entry.held is not None
        seq, text, prev = entry.held
        entry.held = None
        entry.due = now + entry.interval
        self._release(symbol, seq, text, prev)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self._call_at(when, self._fire), when

    def _fire(self) -> None:
        """Release every held quote that is due, then arm the timer for the next one."""
        self._timer, self._timer_at = None, float("inf")
        now, heap, entries = self._clock(), self._heap, self.entries
        while heap:
            due, symbol = heap[0]
            entry = entries.get(symbol)
            if entry is None or entry.held is None or entry.due != due:
                heapq.heappop(heap)  # dropped, re-throttled or already flushed
            elif due <= now:
                heapq.heappop(heap)
                self._send(symbol, entry, now)
            else:
                self._arm(due)
                return
