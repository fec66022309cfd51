"""Input and output shapes of the REST API (PROTOCOL.md, "Endpoints").

Output serializers are explicit, field by field, so the JSON a client sees is
read here rather than inferred from the model. Quotes have no serializer: their
shape is the ``quote`` message of the wire protocol, built once by
``feeds.core.protocol.encode_quote`` and shown through ``protocol.quote_fields``.
"""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from feeds.models import AssetClass, Instrument

MAX_SEARCH_CHARS = 100


def plain_decimal(value: Decimal) -> str:
    """``value`` as exact positional text without trailing zeros: ``0.01``, ``100``."""
    # normalize() alone would write 100 as "1E+2"; format "f" keeps it positional.
    return format(value.normalize(), "f")


def price_text(price: Decimal, tick_size: Decimal) -> str:
    """``price`` with the tick grid's decimals (``278.50`` on a 0.01 grid).

    When the price has more decimals than the grid (off-grid data), all of
    them are kept: the text is always exact.
    """
    places = max(0, -int(tick_size.normalize().as_tuple().exponent))
    exact = price.normalize()
    if -int(exact.as_tuple().exponent) > places:
        return format(exact, "f")
    return format(price.quantize(Decimal(1).scaleb(-places)), "f")


class InstrumentOutputSerializer(serializers.Serializer):
    """One instrument; decimals are strings so no digit is lost to a float."""

    symbol = serializers.CharField()
    name = serializers.CharField()
    exchange = serializers.CharField()
    asset_class = serializers.CharField()
    currency = serializers.CharField()
    tick_size = serializers.SerializerMethodField()
    lot_size = serializers.IntegerField()
    reference_price = serializers.SerializerMethodField()
    volatility = serializers.FloatField()
    quote_rate = serializers.FloatField()
    active = serializers.BooleanField()

    def get_tick_size(self, instrument: Instrument) -> str:
        return plain_decimal(instrument.tick_size)

    def get_reference_price(self, instrument: Instrument) -> str:
        return price_text(instrument.reference_price, instrument.tick_size)


class InstrumentFilterSerializer(serializers.Serializer):
    """Query parameters of the instrument list; each one absent means no filter."""

    search = serializers.CharField(
        required=False, allow_blank=True, max_length=MAX_SEARCH_CHARS, trim_whitespace=True
    )
    asset_class = serializers.ChoiceField(choices=AssetClass.choices, required=False)
    # allow_null makes an absent parameter None rather than False: DRF reads a
    # missing boolean in form-style input (a QueryDict) as an unticked box.
    active = serializers.BooleanField(required=False, allow_null=True, default=None)


class TokenInputSerializer(serializers.Serializer):
    """``{"username", "password"}``; the password is taken exactly as sent."""

    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)
