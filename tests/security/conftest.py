"""Fixtures for the security tests: the consumer fixtures, plus a second user."""

from __future__ import annotations

import pytest

from tests.consumer.conftest import (  # noqa: F401 - fixtures, re-exported for these tests
    alice,
    connect,
    instruments,
    ticker,
    user,
)


@pytest.fixture
def bob(transactional_db):
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    u = User.objects.create_user("bob", password="bob-pass-123")
    u.token = Token.objects.create(user=u).key
    return u


@pytest.fixture
def fast_hashing(settings):
    """Password hashing is not under test here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
