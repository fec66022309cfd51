from __future__ import annotations

from django.apps import AppConfig


class FeedsConfig(AppConfig):
    name = "feeds"
    verbose_name = "Market feed"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The admin lives with the other edges (feeds/edges/admin.py); Django's
        # autodiscovery only looks for feeds.admin, so it is loaded here, in
        # every process, with the signal hooks it connects.
        from feeds.edges import admin  # noqa: F401
