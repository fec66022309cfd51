"""The default instrument universe: 30 equities, 15 FX pairs, 15 crypto pairs.

Reference prices are rough late-2025 levels, on each instrument's tick grid.
Quote rates add up to about 295 quotes per second, which one embedded server
process carries comfortably.

Rows that already exist (matched by symbol) are left exactly as they are: an
operator's edits win over these defaults. Reversing deletes these symbols.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import migrations

EQUITY, FX, CRYPTO = "equity", "fx", "crypto"

# (symbol, name, exchange, currency, tick_size, lot_size, reference_price, volatility, quote_rate)
EQUITIES = [
    ("AAPL", "Apple Inc.", "XNAS", "USD", "0.01", 100, "278.50", 0.25, 8),
    ("MSFT", "Microsoft Corporation", "XNAS", "USD", "0.01", 100, "480.20", 0.24, 8),
    ("NVDA", "NVIDIA Corporation", "XNAS", "USD", "0.01", 100, "181.40", 0.50, 8),
    ("AMZN", "Amazon.com, Inc.", "XNAS", "USD", "0.01", 100, "229.60", 0.33, 7),
    ("GOOGL", "Alphabet Inc. Class A", "XNAS", "USD", "0.01", 100, "314.90", 0.30, 7),
    ("META", "Meta Platforms, Inc.", "XNAS", "USD", "0.01", 100, "639.30", 0.38, 6),
    ("TSLA", "Tesla, Inc.", "XNAS", "USD", "0.01", 100, "429.20", 0.60, 8),
    ("AVGO", "Broadcom Inc.", "XNAS", "USD", "0.01", 100, "381.70", 0.45, 6),
    ("NFLX", "Netflix, Inc.", "XNAS", "USD", "0.01", 100, "107.60", 0.36, 4),
    ("AMD", "Advanced Micro Devices, Inc.", "XNAS", "USD", "0.01", 100, "216.80", 0.55, 6),
    ("COST", "Costco Wholesale Corporation", "XNAS", "USD", "0.01", 100, "905.40", 0.22, 4),
    ("BRK.B", "Berkshire Hathaway Inc. Class B", "XNYS", "USD", "0.01", 100, "506.30", 0.20, 4),
    ("JPM", "JPMorgan Chase & Co.", "XNYS", "USD", "0.01", 100, "312.80", 0.26, 5),
    ("V", "Visa Inc. Class A", "XNYS", "USD", "0.01", 100, "334.50", 0.22, 4),
    ("MA", "Mastercard Incorporated Class A", "XNYS", "USD", "0.01", 100, "558.10", 0.23, 4),
    ("UNH", "UnitedHealth Group Incorporated", "XNYS", "USD", "0.01", 100, "331.20", 0.40, 4),
    ("XOM", "Exxon Mobil Corporation", "XNYS", "USD", "0.01", 100, "117.30", 0.24, 4),
    ("JNJ", "Johnson & Johnson", "XNYS", "USD", "0.01", 100, "206.70", 0.20, 4),
    ("PG", "The Procter & Gamble Company", "XNYS", "USD", "0.01", 100, "148.90", 0.20, 4),
    ("HD", "The Home Depot, Inc.", "XNYS", "USD", "0.01", 100, "356.40", 0.26, 4),
    ("KO", "The Coca-Cola Company", "XNYS", "USD", "0.01", 100, "71.20", 0.20, 4),
    ("BAC", "Bank of America Corporation", "XNYS", "USD", "0.01", 100, "53.40", 0.28, 5),
    ("ORCL", "Oracle Corporation", "XNYS", "USD", "0.01", 100, "201.90", 0.48, 5),
    ("AZN.L", "AstraZeneca PLC", "XLON", "GBP", "0.01", 1, "131.60", 0.22, 3),
    ("SHEL.L", "Shell plc", "XLON", "GBP", "0.01", 1, "27.45", 0.24, 3),
    ("HSBA.L", "HSBC Holdings plc", "XLON", "GBP", "0.01", 1, "10.62", 0.25, 3),
    ("SAP.DE", "SAP SE", "XETR", "EUR", "0.01", 1, "209.85", 0.30, 3),
    ("SIE.DE", "Siemens AG", "XETR", "EUR", "0.01", 1, "234.10", 0.27, 3),
    ("MC.PA", "LVMH Moet Hennessy Louis Vuitton SE", "XPAR", "EUR", "0.01", 1, "628.40", 0.30, 3),
    ("TTE.PA", "TotalEnergies SE", "XPAR", "EUR", "0.01", 1, "56.12", 0.24, 3),
]

# The currency of a pair is its quote (second) currency; JPY pairs quote to 3 places.
FX_PAIRS = [
    ("EUR/USD", "Euro / US Dollar", "0.00001", "1.16450", 0.07, 10),
    ("GBP/USD", "British Pound / US Dollar", "0.00001", "1.33020", 0.08, 9),
    ("USD/JPY", "US Dollar / Japanese Yen", "0.001", "155.480", 0.10, 9),
    ("USD/CHF", "US Dollar / Swiss Franc", "0.00001", "0.80530", 0.08, 6),
    ("AUD/USD", "Australian Dollar / US Dollar", "0.00001", "0.65980", 0.10, 7),
    ("USD/CAD", "US Dollar / Canadian Dollar", "0.00001", "1.39510", 0.06, 6),
    ("NZD/USD", "New Zealand Dollar / US Dollar", "0.00001", "0.57460", 0.11, 6),
    ("EUR/GBP", "Euro / British Pound", "0.00001", "0.87540", 0.05, 6),
    ("EUR/JPY", "Euro / Japanese Yen", "0.001", "181.060", 0.09, 7),
    ("GBP/JPY", "British Pound / Japanese Yen", "0.001", "206.820", 0.11, 6),
    ("EUR/CHF", "Euro / Swiss Franc", "0.00001", "0.93780", 0.06, 6),
    ("AUD/JPY", "Australian Dollar / Japanese Yen", "0.001", "102.590", 0.12, 5),
    ("USD/SEK", "US Dollar / Swedish Krona", "0.00001", "9.43120", 0.10, 5),
    ("USD/NOK", "US Dollar / Norwegian Krone", "0.00001", "10.14870", 0.11, 5),
    ("USD/SGD", "US Dollar / Singapore Dollar", "0.00001", "1.29640", 0.05, 5),
]

CRYPTOS = [
    ("BTC-USD", "Bitcoin", "0.01", "92150.00", 0.55, 6),
    ("ETH-USD", "Ether", "0.01", "3085.40", 0.70, 6),
    ("SOL-USD", "Solana", "0.01", "139.75", 0.85, 5),
    ("XRP-USD", "XRP", "0.0001", "2.0840", 0.80, 4),
    ("BNB-USD", "BNB", "0.01", "897.30", 0.55, 4),
    ("DOGE-USD", "Dogecoin", "0.00001", "0.14920", 0.95, 4),
    ("ADA-USD", "Cardano", "0.0001", "0.4215", 0.90, 4),
    ("AVAX-USD", "Avalanche", "0.001", "14.125", 0.95, 3),
    ("LINK-USD", "Chainlink", "0.001", "13.870", 0.90, 3),
    ("DOT-USD", "Polkadot", "0.0001", "2.2460", 0.95, 2),
    ("LTC-USD", "Litecoin", "0.01", "84.60", 0.75, 3),
    ("BCH-USD", "Bitcoin Cash", "0.01", "552.10", 0.75, 2),
    ("XLM-USD", "Stellar", "0.0001", "0.2488", 0.85, 2),
    ("TRX-USD", "TRON", "0.0001", "0.2796", 0.50, 2),
    ("UNI-USD", "Uniswap", "0.001", "6.045", 1.00, 2),
]


def default_instruments() -> list[dict[str, object]]:
    """Every default instrument as the model's field values."""
    rows: list[dict[str, object]] = []
    for symbol, name, exchange, currency, tick, lot, price, vol, rate in EQUITIES:
        rows.append(_row(symbol, name, exchange, EQUITY, currency, tick, lot, price, vol, rate))
    for symbol, name, tick, price, vol, rate in FX_PAIRS:
        # FX lots are 1,000 units of the base currency (a "micro lot").
        quote_ccy = symbol.split("/")[1]
        rows.append(_row(symbol, name, "FXSPOT", FX, quote_ccy, tick, 1000, price, vol, rate))
    for symbol, name, tick, price, vol, rate in CRYPTOS:
        rows.append(_row(symbol, name, "CRYPTO", CRYPTO, "USD", tick, 1, price, vol, rate))
    return rows


