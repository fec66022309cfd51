"""The process figures of /healthz are for staff only; nobody else sees that they exist."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.servers import manage
from tests.timeouts import timeout

pytestmark = pytest.mark.live


def healthz(url: str, headers: dict[str, str]) -> dict:
    request = urllib.request.Request(url + "/healthz", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout(10)) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def test_only_a_staff_token_gets_the_process_figures(feed_server):
    feed = feed_server()
    plain = manage(feed.env, "feeduser", "notstaff").strip().splitlines()[-1]
    url = feed.server.url
    assert "process" not in healthz(url, {})
    assert "process" not in healthz(url, {"Authorization": f"Token {plain}"})
    assert "process" not in healthz(url, {"Authorization": "Token not-a-token"})
    figures = healthz(url, {"Authorization": f"Token {feed.token}"})["process"]
    assert figures["websockets"] == 0
    assert figures["rss_bytes"] > 0
