"""The admin's forms: instruments and entitlements, normalised, one clear message per bad value.

Range rules live on the models (validators and ``clean``) so the services
enforce them too; these forms only add normalisation and wording.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from feeds.edges.api.serializers import plain_decimal, price_text
from feeds.models import Entitlement, Instrument


class UpperCaseCharField(forms.CharField):
    """A ``CharField`` that strips and upper-cases its input before any validator runs.

    Doing it in ``to_python`` rather than ``clean_<field>`` matters: the model's
    validators (an upper-case-only pattern) and the unique check must see
    ``AAPL``, not the ``aapl`` that was typed.
    """

    def to_python(self, value: Any) -> str:
        text = super().to_python(value)
        return text.strip().upper()


# Everything a feed needs: edited in the form, imported and exported.
INSTRUMENT_FIELDS = (
    "symbol",
    "name",
    "exchange",
    "asset_class",
    "currency",
    "tick_size",
    "lot_size",
    "reference_price",
    "volatility",
    "quote_rate",
    "active",
)


class InstrumentForm(forms.ModelForm):
    """The instrument change form."""

    symbol = UpperCaseCharField(
        max_length=20,
        help_text="1 to 20 characters: letters, digits and . - / _ (stored upper-case).",
        error_messages={
            "max_length": "A symbol is at most 20 characters (this one has %(show_value)d).",
            # Also applied to the model's unique check, which sees "AAPL" for "aapl".
            "unique": "An instrument with this symbol already exists.",
        },
    )
    currency = UpperCaseCharField(
        max_length=3,
        help_text="ISO 4217 code, e.g. USD (stored upper-case).",
        error_messages={"max_length": "A currency is an ISO 4217 code of three letters."},
    )
    lot_size = forms.IntegerField(
        min_value=1,
        initial=1,
        error_messages={"min_value": "The lot size must be at least 1."},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The columns hold 10 decimal places; show 0.01 and 278.50 (the tick's
        # decimals), not 0.0100000000 and 278.5000000000.
        tick = self.initial.get("tick_size")
        price = self.initial.get("reference_price")
        if isinstance(tick, Decimal):
            self.initial["tick_size"] = plain_decimal(tick)
            if isinstance(price, Decimal):
                self.initial["reference_price"] = price_text(price, tick)
        elif isinstance(price, Decimal):
            self.initial["reference_price"] = plain_decimal(price)

    class Meta:
        model = Instrument
        fields = INSTRUMENT_FIELDS


class EntitlementForm(forms.ModelForm):
    """One licence row. "Exactly one of user and group, and of exchange and asset class"
    is the model's check constraints, whose messages the form shows as they are."""

    exchange = UpperCaseCharField(
        max_length=20,
        required=False,
        help_text="A listing venue as instruments name it, e.g. XNAS (stored upper-case).",
    )

    class Meta:
        model = Entitlement
        fields = ("user", "group", "exchange", "asset_class")
