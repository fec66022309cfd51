"""The instrument admin: list, live columns, search, filters, validation, halt / resume,
delete, CSV import and export."""

from __future__ import annotations

import asyncio
import csv
import html
import io
import re
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from feeds.core import events
from feeds.core.groups import TICKER_CONTROL_GROUP
from feeds.models import Instrument
from feeds.publish.build import get_store
from tests.api.conftest import MakeInstrument, PutQuote
from tests.timeouts import timeout

CHANGELIST = "/admin/feeds/instrument/"
ADD = "/admin/feeds/instrument/add/"
LIVE = "/admin/feeds/instrument/live/"
IMPORT = "/admin/feeds/instrument/import/"
PROCESS_IMPORT = "/admin/feeds/instrument/process_import/"
EXPORT = "/admin/feeds/instrument/export/"
MINUS = "\u2212"

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
        ({"status": "halted"}, ["BTC-USD"]),
        ({"status": "trading"}, ["AAPL", "EUR/USD", "MSFT"]),
        ({"status": "trading", "exchange": "XNAS", "q": "micro"}, ["MSFT"]),
    ],
)
def test_changelist_filters_by_asset_class_exchange_and_status(
    admin_client: Client, universe: dict, params: dict, expected: list[str]
) -> None:
    assert changelist_symbols(admin_client.get(CHANGELIST, params)) == expected


def test_the_filters_offer_asset_class_exchange_and_status(
    admin_client: Client, universe: dict
) -> None:
    page = admin_client.get(CHANGELIST).content.decode()
    for title in ("By asset class", "By exchange", "By status"):
        assert title in page
    for link in ("?status=trading", "?status=halted", "?exchange=FXALL", "?asset_class__exact=fx"):
        assert f'href="{link}"' in page, link


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
    # To the instrument's tick, not the column's ten places: 0.0001 and 1.0850.
    assert (initial["tick_size"], initial["reference_price"]) == ("0.0001", "1.0850")
    assert 'value="1.0850"' in response.content.decode()


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


