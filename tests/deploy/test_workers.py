"""``deploy.cluster --workers N`` (``run.py --workers N``): N daphne processes on one port.

Each worker inherits a listening socket of its own on the same port
(SO_REUSEPORT) and the kernel spreads new connections over them. Live: 200
clients land on more than one worker (counted from each worker's own
sockets in /proc), every worker delivers the same quotes, and SIGTERM drains
every worker with the ``reconnect`` advisory before its 1001.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections import Counter
from pathlib import Path

import pytest
import websockets

from deploy.procs import established_by_pid
from tests.deploy.conftest import ClusterProcess, alive, cluster_env, run_cluster_command
from tests.schema import decode_frame
from tests.servers import free_port
from tests.timeouts import timeout

WORKERS = 3
CLIENTS = 200


class Client:
    def __init__(self, ws: websockets.ClientConnection, news: asyncio.Event) -> None:
        self.ws, self.news = ws, news
        self.quotes: dict[int, tuple[float, float]] = {}  # seq -> (bid, ask) of AAPL
        self.types: list[str] = []
        self.close_code: int | None = None

    async def read(self) -> None:
        try:
            async for frame in self.ws:
                for msg in decode_frame(frame):
                    self.types.append(msg["type"])
                    if msg["type"] in ("quote", "snapshot") and msg["symbol"] == "AAPL":
                        self.quotes[msg["seq"]] = (msg["bid"], msg["ask"])
                self.news.set()
        except websockets.ConnectionClosed:
            pass
        self.close_code = self.ws.close_code
        self.news.set()


async def until(condition, news: asyncio.Event, seconds: float) -> None:
    """Wait for ``condition()`` to hold, checking it each time a client reads something."""
    async with asyncio.timeout(timeout(seconds)):
        while not condition():
            news.clear()
            await news.wait()


def test_workers_and_ports_are_one_or_the_other(tmp_path):
    result = run_cluster_command(["--workers", "2", "--ports", "8001"], cluster_env(tmp_path))
    assert result.returncode == 2
    assert "give --ports or --workers, not both" in result.stderr
    result = run_cluster_command(["--workers", "0"], cluster_env(tmp_path))
    assert result.returncode == 2
    assert "is not a number of workers" in result.stderr


@pytest.mark.live
@pytest.mark.redis
async def test_clients_spread_over_workers_on_one_port_get_the_same_quotes_and_are_drained(
    redis_url,
):
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="marketfeed-workers-test-") as var:
        env = cluster_env(
            Path(var), REDIS_URL=redis_url, FEED_RECONNECT_GRACE_S="2",
            FEED_MAX_CONNECTIONS_PER_USER=str(CLIENTS),
        )
        process = ClusterProcess(["--workers", str(WORKERS), "--port", str(port)], env).start()
        clients: list[Client] = []
        news = asyncio.Event()
        readers: list[asyncio.Task[None]] = []
        try:
            token = (await asyncio.to_thread(process.wait_for, r"token: (\w+)", seconds=180))[1]
            pids = process.pids()
            workers = {name: pid for name, pid in pids.items() if name.startswith("web-")}
            assert len(workers) == WORKERS, pids
            for _ in range(CLIENTS):
                ws = await websockets.connect(
                    f"ws://127.0.0.1:{port}/ws/quotes/",
                    additional_headers={"Authorization": f"Token {token}"},
                    open_timeout=timeout(20),
                )
                await ws.send(json.dumps({"op": "subscribe", "symbols": ["AAPL"], "id": 1}))
                client = Client(ws, news)
                clients.append(client)
                readers.append(asyncio.create_task(client.read()))

            spread = established_by_pid(workers, port)
            assert sum(spread.values()) == CLIENTS, spread
            assert len([n for n in spread.values() if n > 0]) > 1, spread

            # Every worker relays the one ticker's quotes: a seq means the same quote everywhere.
            await until(lambda: all(len(c.quotes) >= 3 for c in clients), news, 30)
            common = set.intersection(*(set(c.quotes) for c in clients))
            assert common, "no seq seen by every client"
            for seq in common:
                assert len({c.quotes[seq] for c in clients}) == 1, seq

            process.proc.send_signal(15)  # SIGTERM, as an operator would
            await until(lambda: all(c.close_code is not None for c in clients), news, 60)
            told = [c for c in clients if "reconnect" in c.types]
            assert len(told) == CLIENTS, Counter(c.close_code for c in clients)
            assert Counter(c.close_code for c in clients) == {1001: CLIENTS}
            assert await asyncio.to_thread(process.wait_exit) == 0
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            for client in clients:
                await client.ws.close()
            if process.proc and process.proc.poll() is None:
                process.terminate()
    assert not [name for name, pid in pids.items() if alive(pid)], "children left running"
