"""CSV import and export of instruments (django-import-export), all or nothing.

The columns are the change form's (``INSTRUMENT_FIELDS``); a row is matched
to an instrument by its symbol, upper-cased as the form does, so importing
an export back changes nothing. Each row is validated by the model's rules
(``full_clean``, as ``feeds.services`` does) and saved through
``services.instrument_save``, whose on-commit notice tells the running feed:
imported instruments tick within a second.

All or nothing: the import runs in one transaction, and a row that fails to
validate rolls back every row before it as well (the library, left alone,
would keep the good rows). The admin then names each bad row by its number,
counted from the first row under the header.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from django.utils.safestring import SafeString, mark_safe
from import_export import fields, resources, widgets

from feeds import services
from feeds.edges.admin_forms import INSTRUMENT_FIELDS
from feeds.edges.api.serializers import plain_decimal, price_text
from feeds.models import Instrument


class UpperCaseWidget(widgets.CharWidget):
    """Codes as the change form stores them: ``" aapl "`` is ``AAPL``."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> Any:
        text = super().clean(value, row, **kwargs)
        return text.strip().upper() if isinstance(text, str) else text


class PlainDecimalWidget(widgets.DecimalWidget):
    """``0.01`` out, not ``0.0100000000``; a word or ``NaN`` in is "Enter a number."."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> Decimal | None:
        try:
            number = super().clean(value, row, **kwargs)
        except (InvalidOperation, TypeError):
            raise ValueError("Enter a number.") from None
        if number is not None and not number.is_finite():
            raise ValueError("Enter a number.")
        return number

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return plain_decimal(value) if isinstance(value, Decimal) else ""


class FiniteFloatWidget(widgets.FloatWidget):
    """``inf`` and ``nan`` are not volatilities or rates."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> float | None:
        number = super().clean(value, row, **kwargs)
        if number is not None and not math.isfinite(number):
            raise ValueError("Enter a number.")
        return number


class StrictBooleanWidget(widgets.BooleanWidget):
    """``active``: 1 / 0, true / false, yes / no; anything else is refused, not read as 0."""

    WORDS: ClassVar[dict[str, bool]] = {
        "1": True, "true": True, "yes": True, "0": False, "false": False, "no": False,
    }

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> bool:
        text = str(value).strip().lower() if value is not None else ""
        if text not in self.WORDS:
            raise ValueError("Use 1 or 0 (trading or halted).")
        return self.WORDS[text]


class StylelessDiff(resources.Diff):
    """The preview's changes as ``<ins>`` / ``<del>`` without the inline ``style``
    attributes the CSP refuses (style-src 'self'); admin_ops.css colours them."""

    def as_html(self) -> list[SafeString]:
        return [mark_safe(re.sub(r' style="[^"]*"', "", html)) for html in super().as_html()]

    def __init__(self, resource: Any, instance: Any, new: bool) -> None:
        super().__init__(resource, instance, new)
        self.left = self._shown(resource, instance)

    def compare_with(self, resource: Any, instance: Any) -> None:
        self.right = self._shown(resource, instance)

    @staticmethod
    def _shown(resource: Any, instance: Any) -> list[Any]:
        """The values as the export writes them (prices to the tick), not the bare widgets'."""
        fields_ = resource.get_import_fields()
        if instance is None:
            return ["" for _ in fields_]
        return [resource.export_field(f, instance) for f in fields_]


def _field(name: str, widget: widgets.Widget) -> fields.Field:
    return fields.Field(attribute=name, column_name=name, widget=widget)


class InstrumentResource(resources.ModelResource):
    symbol = _field("symbol", UpperCaseWidget())
    currency = _field("currency", UpperCaseWidget())
    tick_size = _field("tick_size", PlainDecimalWidget())
    reference_price = _field("reference_price", PlainDecimalWidget())
    volatility = _field("volatility", FiniteFloatWidget())
    quote_rate = _field("quote_rate", FiniteFloatWidget())
    active = _field("active", StrictBooleanWidget())

    class Meta:
        model = Instrument
        fields = INSTRUMENT_FIELDS
        export_order = INSTRUMENT_FIELDS
        import_id_fields = ("symbol",)
        clean_model_instances = True  # the model's rules, per field, with its messages
        skip_unchanged = True  # an export imported back is a no-op, and tells the feed nothing
        report_skipped = True
        use_transactions = True

    @classmethod
    def get_display_name(cls) -> str:
        return "Instruments"

    def get_diff_class(self) -> type[resources.Diff]:
        return StylelessDiff

    def dehydrate_reference_price(self, instrument: Instrument) -> str:
        """To the instrument's tick: ``278.50``."""
        price, tick = instrument.reference_price, instrument.tick_size
        if not isinstance(price, Decimal):
            return ""
        return price_text(price, tick) if isinstance(tick, Decimal) else plain_decimal(price)

    def import_data(self, dataset: Any, **kwargs: Any) -> Any:
        # One transaction, rolled back whole on any error or invalid row, on the
        # confirmed import too (the library keeps the valid rows by default).
        kwargs["use_transactions"] = True
        kwargs["rollback_on_validation_errors"] = True
        return super().import_data(dataset, **kwargs)

    def do_instance_save(self, instance: Instrument, is_create: bool) -> None:
        # The service validates, saves and tells the feed once the import commits
        # (never for a dry run or a rolled-back import: those never commit).
        services.instrument_save(instrument=instance)