def test_halting_a_changelist_filtered_on_trading_counts_correctly(
    admin_client: Client, universe: dict
) -> None:
    response = admin_client.post(
        f"{CHANGELIST}?status=trading",
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


# --- the changelist's columns: precision and live quotes ---------------------------------


class _Rows(HTMLParser):
    """The changelist table as ``{symbol: {column: text}}``, columns named by their CSS class."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.column: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "tr":
            self.rows.append({})
        elif tag in ("td", "th") and self.rows:
            named = [c[len("field-"):] for c in classes if c.startswith("field-")]
            self.column = named[0] if named else None
            if self.column:
                self.rows[-1][self.column] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self.column = None

    def handle_data(self, data: str) -> None:
        if self.column and self.rows:
            self.rows[-1][self.column] += data.strip()


def table(response) -> dict[str, dict[str, str]]:
    page = response.content.decode()
    parser = _Rows()
    start = page.index('<table id="result_list"')
    parser.feed(page[start : page.index("</table>", start)])
    return {row["symbol"]: row for row in parser.rows if "symbol" in row}


def test_the_changelist_shows_prices_at_each_instruments_tick(
    admin_client: Client, universe: dict, put_quote: PutQuote
) -> None:
    put_quote("AAPL", 1, bid=279.1, ask=279.12)  # last = bid
    put_quote("EUR/USD", 1, bid=1.0837, ask=1.0838)
    put_quote("BTC-USD", 1, bid=91234.5, ask=91235.0)
    rows = table(admin_client.get(CHANGELIST))
    shown = {
        symbol: tuple(row[c] for c in ("tick", "reference", "last", "change", "change_pct"))
        for symbol, row in rows.items()
    }
    assert shown == {
        "AAPL": ("0.01", "278.50", "279.10", "+0.60", "+0.22%"),
        "EUR/USD": ("0.0001", "1.0850", "1.0837", f"{MINUS}0.0013", f"{MINUS}0.12%"),
        "BTC-USD": ("0.5", "91000.0", "91234.5", "+234.5", "+0.26%"),
        "MSFT": ("0.01", "480.20", "—", "—", "—"),  # no quote yet
    }
    assert {s: row["status"] for s, row in rows.items()} == {
        "AAPL": "Trading", "EUR/USD": "Trading", "MSFT": "Trading", "BTC-USD": "Halted"
    }
    assert (rows["AAPL"]["lot"], rows["AAPL"]["ccy"], rows["EUR/USD"]["asset"]) == (
        "100", "USD", "FX"
    )
    page = admin_client.get(CHANGELIST).content.decode()
    assert "0000000" not in page  # no column shown to its ten stored places


def test_the_changelist_reads_the_store_once_for_the_whole_page(
    admin_client: Client, universe: dict, put_quote: PutQuote, monkeypatch
) -> None:
    for symbol in universe:
        put_quote(symbol, 1)
    store = get_store()
    reads: list[list[str]] = []
    latest = store.latest

    async def counted(symbols):
        reads.append(sorted(symbols))
        return await latest(symbols)

    monkeypatch.setattr(store, "latest", counted)
    admin_client.get(CHANGELIST, {"exchange": "XNAS"})
    assert reads == [["AAPL", "MSFT"]]  # the rows shown, in one read


def test_the_live_view_answers_the_rows_asked_for_as_they_are_now(
    admin_client: Client, universe: dict, put_quote: PutQuote
) -> None:
    aapl, btc = universe["AAPL"], universe["BTC-USD"]
    put_quote("AAPL", 1, bid=278.0)
    first = admin_client.get(LIVE, {"ids": f"{aapl.pk},{btc.pk}"})
    assert first.status_code == 200
    assert first["Cache-Control"].startswith("max-age=0")
    assert first.json()["rows"] == {
        str(aapl.pk): {
            "last": "278.00", "change": f"{MINUS}0.50", "change_pct": f"{MINUS}0.18%",
            "direction": "down", "status": "trading", "status_label": "Trading",
        },
        str(btc.pk): {
            "last": "—", "change": "—", "change_pct": "—",
            "direction": "flat", "status": "halted", "status_label": "Halted",
        },
    }
    put_quote("AAPL", 2, bid=278.57)
    Instrument.objects.filter(pk=aapl.pk).update(active=False)
    row = admin_client.get(LIVE, {"ids": str(aapl.pk)}).json()["rows"][str(aapl.pk)]
    assert (row["last"], row["change"], row["status"]) == ("278.57", "+0.07", "halted")


def test_the_live_view_ignores_what_is_not_an_id(admin_client: Client, universe: dict) -> None:
    response = admin_client.get(LIVE, {"ids": "x,,-1,99999"})
    assert response.status_code == 200
    assert response.json() == {"rows": {}}


def test_the_live_view_is_for_staff_who_may_view_instruments(universe: dict) -> None:
    anonymous = Client().get(LIVE, {"ids": str(universe["AAPL"].pk)})
    assert anonymous.status_code == 302
    assert "/admin/login/" in anonymous["Location"]
    staff = User.objects.create_user("clerk", password="pw-123456789", is_staff=True)
    clerk = Client()
    clerk.force_login(staff)
    assert clerk.get(LIVE, {"ids": str(universe["AAPL"].pk)}).status_code == 403


def test_the_changelist_page_loads_the_live_script_and_no_inline_one(
    admin_client: Client, universe: dict
) -> None:
    page = admin_client.get(CHANGELIST).content.decode()
    assert re.search(r'<script src="[^"]*/feeds/admin_live\.js" defer>', page)
    assert f'data-url="{LIVE}"' in page
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    assert inline == []
    assert re.search(r'<label for="searchbar"><img [^>]*alt="Search"', page)
    assert re.search(r"<label>Action: <select", page)


# --- CSV import and export --------------------------------------------------------------

HEADER = "symbol,name,exchange,asset_class,currency,tick_size,lot_size,reference_price,"
HEADER += "volatility,quote_rate,active"


def csv_file(*rows: str) -> SimpleUploadedFile:
    text = "\n".join((HEADER, *rows)) + "\n"
    return SimpleUploadedFile("instruments.csv", text.encode(), content_type="text/csv")


NVDA = "nvda,NVIDIA Corporation,XNAS,equity,usd,0.01,100,181.40,0.5,8,1"
AMZN = "AMZN,Amazon.com Inc.,XNAS,equity,USD,0.01,100,232.10,0.3,8,1"
TSLA = "TSLA,Tesla Inc.,XNAS,equity,USD,0.01,100,395.20,0.6,8,0"
BAD_PRICE = "META,Meta Platforms,XNAS,equity,USD,0.01,100,0.005,0.3,8,1"


def preview(client: Client, upload: SimpleUploadedFile):
    """The first step: upload, dry run, a preview or the errors. Saves nothing."""
    return client.post(IMPORT, {"format": "0", "resource": "0", "import_file": upload})


def text_of(response) -> str:
    return re.sub(r"\s+", " ", html.unescape(response.content.decode()))


def confirm(client: Client, previewed):
    form = previewed.context["confirm_form"]
    assert form is not None, previewed.content.decode()[-2000:]
    return client.post(PROCESS_IMPORT, dict(form.initial), follow=True)


def control_messages() -> tuple[Any, str]:
    """A channel in the ticker's control group: where instrument changes are announced."""
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(TICKER_CONTROL_GROUP, channel)
    return layer, channel


def received(layer: Any, channel: str) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        return await asyncio.wait_for(layer.receive(channel), timeout(5))

    return async_to_sync(first)()


def test_importing_a_csv_previews_then_saves_every_row_and_tells_the_feed(
    admin_client: Client, universe: dict, django_capture_on_commit_callbacks
) -> None:
    update_aapl = "aapl,Apple Inc.,XNAS,equity,USD,0.01,100,280.00,0.25,8,1"
    previewed = preview(admin_client, csv_file(NVDA, AMZN, update_aapl))
    assert previewed.status_code == 200
    assert not Instrument.objects.filter(symbol__in=["NVDA", "AMZN"]).exists()  # a dry run
    shown = previewed.content.decode()
    assert "<ins>181.40</ins>" in shown  # what changes, marked without inline styles (CSP)
    assert re.findall(r"\sstyle=", shown) == []
    layer, channel = control_messages()
    with django_capture_on_commit_callbacks(execute=True):
        done = confirm(admin_client, previewed)
    assert done.redirect_chain[-1][0] == CHANGELIST
    assert "Import finished" in " ".join(messages_of(done))
    nvda = Instrument.objects.get(symbol="NVDA")
    assert (nvda.currency, nvda.reference_price, nvda.active) == ("USD", Decimal("181.40"), True)
    assert Instrument.objects.get(symbol="AAPL").reference_price == Decimal("280.00")
    assert Instrument.objects.count() == 6
    assert received(layer, channel)["type"] == events.INSTRUMENTS_CHANGED
    logged = LogEntry.objects.filter(object_repr__in=["NVDA", "AMZN", "AAPL"])
    assert sorted((e.object_repr, e.action_flag) for e in logged) == [
        ("AAPL", CHANGE), ("AMZN", ADDITION), ("NVDA", ADDITION)
    ]


def test_a_bad_third_row_refuses_the_file_naming_the_row_and_saves_nothing(
    admin_client: Client, universe: dict
) -> None:
    response = preview(admin_client, csv_file(NVDA, AMZN, BAD_PRICE, TSLA))
    assert response.status_code == 200
    assert response.context.get("confirm_form") is None  # nothing to confirm
    page = text_of(response)
    assert "Nothing was imported" in page
    assert "Row 3 (line 4 of the file): reference_price: " in page
    assert "The reference price must be at least one tick." in page
    assert re.findall(r"Row \d+ \(", page) == ["Row 3 ("]  # the one bad row, alone
    assert not Instrument.objects.filter(symbol__in=["NVDA", "AMZN", "META", "TSLA"]).exists()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("ABC,Abc,XNAS,equity,USD,abc,100,10,0.3,8,1", "tick_size: Enter a number."),
        ("ABC,Abc,XNAS,equity,USD,0.01,100,NaN,0.3,8,1", "reference_price: Enter a number."),
        ("ABC,Abc,XNAS,equity,USD,0.01,100,10,inf,8,1", "volatility: Enter a number."),
        ("ABC,Abc,XNAS,equity,USD,0.01,100,10,0.3,8,maybe", "active: Use 1 or 0"),
        ("ABC,Abc,XNAS,bonds,USD,0.01,100,10,0.3,8,1", "asset_class: Value 'bonds'"),
        ("A B,Abc,XNAS,equity,USD,0.01,100,10,0.3,8,1", "symbol: A symbol is 1 to 20"),
    ],
)
def test_every_bad_value_is_named_with_its_row_and_field(
    admin_client: Client, universe: dict, row: str, message: str
) -> None:
    page = text_of(preview(admin_client, csv_file(NVDA, row)))
    assert f"Row 2 (line 3 of the file): {message}" in page
    assert not Instrument.objects.filter(symbol="NVDA").exists()


