"""The servers under test, started and stopped by the scenarios.

- ``embedded``: one daphne with the ticker inside it and the in-memory layer.
- ``redis-pubsub`` / ``redis-core``: a private redis-server on a free port (never
  the machine's 6379, so its CPU is ours alone), ``manage.py runticker`` and
  one daphne; ``REDIS_LAYER`` selects the channels-redis layer.
- ``redis-pubsub-2`` / ``redis-core-2``: the same with two daphne processes;
  the scenario splits clients across them.
- ``redis-pubsub-shards``: one daphne and the layer over two private
  redis-servers (``REDIS_LAYER_URLS``); the quote store and the ticker lease on
  the first, as ``REDIS_URL``: the sharded bus beside ``redis-pubsub`` on one.
- ``redis-pubsub-2-shards`` / ``redis-core-2-shards``: the same with two daphne
  processes.
- ``reference``: bench/reference.py.

Each deployment owns a temporary ``MARKETFEED_VAR_DIR`` (its own SQLite
database) and a Django helper (bench/djangoctl.py) for set-up and admin
changes. ``up(load)`` starts the servers for one load point and returns once a
probe client has received a quote; ``down()`` stops them (Redis and the
database stay for the next point); ``close()`` removes everything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.sync.client import connect as sync_connect

from bench import procs
from bench.djangoctl import symbol_names
from bench.reference import READY_LINE
from deploy.procs import daphne_command, listeners

ROOT = Path(__file__).resolve().parent.parent
SERVERS = (
    "embedded",
    "redis-pubsub",
    "redis-core",
    "redis-pubsub-2",
    "redis-core-2",
    "redis-pubsub-shards",
    "redis-pubsub-2-shards",
    "redis-core-2-shards",
)
START_TIMEOUT_S = 60.0
PROBE_TIMEOUT_S = 30.0
REFERENCE_TOKEN = "reference-bench-token"
DAPHNE_READY = "Listening on TCP address"
# The reference is the practical limit, so it listens with a deep accept queue;
# daphne keeps Twisted's default of 50 (the storm scenario counts the overflows).
REFERENCE_BACKLOG = 1024


@dataclass(frozen=True, slots=True)
class Load:
    """What the server generates: ``symbols`` instruments at ``rate`` quotes/s each."""

    symbols: int
    rate: float
    batch: bool = False


def base_env(var_dir: Path) -> dict[str, str]:
    unset = ("DATABASE_URL", "REDIS_URL", "REDIS_LAYER_URLS")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(
        MARKETFEED_VAR_DIR=str(var_dir),
        DJANGO_SETTINGS_MODULE="marketfeed.settings",
        FEED_SEED="1",
        FEED_MAX_CONNECTIONS_PER_USER="1000000",
        FEED_MAX_SYMBOLS="1000",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        # Each deployment starts on a fresh database: a backfill of history would
        # run on the server's pinned core during the measurement.
        FEED_BACKFILL_DAYS="0",
    )
    return env


def daphne_count(server: str) -> int:
    """The daphne processes of a deployment: two for ``...-2`` and ``...-2-shards``."""
    return 2 if server.removesuffix("-shards").endswith("-2") else 1


def probe(
    url: str, symbol: str, timeout_s: float = PROBE_TIMEOUT_S, *, also: list[str] | None = None
) -> None:
    """Ready means quotes flow: subscribe one client to ``symbol`` and wait for a quote.

    ``also``: more symbols to subscribe, a quote of any will do (a slow ticker
    may not quote one symbol within the timeout).
    """
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with sync_connect(url, compression=None, open_timeout=5, user_agent_header=None) as ws:
                symbols = [symbol, *(also or [])]
                ws.send(json.dumps({"op": "subscribe", "symbols": symbols, "id": 1}))
                while time.monotonic() < deadline:
                    text = str(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
                    if '"type":"quote"' in text:
                        return
        except (OSError, TimeoutError, Exception) as exc:  # not up yet: try again
            last_error = exc
            time.sleep(0.2)
    raise RuntimeError(f"no quote from {url.split('?')[0]} within {timeout_s:g} s ({last_error})")


class Helper:
    """The Django helper process of a deployment (JSON lines over pipes)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.proc = procs.spawn(
            [sys.executable, "-m", "bench.djangoctl"],
            env=env,
            log=log,
            pin=False,
            cwd=ROOT,
            stdin_pipe=True,
            stdout_pipe=True,
        )
        self.log = log

    def call(self, **req: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"django helper died:\n{procs.tail(self.log)}")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"django helper: {reply.get('error')}")
        return reply

    def close(self) -> None:
        procs.stop(self.proc)


