from __future__ import annotations

from django.urls import include, path

from feeds import health, views

urlpatterns = [
    path("", views.ticker, name="ticker"),
    path("healthz", health.healthz, name="healthz"),
    path("api/", include("feeds.api.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
]
