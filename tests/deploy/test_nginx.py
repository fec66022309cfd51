"""deploy/nginx/marketfeed.conf, live: nginx in front of the local cluster's two daphnes.

One ``python -m deploy.cluster --nginx PORT`` for the module (real Redis, one
runticker, two daphne processes, nginx with the shipped site file). Every
client below talks to nginx only; one test adds a second nginx whose upstream
lists a dead port next to a live daphne. The module's teardown stops the cluster
with SIGTERM, as an operator would, and checks that it exits 0 and leaves no
child behind.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import re
import subprocess
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import websockets

from deploy import nginx
from tests.deploy.conftest import ClusterProcess, alive, cluster_env
from tests.schema import decode_frame
from tests.servers import free_port
from tests.timeouts import timeout

pytestmark = [pytest.mark.live, pytest.mark.redis]


@dataclass
class Cluster:
    process: ClusterProcess
    token: str
    password: str
    nginx_port: int
    web_ports: tuple[int, int]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.nginx_port}/ws/quotes/?token={self.token}"


@pytest.fixture(scope="module")
def cluster(redis_url: str) -> Iterator[Cluster]:
    if nginx.find_nginx() is None:
        pytest.fail("nginx is not installed: apt-get install nginx (.ci/run does)")
    web_ports = (free_port(), free_port())
    nginx_port = free_port()
    with tempfile.TemporaryDirectory(prefix="marketfeed-cluster-test-") as var:
        process = ClusterProcess(
            ["--ports", f"{web_ports[0]},{web_ports[1]}", "--nginx", str(nginx_port)],
            cluster_env(Path(var), REDIS_URL=redis_url),
        ).start()
        try:
            token = process.wait_for(r"token: (\w+)", seconds=180)[1]
            # The demo password is random and kept in the var directory, never printed.
            password_file = Path(var) / "demo-password"
            process.wait_for(rf"login: demo / password in {re.escape(str(password_file))}$")
            password = password_file.read_text().strip()
            yield Cluster(process, token, password, nginx_port, web_ports)
        finally:
            pids = process.pids()
            code = process.terminate()
        assert code == 0, "\n".join(process.lines[-40:])
        assert set(pids) == {"ticker", "nginx", *(f"web-{p}" for p in web_ports)}, pids
        assert not [name for name, pid in pids.items() if alive(pid)], "children left running"


def get(url: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Token {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout(10)) as response:
        return response.status, dict(response.headers), response.read()


async def first_of_each(
    ws: websockets.ClientConnection, kinds: set[str], symbols: set[str]
) -> dict:
    """Read until a message of one of ``kinds`` has arrived for every symbol; return them."""
    seen: dict[str, dict] = {}
    while set(seen) != symbols:
        for msg in decode_frame(await asyncio.wait_for(ws.recv(), timeout(10))):
            if msg["type"] in kinds and msg["symbol"] in symbols:
                seen.setdefault(msg["symbol"], msg)
    return seen


async def test_a_websocket_through_nginx_authenticates_subscribes_and_gets_quotes(cluster):
    async with websockets.connect(cluster.ws_url) as ws:
        welcome = decode_frame(await asyncio.wait_for(ws.recv(), timeout(10)))[0]
        assert welcome["type"] == "welcome"
        assert welcome["user"] == "demo"
        await ws.send(json.dumps({"op": "subscribe", "symbols": ["AAPL", "BTC-USD"], "id": 1}))
        quotes = await first_of_each(ws, {"quote"}, {"AAPL", "BTC-USD"})
    assert all(q["seq"] >= 1 for q in quotes.values())


async def test_the_token_in_the_query_string_stays_out_of_the_logs(cluster):
    since = cluster.process.mark()
    async with websockets.connect(cluster.ws_url) as ws:
        await asyncio.wait_for(ws.recv(), timeout(10))
    # nginx writes a tunnel's access-log line when it closes.
    line = cluster.process.wait_for(r"nginx \| .*\"GET /ws/quotes/ HTTP/1.1\" 101", since=since)
    assert cluster.token not in line.string
    leaks = [
        text for text in cluster.process.lines
        if cluster.token in text and re.match(r"\s*(nginx|web-\d+|ticker) \|", text)
    ]
    assert not leaks


async def test_connections_through_nginx_land_on_both_daphne_processes(cluster):
    since = cluster.process.mark()
    async with asyncio.timeout(timeout(60)):
        # Held open one after another: least_conn sends each to the daphne with fewer.
        sockets = []
        try:
            for _ in range(4):
                ws = await websockets.connect(cluster.ws_url)
                sockets.append(ws)
                assert decode_frame(await ws.recv())[0]["type"] == "welcome"
            for ws in sockets:
                await ws.send(json.dumps({"op": "subscribe", "symbols": ["MSFT"]}))
            # Every connection, whichever daphne holds it, gets the shared feed.
            for ws in sockets:
                await first_of_each(ws, {"quote"}, {"MSFT"})
        finally:
            for ws in sockets:
                await ws.close()
    for port in cluster.web_ports:
        cluster.process.wait_for(rf"web-{port} \| .*\"WSCONNECT /ws/quotes/\"", since=since)


async def test_healthz_and_rest_quotes_answer_through_nginx(cluster):
    # A snapshot on subscribe comes from the store, so REST must have these quotes too.
    async with websockets.connect(cluster.ws_url) as ws:
        await ws.send(json.dumps({"op": "subscribe", "symbols": ["AAPL", "EUR/USD"]}))
        await first_of_each(ws, {"snapshot", "quote"}, {"AAPL", "EUR/USD"})
    status, headers, body = await asyncio.to_thread(get, f"{cluster.url}/healthz")
    assert status == 200
    assert headers["Server"].startswith("nginx")
    assert json.loads(body)["status"] == "ok"
    query = urllib.parse.urlencode({"symbols": "AAPL,EUR/USD"})
    url = f"{cluster.url}/api/quotes/?{query}"
    status, _, body = await asyncio.to_thread(get, url, cluster.token)
    assert status == 200
    assert [q["symbol"] for q in json.loads(body)] == ["AAPL", "EUR/USD"]


def test_the_banner_names_the_password_file_and_keeps_the_token_out_of_urls(cluster):
    banner = [line for line in cluster.process.lines if re.match(r"\s*cluster \|", line)]
    assert not [line for line in banner if cluster.password in line], "password printed"
    hint = next(line for line in banner if "try: websocat" in line)
    assert f"-H 'Authorization: Token {cluster.token}'" in hint
    assert "?token=" not in hint


def test_a_browser_login_through_nginx_passes_the_csrf_origin_check(cluster):
    """Host is passed with its port ($http_host): Django compares Origin with scheme://Host."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{cluster.url}/accounts/login/", timeout=timeout(10)) as page:
        html = page.read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert csrf, html
    form = urllib.parse.urlencode(
        {"username": "demo", "password": cluster.password, "csrfmiddlewaretoken": csrf[1]}
    ).encode()
    request = urllib.request.Request(
        f"{cluster.url}/accounts/login/", data=form, headers={"Origin": cluster.url}
    )
    with opener.open(request, timeout=timeout(10)) as landed:
        # Logged in: redirected to the ticker page, not back to the login form.
        assert landed.status == 200
        assert urllib.parse.urlsplit(landed.url).path == "/"


