"""Entitlement fixtures: instruments on several venues and asset classes, users, grants."""

from __future__ import annotations

from decimal import Decimal

import pytest
from channels.db import database_sync_to_async

from feeds.models import Entitlement, Instrument
from tests.browser.conftest import chromium, context  # noqa: F401 (fixtures, test_browser)
from tests.consumer.conftest import (  # noqa: F401 - fixtures
    Clock,
    alice,
    connect,
    make_user,
    ticker,
)
from tests.redis.conftest import redis_url  # noqa: F401 (fixture, test_live)

# symbol, exchange, asset class, tick size, reference price
INSTRUMENTS = [
    ("AAPL", "XNAS", "equity", "0.01", "190.00"),
    ("MSFT", "XNAS", "equity", "0.01", "410.00"),
    ("JPM", "XNYS", "equity", "0.01", "310.00"),
    ("EUR/USD", "FXALL", "fx", "0.00001", "1.08000"),
    ("BTC-USD", "CBSE", "crypto", "0.01", "97000.00"),
]


@pytest.fixture
def instruments(transactional_db):
    """Exactly these instruments (the data migration's defaults removed)."""
    Instrument.objects.all().delete()
    return {
        symbol: Instrument.objects.create(
            symbol=symbol, name=symbol, exchange=exchange, asset_class=asset, currency="USD",
            tick_size=Decimal(tick), lot_size=1, reference_price=Decimal(price),
            volatility=0.3, quote_rate=5.0, active=True,
        )
        for symbol, exchange, asset, tick, price in INSTRUMENTS
    }


@pytest.fixture
def entitlements_on(settings):
    settings.FEED_ENTITLEMENTS = True
    settings.FEED_AUTH_RECHECK_S = 3600  # only the broadcast can act in time, unless a test says so


@pytest.fixture
def user(transactional_db, instruments):
    """alice: entitled to XNAS and to FX, nothing else."""
    u = make_user("alice")
    Entitlement.objects.create(user=u, exchange="XNAS")
    Entitlement.objects.create(user=u, asset_class="fx")
    return u


grant = database_sync_to_async(lambda **fields: Entitlement.objects.create(**fields))
revoke = database_sync_to_async(lambda **match: Entitlement.objects.filter(**match).delete())
