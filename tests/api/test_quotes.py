"""GET /api/quotes/ and /api/quotes/{symbol}/: latest quotes, read from the quote store."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.api.conftest import PutQuote

LIST = "/api/quotes/"


@pytest.fixture
def quoted(universe: dict, put_quote: PutQuote) -> dict[str, dict]:
    """Quotes for AAPL, EUR/USD and the halted BTC-USD; MSFT has none yet."""
    return {
        "AAPL": put_quote("AAPL", 7),
        "EUR/USD": put_quote("EUR/USD", 3, bid=1.0849, ask=1.0851),
        "BTC-USD": put_quote("BTC-USD", 2, bid=91000.0, ask=91000.5),
    }


def test_quotes_come_back_in_the_order_asked(api: APIClient, quoted: dict) -> None:
    response = api.get(LIST, {"symbols": "EUR/USD,AAPL"})
    assert response.status_code == 200
    assert response.json() == [quoted["EUR/USD"], quoted["AAPL"]]


def test_a_quote_is_the_quote_message_less_type(api: APIClient, quoted: dict) -> None:
    (quote,) = api.get(LIST, {"symbols": "AAPL"}).json()
    assert quote == {
        "symbol": "AAPL",
        "seq": 7,
        "bid": 189.23,
        "ask": 189.25,
        "bid_size": 300,
        "ask_size": 200,
        "last": 189.23,
        "last_size": 100,
        "volume": 1_234_500,
        "ts": 1_764_000_000_123_463,
    }


def test_symbols_are_case_insensitive_and_duplicates_removed(api: APIClient, quoted: dict) -> None:
    response = api.get(LIST, {"symbols": "aapl, eur/usd,AAPL,Eur/Usd"})
    assert [q["symbol"] for q in response.json()] == ["AAPL", "EUR/USD"]


def test_repeated_symbols_parameters_are_joined(api: APIClient, quoted: dict) -> None:
    response = api.get(f"{LIST}?symbols=AAPL&symbols=EUR%2FUSD")
    assert [q["symbol"] for q in response.json()] == ["AAPL", "EUR/USD"]


def test_the_newest_saved_quote_wins(api: APIClient, quoted: dict, put_quote: PutQuote) -> None:
    newer = put_quote("AAPL", 8, bid=190.0, ask=190.02)
    assert api.get(LIST, {"symbols": "AAPL"}).json() == [newer]


def test_unknown_symbol_in_query_is_400_naming_it(api: APIClient, quoted: dict) -> None:
    response = api.get(LIST, {"symbols": "AAPL,NOPE"})
    assert response.status_code == 400
    assert response.json() == {"detail": "unknown symbol(s): NOPE", "symbols": ["NOPE"]}


def test_every_unknown_symbol_is_named_in_request_order(api: APIClient, quoted: dict) -> None:
    response = api.get(LIST, {"symbols": "zz,AAPL,yy,EUR/,zz"})
    assert response.status_code == 400
    assert response.json() == {
        "detail": "unknown symbol(s): ZZ, YY, EUR/",
        "symbols": ["ZZ", "YY", "EUR/"],
    }


@pytest.mark.parametrize("junk", ["A\x00B", "x" * 300, "WITH SPACE", "ÄÖÜ"])
def test_impossible_symbols_are_unknown_not_errors(api: APIClient, quoted: dict, junk: str) -> None:
    response = api.get(LIST, {"symbols": junk})
    assert response.status_code == 400
    assert response.json()["symbols"] == [junk.upper()]


@pytest.mark.parametrize("value", ["", ",", " , ,"])
def test_an_empty_symbols_list_is_400(api: APIClient, quoted: dict, value: str) -> None:
    response = api.get(LIST, {"symbols": value})
    assert response.status_code == 400
    assert "symbols" in response.json()["detail"]


def test_a_known_symbol_without_a_quote_is_left_out(api: APIClient, quoted: dict) -> None:
    response = api.get(LIST, {"symbols": "MSFT,AAPL"})
    assert response.status_code == 200
    assert [q["symbol"] for q in response.json()] == ["AAPL"]


def test_a_halted_instrument_asked_for_by_name_shows_its_last_quote(
    api: APIClient, quoted: dict
) -> None:
    assert api.get(LIST, {"symbols": "BTC-USD"}).json() == [quoted["BTC-USD"]]


def test_without_symbols_every_active_instrument_with_a_quote_is_listed(
    api: APIClient, quoted: dict
) -> None:
    response = api.get(LIST)
    assert response.status_code == 200
    # By symbol; BTC-USD is halted and MSFT has no quote yet.
    assert response.json() == [quoted["AAPL"], quoted["EUR/USD"]]


def test_an_empty_store_gives_an_empty_list(api: APIClient, universe: dict) -> None:
    assert api.get(LIST).json() == []


def test_quotes_are_read_from_the_store_not_the_database(
    api: APIClient, quoted: dict, django_assert_max_num_queries
) -> None:
    # One query for the symbols (plus the token lookup); quotes are not in the DB.
    with django_assert_max_num_queries(2):
        assert len(api.get(LIST, {"symbols": "AAPL,EUR/USD"}).json()) == 2


@pytest.mark.parametrize("path", ["/api/quotes/EUR/USD/", "/api/quotes/EUR%2FUSD/"])
def test_quote_detail_works_for_a_slash_symbol_in_both_forms(
    api: APIClient, quoted: dict, path: str
) -> None:
    response = api.get(path)
    assert response.status_code == 200
    assert response.json() == quoted["EUR/USD"]


def test_quote_detail_is_case_insensitive(api: APIClient, quoted: dict) -> None:
    assert api.get("/api/quotes/aapl/").json() == quoted["AAPL"]


def test_quote_detail_of_an_unknown_symbol_is_404(api: APIClient, quoted: dict) -> None:
    response = api.get("/api/quotes/NOPE/")
    assert response.status_code == 404
    assert response.json() == {"detail": "unknown symbol: NOPE"}


def test_quote_detail_of_a_symbol_with_no_quote_yet_is_404_saying_so(
    api: APIClient, quoted: dict
) -> None:
    response = api.get("/api/quotes/MSFT/")
    assert response.status_code == 404
    assert response.json() == {"detail": "no quote yet for MSFT"}


@pytest.mark.parametrize("path", [LIST, "/api/quotes/AAPL/"])
def test_anonymous_quote_reads_are_401(anon: APIClient, quoted: dict, path: str) -> None:
    response = anon.get(path)
    assert response.status_code == 401
    assert response.json()["detail"]
