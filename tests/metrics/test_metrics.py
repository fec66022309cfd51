"""GET /metrics: who may read it, and that its figures follow what the feed does."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request

import pytest
import websockets

from feeds.core import protocol
from feeds.core.engine import Quote
from feeds.deliver import counters
from feeds.edges import metrics
from tests.consumer.conftest import make_user
from tests.schema import decode_frame
from tests.timeouts import timeout


def sample(text: str, name: str, labels: str = "") -> float | None:
    """The value of one sample in a Prometheus text exposition, or None when absent."""
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


# --- units ------------------------------------------------------------------------------


def lag_count() -> float:
    return counters.REGISTRY.get_sample_value("marketfeed_ticker_lag_seconds_count") or 0.0


def test_a_quotes_age_is_read_from_its_own_text():
    def observe(age_s: float) -> None:
        ts = int((time.time() - age_s) * 1e6)
        quote = Quote("AAPL", 1.0, 1.01, 1, 1, 1.0, 1, 1, ts)
        counters.quote_arrived(protocol.encode_quote(quote, 5))

    def bucket(le: str) -> float:
        return counters.REGISTRY.get_sample_value(
            "marketfeed_ticker_lag_seconds_bucket", {"le": le}
        )

    before = lag_count(), bucket("0.25"), bucket("5.0")
    observe(1.0)  # a quote one second old: above 0.25 s, below 5 s
    assert lag_count() == before[0] + 1
    assert (bucket("0.25"), bucket("5.0")) == (before[1], before[2] + 1)
    # Its ts ends the text; a prev_seq or other field after it must not confuse the reader.
    now_us = int(time.time() * 1e6)
    spliced = protocol.encode_quote(Quote("AAPL", 1.0, 1.01, 1, 1, 1.0, 1, 1, now_us), 6)
    counters.quote_arrived(spliced[:-1] + ',"prev_seq":4}')
    assert lag_count() == before[0] + 2
    assert bucket("0.25") == before[1] + 1


@pytest.mark.parametrize("text", ['{"type":"quote"}', '{"ts":"x"}', '{"ts":}', ""])
def test_a_text_without_a_readable_ts_is_not_counted(text):
    before = lag_count()
    counters.quote_arrived(text)
    assert lag_count() == before


def test_errors_are_counted_by_code():
    before = counters.ERRORS.labels(code="bad_json")._value.get()
    counters.count_error(protocol.ErrorCode.BAD_JSON)
    assert "marketfeed_errors_total{code=\"bad_json\"}" in metrics.exposition().decode()
    assert counters.ERRORS.labels(code="bad_json")._value.get() == before + 1


# --- who may read -----------------------------------------------------------------------


@pytest.fixture
def users(db):
    staff, plain = make_user("metricstaff"), make_user("metricplain")
    staff.is_staff = True
    staff.save()
    return staff, plain


def test_anonymous_is_401_and_a_plain_user_403_with_a_json_detail(client, users):
    _, plain = users
    answer = client.get("/metrics")
    assert answer.status_code == 401
    assert "detail" in answer.json()
    answer = client.get("/metrics", HTTP_AUTHORIZATION=f"Token {plain.token}")
    assert answer.status_code == 403
    assert "staff" in answer.json()["detail"]
    client.force_login(plain)
    assert client.get("/metrics").status_code == 403


def test_a_staff_token_or_session_reads_the_figures(client, users):
    staff, _ = users
    answer = client.get("/metrics", HTTP_AUTHORIZATION=f"Token {staff.token}")
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/plain")
    body = answer.content.decode()
    assert "# TYPE marketfeed_connections gauge" in body
    assert sample(body, "process_resident_memory_bytes") > 0
    client.force_login(staff)
    assert client.get("/metrics").status_code == 200


def test_the_bearer_of_the_metrics_token_reads_them_and_no_one_else(client, settings, db):
    settings.FEED_METRICS_TOKEN = "s3cret-scrape-token-0123"
    right = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token-0123")
    assert right.status_code == 200
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token-0124")
    assert wrong.status_code == 403
    settings.FEED_METRICS_TOKEN = ""
    # Unset, no bearer is good: an empty token must not match an empty header.
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_a_short_metrics_token_is_a_configuration_error(tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, FEED_METRICS_TOKEN="short", MARKETFEED_VAR_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env=env, capture_output=True, text=True, timeout=timeout(60),
    )
    assert result.returncode != 0
    assert "FEED_METRICS_TOKEN: at least 16 characters" in result.stderr
    assert "Traceback" not in result.stderr.splitlines()[0]


def test_runticker_refuses_a_bad_metrics_port_with_argparses_message(tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, MARKETFEED_VAR_DIR=str(tmp_path), REDIS_URL="redis://127.0.0.1:1/0")
    result = subprocess.run(
        [sys.executable, "manage.py", "runticker", "--metrics-port", "70000"],
        env=env, capture_output=True, text=True, timeout=timeout(60),
    )
    assert result.returncode == 2
    assert "70000 is not a port in 1-65535" in result.stderr


# --- live -------------------------------------------------------------------------------


def scrape(url: str, token: str) -> str:
    request = urllib.request.Request(url + "/metrics", headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(request, timeout=timeout(10)) as response:
        return response.read().decode()


@pytest.mark.live
async def test_the_figures_follow_a_live_client(server, token):
    before = await asyncio.to_thread(scrape, server.url, token)
    async with websockets.connect(server.ws_url + f"?token={token}") as ws:
        await ws.recv()  # welcome
        await ws.send(json.dumps({"op": "subscribe", "symbols": ["AAPL", "MSFT"], "id": 1}))
        await ws.send(json.dumps({"op": "subscribe", "symbols": ["NOPE"], "id": 2}))
        quotes = 0
        async with asyncio.timeout(timeout(20)):
            while quotes < 5:
                quotes += sum(m["type"] == "quote" for m in decode_frame(await ws.recv()))
        during = await asyncio.to_thread(scrape, server.url, token)
    assert sample(during, "marketfeed_connections", '{kind="websocket"}') >= 1
    assert sample(during, "marketfeed_subscriptions") >= 2
    for name in ("marketfeed_quotes_received_total", "marketfeed_quotes_published_total"):
        assert sample(during, name) > (sample(before, name) or 0), name
    assert sample(during, "marketfeed_quotes_delivered_total") >= (
        sample(before, "marketfeed_quotes_delivered_total") or 0
    ) + quotes
    unknown = '{code="unknown_symbol"}'
    errors_before = sample(before, "marketfeed_errors_total", unknown) or 0
    assert sample(during, "marketfeed_errors_total", unknown) == errors_before + 1
    assert sample(during, "marketfeed_ticker_lag_seconds_count") > 0
    assert sample(during, "marketfeed_instruments_ticking") > 0


@pytest.mark.live
def test_anonymous_scrapes_of_a_live_server_are_refused(server):
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(server.url + "/metrics", timeout=timeout(10))
    assert refused.value.code == 401
    assert "detail" in json.loads(refused.value.read())


@pytest.mark.live
async def test_the_collectors_passes_show_as_they_run(server, token):
    """A pass every FEED_GC_PASS_S (1 s): its time adds up; no reclaim without closes."""
    passes = '{kind="pass"}'
    first = await asyncio.to_thread(scrape, server.url, token)
    held = sample(first, "marketfeed_gc_pause_seconds_total", passes)
    assert held is not None
    async with asyncio.timeout(timeout(20)):
        while True:
            later = await asyncio.to_thread(scrape, server.url, token)
            if sample(later, "marketfeed_gc_pause_seconds_total", passes) > held:
                break
            await asyncio.sleep(0.2)  # polling for the next pass, bounded by the timeout
    assert sample(later, "marketfeed_gc_reclaims_total") == 0
