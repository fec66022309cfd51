"""The URLs these tests serve: the API, health check and admin as ``feeds.urls`` mounts them.

A URLconf of their own so the API tests do not depend on the ticker page's
views; the mount points must match ``feeds/urls.py`` and ``marketfeed/urls.py``.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from feeds.edges import health
from feeds.edges.api import errors

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("api/", include("feeds.edges.api.urls")),
]

handler404 = errors.handler404
handler500 = errors.handler500