def test_a_row_that_fails_at_confirmation_rolls_back_the_whole_file(
    admin_client: Client, universe: dict, django_capture_on_commit_callbacks
) -> None:
    """Between the preview and the confirmation a row can become bad (here: the file
    waiting in the cache is swapped): the rows before it are not kept either."""
    from import_export.tmp_storages import CacheStorage

    previewed = preview(admin_client, csv_file(NVDA, AMZN, TSLA))
    form = dict(previewed.context["confirm_form"].initial)
    CacheStorage(name=form["import_file_name"]).save(
        "\n".join((HEADER, NVDA, AMZN, BAD_PRICE)) + "\n"
    )
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        done = admin_client.post(PROCESS_IMPORT, form, follow=True)
    assert "Nothing was imported: row(s) 3 failed" in " ".join(messages_of(done))
    assert not Instrument.objects.filter(symbol__in=["NVDA", "AMZN", "META"]).exists()
    assert callbacks == []  # and the feed is told of nothing
    assert not LogEntry.objects.filter(object_repr__in=["NVDA", "AMZN"]).exists()


def exported(client: Client, **params: str) -> list[dict[str, str]]:
    response = client.post(f"{EXPORT}?{'&'.join(f'{k}={v}' for k, v in params.items())}",
                           {"format": "0", "resource": "0"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_exporting_writes_every_instrument_to_its_tick(
    admin_client: Client, universe: dict
) -> None:
    rows = {row["symbol"]: row for row in exported(admin_client)}
    assert list(rows["AAPL"]) == HEADER.split(",")
    eur = rows["EUR/USD"]
    assert (eur["tick_size"], eur["reference_price"]) == ("0.0001", "1.0850")
    assert (rows["AAPL"]["tick_size"], rows["AAPL"]["reference_price"]) == ("0.01", "278.50")
    assert (rows["BTC-USD"]["active"], rows["AAPL"]["active"]) == ("0", "1")


def test_an_export_imported_back_changes_nothing(
    admin_client: Client, universe: dict, django_capture_on_commit_callbacks
) -> None:
    rows = exported(admin_client)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=HEADER.split(","), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    upload = SimpleUploadedFile("back.csv", text.getvalue().encode(), content_type="text/csv")
    before = list(Instrument.objects.values_list("symbol", "updated_at"))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        confirm(admin_client, preview(admin_client, upload))
    assert list(Instrument.objects.values_list("symbol", "updated_at")) == before
    assert callbacks == []


def test_importing_needs_add_and_change_rights_exporting_only_view(universe: dict) -> None:
    clerk = User.objects.create_user("clerk", password="pw-123456789", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_instrument"))
    http = Client()
    http.force_login(clerk)
    assert http.get(IMPORT).status_code == 403
    assert preview(http, csv_file(NVDA)).status_code == 403
    assert not Instrument.objects.filter(symbol="NVDA").exists()
    assert len(exported(http)) == 4
    page = http.get(CHANGELIST).content.decode()
    assert f'href="{EXPORT}' in page
    assert f'href="{IMPORT}"' not in page


@pytest.mark.parametrize("url", [CHANGELIST, IMPORT, EXPORT, f"{CHANGELIST}?status=halted"])
def test_the_operator_pages_need_nothing_the_csp_refuses(
    admin_client: Client, universe: dict, url: str
) -> None:
    """No inline script, event handler or style attribute (script-src / style-src 'self')."""
    page = admin_client.get(url).content.decode()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []
    assert re.findall(r"\son[a-z]+=", page) == []
    assert re.findall(r"\sstyle=", page) == []
