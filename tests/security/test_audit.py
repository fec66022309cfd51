"""Audit: who changed what, and when, through the admin (feeds/edges/admin.py).

Every admin change to instruments and entitlements is an entry of Django's
admin log naming the user and the time; halts and resumes (admin actions,
which Django does not log by itself) too, and they are also written to the
application log with the user's name.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.models import User
from django.utils import timezone

from feeds.models import Entitlement, Instrument

pytestmark = pytest.mark.django_db

INSTRUMENT = {
    "symbol": "NVDA", "name": "NVIDIA", "exchange": "XNAS", "asset_class": "equity",
    "currency": "USD", "tick_size": "0.01", "lot_size": "100", "reference_price": "181.40",
    "volatility": "0.5", "quote_rate": "8", "active": "on",
}


@pytest.fixture
def operator(admin_client, admin_user):
    return admin_client




def entries(model, action: int) -> list[LogEntry]:
    from django.contrib.contenttypes.models import ContentType

    kind = ContentType.objects.get_for_model(model)
    return list(LogEntry.objects.filter(content_type=kind, action_flag=action).order_by("pk"))


def assert_recent_by(entry: LogEntry, user: User) -> None:
    assert entry.user_id == user.pk
    assert timezone.now() - entry.action_time < timedelta(minutes=1)


def test_adding_changing_and_deleting_an_instrument_are_in_the_admin_log(operator, admin_user):
    Instrument.objects.all().delete()
    assert operator.post("/admin/feeds/instrument/add/", INSTRUMENT).status_code == 302
    nvda = Instrument.objects.get(symbol="NVDA")
    changed = {**INSTRUMENT, "name": "NVIDIA Corporation"}
    assert operator.post(f"/admin/feeds/instrument/{nvda.pk}/change/", changed).status_code == 302
    assert operator.post(
        f"/admin/feeds/instrument/{nvda.pk}/delete/", {"post": "yes"}
    ).status_code == 302

    (added,) = entries(Instrument, ADDITION)
    (change,) = entries(Instrument, CHANGE)
    (deleted,) = entries(Instrument, DELETION)
    for entry in (added, change, deleted):
        assert_recent_by(entry, admin_user)
        assert entry.object_id == str(nvda.pk)
    assert "Name" in change.get_change_message()


def test_entitlement_changes_are_in_the_admin_log(operator, admin_user):
    alice = User.objects.create_user("alice")
    form = {"user": alice.pk, "group": "", "exchange": "xnas", "asset_class": ""}
    assert operator.post("/admin/feeds/entitlement/add/", form).status_code == 302
    licence = Entitlement.objects.get(user=alice)
    assert operator.post(
        f"/admin/feeds/entitlement/{licence.pk}/delete/", {"post": "yes"}
    ).status_code == 302
    (added,) = entries(Entitlement, ADDITION)
    (deleted,) = entries(Entitlement, DELETION)
    assert_recent_by(added, admin_user)
    assert_recent_by(deleted, admin_user)


def test_a_halt_and_a_resume_are_in_the_admin_log_and_the_application_log(
    operator, admin_user, feed_log
):
    Instrument.objects.all().delete()
    operator.post("/admin/feeds/instrument/add/", INSTRUMENT)
    nvda = Instrument.objects.get(symbol="NVDA")
    LogEntry.objects.all().delete()
    feed_log.clear()

    for action in ("halt_selected", "resume_selected"):
        response = operator.post(
            "/admin/feeds/instrument/", {"action": action, "_selected_action": [nvda.pk]}
        )
        assert response.status_code == 302

    halted, resumed = entries(Instrument, CHANGE)
    for entry in (halted, resumed):
        assert_recent_by(entry, admin_user)
        assert entry.object_id == str(nvda.pk)
    assert "Halted" in halted.get_change_message()
    assert "Resumed" in resumed.get_change_message()

    lines = [r.getMessage() for r in feed_log.records if r.name == "feeds.edges.admin"]
    assert any("halted by admin" in line and "NVDA" in line for line in lines), lines
    assert any("resumed by admin" in line and "NVDA" in line for line in lines), lines


def test_every_admin_log_entry_also_reaches_the_application_log(operator, feed_log):
    Instrument.objects.all().delete()
    operator.post("/admin/feeds/instrument/add/", INSTRUMENT)
    audit = [r.getMessage() for r in feed_log.records if r.name == "feeds.audit"]
    assert any("added instrument 'NVDA" in line for line in audit), audit
