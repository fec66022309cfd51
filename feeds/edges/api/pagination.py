"""Page-number pagination for the instrument list."""

from __future__ import annotations

from rest_framework.pagination import PageNumberPagination


class InstrumentPagination(PageNumberPagination):
    """``?page=N`` of 100 rows by default; ``?page_size=`` picks 1 to 1000.

    The response is ``{"count", "next", "previous", "results"}``. A page past
    the end is 404 ``{"detail": ...}``; a ``page_size`` that is not a positive
    whole number falls back to the default, and one above the maximum is
    clamped to it.
    """

    page_size = 100
    page_size_query_param = "page_size"
    # The whole default universe fits one page; this bounds a hostile request.
    max_page_size = 1000
