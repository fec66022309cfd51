from __future__ import annotations

from django.apps import AppConfig


class FeedsConfig(AppConfig):
    name = "feeds"
    verbose_name = "Market feed"
    default_auto_field = "django.db.models.BigAutoField"
