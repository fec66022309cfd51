"""Writes and reads of instruments, named by what they do.

Admin actions, API views, commands and the ticker go through these. Every
write tells the running feed once its transaction commits, so the ticker
never reloads a change that then rolls back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models import Count, Max, QuerySet

from feeds.core import events
from feeds.core.engine import InstrumentSpec
from feeds.core.groups import TICKER_CONTROL_GROUP
from feeds.models import Instrument

logger = logging.getLogger(__name__)



@dataclass(frozen=True, slots=True)
class ListedInstrument:
    """An instrument as the ticker sees it: its engine spec and whether it trades."""

    spec: InstrumentSpec
    active: bool


def instrument_save(*, instrument: Instrument) -> Instrument:
    """Validate and save ``instrument``; the running feed picks it up on commit."""
    instrument.full_clean()
    with transaction.atomic():
        instrument.save()
        _notify_on_commit()
    return instrument


def instrument_halt(*, instruments: Iterable[Instrument]) -> int:
    """Stop quoting these instruments; their subscribers get ``status`` ``halted``."""
    return _set_active(instruments, active=False)


def instrument_resume(*, instruments: Iterable[Instrument]) -> int:
    """Quote these instruments again; their subscribers get ``status`` ``trading``."""
    return _set_active(instruments, active=True)


def instrument_delete(*, instruments: Iterable[Instrument]) -> int:
    ids = [instrument.pk for instrument in instruments]
    with transaction.atomic():
        deleted, _ = Instrument.objects.filter(pk__in=ids).delete()
        _notify_on_commit()
    return deleted


def _set_active(instruments: Iterable[Instrument], *, active: bool) -> int:
    ids = [instrument.pk for instrument in instruments]
    with transaction.atomic():
        # save() per row rather than update(): it bumps updated_at, which the
        # ticker's fallback poll watches.
        changed = 0
        for instrument in Instrument.objects.select_for_update().filter(pk__in=ids):
            if instrument.active != active:
                instrument.active = active
                instrument.save(update_fields=["active", "updated_at"])
                changed += 1
        _notify_on_commit()
    return changed


def _notify_on_commit() -> None:
    transaction.on_commit(instruments_changed_notify)


def instruments_changed_notify() -> None:
    """Tell the ticker to reload instruments now (it also polls, so a lost message only delays)."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(TICKER_CONTROL_GROUP, events.instruments_changed())
    except Exception:
        logger.warning(
            "could not tell the ticker about an instrument change; its poll will", exc_info=True
        )


# --- reads ------------------------------------------------------------------------


def instruments_for_ticker() -> list[ListedInstrument]:
    return [
        ListedInstrument(spec=spec_of(instrument), active=instrument.active)
        for instrument in Instrument.objects.all()
    ]


def instruments_fingerprint() -> tuple[object, ...]:
    """Changes whenever an instrument is added, edited or deleted."""
    agg = Instrument.objects.aggregate(n=Count("id"), latest=Max("updated_at"), top=Max("id"))
    return (agg["n"], agg["latest"], agg["top"])


def instruments_active_by_symbol(symbols: Iterable[str]) -> dict[str, bool]:
    """``{symbol: active}`` for those of ``symbols`` that are instruments."""
    wanted = list(symbols)
    found: dict[str, bool] = {}
    # Chunked: SQLite caps the number of query parameters.
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found.update(Instrument.objects.filter(symbol__in=chunk).values_list("symbol", "active"))
    return found


def instruments_all_by_symbol() -> dict[str, bool]:
    """``{symbol: active}`` of every instrument (what ``"*"`` covers without entitlements)."""
    return dict(Instrument.objects.values_list("symbol", "active"))


def instruments_active() -> QuerySet[Instrument]:
    return Instrument.objects.filter(active=True)


def spec_of(instrument: Instrument) -> InstrumentSpec:
    return InstrumentSpec(
        symbol=instrument.symbol,
        tick_size=instrument.tick_size.normalize(),
        lot_size=instrument.lot_size,
        reference_price=instrument.reference_price,
        volatility=instrument.volatility,
        quote_rate=instrument.quote_rate,
    )