class Deployment:
    """Common parts: a temporary directory, logs, the processes of the current point."""

    name = "?"

    def __init__(self, *, pin: bool) -> None:
        self.pin = pin
        self.dir = Path(tempfile.mkdtemp(prefix=f"marketfeed-bench-{self.name}-"))
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.urls: list[str] = []
        self.commands: dict[str, str] = {}
        self.symbols: list[str] = []

    def start(
        self, role: str, cmd: list[str], env: dict[str, str], **kw: Any
    ) -> subprocess.Popen[bytes]:
        log = self.dir / f"{role}.log"
        proc = procs.spawn(cmd, env=env, log=log, pin=self.pin, cwd=ROOT, **kw)
        self.running[role] = proc
        shown = (["taskset", "-c", str(procs.SERVER_CORE)] if self.pin else []) + cmd
        self.commands[role] = " ".join(_short(c) for c in shown)
        return proc

    def start_with_fds(
        self, role: str, cmd: list[str], env: dict[str, str], fds: tuple[int, ...]
    ) -> subprocess.Popen[bytes]:
        """``start`` for a process that inherits ``fds`` (a worker's listening socket)."""
        log = self.dir / f"{role}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, pass_fds=fds,
                # As procs.spawn: its own process group, the open-file limit raised.
                preexec_fn=procs._child_setup,
            )
        procs._children.append(proc)  # ended by procs.kill_all like every other child
        self.running[role] = proc
        self.commands[role] = " ".join(_short(c) for c in cmd)
        return proc

    def wait_log(self, role: str, needle: str) -> None:
        procs.wait_for_log(self.dir / f"{role}.log", needle, self.running[role], START_TIMEOUT_S)

    def pids(self) -> dict[str, int]:
        return {role: procs.target_pid(p) for role, p in self.running.items()}

    def server_pids(self) -> dict[str, int]:
        """The processes that hold client connections (for RSS per connection)."""
        return {r: p for r, p in self.pids().items() if r.startswith(("daphne", "reference"))}

    def down(self) -> None:
        for role in list(self.running):
            if not role.startswith("redis-server"):
                procs.stop(self.running.pop(role))

    def close(self) -> None:
        for proc in list(self.running.values()):
            procs.stop(proc)
        self.running.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def up(self, load: Load) -> None:
        raise NotImplementedError

    def halt(self, symbol: str, *, halted: bool) -> float:
        """Halt or resume ``symbol``; returns the wall-clock time just before the request."""
        raise NotImplementedError


class FeedDeployment(Deployment):
    def __init__(self, server: str, *, pin: bool, backlog: int | None = None) -> None:
        if server not in SERVERS:
            raise ValueError(f"unknown server {server!r}")
        self.name = server
        super().__init__(pin=pin)
        self.redis_layer = "core" if server.startswith("redis-core") else "pubsub"
        self.redis = server.startswith("redis-")
        self.shards = 2 if server.endswith("-shards") else 1
        self.daphnes = daphne_count(server)
        self.backlog = backlog  # None: daphne's -b/-p, i.e. Twisted's listen backlog of 50
        self.env = base_env(self.dir / "var")
        self.helper: Helper | None = None
        self.token = ""
        if self.redis:
            self._start_redis()

    def _start_redis(self) -> None:
        urls = [self._start_one_redis(i) for i in range(self.shards)]
        self.env.update(REDIS_URL=urls[0], REDIS_LAYER=self.redis_layer)
        if self.shards > 1:
            self.env.update(REDIS_LAYER_URLS=",".join(urls))

    def _start_one_redis(self, index: int) -> str:
        role = "redis-server" if index == 0 else f"redis-server{index + 1}"
        port = procs.free_port()
        self.start(
            role,
            [
                "/usr/bin/redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--protected-mode",
                "no",
            ],
            self.env,
        )
        self.wait_log(role, "Ready to accept connections")
        return f"redis://127.0.0.1:{port}/0"

    def up(self, load: Load) -> None:
        env = dict(self.env, FEED_BATCH_FRAMES="1" if load.batch else "0")
        env["FEED_TICKER"] = "external" if self.redis else "embedded"
        if self.helper is None:
            self.helper = Helper(self.env, self.dir / "djangoctl.log")
            self.token = self.helper.call(cmd="setup", symbols=load.symbols, rate=load.rate)[
                "token"
            ]
        else:
            self.helper.call(cmd="rate", symbols=load.symbols, rate=load.rate)
        self.symbols = symbol_names(load.symbols)
        if self.redis:
            self.start("runticker", [sys.executable, "manage.py", "runticker"], env)
        self._start_daphnes(env)

    def _start_daphnes(self, env: dict[str, str]) -> None:
        self.urls = []
        for i in range(self.daphnes):
            role = "daphne" if i == 0 else f"daphne{i + 1}"
            port = procs.free_port()
            listen = ["-b", "127.0.0.1", "-p", str(port)]
            if self.backlog:
                listen = ["-e", f"tcp:port={port}:interface=127.0.0.1:backlog={self.backlog}"]
            self.start(
                role,
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    *listen,
                    "--websocket_timeout",
                    "-1",
                    "marketfeed.asgi:application",
                ],
                env,
            )
            self.urls.append(f"ws://127.0.0.1:{port}/ws/quotes/?token={self.token}")
        for i in range(self.daphnes):
            self.wait_log("daphne" if i == 0 else f"daphne{i + 1}", DAPHNE_READY)
        for url in self.urls:
            probe(url, self.symbols[0])

    def halt(self, symbol: str, *, halted: bool) -> float:
        assert self.helper is not None
        return float(self.helper.call(cmd="resume" if not halted else "halt", symbol=symbol)["t0"])

    def close(self) -> None:
        if self.helper is not None:
            self.helper.close()
        super().close()


