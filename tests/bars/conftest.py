"""Fixtures for the bar tests: instruments, a token user, stored bars, live servers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from feeds.models import Bar, Instrument
from tests.faults.conftest import feed_server  # noqa: F401 (fixture)
from tests.redis.conftest import postgres_url  # noqa: F401 (fixture)

T0 = 1_700_000_000 // 3600 * 3600  # an hour boundary in the past (2023-11-14 22:00 UTC), seconds


def add_instrument(
    symbol: str, tick: str = "0.01", price: str = "100.00", **extra: Any
) -> Instrument:
    fields: dict[str, Any] = dict(
        name=symbol, exchange="TEST", asset_class="equity", currency="USD",
        tick_size=Decimal(tick), lot_size=1, reference_price=Decimal(price),
        volatility=0.3, quote_rate=5.0, active=True,
    )
    fields.update(extra)
    return Instrument.objects.update_or_create(symbol=symbol, defaults=fields)[0]


def add_bar(instrument: Instrument, minute: int, o: str, h: str, lo: str, c: str, volume: int = 100,
            trades: int = 1) -> Bar:
    return Bar.objects.create(
        instrument=instrument, start=datetime.fromtimestamp(T0 + 60 * minute, tz=UTC),
        open=Decimal(o), high=Decimal(h), low=Decimal(lo), close=Decimal(c),
        volume=volume, trades=trades,
    )


@pytest.fixture
def instruments(transactional_db) -> Callable[..., Instrument]:
    """An empty instrument table (the data migration's rows removed); returns ``add_instrument``."""
    Instrument.objects.all().delete()
    return add_instrument


