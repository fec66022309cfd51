"""The instrument admin, for operations: live prices, filters, halt / resume, CSV in and out.

The changelist shows each instrument's last price, its change since the
session open and whether it trades, read from the quote store for the rows
on the page and refreshed every second without a reload
(``feeds/edges/admin_quotes.py``, ``feeds/static/feeds/admin_live.js``);
prices, ticks and reference prices to the instrument's own tick. Filters by
asset class, exchange and status; search by symbol, name or exchange. CSV
import and export: ``feeds/edges/admin_import.py`` (all or nothing).

Every write goes through ``feeds.services`` so the running feed hears of it
once the transaction commits. The API token admin stays as django-rest-knox
registers it (tokens listed by digest; a token added there is shown once);
deleting or changing a token there (or disabling or deleting a user) closes
its open feed connections with 4401 (``feeds.revocation``). The
entitlement admin is ``feeds/edges/admin_entitlements.py``.

Audit: every change made in the admin is in Django's admin log (``LogEntry``:
who, when, what), halts, resumes and imported rows included, and each entry
is also written to the application log (logger ``feeds.audit``) so it leaves
the database.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import LogEntry
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.db.models.signals import post_save
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import ngettext
from import_export.admin import ImportExportModelAdmin
from import_export.formats.base_formats import CSV
from import_export.forms import ExportForm
from import_export.tmp_storages import CacheStorage

from feeds import entitlements, revocation, services
from feeds.edges import admin_entitlements  # noqa: F401 - registers the entitlement admin
from feeds.edges.admin_forms import InstrumentForm
from feeds.edges.admin_import import InstrumentResource
from feeds.edges.admin_quotes import LiveRow, live_row, live_rows
from feeds.edges.api.serializers import plain_decimal, price_text
from feeds.models import Instrument

logger = logging.getLogger(__name__)
audit = logging.getLogger("feeds.audit")

# The admin is loaded in every process at start-up (admin autodiscovery), and
# the token and user admins are where tokens are revoked and users disabled,
# the entitlement, user and group admins where licences are taken away.
revocation.connect_revocation_signals()
entitlements.connect_signals()

MAX_LIVE_ROWS = 500  # more than a changelist page ever shows


def _abbr(short: str, full: str) -> str:
    """A compact column heading that still says what it is."""
    return format_html('<abbr title="{}">{}</abbr>', full, short)


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("trading", "Trading"), ("halted", "Halted")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Instrument]) -> Any:
        if self.value() in ("trading", "halted"):
            return queryset.filter(active=self.value() == "trading")
        return queryset


@admin.register(Instrument)
class InstrumentAdmin(ImportExportModelAdmin):
    form = InstrumentForm
    # Compact, to fit a 1440 px screen beside the filters; volatility and the
    # quote rate are on the change form and in the CSV.
    list_display = (
        "symbol", "name", "exchange", "asset", "ccy", "tick", "lot",
        "reference", "last", "change", "change_pct", "status",
    )
    list_display_links = ("symbol", "name")
    search_fields = ("symbol", "name", "exchange")
    search_help_text = "Symbol, name or exchange."
    list_filter = ("asset_class", "exchange", StatusFilter)
    ordering = ("symbol",)
    readonly_fields = ("updated_at",)
    actions = ("halt_selected", "resume_selected")
    list_per_page = 100
    change_list_template = "admin/feeds/instrument/change_list.html"
    import_template_name = "admin/feeds/instrument/import.html"
    resource_classes = (InstrumentResource,)
    import_formats = (CSV,)
    export_formats = (CSV,)
    # The plain form: the selectable-fields one has inline handlers the CSP refuses.
    export_form_class = ExportForm
    # Between the preview and the confirmation the file waits in Django's cache
    # (Redis in scale-out), not a process's temporary folder: any server confirms.
    tmp_storage_class = CacheStorage

    # --- columns ------------------------------------------------------------------------

    @admin.display(description=_abbr("Class", "Asset class"), ordering="asset_class")
    def asset(self, obj: Instrument) -> str:
        return obj.get_asset_class_display()

    @admin.display(description=_abbr("Ccy", "Currency"), ordering="currency")
    def ccy(self, obj: Instrument) -> str:
        return obj.currency

    @admin.display(description=_abbr("Tick", "Tick size"), ordering="tick_size")
    def tick(self, obj: Instrument) -> str:
        return plain_decimal(obj.tick_size)

    @admin.display(description=_abbr("Lot", "Lot size"), ordering="lot_size")
    def lot(self, obj: Instrument) -> int:
        return obj.lot_size

    @admin.display(description=_abbr("Ref.", "Reference price"), ordering="reference_price")
    def reference(self, obj: Instrument) -> str:
        return price_text(obj.reference_price, obj.tick_size)

    @admin.display(description="Last")
    def last(self, obj: Instrument) -> str:
        return self._live_cell(obj, "last")

    @admin.display(description=_abbr("Chg", "Change since the session open"))
    def change(self, obj: Instrument) -> str:
        return self._live_cell(obj, "change")

    @admin.display(description=_abbr("Chg %", "Change since the session open, in per cent"))
    def change_pct(self, obj: Instrument) -> str:
        return self._live_cell(obj, "change_pct")

    @admin.display(description="Status", ordering="-active")
    def status(self, obj: Instrument) -> str:
        row = self._live(obj)
        return format_html(
            '<span class="mf-status" data-live="status" data-pk="{}" data-status="{}">{}</span>',
            obj.pk, row.status, row.status_label,
        )

    def _live_cell(self, obj: Instrument, field: str) -> str:
        row = self._live(obj)
        return format_html(
            '<span data-live="{}" data-pk="{}" data-direction="{}">{}</span>',
            field, obj.pk, row.direction, getattr(row, field),
        )

    @staticmethod
    def _live(obj: Instrument) -> LiveRow:
        # Set for the whole page by get_changelist_instance (one store read).
        row = getattr(obj, "_live_row", None)
        return row if row is not None else live_row(obj, None)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # The whole width for the table and its filters: beside the admin's
        # navigation sidebar (the breadcrumbs lead everywhere it does) the
        # columns would not fit a 1440 px screen.
        extra_context = {**(extra_context or {}), "is_nav_sidebar_enabled": False}
        return super().changelist_view(request, extra_context)

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        changelist = super().get_changelist_instance(request)
        shown = list(changelist.result_list)  # evaluated once, and kept by the queryset
        rows = live_rows(shown)
        for instrument in shown:
            instrument._live_row = rows[instrument.pk]  # type: ignore[attr-defined]
        return changelist

    # --- the live refresh ---------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        live = path(
            "live/", self.admin_site.admin_view(self.live_view), name="feeds_instrument_live"
        )
        return [live, *super().get_urls()]

    def live_view(self, request: HttpRequest) -> HttpResponse:
        """GET ``live/?ids=1,2``: ``{"rows": {"1": {last, change, ..., status}}}``."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        ids = [int(i) for i in request.GET.get("ids", "").split(",") if i.strip().isdigit()]
        shown = Instrument.objects.filter(pk__in=ids[:MAX_LIVE_ROWS])
        rows = live_rows(shown)
        return JsonResponse({"rows": {str(pk): row.as_json() for pk, row in rows.items()}})

    # --- actions ------------------------------------------------------------------------

    @admin.action(description="Halt selected instruments")
    def halt_selected(self, request: HttpRequest, queryset: QuerySet[Instrument]) -> None:
        # Listed first: with the changelist filtered on status, the queryset
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

    # --- writes -------------------------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: Instrument, form: Any, change: bool) -> None:
        services.instrument_save(instrument=obj)

    def delete_model(self, request: HttpRequest, obj: Instrument) -> None:
        services.instrument_delete(instruments=[obj])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Instrument]) -> None:
        services.instrument_delete(instruments=queryset)

    # --- import / export ----------------------------------------------------------------

    def has_import_permission(self, request: HttpRequest) -> bool:
        # An import adds and changes instruments: it needs both rights.
        return self.has_add_permission(request) and self.has_change_permission(request)

    def has_export_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def process_result(self, result: Any, request: HttpRequest) -> HttpResponse:
        """After the confirmed import: a row that failed now (say, a symbol added meanwhile)
        rolled it all back, so say that rather than "Import finished"."""
        if result.has_errors() or result.has_validation_errors():
            numbers = [n for n, _ in result.row_errors()] + [r.number for r in result.invalid_rows]
            failed = ", ".join(str(n) for n in sorted(numbers))
            self.message_user(
                request,
                f"Nothing was imported: row(s) {failed} failed; no instrument was changed.",
                messages.ERROR,
            )
            return HttpResponseRedirect(reverse("admin:feeds_instrument_import"))
        return super().process_result(result, request)


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
