from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import include, path

from feeds.edges import health, page as views

urlpatterns = [
    path("", views.ticker, name="ticker"),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("api/", include("feeds.edges.api.urls")),
    # Log in and out only: the rest of django.contrib.auth.urls (password reset
    # and change) would answer anonymously and send mail this server cannot.
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
