"""GET /api/instruments/ and /api/instruments/{symbol}/."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from feeds.models import Instrument
from tests.api.conftest import INSTRUMENT_DEFAULTS, MakeInstrument

LIST = "/api/instruments/"


def symbols_of(response) -> list[str]:
    return [row["symbol"] for row in response.json()["results"]]


def test_list_shows_every_instrument_by_symbol(api: APIClient, universe: dict) -> None:
    response = api.get(LIST)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 4
    assert body["next"] is None
    assert body["previous"] is None
    assert symbols_of(response) == ["AAPL", "BTC-USD", "EUR/USD", "MSFT"]


def test_instrument_fields_are_the_contracts_with_exact_decimal_strings(
    api: APIClient, universe: dict
) -> None:
    response = api.get("/api/instruments/EUR/USD/")
    assert response.status_code == 200
    assert response.json() == {
        "symbol": "EUR/USD",
        "name": "Euro / US Dollar",
        "exchange": "FXALL",
        "asset_class": "fx",
        "currency": "USD",
        "tick_size": "0.0001",
        "lot_size": 1000,
        "reference_price": "1.0850",
        "volatility": 0.07,
        "quote_rate": 10.0,
        "active": True,
    }


@pytest.mark.parametrize(
    ("tick", "price", "shown_tick", "shown_price"),
    [
        ("0.01", "278.5", "0.01", "278.50"),
        ("1", "91000", "1", "91000"),
        ("100", "91000", "100", "91000"),
        ("0.5", "91000.5", "0.5", "91000.5"),
        ("0.01", "1.23456", "0.01", "1.23456"),  # off the grid: every digit kept
        ("0.0000000001", "0.0000000005", "0.0000000001", "0.0000000005"),
    ],
)
def test_decimals_are_shown_exactly_on_the_tick_grid(
    api: APIClient,
    make_instrument: MakeInstrument,
    tick: str,
    price: str,
    shown_tick: str,
    shown_price: str,
) -> None:
    make_instrument("X", tick_size=Decimal(tick), reference_price=Decimal(price))
    body = api.get("/api/instruments/X/").json()
    assert (body["tick_size"], body["reference_price"]) == (shown_tick, shown_price)


def test_detail_matches_the_symbol_case_insensitively(api: APIClient, universe: dict) -> None:
    response = api.get("/api/instruments/aapl/")
    assert response.status_code == 200
    assert response.json()["symbol"] == "AAPL"


@pytest.mark.parametrize("path", ["/api/instruments/EUR/USD/", "/api/instruments/EUR%2FUSD/"])
def test_a_symbol_with_a_slash_works_plain_and_percent_encoded(
    api: APIClient, universe: dict, path: str
) -> None:
    response = api.get(path)
    assert response.status_code == 200
    assert response.json()["symbol"] == "EUR/USD"


def test_lower_case_slash_symbol_is_found(api: APIClient, universe: dict) -> None:
    assert api.get("/api/instruments/eur%2fusd/").json()["symbol"] == "EUR/USD"


@pytest.mark.parametrize(
    "path",
    [
        "/api/instruments/NOPE/",
        "/api/instruments/EUR/",
        "/api/instruments/EUR/USD/X/",
        "/api/instruments/%00/",
        "/api/instruments/" + "A" * 300 + "/",
    ],
)
def test_unknown_instrument_is_404_json(api: APIClient, universe: dict, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert "unknown symbol" in response.json()["detail"]


def test_detail_without_trailing_slash_redirects_to_it(api: APIClient, universe: dict) -> None:
    response = api.get("/api/instruments/EUR/USD")
    assert response.status_code == 301
    assert response["Location"] == "/api/instruments/EUR/USD/"


def test_list_is_paginated_with_page_size(api: APIClient, universe: dict) -> None:
    first = api.get(LIST, {"page_size": 3}).json()
    assert first["count"] == 4
    assert [row["symbol"] for row in first["results"]] == ["AAPL", "BTC-USD", "EUR/USD"]
    assert first["next"].endswith("page=2&page_size=3")
    second = api.get(first["next"]).json()
    assert [row["symbol"] for row in second["results"]] == ["MSFT"]
    assert second["next"] is None


def test_a_page_past_the_end_is_404_json(api: APIClient, universe: dict) -> None:
    response = api.get(LIST, {"page": 9})
    assert response.status_code == 404
    assert response.json()["detail"]


def test_pages_hold_100_by_default_and_at_most_1000(
    api: APIClient, make_instrument: MakeInstrument
) -> None:
    Instrument.objects.bulk_create(
        Instrument(symbol=f"S{i:04d}", **INSTRUMENT_DEFAULTS) for i in range(1001)
    )
    assert len(api.get(LIST).json()["results"]) == 100
    assert len(api.get(LIST, {"page_size": 5000}).json()["results"]) == 1000


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("apple", ["AAPL"]),
        ("APPLE", ["AAPL"]),
        ("eur/", ["EUR/USD"]),
        ("usd", ["BTC-USD", "EUR/USD"]),  # symbol or name
        ("dollar", ["BTC-USD", "EUR/USD"]),
        ("", ["AAPL", "BTC-USD", "EUR/USD", "MSFT"]),
        ("100%", []),
        ("a_b", []),  # LIKE wildcards are matched literally
        ("'; DROP TABLE feeds_instrument; --", []),
        ("zzz", []),
    ],
)
def test_search_matches_symbol_or_name_case_insensitively(
    api: APIClient, universe: dict, search: str, expected: list[str]
) -> None:
    response = api.get(LIST, {"search": search})
    assert response.status_code == 200
    assert symbols_of(response) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"asset_class": "fx"}, ["EUR/USD"]),
        ({"asset_class": "equity", "search": "micro"}, ["MSFT"]),
        ({"active": "false"}, ["BTC-USD"]),
        ({"active": "true"}, ["AAPL", "EUR/USD", "MSFT"]),
        ({}, ["AAPL", "BTC-USD", "EUR/USD", "MSFT"]),
    ],
)
def test_asset_class_and_active_filter_the_list(
    api: APIClient, universe: dict, params: dict, expected: list[str]
) -> None:
    assert symbols_of(api.get(LIST, params)) == expected


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"asset_class": "bonds"}, "asset_class"),
        ({"active": "maybe"}, "active"),
        ({"search": "x" * 101}, "search"),
        ({"search": "a\x00b"}, "search"),
    ],
)
def test_an_invalid_filter_is_400_naming_it(
    api: APIClient, universe: dict, params: dict, field: str
) -> None:
    response = api.get(LIST, params)
    assert response.status_code == 400
    body = response.json()
    assert field in body
    assert field in body["detail"]


@pytest.mark.parametrize("path", [LIST, "/api/instruments/AAPL/"])
def test_anonymous_is_401_json(anon: APIClient, universe: dict, path: str) -> None:
    response = anon.get(path)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["detail"]


def test_a_bad_token_is_401(anon: APIClient, universe: dict) -> None:
    anon.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    response = anon.get(LIST)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


def test_a_session_user_may_read(anon: APIClient, universe: dict, user) -> None:
    anon.force_login(user)
    assert anon.get(LIST).status_code == 200


def test_writes_are_405_json(api: APIClient, universe: dict) -> None:
    response = api.post(LIST, {"symbol": "NEW"}, format="json")
    assert response.status_code == 405
    assert response.json()["detail"]
