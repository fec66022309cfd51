"""The instrument universe: what the ticker generates quotes for."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from feeds.core.protocol import SYMBOL_PATTERN

symbol_validator = RegexValidator(
    SYMBOL_PATTERN,
    "A symbol is 1 to 20 characters: upper-case letters, digits and . - / _",
)


def positive(field: str) -> MinValueValidator:
    return MinValueValidator(Decimal("0.0000000001"), f"The {field} must be greater than zero.")


class AssetClass(models.TextChoices):
    EQUITY = "equity", "Equity"
    FX = "fx", "FX"
    CRYPTO = "crypto", "Crypto"
    FUTURE = "future", "Future"
    INDEX = "index", "Index"


class Instrument(models.Model):
    symbol = models.CharField(max_length=20, unique=True, validators=[symbol_validator])
    name = models.CharField(max_length=120)
    exchange = models.CharField(max_length=20, help_text="Listing venue, e.g. XNAS, FXALL.")
    asset_class = models.CharField(max_length=10, choices=AssetClass.choices)
    currency = models.CharField(
        max_length=3,
        validators=[RegexValidator(r"^[A-Z]{3}$", "An ISO 4217 code: three upper-case letters.")],
    )
    tick_size = models.DecimalField(
        max_digits=20, decimal_places=10, validators=[positive("tick size")]
    )
    lot_size = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1, "The lot size must be at least 1.")]
    )
    reference_price = models.DecimalField(
        max_digits=24, decimal_places=10, validators=[positive("reference price")]
    )
    volatility = models.FloatField(
        help_text="Annualised volatility as a fraction: 0.25 is 25 % a year.",
        validators=[
            MinValueValidator(1e-6, "The volatility must be greater than zero."),
            MaxValueValidator(10.0, "A volatility above 10 (1000 % a year) is not a market."),
        ],
    )
    quote_rate = models.FloatField(
        "quotes per second",
        help_text="Average number of quotes generated per second.",
        validators=[
            MinValueValidator(0.001, "The quote rate must be greater than zero."),
            MaxValueValidator(10_000, "At most 10,000 quotes per second per instrument."),
        ],
    )
    active = models.BooleanField(default=True, help_text="Inactive instruments are halted.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # A list, as in the migrations: makemigrations would read a tuple as a change.
        ordering: ClassVar[list[str]] = ["symbol"]
        constraints = (
            models.CheckConstraint(condition=models.Q(tick_size__gt=0), name="tick_size_positive"),
            models.CheckConstraint(
                condition=models.Q(reference_price__gt=0), name="reference_price_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(volatility__gt=0), name="volatility_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(quote_rate__gt=0), name="quote_rate_positive"
            ),
        )

    def __str__(self) -> str:
        return self.symbol

    def clean(self) -> None:
        super().clean()
        if self.symbol:
            self.symbol = self.symbol.strip().upper()
        if self.currency:
            self.currency = self.currency.strip().upper()
        if (
            self.tick_size is not None
            and self.reference_price is not None
            and self.tick_size > 0
            and self.reference_price < self.tick_size
        ):
            raise ValidationError(
                {"reference_price": "The reference price must be at least one tick."}
            )
        if self.tick_size is not None and self.tick_size.normalize().as_tuple().exponent < -10:
            raise ValidationError({"tick_size": "At most 10 decimal places."})


class Entitlement(models.Model):
    """A licence: a user, or every member of a group, may see one exchange or asset class.

    Enforced only when ``FEED_ENTITLEMENTS`` is on; then a user sees the
    instruments that match at least one of their own or their groups' rows.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="entitlements",
    )
    group = models.ForeignKey(
        "auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="entitlements"
    )
    exchange = models.CharField(
        max_length=20,
        blank=True,
        help_text="A listing venue (e.g. XNAS); blank with an asset class.",
    )
    asset_class = models.CharField(
        max_length=10, choices=AssetClass.choices, blank=True, help_text="Blank with an exchange."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["pk"]
        constraints = (
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, group__isnull=True)
                    | models.Q(user__isnull=True, group__isnull=False)
                ),
                name="entitlement_user_xor_group",
                violation_error_message=(
                    "An entitlement is for a user or for a group: choose exactly one."
                ),
            ),
            models.CheckConstraint(
                condition=(
                    (models.Q(exchange="") & ~models.Q(asset_class=""))
                    | (~models.Q(exchange="") & models.Q(asset_class=""))
                ),
                name="entitlement_exchange_xor_asset_class",
                violation_error_message=(
                    "An entitlement names an exchange or an asset class: fill in exactly one."
                ),
            ),
        )

    def __str__(self) -> str:
        who = self.user if self.user_id is not None else f"group {self.group}"
        what = self.exchange or self.get_asset_class_display()
        return f"{who}: {what}"

    def clean(self) -> None:
        """Exchanges are compared upper-case, so store them that way ("xnas " is XNAS)."""
        super().clean()
        self.exchange = self.exchange.strip().upper()


class Bar(models.Model):
    """One minute of one instrument's trades (OHLCV); the ticker writes them in batches."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="bars")
    start = models.DateTimeField(
        help_text="The minute the bar covers, from its first second (UTC)."
    )
    open = models.DecimalField(max_digits=24, decimal_places=10)
    high = models.DecimalField(max_digits=24, decimal_places=10)
    low = models.DecimalField(max_digits=24, decimal_places=10)
    close = models.DecimalField(max_digits=24, decimal_places=10)
    volume = models.BigIntegerField(default=0)
    trades = models.PositiveIntegerField(default=0)

    class Meta:
        ordering: ClassVar[list[str]] = ["instrument", "start"]
        constraints = (
            models.UniqueConstraint(fields=["instrument", "start"], name="bar_one_per_minute"),
        )
        indexes = (models.Index(fields=["start"], name="bar_start"),)

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.start:%Y-%m-%d %H:%M}"


class ServerEvent(models.Model):
    """A control event for the server processes, relayed through the database (feeds.relay).

    Only in the embedded default, where every process has its own in-memory
    channel layer: a revocation made in ``manage.py shell`` reaches the
    server this way. Rows live about a minute.
    """

    payload = models.JSONField()
    origin = models.CharField(max_length=40, help_text="The process that wrote it.")
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.payload.get('type', '?')} from {self.origin}"


class Watchlist(models.Model):
    """One named, ordered list of symbols of one user (``feeds.watchlists`` writes them)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="watchlists"
    )
    name = models.CharField(max_length=60)
    # The symbols in the user's order, upper-case, each once (a JSON list of strings).
    symbols = models.JSONField(default=list)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["user", "pk"]
        constraints = (
            models.UniqueConstraint(fields=["user", "name"], name="watchlist_name_per_user"),
        )

    def __str__(self) -> str:
        return f"{self.user_id}: {self.name}"
