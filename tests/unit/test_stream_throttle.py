"""Per-subscription throttles (feeds/core/throttle.py) on a hand-driven clock and timer."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import pytest

from feeds.core.throttle import Throttle


class Timers:
    """``loop.call_at`` on a clock the test moves: ``advance`` fires what is due, in time order."""

    def __init__(self) -> None:
        self.now = 100.0
        self.pending: list[list] = []  # [when, callback, cancelled]

    def clock(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Handle:
        entry = [when, callback, False]
        self.pending.append(entry)
        return Handle(entry)

    @property
    def armed(self) -> list[float]:
        return sorted(e[0] for e in self.pending if not e[2])

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            due = [e for e in self.pending if not e[2] and e[0] <= end]
            if not due:
                break
            entry = min(due, key=lambda e: e[0])
            self.pending.remove(entry)
            self.now = max(self.now, entry[0])
            entry[1]()
        self.now = end


class Handle:
    def __init__(self, entry: list) -> None:
        self.entry = entry

    def cancel(self) -> None:
        self.entry[2] = True


@pytest.fixture
def timers() -> Timers:
    return Timers()


@pytest.fixture
def out() -> list[tuple[str, int, int]]:
    return []


@pytest.fixture
def throttle(timers, out) -> Throttle:
    return Throttle(
        clock=timers.clock,
        call_at=timers.call_at,
        release=lambda symbol, seq, text, prev: out.append((symbol, seq, prev)),
    )


def feed(throttle: Throttle, symbol: str, seq: int) -> None:
    throttle.quote(symbol, seq, f"{symbol}:{seq}", seq - 1)


def test_the_first_quote_after_an_interval_goes_out_at_once(throttle, timers, out):
    throttle.set("AAPL", 250, wait=False)
    feed(throttle, "AAPL", 1)
    assert out == [("AAPL", 1, 0)]
    assert timers.armed == []


def test_quotes_within_the_interval_conflate_to_the_newest_sent_when_it_ends(throttle, timers, out):
    throttle.set("AAPL", 250, wait=False)
    feed(throttle, "AAPL", 1)
    for seq in (2, 3, 4):
        timers.advance(0.05)
        feed(throttle, "AAPL", seq)
    assert out == [("AAPL", 1, 0)]
    timers.advance(0.2)
    # seq 4 after seq 1: released with the seq the client had, for its prev_seq.
    assert out == [("AAPL", 1, 0), ("AAPL", 4, 1)]


def test_at_most_one_update_per_interval_under_a_steady_stream(timers):
    sent: list[tuple[float, int]] = []
    throttle = Throttle(
        clock=timers.clock, call_at=timers.call_at,
        release=lambda symbol, seq, text, prev: sent.append((timers.now, seq)),
    )
    throttle.set("AAPL", 100, wait=False)
    for seq in range(1, 101):  # 1 s of a quote every 10 ms
        feed(throttle, "AAPL", seq)
        timers.advance(0.01)
    timers.advance(0.1)
    gaps = [b[0] - a[0] for a, b in pairwise(sent)]
    assert all(g >= 0.1 - 1e-9 for g in gaps), gaps
    seqs = [seq for _, seq in sent]
    assert seqs == sorted(set(seqs))
    assert seqs[-1] == 100  # newest last, nothing twice
    assert 9 <= len(sent) <= 11


def test_a_snapshot_counts_as_an_update_so_the_next_quote_waits_an_interval(throttle, timers, out):
    throttle.set("AAPL", 500)  # wait=True: the snapshot just went out
    feed(throttle, "AAPL", 8)
    assert out == []
    timers.advance(0.5)
    assert out == [("AAPL", 8, 7)]


def test_one_timer_serves_every_symbol_armed_for_the_earliest_due(throttle, timers, out):
    for symbol, ms in (("A", 1000), ("B", 200), ("C", 600)):
        throttle.set(symbol, ms)
        feed(throttle, symbol, 1)
    assert len(timers.armed) == 1
    assert timers.armed[0] == pytest.approx(100.2)
    timers.advance(0.3)
    assert out == [("B", 1, 0)]
    assert timers.armed == [pytest.approx(100.6)]
    timers.advance(1)
    assert out == [("B", 1, 0), ("C", 1, 0), ("A", 1, 0)]
    assert timers.armed == []


def test_drop_forgets_the_held_quote(throttle, timers, out):
    throttle.set("AAPL", 250)
    feed(throttle, "AAPL", 1)
    throttle.drop("AAPL")
    timers.advance(1)
    assert out == []
    assert "AAPL" not in throttle.entries


def test_a_new_throttle_replaces_the_old_one_and_its_held_quote(throttle, timers, out):
    throttle.set("AAPL", 10_000)
    feed(throttle, "AAPL", 1)
    throttle.set("AAPL", 100)
    feed(throttle, "AAPL", 2)
    timers.advance(0.1)
    assert out == [("AAPL", 2, 1)]
    throttle.set("AAPL", 0)
    assert "AAPL" not in throttle.entries


def test_flush_sends_the_held_quote_now_and_starts_a_new_interval(throttle, timers, out):
    throttle.set("AAPL", 1000)
    feed(throttle, "AAPL", 1)
    feed(throttle, "AAPL", 2)
    throttle.flush("AAPL")
    assert out == [("AAPL", 2, 0)]
    timers.advance(2)  # the stale timer entry releases nothing twice
    assert out == [("AAPL", 2, 0)]
    throttle.flush("AAPL")  # nothing held: nothing sent
    throttle.flush("MSFT")  # not throttled at all
    assert out == [("AAPL", 2, 0)]


def test_restart_drops_the_held_quote_and_waits_a_new_interval(throttle, timers, out):
    throttle.set("AAPL", 1000, wait=False)
    feed(throttle, "AAPL", 1)
    feed(throttle, "AAPL", 2)
    timers.advance(0.9)
    throttle.restart("AAPL")  # a snapshot went out
    timers.advance(0.5)
    feed(throttle, "AAPL", 3)
    assert out == [("AAPL", 1, 0)]
    timers.advance(0.5)
    assert out == [("AAPL", 1, 0), ("AAPL", 3, 2)]


def test_close_cancels_the_timer(throttle, timers, out):
    throttle.set("AAPL", 100)
    feed(throttle, "AAPL", 1)
    throttle.close()
    assert timers.armed == []
    timers.advance(1)
    assert out == []
    assert throttle.entries == {}
