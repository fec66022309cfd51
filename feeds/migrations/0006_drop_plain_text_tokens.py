"""Drop ``authtoken_token``: DRF's old API tokens, each stored in clear.

django-rest-knox replaced ``rest_framework.authtoken``, which is no longer
installed, so nothing reads that table; but a database upgraded from a
release before knox still holds every old token there, readable by anyone
with a copy of the database. The old tokens cannot be carried over (knox
keeps only a hash of a token it made itself): users get new ones with
``manage.py feeduser NAME`` or ``POST /api/token/`` (docs/SECURITY.md).

``DROP TABLE IF EXISTS`` works on SQLite and PostgreSQL alike and does
nothing on a database that never had the table. On SQLite, ``secure_delete``
is on for the drop, so the freed pages are overwritten with zeros rather than
left in the file with the tokens on them, and a checkpoint right after writes
those zeros from the write-ahead log into the database file itself: otherwise,
while a server keeps the database open, the old pages would stay there until
some later checkpoint. The ``authtoken`` rows of
``django_migrations`` go too, so that installing ``rest_framework.authtoken``
again later creates a new, empty table. Should it be installed while this
runs, the table is in use and is left alone. Reversing this migration
restores nothing: the tokens are gone for good, as intended.
"""

from django.apps import apps as installed
from django.db import migrations, transaction
from django.db.migrations.recorder import MigrationRecorder

OLD_APP = "rest_framework.authtoken"
OLD_TABLE = "authtoken_token"


def drop_plain_text_tokens(apps, schema_editor):
    if installed.is_installed(OLD_APP):
        return
    connection = schema_editor.connection
    sqlite = connection.vendor == "sqlite"
    recorder = MigrationRecorder(connection)
    with connection.cursor() as cursor:
        if sqlite:
            cursor.execute("PRAGMA secure_delete")
            (previous,) = cursor.fetchone()
            cursor.execute("PRAGMA secure_delete = ON")
        try:
            with transaction.atomic(using=connection.alias):
                cursor.execute(f"DROP TABLE IF EXISTS {schema_editor.quote_name(OLD_TABLE)}")
                recorder.migration_qs.filter(app="authtoken").delete()
            if sqlite:
                # Committed; now into the database file (a no-op unless in WAL mode).
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            if sqlite:
                cursor.execute(f"PRAGMA secure_delete = {int(previous)}")


class Migration(migrations.Migration):
    # Not one transaction around it all: the SQLite checkpoint must follow the commit.
    atomic = False
    # Tuples: Django copies both into lists of its own for each instance.
    dependencies = (("feeds", "0005_server_events"),)
    operations = (migrations.RunPython(drop_plain_text_tokens, migrations.RunPython.noop),)
