"""The entitlement admin (PROTOCOL.md "Entitlements"; feeds/entitlements.py).

Registered when ``feeds.edges.admin`` imports this module; the signals that
stop revoked symbols on open connections are connected there.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.models import Group

from feeds.edges.admin_forms import EntitlementForm
from feeds.models import Entitlement


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
