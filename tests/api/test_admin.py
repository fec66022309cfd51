"""The instrument admin: list, search, filters, validation, halt / resume, delete."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from feeds.models import Instrument
from tests.api.conftest import MakeInstrument

CHANGELIST = "/admin/feeds/instrument/"
ADD = "/admin/feeds/instrument/add/"

VALID_FORM = {
    "symbol": "nvda",
    "name": "NVIDIA Corporation",
    "exchange": "XNAS",
    "asset_class": "equity",
    "currency": "usd",
    "tick_size": "0.01",
    "lot_size": "100",
    "reference_price": "181.40",
    "volatility": "0.5",
    "quote_rate": "8",
    "active": "on",
}


def form_errors(response) -> dict[str, list[str]]:
    assert response.status_code == 200, "the form was accepted"
    form = response.context["adminform"].form
    return {field: list(errors) for field, errors in form.errors.items()}


def changelist_symbols(response) -> list[str]:
    return [obj.symbol for obj in response.context["cl"].result_list]


def test_changelist_shows_every_instrument(admin_client: Client, universe: dict) -> None:
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert changelist_symbols(response) == ["AAPL", "BTC-USD", "EUR/USD", "MSFT"]
    assert b"Halt selected instruments" in response.content
    assert b"Resume selected instruments" in response.content


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("apple", ["AAPL"]),
        ("eur/usd", ["EUR/USD"]),
        ("fxall", ["EUR/USD"]),
        ("xnas", ["AAPL", "MSFT"]),
    ],
)
def test_changelist_searches_symbol_name_and_exchange(
    admin_client: Client, universe: dict, query: str, expected: list[str]
) -> None:
    assert changelist_symbols(admin_client.get(CHANGELIST, {"q": query})) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"asset_class__exact": "fx"}, ["EUR/USD"]),
        ({"exchange": "XNAS"}, ["AAPL", "MSFT"]),
        ({"active__exact": "0"}, ["BTC-USD"]),
        ({"active__exact": "1"}, ["AAPL", "EUR/USD", "MSFT"]),
    ],
)
def test_changelist_filters_by_asset_class_exchange_and_active(
    admin_client: Client, universe: dict, params: dict, expected: list[str]
) -> None:
    assert changelist_symbols(admin_client.get(CHANGELIST, params)) == expected


def test_adding_upper_cases_and_strips_symbol_and_currency(
    admin_client: Client, make_instrument: MakeInstrument
) -> None:
    response = admin_client.post(ADD, {**VALID_FORM, "symbol": "  nvda ", "currency": " usd"})
    assert response.status_code == 302, form_errors(response)
    instrument = Instrument.objects.get()
    assert (instrument.symbol, instrument.currency) == ("NVDA", "USD")
    assert instrument.reference_price == Decimal("181.40")


def test_a_lower_case_duplicate_symbol_is_refused(
    admin_client: Client, make_instrument: MakeInstrument
) -> None:
    make_instrument("NVDA")
    errors = form_errors(admin_client.post(ADD, VALID_FORM))
    assert errors == {"symbol": ["An instrument with this symbol already exists."]}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("symbol", "AA PL", "A symbol is 1 to 20 characters"),
        ("symbol", "ÄPPLE", "A symbol is 1 to 20 characters"),
        ("symbol", "A" * 21, "at most 20 characters"),
        ("symbol", "", "This field is required."),
        ("currency", "us", "ISO 4217"),
        ("currency", "usdx", "ISO 4217"),
        ("currency", "U5D", "ISO 4217"),
        ("tick_size", "0", "The tick size must be greater than zero."),
        ("tick_size", "-0.01", "The tick size must be greater than zero."),
        ("tick_size", "0.00000000001", "decimal places"),
        ("tick_size", "abc", "Enter a number."),
        ("reference_price", "0", "The reference price must be greater than zero."),
        ("reference_price", "-5", "The reference price must be greater than zero."),
        ("reference_price", "0.005", "The reference price must be at least one tick."),
        ("reference_price", "NaN", "Enter a number."),
        ("volatility", "0", "The volatility must be greater than zero."),
        ("volatility", "-0.2", "The volatility must be greater than zero."),
        ("volatility", "11", "not a market"),
        ("volatility", "inf", "Enter a number."),
        ("quote_rate", "0", "The quote rate must be greater than zero."),
        ("quote_rate", "-1", "The quote rate must be greater than zero."),
        ("quote_rate", "20000", "At most 10,000 quotes per second"),
        ("lot_size", "0", "The lot size must be at least 1."),
        ("lot_size", "-3", "The lot size must be at least 1."),
        ("lot_size", "1.5", "Enter a whole number."),
        ("asset_class", "bonds", "Select a valid choice."),
    ],
)
def test_every_invalid_value_gets_a_clear_error_on_its_field(
    admin_client: Client, make_instrument: MakeInstrument, field: str, value: str, message: str
) -> None:
    errors = form_errors(admin_client.post(ADD, {**VALID_FORM, field: value}))
    assert list(errors) == [field]
    assert any(message in error for error in errors[field]), errors
    assert not Instrument.objects.exists()


def test_editing_saves_through_the_service_with_normalised_codes(
    admin_client: Client, universe: dict
) -> None:
    aapl = universe["AAPL"]
    data: dict[str, Any] = {**VALID_FORM, "symbol": "aapl", "name": "Apple", "currency": "usd"}
    response = admin_client.post(f"{CHANGELIST}{aapl.pk}/change/", data)
    assert response.status_code == 302, form_errors(response)
    aapl.refresh_from_db()
    assert (aapl.symbol, aapl.name, aapl.currency) == ("AAPL", "Apple", "USD")


def test_change_form_of_a_slash_symbol_opens(admin_client: Client, universe: dict) -> None:
    response = admin_client.get(f"{CHANGELIST}{universe['EUR/USD'].pk}/change/")
    assert response.status_code == 200
    assert b"EUR/USD" in response.content
    initial = response.context["adminform"].form.initial
    assert (initial["tick_size"], initial["reference_price"]) == ("0.0001", "1.085")


def run_action(client: Client, action: str, instruments: list[Instrument]):
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [i.pk for i in instruments]},
        follow=True,
    )


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_halt_action_halts_the_selected_and_says_how_many(
    admin_client: Client, universe: dict
) -> None:
    selected = [universe["AAPL"], universe["MSFT"], universe["BTC-USD"]]
    response = run_action(admin_client, "halt_selected", selected)
    assert response.status_code == 200
    assert messages_of(response) == ["2 instruments halted. 1 was already halted."]
    assert set(Instrument.objects.filter(active=False).values_list("symbol", flat=True)) == {
        "AAPL",
        "MSFT",
        "BTC-USD",
    }
    assert Instrument.objects.get(symbol="EUR/USD").active


def test_resume_action_resumes_the_selected_and_says_how_many(
    admin_client: Client, universe: dict
) -> None:
    response = run_action(admin_client, "resume_selected", [universe["BTC-USD"]])
    assert messages_of(response) == ["1 instrument resumed."]
    assert Instrument.objects.get(symbol="BTC-USD").active


def test_an_action_that_changes_nothing_says_so(admin_client: Client, universe: dict) -> None:
    response = run_action(admin_client, "resume_selected", [universe["AAPL"], universe["MSFT"]])
    assert messages_of(response) == ["0 instruments resumed. 2 were already trading."]


def test_halting_a_changelist_filtered_on_active_counts_correctly(
    admin_client: Client, universe: dict
) -> None:
    response = admin_client.post(
        f"{CHANGELIST}?active__exact=1",
        {"action": "halt_selected", "_selected_action": [universe["AAPL"].pk]},
        follow=True,
    )
    assert messages_of(response) == ["1 instrument halted."]


def test_deleting_one_instrument_removes_it(admin_client: Client, universe: dict) -> None:
    response = admin_client.post(f"{CHANGELIST}{universe['AAPL'].pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Instrument.objects.filter(symbol="AAPL").exists()


def test_bulk_delete_removes_the_selected(admin_client: Client, universe: dict) -> None:
    response = admin_client.post(
        CHANGELIST,
        {
            "action": "delete_selected",
            "_selected_action": [universe["AAPL"].pk, universe["MSFT"].pk],
            "post": "yes",
        },
    )
    assert response.status_code == 302
    assert sorted(Instrument.objects.values_list("symbol", flat=True)) == ["BTC-USD", "EUR/USD"]


def test_the_token_admin_lists_tokens_by_digest_never_the_token(
    admin_client: Client, token: Any
) -> None:
    listing = admin_client.get("/admin/knox/authtoken/")
    assert listing.status_code == 200
    assert token.digest.encode() in listing.content
    assert token.key.encode() not in listing.content
    assert admin_client.get("/admin/knox/authtoken/add/").status_code == 200
