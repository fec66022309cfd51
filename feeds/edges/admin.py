"""The instrument admin: validation, search, filters, halt / resume actions.

Every write goes through ``feeds.services`` so the running feed hears of it
once the transaction commits. The API token admin stays as django-rest-knox
registers it (tokens listed by digest; a token added there is shown once);
deleting or changing a token there (or disabling or deleting a user) closes
its open feed connections with 4401 (``feeds.auth``, "Revocation").

Audit: every change made in the admin is in Django's admin log (``LogEntry``:
who, when, what), halts and resumes included, and each entry is also written
to the application log (logger ``feeds.audit``) so it leaves the database.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.db.models.signals import post_save
from django.http import HttpRequest
from django.utils.translation import ngettext

from feeds import auth, entitlements, services
from feeds.models import Entitlement, Instrument

logger = logging.getLogger(__name__)
audit = logging.getLogger("feeds.audit")

# The admin is loaded in every process at start-up (admin autodiscovery), and
# the token and user admins are where tokens are revoked and users disabled,
# the entitlement, user and group admins where licences are taken away.
auth.connect_revocation_signals()
entitlements.connect_signals()


class UpperCaseCharField(forms.CharField):
    """A ``CharField`` that strips and upper-cases its input before any validator runs.

    Doing it in ``to_python`` rather than ``clean_<field>`` matters: the model's
    validators (an upper-case-only pattern) and the unique check must see
    ``AAPL``, not the ``aapl`` that was typed.
    """

    def to_python(self, value: Any) -> str:
        text = super().to_python(value)
        return text.strip().upper()


# Edited in the form and shown in the list alike: everything a feed needs.
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
    """The instrument change form: normalises codes, one clear message per bad value.

    Range rules live on the model (validators and ``Instrument.clean``) so the
    services enforce them too; this form only adds normalisation and wording.
    """

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
        # The columns hold 10 decimal places; show 0.01, not 0.0100000000.
        for name in ("tick_size", "reference_price"):
            value = self.initial.get(name)
            if isinstance(value, Decimal):
                self.initial[name] = format(value.normalize(), "f")

    class Meta:
        model = Instrument
        fields = INSTRUMENT_FIELDS


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    form = InstrumentForm
    list_display = INSTRUMENT_FIELDS
    list_display_links = ("symbol", "name")
    search_fields = ("symbol", "name", "exchange")
    search_help_text = "Symbol, name or exchange."
    list_filter = ("asset_class", "exchange", "active")
    ordering = ("symbol",)
    readonly_fields = ("updated_at",)
    actions = ("halt_selected", "resume_selected")
    list_per_page = 100

    @admin.action(description="Halt selected instruments")
    def halt_selected(self, request: HttpRequest, queryset: QuerySet[Instrument]) -> None:
        # Listed first: with the changelist filtered on "active", the queryset
        # would no longer match the rows once they are halted.
        selected = list(queryset)
        turning = [i for i in selected if i.active]
        changed = services.instrument_halt(instruments=selected)
        self._audit(request, turning, "halted")
        self._report(request, changed, len(selected), "halted")

    @admin.action(description="Resume selected instruments")
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Instrument]) -> None:
        selected = list(queryset)
        turning = [i for i in selected if not i.active]
        changed = services.instrument_resume(instruments=selected)
        self._audit(request, turning, "resumed")
        self._report(request, changed, len(selected), "resumed")

    def _audit(self, request: HttpRequest, changed: list[Instrument], verb: str) -> None:
        """An admin log entry per instrument the action changed, and one application log line."""
        for instrument in changed:
            self.log_change(request, instrument, f"{verb.capitalize()} (admin action).")
        user = request.user
        logger.info(
            "instruments %s by %s (user id %s): %s",
            verb, user.get_username(), user.pk,
            ", ".join(i.symbol for i in changed) or "none (already so)",
        )

    def _report(self, request: HttpRequest, changed: int, selected: int, verb: str) -> None:
        message = ngettext(
            "%(count)d instrument %(verb)s.", "%(count)d instruments %(verb)s.", changed
        ) % {"count": changed, "verb": verb}
        unchanged = selected - changed
        if unchanged:
            message += " " + ngettext(
                "%(count)d was already %(verb)s.", "%(count)d were already %(verb)s.", unchanged
            ) % {"count": unchanged, "verb": verb if verb == "halted" else "trading"}
        self.message_user(request, message, messages.SUCCESS if changed else messages.INFO)

    def save_model(self, request: HttpRequest, obj: Instrument, form: Any, change: bool) -> None:
        services.instrument_save(instrument=obj)

    def delete_model(self, request: HttpRequest, obj: Instrument) -> None:
        services.instrument_delete(instruments=[obj])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Instrument]) -> None:
        services.instrument_delete(instruments=queryset)


# --- entitlements (PROTOCOL.md "Entitlements"; feeds/entitlements.py) ----------------


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


@admin.register(Entitlement)
class EntitlementAdmin(admin.ModelAdmin):
    """Deleting or editing a row here stops its symbols on open connections at once."""

    form = EntitlementForm
    list_display = ("id", "user", "group", "exchange", "asset_class", "created_at")
    list_filter = ("asset_class", "exchange")
    search_fields = ("user__username", "group__name", "exchange")
    search_help_text = "User name, group name or exchange."
    autocomplete_fields = ("user", "group")
    readonly_fields = ("created_at",)


class GroupEntitlementInline(admin.TabularInline):
    """A group's licences on its own page, where its members are managed.

    Users get no such inline: their change form is posted by scripts and tests
    that know nothing of inline formsets; a user's rows are in the entitlement
    list (search by user name).
    """

    model = Entitlement
    form = EntitlementForm
    fk_name = "group"
    fields = ("exchange", "asset_class")
    extra = 0


def _with_inline(model: type[Any], inline: type[admin.TabularInline]) -> None:
    """Re-register ``model`` with the admin it already has, plus ``inline``."""
    base = type(admin.site.get_model_admin(model))
    admin.site.unregister(model)
    admin.site.register(model, type(base.__name__, (base,), {"inlines": [*base.inlines, inline]}))


_with_inline(Group, GroupEntitlementInline)


# --- audit ------------------------------------------------------------------------------


def _log_entry_saved(sender: Any, instance: LogEntry, created: bool, **kwargs: Any) -> None:
    """Every admin log entry, also in the application log: who, what, which object."""
    if not created:
        return
    action = {1: "added", 2: "changed", 3: "deleted"}.get(instance.action_flag, "?")
    audit.info(
        "admin %s %s %r (id %s) by user %s: %s",
        action,
        instance.content_type.model if instance.content_type_id else "?",
        instance.object_repr,
        instance.object_id,
        instance.user_id,
        instance.get_change_message() or "-",
    )


post_save.connect(_log_entry_saved, sender=LogEntry, dispatch_uid="feeds-audit-log-entry")