@pytest.fixture
def nginx_with_a_dead_backend(cluster: Cluster) -> Iterator[str]:
    """A second nginx on the same site file: one live daphne of the cluster, one dead port."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="marketfeed-nginx-test-") as workdir:
        conf = nginx.write_config(
            Path(workdir), listen=f"127.0.0.1:{port}",
            backends=[f"127.0.0.1:{free_port()}", f"127.0.0.1:{cluster.web_ports[0]}"],
        )
        proc = subprocess.Popen(
            nginx.command(nginx.find_nginx() or "nginx", Path(workdir), conf),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:  # ready when it says so
                if nginx.READY_TEXT in line:
                    break
            else:
                pytest.fail("nginx did not start")
            yield f"127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.communicate(timeout=timeout(10))


async def test_a_dead_backend_is_skipped_and_every_client_still_gets_in(
    cluster, nginx_with_a_dead_backend
):
    address = nginx_with_a_dead_backend
    for _ in range(4):
        async with websockets.connect(f"ws://{address}/ws/quotes/?token={cluster.token}") as ws:
            msg = decode_frame(await asyncio.wait_for(ws.recv(), timeout(10)))[0]
            assert msg["type"] == "welcome"
        status, _, _ = await asyncio.to_thread(get, f"http://{address}/healthz")
        assert status == 200
