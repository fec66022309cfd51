"""Tokens never reach the access log: a real daphne (``deploy.serve``), its real log lines."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import urllib.request

import pytest
import websockets

from deploy.serve import mask_secrets
from tests.servers import ROOT, free_port
from tests.timeouts import timeout

pytestmark = pytest.mark.live


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/ws/quotes/?token=abc123", "/ws/quotes/?token=***"),
        (
            "/api/quotes/?symbols=AAPL,EUR/USD&token=abc&page=2",
            "/api/quotes/?symbols=AAPL,EUR/USD&token=***&page=2",
        ),
        (
            "/x?TOKEN=a&%74oken=b&access_token=c&password=d",
            "/x?TOKEN=***&%74oken=***&access_token=***&password=***",
        ),
        ("/x?tokens=kept&notoken=kept&token", "/x?tokens=kept&notoken=kept&token"),
        ("/x?token=a#frag", "/x?token=***#frag"),
        ("/healthz", "/healthz"),
    ],
)
def test_mask_replaces_only_secret_values(path, logged):
    assert mask_secrets(path) == logged


class Daphne:
    """``python -m deploy.serve`` on a free port, every output line kept and waited on."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.serve", "-b", "127.0.0.1", "-p", str(self.port),
             "--access-log", "-", "marketfeed.asgi:application"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.reader = threading.Thread(target=self._pump, daemon=True)
        self.reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()

    def wait_for(self, words: str) -> str:
        """The first line holding ``words`` (it may already be there)."""
        found: list[str] = []

        def seen() -> bool:
            found[:] = [line for line in self.lines if words in line]
            return bool(found)

        with self.changed:
            assert self.changed.wait_for(seen, timeout(30)), "".join(self.lines)
        return found[0]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout(10))
        self.reader.join(timeout(10))  # it reads to the end of the output, then stops
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def fetch(request: urllib.request.Request | str) -> tuple[int, bytes]:
    """Send ``request``: its status and body. Blocking, so the tests call it in a thread."""
    with urllib.request.urlopen(request, timeout=timeout(10)) as r:
        return r.status, r.read()


@pytest.fixture
def daphne(live_env):
    server = Daphne(live_env)
    server.wait_for("ticker started")
    yield server
    server.stop()


async def test_the_access_log_masks_tokens_and_keeps_the_rest_of_the_line(daphne, token):
    base = f"http://127.0.0.1:{daphne.port}"
    _, body = await asyncio.to_thread(fetch, f"{base}/healthz?token={token}&probe=1")
    assert json.loads(body)["status"] == "ok"
    request = urllib.request.Request(
        f"{base}/api/quotes/?symbols=AAPL&token={token}",
        headers={"Authorization": f"Token {token}"},
    )
    status, _ = await asyncio.to_thread(fetch, request)
    assert status == 200
    async with websockets.connect(f"ws://127.0.0.1:{daphne.port}/ws/quotes/?token={token}") as ws:
        assert json.loads(await ws.recv())["type"] == "welcome"
    daphne.wait_for("WSDISCONNECT /ws/quotes/")

    health = daphne.wait_for('"GET /healthz?token=***&probe=1" 200')
    assert health.startswith("127.0.0.1:")
    daphne.wait_for('"GET /api/quotes/?symbols=AAPL&token=***" 200')
    daphne.wait_for('"WSCONNECT /ws/quotes/')
    log = "".join(daphne.lines)
    assert token not in log
