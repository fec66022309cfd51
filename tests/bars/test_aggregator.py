"""The pure bar aggregator (feeds.core.bars): minutes, OHLC, volume deltas, halts, odd clocks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from feeds.core.bars import Bar, BarAggregator, merge, roll_up
from feeds.core.engine import Quote

ROOT = Path(__file__).resolve().parents[2]
MINUTE_US = 60_000_000
T0 = 1_800_000_000 // 60 * 60  # a minute boundary, seconds


def quote(at_s: float, last: float, volume: int, symbol: str = "AAPL") -> Quote:
    return Quote(
        symbol=symbol, bid=last - 0.01, ask=last + 0.01, bid_size=100, ask_size=100,
        last=last, last_size=100, volume=volume, ts=int(at_s * 1_000_000),
    )


class Tape:
    """Feeds an aggregator the way the ticker does: each quote with the volume before it."""

    def __init__(self, aggregator: BarAggregator) -> None:
        self.aggregator = aggregator
        self.volume: dict[str, int] = {}

    def quote(self, at_s: float, last: float, traded: int = 0, symbol: str = "AAPL") -> None:
        before = self.volume.get(symbol, 1_000)
        self.volume[symbol] = before + traded
        self.aggregator.record(quote(at_s, last, before + traded, symbol), before)


@pytest.fixture
def tape() -> Tape:
    return Tape(BarAggregator())


def test_a_minute_of_trades_makes_one_bar_of_their_ohlc_volume_and_count(tape):
    trades = [(1, 10.0, 100), (10, 12.5, 200), (20, 9.5, 300), (59.999, 11.0, 400)]
    for second, price, size in trades:
        tape.quote(T0 + second, price, size)
    assert tape.aggregator.drain() == [Bar("AAPL", T0, 10.0, 12.5, 9.5, 11.0, 1000, 4, fresh=True)]


def test_quotes_without_a_trade_change_no_bar_even_when_last_is_repeated(tape):
    tape.quote(T0 + 1, 10.0, 100)
    tape.aggregator.drain()
    tape.quote(T0 + 2, 10.0)  # same last, same volume: no trade
    tape.quote(T0 + 3, 10.0)
    assert tape.aggregator.drain() == []
    tape.quote(T0 + 4, 10.0, 100)  # same last again, but the volume grew: a trade
    assert [(b.trades, b.volume) for b in tape.aggregator.drain()] == [(2, 200)]


@pytest.mark.parametrize(
    ("second", "minute"),
    [(0, 0), (59.999999, 0), (60, 1), (60.000001, 1), (119.9, 1), (120, 2)],
)
def test_the_minute_is_the_quotes_utc_timestamp_floored(second, minute):
    aggregator = BarAggregator()
    aggregator.record(quote(T0 + second, 10.0, 1100), 1000)
    assert [b.start for b in aggregator.drain()] == [T0 + 60 * minute]


def test_a_new_minute_opens_a_new_bar_and_both_are_drained_oldest_first(tape):
    tape.quote(T0 + 30, 10.0, 100)
    tape.quote(T0 + 61, 11.0, 50)
    tape.quote(T0 + 62, 10.5, 50)
    bars = tape.aggregator.drain()
    assert [(b.start, b.open, b.close, b.volume, b.trades, b.fresh) for b in bars] == [
        (T0, 10.0, 10.0, 100, 1, True),
        (T0 + 60, 11.0, 10.5, 100, 2, False),
    ]


def test_a_minute_without_trades_has_no_bar(tape):
    tape.quote(T0 + 1, 10.0, 100)
    tape.quote(T0 + 61, 10.0)  # quotes, no trades, all of the next minute
    tape.quote(T0 + 119, 10.0)
    tape.quote(T0 + 121, 10.2, 100)
    assert [b.start for b in tape.aggregator.drain()] == [T0, T0 + 120]


def test_a_halted_instrument_has_no_bars_while_halted_and_others_go_on(tape):
    tape.quote(T0 + 1, 10.0, 100, "AAPL")
    tape.quote(T0 + 2, 50.0, 10, "MSFT")
    tape.aggregator.drain()
    # AAPL halted: the ticker makes no quotes for it; MSFT trades on.
    tape.quote(T0 + 70, 51.0, 10, "MSFT")
    tape.quote(T0 + 130, 52.0, 10, "MSFT")
    assert {b.symbol for b in tape.aggregator.drain()} == {"MSFT"}


def test_drain_hands_out_copies_and_only_what_changed_since(tape):
    tape.quote(T0 + 1, 10.0, 100)
    first = tape.aggregator.drain()
    tape.quote(T0 + 2, 13.0, 100)
    assert first[0].high == 10.0  # the copy kept its values
    assert [(b.high, b.volume) for b in tape.aggregator.drain()] == [(13.0, 200)]
    assert tape.aggregator.drain() == []


def test_a_quote_stamped_before_the_current_bar_counts_in_it(tape):
    tape.quote(T0 + 61, 10.0, 100)
    tape.aggregator.drain()
    tape.quote(T0 + 59, 9.0, 100)  # the clock stepped back a little
    assert [(b.start, b.low, b.close, b.volume, b.trades) for b in tape.aggregator.drain()] == [
        (T0 + 60, 9.0, 9.0, 200, 2)
    ]


def test_out_of_order_stamps_within_a_minute_close_on_the_last_to_arrive(tape):
    tape.quote(T0 + 30, 10.0, 100)
    tape.quote(T0 + 10, 11.0, 100)
    (bar,) = tape.aggregator.drain()
    assert (bar.open, bar.close) == (10.0, 11.0)


def test_a_volume_that_went_down_is_no_trade(tape):
    tape.aggregator.record(quote(T0 + 1, 10.0, 50), 1_000)  # a fresh store restarted the volume
    assert tape.aggregator.drain() == []


def test_a_shorter_period_for_tests_aligns_bars_to_it():
    aggregator = BarAggregator(period_s=2)
    for second in (0.5, 1.9, 2.0, 5.5):
        aggregator.record(quote(T0 + second, 10.0, 1100), 1000)
    assert [(b.start - T0, b.trades) for b in aggregator.drain()] == [(0, 2), (2, 1), (4, 1)]


def test_a_period_under_a_second_is_refused():
    with pytest.raises(ValueError, match="at least one second"):
        BarAggregator(period_s=0)


def test_merge_adds_a_later_part_of_the_same_period():
    earlier = Bar("AAPL", T0, 10.0, 12.0, 9.0, 11.0, 300, 3)
    later = Bar("AAPL", T0, 11.5, 11.8, 8.5, 10.0, 200, 2, fresh=True)
    assert merge(earlier, later) == Bar("AAPL", T0, 10.0, 12.0, 8.5, 10.0, 500, 5)


def minute_bars(*minutes: int) -> list[Bar]:
    """One bar per minute given (T0 + minute), price = the minute, newest first."""
    return [
        Bar("X", T0 + 60 * m, m, m + 0.5, m - 0.5, m + 0.25, 10, 1)
        for m in sorted(minutes, reverse=True)
    ]


def test_roll_up_to_five_minutes_aligns_to_the_clock_and_keeps_the_newest():
    bars = roll_up(minute_bars(3, 4, 5, 6, 9, 10), span_s=300, limit=3)
    assert [(b.start - T0, b.open, b.high, b.low, b.close, b.volume, b.trades) for b in bars] == [
        (0, 3, 4.5, 2.5, 4.25, 20, 2),
        (300, 5, 9.5, 4.5, 9.25, 30, 3),
        (600, 10, 10.5, 9.5, 10.25, 10, 1),
    ]
    newest_two = roll_up(minute_bars(3, 4, 5, 6, 9, 10), span_s=300, limit=2)
    assert [b.start - T0 for b in newest_two] == [300, 600]


def test_roll_up_of_one_minute_bars_is_the_bars_oldest_first():
    assert [b.start - T0 for b in roll_up(minute_bars(1, 2, 7), span_s=60, limit=2)] == [120, 420]


def test_the_bar_aggregator_imports_neither_django_nor_channels():
    code = (
        "import json, sys\nimport feeds.core.bars\n"
        "print(json.dumps(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('django', 'channels'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