def _row(
    symbol: str,
    name: str,
    exchange: str,
    asset_class: str,
    currency: str,
    tick: str,
    lot: int,
    price: str,
    vol: float,
    rate: float,
) -> dict[str, object]:
    return {
        "symbol": symbol,
        "name": name,
        "exchange": exchange,
        "asset_class": asset_class,
        "currency": currency,
        "tick_size": Decimal(tick),
        "lot_size": lot,
        "reference_price": Decimal(price),
        "volatility": vol,
        "quote_rate": float(rate),
        "active": True,
    }


def add_defaults(apps, schema_editor):  # type: ignore[no-untyped-def]
    instrument = apps.get_model("feeds", "Instrument")
    db = schema_editor.connection.alias
    for fields in default_instruments():
        symbol = fields.pop("symbol")
        instrument.objects.using(db).get_or_create(symbol=symbol, defaults=fields)


def remove_defaults(apps, schema_editor):  # type: ignore[no-untyped-def]
    instrument = apps.get_model("feeds", "Instrument")
    db = schema_editor.connection.alias
    symbols = [fields["symbol"] for fields in default_instruments()]
    instrument.objects.using(db).filter(symbol__in=symbols).delete()


class Migration(migrations.Migration):
    dependencies = (("feeds", "0001_initial"),)

    operations = (migrations.RunPython(add_defaults, remove_defaults),)
