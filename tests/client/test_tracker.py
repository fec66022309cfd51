"""Gap detection and de-duplication per symbol (marketfeed_client/tracker.py)."""

from __future__ import annotations

import pytest

from marketfeed_client.messages import Quote, quote_from
from marketfeed_client.tracker import SeqTracker
from tests.client.fakes import quote, snapshot


def q(seq: int, epoch: str = "e1", symbol: str = "AAPL", **extra) -> Quote:
    return quote_from(quote(symbol, seq, **extra), epoch)


def feed(tracker: SeqTracker, quotes: list[Quote]) -> tuple[list[int], list[tuple]]:
    delivered, gaps = [], []
    for item in quotes:
        deliver, gap = tracker.accept(item)
        if gap is not None:
            gaps.append((gap.after_seq, gap.next_seq, gap.reason, gap.missed))
        if deliver:
            delivered.append(item.seq)
    return delivered, gaps


@pytest.mark.parametrize(
    ("quotes", "delivered", "gaps"),
    [
        ([q(1), q(2), q(3)], [1, 2, 3], []),
        ([q(5), q(6)], [5, 6], []),  # the first quote of a symbol is never a gap
        ([q(1), q(4)], [1, 4], [(1, 4, "lost", 2)]),
        ([q(1), q(4, prev_seq=1)], [1, 4], [(1, 4, "conflated", 2)]),
        ([q(1), q(2, prev_seq=1)], [1, 2], []),  # a marker on a direct successor is no gap
        ([q(1), q(2), q(2), q(1), q(3)], [1, 2, 3], []),  # duplicates and stale ones dropped
        ([q(7), q(3, epoch="e2")], [7, 3], [(7, 3, "epoch", None)]),
        ([q(7), q(8, epoch="e2"), q(9, epoch="e2")], [7, 8, 9], [(7, 8, "epoch", None)]),
    ],
)
def test_sequences_give_these_deliveries_and_gaps(quotes, delivered, gaps):
    assert feed(SeqTracker(), quotes) == (delivered, gaps)


def test_symbols_are_tracked_apart():
    tracker = SeqTracker()
    got = feed(tracker, [q(1, symbol="AAPL"), q(10, symbol="MSFT"), q(2, symbol="AAPL")])
    assert got == ([1, 10, 2], [])


def test_a_refused_resume_names_the_snapshot_jump_not_recovered_once():
    tracker = SeqTracker()
    feed(tracker, [q(1), q(2)])
    tracker.not_recovered("AAPL")
    snap = quote_from(snapshot("AAPL", 40), "e1")
    assert feed(tracker, [snap, q(45)]) == (
        [40, 45],
        [(2, 40, "not_recovered", 37), (40, 45, "lost", 4)],
    )


def test_a_refused_resume_in_a_new_epoch_is_an_epoch_gap():
    tracker = SeqTracker()
    feed(tracker, [q(9)])
    tracker.not_recovered("AAPL")
    assert feed(tracker, [quote_from(snapshot("AAPL", 2, "e2"), "e2")]) == (
        [2],
        [(9, 2, "epoch", None)],
    )


def test_since_names_the_current_epoch_and_the_last_seq_of_each_symbol_in_it():
    tracker = SeqTracker()
    assert tracker.since() == (None, {})
    feed(
        tracker,
        [q(3, symbol="AAPL"), q(8, symbol="MSFT"), q(4, symbol="AAPL"), q(2, symbol="AAPL")],
    )
    assert tracker.since() == ("e1", {"AAPL": 4, "MSFT": 8})
    assert tracker.since(["MSFT", "IBM"]) == ("e1", {"MSFT": 8})
    feed(tracker, [q(1, epoch="e2", symbol="AAPL")])  # renumbered: MSFT's seq means nothing now
    assert tracker.since() == ("e2", {"AAPL": 1})


def test_a_forgotten_symbol_starts_afresh_without_a_gap():
    tracker = SeqTracker()
    feed(tracker, [q(1)])
    tracker.forget("AAPL")
    assert feed(tracker, [q(50)]) == ([50], [])
