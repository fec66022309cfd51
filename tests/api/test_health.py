"""GET /healthz: 200 when database, channel layer and store answer; 503 naming what failed."""

from __future__ import annotations

import asyncio

import pytest
from django.test import Client

from feeds.edges import health
from feeds.publish import build, store

ALL_OK = {"status": "ok", "database": "ok", "channel_layer": "ok", "store": "ok"}


def test_healthz_is_200_when_everything_answers(client: Client, db: None) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == ALL_OK
    assert "no-cache" in response["Cache-Control"]


def test_healthz_needs_no_authentication(client: Client, db: None) -> None:
    client.logout()
    assert client.get("/healthz").status_code == 200


def test_healthz_answers_head_and_refuses_post(client: Client, db: None) -> None:
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


def test_healthz_is_503_without_a_channel_layer(client: Client, db: None, settings) -> None:
    settings.CHANNEL_LAYERS = {}
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {**ALL_OK, "status": "unavailable", "channel_layer": "unavailable"}


class BrokenStore(store.MemoryStore):
    async def ping(self) -> None:
        raise ConnectionError("Connection refused (secret host name)")


class SilentStore(store.MemoryStore):
    async def ping(self) -> None:
        await asyncio.Event().wait()


def test_healthz_is_503_when_the_store_fails_and_says_nothing_more(
    client: Client, db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "_store", BrokenStore())
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {**ALL_OK, "status": "unavailable", "store": "unavailable"}
    assert b"secret" not in response.content


def test_healthz_is_503_when_the_store_does_not_answer_in_time(
    client: Client, db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "_store", SilentStore())
    monkeypatch.setattr(health, "CHECK_TIMEOUT_S", 0.01)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["store"] == "unavailable"


def test_healthz_is_503_when_the_database_fails(
    client: Client, db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def database_down() -> None:
        raise OSError("database is locked")

    monkeypatch.setitem(health.CHECKS, "database", database_down)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {**ALL_OK, "status": "unavailable", "database": "unavailable"}
