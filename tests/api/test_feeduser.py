"""manage.py feeduser NAME: a user and a new token each run, the token on the last line."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient


def feeduser(*args: str) -> list[str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("feeduser", *args, stdout=out, stderr=err)
    return out.getvalue().splitlines()


def works(token: str) -> bool:
    """Whether ``token`` authenticates an API call, as a script would find out."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client.get("/api/instruments/").status_code == 200


def test_creates_a_user_and_prints_a_working_token_last(db: None) -> None:
    lines = feeduser("bob")
    user = User.objects.get(username="bob")
    assert works(lines[-1])
    assert not user.has_usable_password()
    assert not user.is_staff


def test_each_run_issues_a_new_token_and_the_earlier_one_stays_valid(db: None) -> None:
    first = feeduser("bob")[-1]
    second = feeduser("bob")
    assert second[-1] != first
    assert works(first)
    assert works(second[-1])
    assert "Found user bob." in second
    assert User.objects.filter(username="bob").count() == 1


def test_an_existing_user_gets_a_token_of_its_own(token) -> None:
    printed = feeduser(token.user.username)[-1]
    assert works(printed)
    assert works(token.key)


def test_password_is_set_on_a_new_user(db: None) -> None:
    feeduser("bob", "--password", "s3cret-enough-pass")
    assert User.objects.get(username="bob").check_password("s3cret-enough-pass")


def test_password_is_set_also_on_an_existing_user(user: User) -> None:
    lines = feeduser("alice", "--password", "another-long-password")
    user.refresh_from_db()
    assert user.check_password("another-long-password")
    assert works(lines[-1])


def test_a_weak_password_is_set_with_a_warning_on_stderr(db: None) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("feeduser", "bob", "--password", "x", stdout=out, stderr=err)
    assert "weak password" in err.getvalue()
    assert User.objects.get(username="bob").check_password("x")


def test_a_password_file_is_generated_once_private_and_shown_once(
    db: None, tmp_path: Path
) -> None:
    path = tmp_path / "var" / "demo-password"
    first = feeduser("demo", "--password-file", str(path))
    password = path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(password) >= 20
    assert any(password in line for line in first[:-1])
    assert User.objects.get(username="demo").check_password(password)

    again = feeduser("demo", "--password-file", str(path))
    assert path.read_text().strip() == password
    assert not any(password in line for line in again)
    assert works(again[-1])


def test_two_fresh_password_files_hold_different_passwords(db: None, tmp_path: Path) -> None:
    feeduser("one", "--password-file", str(tmp_path / "one"))
    feeduser("two", "--password-file", str(tmp_path / "two"))
    assert (tmp_path / "one").read_text() != (tmp_path / "two").read_text()


def test_a_kept_password_file_sets_the_password_of_a_new_database(
    db: None, tmp_path: Path
) -> None:
    path = tmp_path / "demo-password"
    path.write_text("kept-password-from-before\n")
    path.chmod(0o600)
    feeduser("demo", "--password-file", str(path))
    assert User.objects.get(username="demo").check_password("kept-password-from-before")


def test_password_and_password_file_exclude_each_other(db: None, tmp_path: Path) -> None:
    with pytest.raises(CommandError):
        feeduser("bob", "--password", "x", "--password-file", str(tmp_path / "p"))


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
