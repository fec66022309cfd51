"""In-process tests' database: a write in one thread while another thread is mid-read.

pytest-django gives in-process tests SQLite's in-memory database in
shared-cache mode, and the feed's ticker and services read and write it from
several threads. There a reader holds a table lock that fails a writer at
once, unless the connection reads uncommitted (tests/conftest.py). The
product's WAL file database never blocks a writer on a reader; this is the
same guarantee for the tests.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from feeds.models import Instrument
from tests.api.conftest import INSTRUMENT_DEFAULTS

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_write_goes_through_while_another_thread_is_reading_the_table():
    for symbol in ("LOCKA", "LOCKB", "LOCKC"):
        Instrument.objects.create(symbol=symbol, **INSTRUMENT_DEFAULTS)
    reading, finish = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def reader() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT id FROM feeds_instrument ORDER BY id")
                cursor.fetchone()  # the statement is still running: rows are left
                reading.set()
                finish.wait(30)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
            reading.set()
        finally:
            connection.close()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        assert reading.wait(30)
        updated = Instrument.objects.filter(symbol="LOCKB").update(active=False)
    finally:
        finish.set()
        thread.join(30)
    assert failures == []
    assert updated == 1
    assert Instrument.objects.get(symbol="LOCKB").active is False
