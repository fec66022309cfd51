"""An upgraded database keeps none of DRF's old plain-text tokens (feeds migration 0006).

Releases before knox kept API tokens in clear, in ``rest_framework.authtoken``'s
table ``authtoken_token``. Each test makes a database as such a release left
it (every migration before feeds 0006 applied with ``rest_framework.authtoken``
installed, and one token issued), then runs ``manage.py migrate`` with the
product's settings, as an operator upgrading would: the table is gone, and so
is authtoken's migration history (installing it again would make a new, empty
table). On SQLite the token is in no byte of the database's files either, even
with SQLite's own default of ``secure_delete`` off (Debian builds it on; most
builds do not), which would leave the dropped rows in free pages.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

import pytest

from tests.redis.conftest import postgres_url  # noqa: F401 (fixture)
from tests.servers import manage

OLD_RELEASE_SETTINGS = """
from marketfeed.settings import *  # noqa: F403
INSTALLED_APPS = [*INSTALLED_APPS, "rest_framework.authtoken"]  # noqa: F405
"""

# The product's settings, on a SQLite library whose secure_delete is off by default.
SECURE_DELETE_OFF_SETTINGS = """
from marketfeed.settings import *  # noqa: F403
DATABASES["default"]["OPTIONS"]["init_command"] += "PRAGMA secure_delete = OFF;"  # noqa: F405
"""

# Run by the old release's settings: everything up to, not including, feeds 0006.
OLD_RELEASE = """
from django.contrib.auth.models import User
from django.core.management import call_command
from rest_framework.authtoken.models import Token
call_command("migrate", verbosity=0)
call_command("migrate", "feeds", "0005", verbosity=0)
print(Token.objects.create(user=User.objects.create_user("olduser")).key)
"""


def environment(tmp_path: Path, settings: str, **extra: str) -> dict[str, str]:
    modules = tmp_path / "settings"
    modules.mkdir(exist_ok=True)
    (modules / "old_release.py").write_text(OLD_RELEASE_SETTINGS)
    (modules / "secure_delete_off.py").write_text(SECURE_DELETE_OFF_SETTINGS)
    unset = ("REDIS_URL", "DATABASE_URL", "FEED_TICKER", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    path = os.pathsep.join(p for p in (str(modules), os.environ.get("PYTHONPATH")) if p)
    env.update(
        MARKETFEED_VAR_DIR=str(tmp_path / "var"), PYTHONPATH=path,
        DJANGO_SETTINGS_MODULE=settings, **extra,
    )
    return env


def old_release_database(tmp_path: Path, **extra: str) -> str:
    """Make the database an old release left behind; return the token it holds in clear."""
    printed = manage(environment(tmp_path, "old_release", **extra), "shell", "-c", OLD_RELEASE)
    return printed.strip().splitlines()[-1]


def test_migrate_drops_the_plain_text_tokens_from_an_upgraded_sqlite_database(tmp_path):
    token = old_release_database(tmp_path)
    database = tmp_path / "var" / "db.sqlite3"
    # Open throughout, as a running server's would be: the migration's connection is then
    # not the last to close, which would otherwise write the WAL into the file for it.
    with contextlib.closing(sqlite3.connect(database)) as db:

        def query(sql: str) -> list[tuple]:
            return db.execute(sql).fetchall()

        # As the old release left it: the token in clear, its app's migrations on record.
        assert query("SELECT key FROM authtoken_token") == [(token,)]
        assert query("SELECT COUNT(*) FROM django_migrations WHERE app = 'authtoken'") != [(0,)]

        manage(environment(tmp_path, "secure_delete_off"), "migrate", "--noinput")

        assert query("SELECT name FROM sqlite_master WHERE name LIKE 'authtoken%'") == []
        assert query("SELECT name FROM django_migrations WHERE app = 'authtoken'") == []
        files = sorted(database.parent.glob("db.sqlite3*"))  # the WAL too
        assert [f for f in files if token.encode() in f.read_bytes()] == [], "token left"


@pytest.mark.postgres
def test_migrate_drops_the_plain_text_tokens_from_an_upgraded_postgres_database(
    tmp_path, request
):
    import psycopg

    url = request.getfixturevalue("postgres_url")  # a new database of its own
    token = old_release_database(tmp_path, DATABASE_URL=url)
    with psycopg.connect(url) as db:
        assert db.execute("SELECT key FROM authtoken_token").fetchall() == [(token,)]

    upgrade = environment(tmp_path, "marketfeed.settings", DATABASE_URL=url)
    manage(upgrade, "migrate", "--noinput")

    with psycopg.connect(url) as db:
        assert db.execute("SELECT to_regclass('authtoken_token')").fetchone() == (None,)
        history = db.execute("SELECT name FROM django_migrations WHERE app = 'authtoken'")
        assert history.fetchall() == []
