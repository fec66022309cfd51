"""The instrument changelist's live columns: last price, change since the session open, status.

Latest quotes live in the quote store (``feeds.publish.store``), never in
the database: the changelist reads them for the rows on its page in one
store read, and ``feeds/static/feeds/admin_live.js`` asks for the same rows
again every second (``InstrumentAdmin.live_view``), so both paths format
through ``live_rows``. The session open is the instrument's reference price,
as on the ticker page (``book.js``). Prices are shown to the instrument's
tick (``278.50`` on a 0.01 grid), changes signed with a real minus sign.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from asgiref.sync import async_to_sync

from feeds.models import Instrument
from feeds.publish.build import get_store

NONE = "—"
MINUS = "\u2212"  # as wide as "+" in tabular figures
HUNDREDTH = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class LiveRow:
    """What the live cells of one changelist row show."""

    last: str
    change: str
    change_pct: str
    direction: str  # "up", "down" or "flat": the change's sign, for its colour
    status: str  # "trading" or "halted"
    status_label: str

    def as_json(self) -> dict[str, str]:
        return asdict(self)


def places_of(tick_size: Decimal) -> int:
    """The decimals of a tick: 0.01 -> 2, 0.5 -> 1, 25 -> 0."""
    return max(0, -int(tick_size.normalize().as_tuple().exponent))


def signed(value: Decimal) -> str:
    """``+0.25``, ``-1.10`` (a real minus sign), ``0.00``: zero has no sign."""
    text = format(abs(value), "f")
    if value.is_zero():
        return text
    return ("+" if value > 0 else MINUS) + text


def _quote_last(quote_text: str | None) -> Decimal | None:
    if quote_text is None:
        return None
    last = json.loads(quote_text).get("last")
    if not isinstance(last, int | float) or not math.isfinite(last):
        return None
    try:
        return Decimal(repr(last))  # the shortest text of the float: 278.51, not 278.5099…
    except InvalidOperation:
        return None


def live_row(instrument: Instrument, quote_text: str | None) -> LiveRow:
    halted = not instrument.active
    status = ("halted", "Halted") if halted else ("trading", "Trading")
    last = _quote_last(quote_text)
    if last is None:
        return LiveRow(NONE, NONE, NONE, "flat", *status)
    step = Decimal(1).scaleb(-places_of(instrument.tick_size))
    last = last.quantize(step, ROUND_HALF_EVEN)
    change = (last - instrument.reference_price).quantize(step, ROUND_HALF_EVEN)
    pct = (change * 100 / instrument.reference_price).quantize(HUNDREDTH, ROUND_HALF_EVEN)
    direction = "up" if change > 0 else "down" if change < 0 else "flat"
    return LiveRow(format(last, "f"), signed(change), signed(pct) + "%", direction, *status)


def latest_quotes(symbols: Iterable[str]) -> dict[str, str]:
    """``{symbol: quote text}`` of those of ``symbols`` that have a quote: one store read."""
    wanted = list(dict.fromkeys(symbols))
    if not wanted:
        return {}
    # The store is async (shared with the consumers); admin views are sync.
    latest = async_to_sync(get_store().latest)(wanted)
    return {symbol: text for symbol, (_seq, text) in latest.items()}


def live_rows(instruments: Iterable[Instrument]) -> dict[int, LiveRow]:
    """``{pk: LiveRow}`` of these instruments, from one store read."""
    rows = list(instruments)
    quotes = latest_quotes(i.symbol for i in rows)
    return {i.pk: live_row(i, quotes.get(i.symbol)) for i in rows}
