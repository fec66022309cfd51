"""Production settings: from the environment, no shipped secret, ``check --deploy`` clean."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys

import pytest

from tests.servers import ROOT
from tests.timeouts import timeout


def run_manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=timeout(120),
    )


@pytest.fixture
def base_env(tmp_path) -> dict[str, str]:
    """The environment less anything that configures marketfeed, with a fresh var/ dir."""
    env = {k: v for k, v in os.environ.items() if k not in (
        "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "HTTPS", "REDIS_URL", "DATABASE_URL",
        "CSRF_TRUSTED_ORIGINS", "DJANGO_SETTINGS_MODULE",
    ) and not k.startswith("SECURE_")}
    env["MARKETFEED_VAR_DIR"] = str(tmp_path / "var")
    return env


@pytest.fixture
def production_env(base_env) -> dict[str, str]:
    return {
        **base_env,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "feed.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://feed.example.com",
        "HTTPS": "1",
    }


def test_check_deploy_is_clean_with_production_settings(production_env):
    result = run_manage(production_env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("change", "warning"),
    [
        ({"DEBUG": "1"}, "security.W018"),
        ({"HTTPS": "0"}, "security.W012"),  # session cookie over plain http
        ({"SECRET_KEY": "short"}, "security.W009"),
    ],
)
def test_check_deploy_fails_when_a_production_setting_is_off(production_env, change, warning):
    result = run_manage(
        {**production_env, **change}, "check", "--deploy", "--fail-level", "WARNING"
    )
    assert result.returncode != 0
    assert warning in result.stdout + result.stderr


def test_settings_come_from_the_environment(production_env):
    code = (
        "from django.conf import settings as s; "
        "print(s.DEBUG, s.ALLOWED_HOSTS, s.SECRET_KEY == __import__('os').environ['SECRET_KEY'])"
    )
    result = run_manage(production_env, "shell", "--no-imports", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False ['feed.example.com'] True"


def test_without_secret_key_a_local_secret_is_generated_once_and_kept(base_env, tmp_path):
    show = "from django.conf import settings; print(settings.SECRET_KEY)"
    first = run_manage(base_env, "shell", "--no-imports", "-c", show)
    assert first.returncode == 0, first.stderr
    again = run_manage(base_env, "shell", "--no-imports", "-c", show)
    key = first.stdout.strip()
    assert again.stdout.strip() == key, "the secret must survive a restart (sessions stay valid)"
    assert len(key) >= 50
    assert not key.startswith("django-insecure")
    path = tmp_path / "var" / "secret_key"
    assert path.read_text().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Another checkout gets its own; the code ships none.
    other_env = {**base_env, "MARKETFEED_VAR_DIR": str(tmp_path / "other")}
    other = run_manage(other_env, "shell", "--no-imports", "-c", show)
    assert other.stdout.strip() != key
    assert key not in (ROOT / "marketfeed" / "settings.py").read_text()