class WorkersDeployment(FeedDeployment):
    """``workers`` daphne processes on one port, as ``deploy.cluster --workers N`` runs them.

    Redis pubsub and one runticker; the listening sockets (SO_REUSEPORT, one
    per worker) and each worker's command line come from deploy/procs.py, the
    cluster's own code, so the bench measures the deployment docs/DEPLOY.md
    describes. Every worker gets the same URL; the kernel spreads the
    connections over them.
    """

    def __init__(self, workers: int, *, pin: bool = False) -> None:
        self.workers = workers
        super().__init__("redis-pubsub", pin=pin)
        self.name = "redis-pubsub-workers"

    def _start_daphnes(self, env: dict[str, str]) -> None:
        port = procs.free_port()
        sockets = listeners("127.0.0.1", port, self.workers)
        try:
            for i, sock in enumerate(sockets):
                cmd = daphne_command(sys.executable, "127.0.0.1", port, fd=sock.fileno())
                self.start_with_fds(f"daphne{i + 1}", cmd, env, (sock.fileno(),))
        finally:
            for sock in sockets:  # each worker holds its own now
                sock.close()
        self.urls = [f"ws://127.0.0.1:{port}/ws/quotes/?token={self.token}"]
        for i in range(self.workers):
            self.wait_log(f"daphne{i + 1}", DAPHNE_READY)
        probe(self.urls[0], self.symbols[0], also=self.symbols[1:])


class ReferenceDeployment(Deployment):
    """bench/reference.py; with ``workers`` > 1, that many processes on one port (SO_REUSEPORT)."""

    name = "reference"

    def __init__(self, *, pin: bool, workers: int = 1) -> None:
        super().__init__(pin=pin)
        self.workers = workers

    def up(self, load: Load) -> None:
        if self.workers > 1:
            self._up_workers(load)
            return
        port = procs.free_port()
        self.symbols = symbol_names(load.symbols)
        cmd = [
            sys.executable,
            "-m",
            "bench.reference",
            "--port",
            str(port),
            "--symbols",
            str(load.symbols),
            "--rate",
            f"{load.rate:g}",
            "--token",
            REFERENCE_TOKEN,
            "--control",
            "--backlog",
            str(REFERENCE_BACKLOG),
        ]
        if load.batch:
            cmd.append("--batch")
        self.start("reference", cmd, base_env(self.dir / "var"), stdin_pipe=True)
        self.wait_log("reference", READY_LINE)
        self.urls = [f"ws://127.0.0.1:{port}/ws/quotes/?token={REFERENCE_TOKEN}"]
        probe(self.urls[0], self.symbols[0])

    def _up_workers(self, load: Load) -> None:
        port = procs.free_port()
        self.symbols = symbol_names(load.symbols)
        env = base_env(self.dir / "var")
        for i in range(self.workers):
            cmd = [
                sys.executable, "-m", "bench.reference", "--port", str(port),
                "--symbols", str(load.symbols), "--rate", f"{load.rate:g}",
                "--token", REFERENCE_TOKEN, "--control", "--backlog", str(REFERENCE_BACKLOG),
                "--reuse-port", *(["--batch"] if load.batch else []),
            ]
            self.start(f"reference{i + 1}", cmd, env, stdin_pipe=True)
        for i in range(self.workers):
            self.wait_log(f"reference{i + 1}", READY_LINE)
        self.urls = [f"ws://127.0.0.1:{port}/ws/quotes/?token={REFERENCE_TOKEN}"]
        probe(self.urls[0], self.symbols[0], also=self.symbols[1:])

    def halt(self, symbol: str, *, halted: bool) -> float:
        line = f"{'halt' if halted else 'resume'} {symbol}\n".encode()
        pipes = [p.stdin for r, p in self.running.items() if r.startswith("reference")]
        t0 = time.time()
        for stdin in pipes:
            assert stdin is not None
            stdin.write(line)
            stdin.flush()
        return t0


def deployment(server: str, *, pin: bool, backlog: int | None = None) -> Deployment:
    if server == "reference":
        return ReferenceDeployment(pin=pin)
    return FeedDeployment(server, pin=pin, backlog=backlog)


def _short(arg: str) -> str:
    """Commands as a reader would type them: repo-relative, no temporary paths."""
    if arg == sys.executable:
        return ".venv/bin/python"
    if arg.startswith(tempfile.gettempdir()):
        return "$TMP"
    return arg
