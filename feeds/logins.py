"""Brute force: failed logins counted per username and per client address (django-axes).

Failed logins, through the login form, the admin or ``POST /api/token/``,
are counted in Django's cache (Redis with ``REDIS_URL``, so every server
process shares them); past ``FEED_LOGIN_FAILURES_PER_USER`` (or
``..._PER_ADDRESS``) within ``FEED_LOGIN_WINDOW_S``, that username (or
address) is locked out for the window: 429 with ``Retry-After``. Two
counters, so that an attack on one user does not lock out another user
behind the same address.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any

from axes.handlers.base import AbstractAxesHandler, AxesBaseHandler
from axes.helpers import get_client_username
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)


def client_address(request: HttpRequest) -> str | None:
    """The address failed logins are counted under (``AXES_CLIENT_IP_CALLABLE``).

    ``REMOTE_ADDR`` as the server sets it: daphne takes it from
    ``X-Forwarded-For`` only when told it is behind the proxy
    (``--proxy-headers``), so a client cannot choose its own address here.
    """
    address = request.META.get("REMOTE_ADDR")
    return str(address) if address else None


def _window_s() -> float:
    return float(settings.FEED_LOGIN_WINDOW_S)


class LoginAttempts(AbstractAxesHandler, AxesBaseHandler):
    """django-axes handler (``AXES_HANDLER``): two counters per failed login, in the cache.

    One per username (limit ``FEED_LOGIN_FAILURES_PER_USER``) and one per
    client address (``FEED_LOGIN_FAILURES_PER_ADDRESS``). axes' own cache
    handler compares every counter with one limit, so an address behind which
    one user is attacked would lock out everyone else there; hence this one.
    A counter lives for the window from its first failure (``add`` then
    ``incr``: atomic in Redis); reaching its limit locks that username or
    address until the window has passed from then, whatever is tried
    meanwhile: attempts during a lockout are refused before any password
    check and counted nowhere, so they do not prolong it.
    """

    def _subjects(
        self, request: Any, credentials: dict[str, Any] | None
    ) -> list[tuple[str, str, int]]:
        """``(what, cache key base, limit)`` for the username and the address of this attempt."""
        subjects: list[tuple[str, str, int]] = []
        username = get_client_username(request, credentials)
        if username:
            digest = hashlib.sha256(str(username).encode("utf-8", "replace")).hexdigest()
            subjects.append((f"username {str(username)[:150]!r}", f"feeds:login:user:{digest}",
                             settings.FEED_LOGIN_FAILURES_PER_USER))
        address = getattr(request, "axes_ip_address", None) or client_address(request)
        if address:
            subjects.append((f"address {address}", f"feeds:login:addr:{address}",
                             settings.FEED_LOGIN_FAILURES_PER_ADDRESS))
        return subjects

    def _locked_until(self, request: Any, credentials: dict[str, Any] | None) -> float:
        """When the latest lockout on this attempt's username or address ends (0: none)."""
        now = time.time()
        until = 0.0
        for _what, base, _limit in self._subjects(request, credentials):
            value = cache.get(base + ":lock")
            if isinstance(value, int | float) and value > now:
                until = max(until, float(value))
        return until

    def is_locked(self, request: Any, credentials: dict[str, Any] | None = None) -> bool:
        until = self._locked_until(request, credentials)
        if until:
            request.feeds_retry_after = max(1, math.ceil(until - time.time()))
        return bool(until)

    def get_failures(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        subjects = self._subjects(request, credentials)
        counts = [cache.get(base + ":n", 0) for _what, base, _limit in subjects]
        return max(counts, default=0)

    def user_login_failed(
        self, sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
    ) -> None:
        if request is None:
            return
        if self.is_locked(request, credentials):
            # Refused by the lockout (AxesStandaloneBackend) before any password check.
            request.axes_locked_out = True
            return
        window = _window_s()
        ttl = math.ceil(window)
        for what, base, limit in self._subjects(request, credentials):
            failures = self._count(base + ":n", ttl)
            if failures >= limit and cache.add(base + ":lock", time.time() + window, timeout=ttl):
                logger.warning(
                    "login locked out for %s: %d failed logins within %g s (path %s)",
                    what, failures, window, getattr(request, "path", "?"),
                )
        logger.info(
            "failed login for %s from %s",
            repr(str(get_client_username(request, credentials))[:150]),
            getattr(request, "axes_ip_address", None),
        )
        if self.is_locked(request, credentials):
            request.axes_locked_out = True

    @staticmethod
    def _count(key: str, ttl: int) -> int:
        if cache.add(key, 1, timeout=ttl):
            return 1
        try:
            return int(cache.incr(key))
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=ttl)
            return 1

    def user_logged_in(self, sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
        logger.info(
            "login of user %s from %s", user.pk, getattr(request, "axes_ip_address", None)
        )

    def user_logged_out(self, sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
        pass

    def reset_attempts(
        self,
        *,
        ip_address: str | None = None,
        username: str | None = None,
        ip_or_username: bool = False,
    ) -> int:
        """Lift the counters and lockout of a username or address (axes' reset commands)."""
        request = HttpRequest()
        if ip_address:
            request.META["REMOTE_ADDR"] = ip_address
        credentials = {"username": username} if username else None
        count = 0
        for _what, base, _limit in self._subjects(request, credentials):
            count += int(bool(cache.delete(base + ":n")))
            cache.delete(base + ":lock")
        logger.info("login lockout reset for username %r / address %s", username, ip_address)
        return count


def lockout_response(request: HttpRequest, *_: Any) -> HttpResponse:
    """What a locked-out login gets (``AXES_LOCKOUT_CALLABLE``): 429 with ``Retry-After``.

    JSON ``{"detail": ...}`` under ``/api/``, a page elsewhere (the login
    form, the admin's). axes passes further arguments that differ between its
    sync and async paths; nothing here needs them.
    """
    retry_after = getattr(request, "feeds_retry_after", None) or max(1, math.ceil(_window_s()))
    minutes = max(1, math.ceil(retry_after / 60))
    detail = (
        f"Too many failed logins: this account or address is locked. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
    )
    response: HttpResponse
    if request.path_info.startswith("/api/"):
        response = JsonResponse({"detail": detail}, status=429)
    else:
        html = render_to_string(
            "registration/locked_out.html", {"detail": detail, "retry_after": retry_after}, request
        )
        response = HttpResponse(html, status=429)
    response["Retry-After"] = str(retry_after)
    return response
