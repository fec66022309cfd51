"""Fixtures for the security tests: the consumer fixtures, plus a second user."""

from __future__ import annotations

import pytest

from tests.consumer.conftest import (  # noqa: F401 - fixtures, re-exported for these tests
    alice,
    connect,
    instruments,
    make_user,
    ticker,
    user,
)
from tests.redis.conftest import redis_url  # noqa: F401 (fixture, the *_cluster tests)


@pytest.fixture(autouse=True)
def fresh_cache():
    """Failed-login counters and tickets (Django's cache) start empty in every test."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def bob(transactional_db):
    return make_user("bob")


@pytest.fixture
def fast_hashing(settings):
    """Password hashing is not under test here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
