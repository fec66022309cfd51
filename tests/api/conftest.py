"""Fixtures for the REST API, health check, admin and feeduser tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.core.cache import cache
from rest_framework.test import APIClient

from feeds.auth import issue_token
from feeds.core.engine import Quote
from feeds.core.protocol import encode_quote
from feeds.models import Instrument
from feeds.publish.build import get_store, reset_store


@pytest.fixture(autouse=True)
def _api_settings(settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.api.urls"
    # WhiteNoise warns (an error here) when STATIC_ROOT does not exist yet, as on
    # a fresh checkout before collectstatic; these tests serve no static files.
    settings.STATIC_ROOT = None
    # Password hashing is not under test; the real hasher costs ~100 ms a call.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    """Failed-login counters and tickets (Django's cache) start empty in every test."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def fresh_store() -> Iterator[None]:
    """Each test starts with an empty process-local quote store and leaves none behind."""
    reset_store()
    yield
    reset_store()


INSTRUMENT_DEFAULTS: dict[str, Any] = {
    "name": "Apple Inc.",
    "exchange": "XNAS",
    "asset_class": "equity",
    "currency": "USD",
    "tick_size": Decimal("0.01"),
    "lot_size": 100,
    "reference_price": Decimal("278.50"),
    "volatility": 0.25,
    "quote_rate": 8.0,
    "active": True,
}

MakeInstrument = Callable[..., Instrument]


@pytest.fixture
def make_instrument(db: None) -> MakeInstrument:
    """Build instruments on an empty table (whatever a data migration loaded is removed)."""
    Instrument.objects.all().delete()

    def make(symbol: str, **fields: Any) -> Instrument:
        return Instrument.objects.create(symbol=symbol, **{**INSTRUMENT_DEFAULTS, **fields})

    return make


@pytest.fixture
def universe(make_instrument: MakeInstrument) -> dict[str, Instrument]:
    """A small universe: two equities, one FX pair with a slash, one halted crypto pair."""
    return {
        "AAPL": make_instrument("AAPL"),
        "MSFT": make_instrument(
            "MSFT", name="Microsoft Corporation", reference_price=Decimal("480.2")
        ),
        "EUR/USD": make_instrument(
            "EUR/USD",
            name="Euro / US Dollar",
            exchange="FXALL",
            asset_class="fx",
            tick_size=Decimal("0.0001"),
            lot_size=1000,
            reference_price=Decimal("1.085"),
            volatility=0.07,
            quote_rate=10.0,
        ),
        "BTC-USD": make_instrument(
            "BTC-USD",
            name="Bitcoin / US Dollar",
            exchange="CRYPTO",
            asset_class="crypto",
            tick_size=Decimal("0.5"),
            lot_size=1,
            reference_price=Decimal("91000"),
            volatility=0.6,
            quote_rate=5.0,
            active=False,
        ),
    }


@pytest.fixture
def user(db: None) -> User:
    return User.objects.create_user("alice", password="correct horse battery")


@pytest.fixture
def token(user: User) -> Any:
    """A knox token row of alice's, with the token itself (shown once at issue) as ``.key``."""
    key, row = issue_token(user)
    row.key = key
    return row


@pytest.fixture
def api(token: Any) -> APIClient:
    """An API client that sends alice's token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


PutQuote = Callable[..., dict[str, Any]]


@pytest.fixture
def put_quote(fresh_store: None) -> PutQuote:
    """Store a quote as the ticker would; returns the object the REST API should show."""

    def put(symbol: str, seq: int, *, bid: float = 189.23, ask: float = 189.25) -> dict[str, Any]:
        quote = Quote(
            symbol=symbol,
            bid=bid,
            ask=ask,
            bid_size=300,
            ask_size=200,
            last=bid,
            last_size=100,
            volume=1_234_500,
            ts=1_764_000_000_123_456 + seq,
        )
        text = encode_quote(quote, seq)
        async_to_sync(get_store().save)([(symbol, seq, text)])
        fields: dict[str, Any] = json.loads(text)
        del fields["type"]
        return fields

    return put
