"""Typed reads of environment variables for settings.

Every bad value raises ``ImproperlyConfigured`` naming the variable and what
it expects, so a typo in a deployment gives one clear line instead of a
traceback deep inside a library.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r}: expected one of 1/0, true/false, yes/no, on/off")


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r}: expected a whole number") from None
    _check_range(name, raw, value, minimum, maximum)
    return value


def env_float(
    name: str, default: float, *, minimum: float = 0.0, maximum: float | None = None
) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r}: expected a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ImproperlyConfigured(f"{name}={raw!r}: expected a finite number")
    _check_range(name, raw, value, minimum, maximum)
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_redis_url(name: str) -> str | None:
    """Return a validated redis:// URL, or None when the variable is unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    problem = _redis_url_problem(raw)
    if problem:
        raise ImproperlyConfigured(f"{name}={raw!r}: {problem}")
    return raw


def env_redis_urls(name: str) -> list[str]:
    """Return a comma-separated list of distinct, validated Redis URLs; [] when unset or empty.

    A bad entry is named by its position: ``REDIS_LAYER_URLS: entry 2 'redis//b': ...``.
    """
    raw = os.environ.get(name, "")
    urls = [item.strip() for item in raw.split(",") if item.strip()]
    for number, url in enumerate(urls, 1):
        problem = _redis_url_problem(url)
        if problem:
            raise ImproperlyConfigured(f"{name}: entry {number} {url!r}: {problem}")
        if url in urls[: number - 1]:
            raise ImproperlyConfigured(f"{name}: entry {number} {url!r} is listed twice")
    return urls


def _redis_url_problem(raw: str) -> str | None:
    """What is wrong with a Redis URL, or None."""
    parts = urlsplit(raw)
    if parts.scheme not in ("redis", "rediss", "unix"):
        return "expected redis://HOST:PORT/DB, rediss://... or unix://PATH"
    try:
        _ = parts.port  # reading it checks it
    except ValueError:
        return "the port is not a number in 1-65535"
    if parts.scheme != "unix" and not parts.hostname:
        return "no host in the URL"
    return None


def _check_range(
    name: str, raw: str, value: float, minimum: float, maximum: float | None
) -> None:
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and at most {maximum}"
        raise ImproperlyConfigured(f"{name}={raw!r}: must be at least {minimum}{upper}")
