"""manage.py feeduser NAME: a user and its token, the token on the last line."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token


def feeduser(*args: str) -> list[str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("feeduser", *args, stdout=out, stderr=err)
    return out.getvalue().splitlines()


def test_creates_a_user_and_prints_its_token_last(db: None) -> None:
    lines = feeduser("bob")
    user = User.objects.get(username="bob")
    assert lines[-1] == Token.objects.get(user=user).key
    assert not user.has_usable_password()
    assert not user.is_staff


def test_an_existing_user_is_reused_with_the_same_token(db: None) -> None:
    first = feeduser("bob")[-1]
    second = feeduser("bob")
    assert second[-1] == first
    assert "Found user bob." in second
    assert User.objects.filter(username="bob").count() == 1


def test_an_existing_users_token_is_printed(token: Token) -> None:
    assert feeduser(token.user.username)[-1] == token.key


def test_password_is_set_on_a_new_user(db: None) -> None:
    feeduser("bob", "--password", "s3cret-enough-pass")
    assert User.objects.get(username="bob").check_password("s3cret-enough-pass")


def test_password_is_set_also_on_an_existing_user(user: User) -> None:
    lines = feeduser("alice", "--password", "another-long-password")
    user.refresh_from_db()
    assert user.check_password("another-long-password")
    assert lines[-1] == Token.objects.get(user=user).key


def test_a_weak_password_is_set_with_a_warning_on_stderr(db: None) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("feeduser", "bob", "--password", "x", stdout=out, stderr=err)
    assert "weak password" in err.getvalue()
    assert User.objects.get(username="bob").check_password("x")


def test_superuser_flag_makes_staff_and_superuser(user: User) -> None:
    feeduser("alice", "--superuser")
    user.refresh_from_db()
    assert user.is_staff
    assert user.is_superuser


@pytest.mark.parametrize("name", ["bad name", "semi;colon", "", "x" * 151, "slash/name"])
def test_an_invalid_username_is_a_command_error(db: None, name: str) -> None:
    with pytest.raises(CommandError, match="Invalid username"):
        feeduser(name)
    assert not User.objects.exists()


def test_an_empty_password_is_a_command_error(db: None) -> None:
    with pytest.raises(CommandError, match="--password"):
        feeduser("bob", "--password", "")
