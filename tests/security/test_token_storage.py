"""The database never holds a usable credential: tokens and tickets are stored as hashes.

A dump of every column of every table, taken right after tokens were issued
in each way there is (the API, ``feeduser``, the admin), must not contain
them; nor may the part of a token past knox's 15-character lookup prefix
appear anywhere. A ticket is not in the cache in clear either.
"""

from __future__ import annotations

import io
import pickle

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import Client

pytestmark = pytest.mark.django_db


def database_dump() -> str:
    """Every value of every row of every table, as text."""
    parts: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        parts.append(bytes(value).decode("latin-1"))
                    else:
                        parts.append(str(value))
    return "\n".join(parts)


def assert_nowhere(token: str, dump: str) -> None:
    assert len(token) == 64
    assert token not in dump
    # knox keeps the first 15 characters to find the row; the other 196 bits are secret.
    assert token[15:] not in dump
    assert token[-20:] not in dump


def test_tokens_just_issued_appear_nowhere_in_the_database(fast_hashing, admin_client):
    User.objects.create_user("alice", password="alice-long-password")
    issued = []
    response = Client().post(
        "/api/token/", {"username": "alice", "password": "alice-long-password"},
        content_type="application/json",
    )
    issued.append(response.json()["token"])

    out = io.StringIO()
    call_command("feeduser", "bob", stdout=out)
    issued.append(out.getvalue().splitlines()[-1])

    bob = User.objects.get(username="bob")
    added = admin_client.post("/admin/knox/authtoken/add/", {"user": bob.pk})
    shown = [str(m) for m in get_messages(added.wsgi_request)]
    issued.append(next(m.split()[-1] for m in shown if m.startswith("TOKEN ")))

    dump = database_dump()
    assert "alice" in dump  # the dump does see the tables
    for token in issued:
        assert_nowhere(token, dump)


def test_a_ticket_is_kept_in_the_cache_only_as_a_hash(fast_hashing):
    from rest_framework.test import APIClient

    user = User.objects.create_user("alice", password="alice-long-password")
    api = APIClient()
    api.force_authenticate(user)
    ticket = api.post("/api/ws-ticket/").json()["ticket"]
    # Django's local-memory cache: its keys and pickled values, as a dump would show them.
    stored = b"".join(
        key.encode() + value for key, value in cache._cache.items()  # type: ignore[attr-defined]
    )
    assert stored  # the ticket is in there, somehow
    assert ticket.encode() not in stored
    assert pickle.dumps(ticket) not in stored
