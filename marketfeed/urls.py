from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("feeds.urls")),
]

# JSON errors under /api/, Django's usual pages elsewhere.
handler404 = "feeds.edges.api.errors.handler404"
handler500 = "feeds.edges.api.errors.handler500"
