"""GET /api/bars/{symbol}/: an instrument's OHLCV bars (PROTOCOL.md "Bars").

The rows are the one-minute bars the ticker stores (``feeds.publish.bar_writer``);
longer intervals are rolled up from them here, in Python, reading at most
``limit`` times (minutes per bar) rows. The newest bar is read from the database,
so it may be up to ``FEED_BARS_FLUSH_S`` behind the live quotes, in every
process of a scale-out deployment alike.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feeds.core.bars import Bar, roll_up
from feeds.edges.api import schema
from feeds.edges.api.views import _instrument_or_404
from feeds.models import Bar as BarRow
from feeds.models import Instrument

# Interval name -> how many stored bars ("1m" each) make one.
INTERVALS = {"1m": 1, "5m": 5, "15m": 15, "1h": 60}
DEFAULT_LIMIT = 120  # two hours of one-minute bars: the ticker page's chart
MAX_LIMIT = 1000


class BarQuerySerializer(serializers.Serializer):
    """``?interval=`` and ``?limit=``; other parameters are ignored."""

    interval = serializers.ChoiceField(choices=list(INTERVALS), default="1m")
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=DEFAULT_LIMIT)


class BarOutputSerializer(serializers.Serializer):
    """One bar; prices are JSON numbers on the tick grid, like the quotes'."""

    start = serializers.DateTimeField(help_text="first second of the bar, UTC")
    open = serializers.FloatField()
    high = serializers.FloatField()
    low = serializers.FloatField()
    close = serializers.FloatField()
    volume = serializers.IntegerField(min_value=0)
    trades = serializers.IntegerField(min_value=1)
    complete = serializers.BooleanField(help_text="false while the bar's period is still running")


class BarListOutputSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    interval = serializers.CharField()
    interval_s = serializers.IntegerField(help_text="seconds one bar covers")
    bars = BarOutputSerializer(many=True)


bar_list_schema = extend_schema(
    operation_id="bar_list",
    parameters=[schema.SYMBOL, BarQuerySerializer],
    responses={
        200: BarListOutputSerializer, 400: schema.ErrorSerializer, 404: schema.ErrorSerializer,
        **schema.NEEDS_LOGIN,
    },
)


def bars_of(instrument: Instrument, *, per_bar: int, limit: int) -> list[Bar]:
    """The newest ``limit`` bars of ``per_bar`` stored bars each, oldest first."""
    rows = (
        BarRow.objects.filter(instrument=instrument)
        .order_by("-start")
        .values_list("start", "open", "high", "low", "close", "volume", "trades")[: limit * per_bar]
    )
    stored = (
        Bar(
            instrument.symbol, int(start.timestamp()), float(o), float(h), float(lo), float(c), v, n
        )
        for start, o, h, lo, c, v, n in rows
    )
    return roll_up(stored, per_bar * settings.FEED_BARS_PERIOD_S, limit)


def _shown(bar: Bar, span_s: int, places: int, now: float) -> dict[str, Any]:
    return {
        "start": datetime.fromtimestamp(bar.start, tz=UTC),
        "open": round(bar.open, places),
        "high": round(bar.high, places),
        "low": round(bar.low, places),
        "close": round(bar.close, places),
        "volume": bar.volume,
        "trades": bar.trades,
        "complete": bar.start + span_s <= now,
    }


class BarListApi(APIView):
    """GET /api/bars/{symbol}/?interval=1m&limit=120: bars oldest first, the running one last.

    404 for an unknown symbol; 400 ``{"detail": ...}`` for an interval not in
    ``INTERVALS`` or a limit outside 1..``MAX_LIMIT``. Periods without trades
    have no bar, so fewer than ``limit`` bars may cover a longer time.
    """

    @bar_list_schema
    def get(self, request: Request, symbol: str) -> Response:
        query = BarQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        instrument = _instrument_or_404(symbol, request.user)  # 404 unless visible (entitlements)
        interval = query.validated_data["interval"]
        per_bar = INTERVALS[interval]
        span_s = per_bar * settings.FEED_BARS_PERIOD_S
        places = max(0, -int(instrument.tick_size.normalize().as_tuple().exponent))
        now = time.time()
        bars = bars_of(instrument, per_bar=per_bar, limit=query.validated_data["limit"])
        return Response(BarListOutputSerializer({
            "symbol": instrument.symbol,
            "interval": interval,
            "interval_s": span_s,
            "bars": [_shown(bar, span_s, places, now) for bar in bars],
        }).data)
