from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import include, path

from feeds.edges import health
from feeds.edges import page as views
from feeds.edges.api import contracts

urlpatterns = [
    path("", views.ticker, name="ticker"),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    # The published contracts (feeds/edges/api/contracts.py), ahead of the API's catch-all.
    path("api/schema/", contracts.SchemaView.as_view(), name="api-schema"),
    path("api/schema/docs/", contracts.SchemaDocsView.as_view(), name="api-schema-docs"),
    path("api/asyncapi.json", contracts.AsyncApiView.as_view(), name="api-asyncapi"),
    path("api/", include("feeds.edges.api.urls")),
    # Log in and out only: the rest of django.contrib.auth.urls (password reset
    # and change) would answer anonymously and send mail this server cannot.
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
