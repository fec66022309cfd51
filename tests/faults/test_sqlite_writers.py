"""Two processes writing one SQLite database: a transaction that reads, then writes, waits its turn.

SQLite's default (deferred) transaction reads from a snapshot and asks for
the write lock only at its first write; if another process has written since
the snapshot, SQLite refuses at once ("database is locked"), without the busy
timeout's wait. ``feeduser`` reads the user, hashes the password (a fraction
of a second), then saves: with a running feed writing bars meanwhile, that is
the window. The setting under test makes Django begin every transaction with
the write lock (``transaction_mode`` IMMEDIATE), so it waits instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.timeouts import timeout

ROOT = Path(__file__).resolve().parents[2]

# Another process committing a small write every few milliseconds, as the bar writer does.
WRITER = """
import django, os, time
django.setup()
from django.contrib.auth import get_user_model
User = get_user_model()
User.objects.get_or_create(username="writer")
print("ready", flush=True)
while True:
    User.objects.filter(username="writer").update(last_name=str(time.monotonic()))
    time.sleep(0.002)
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    out.update(MARKETFEED_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="marketfeed.settings")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=out, check=True,
        capture_output=True, timeout=timeout(120),
    )
    return out


def test_feeduser_succeeds_while_another_process_keeps_writing(env):
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        for attempt in range(5):
            result = subprocess.run(
                [sys.executable, "manage.py", "feeduser", "bea", "--password", f"pw-{attempt}-x!Q"],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout(120),
            )
            assert result.returncode == 0, result.stderr[-600:]
            assert "user bea" in result.stdout
    finally:
        writer.kill()
        writer.wait()
        if writer.stdout is not None:
            writer.stdout.close()
