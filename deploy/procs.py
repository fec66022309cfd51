"""Child processes for the local cluster: named, log-prefixed, stopped for certain.

Each child runs in its own process group, so a Ctrl-C at the terminal reaches
only the cluster, which then stops the children in order (SIGTERM, a grace
period, SIGKILL) instead of racing them. Should the cluster itself be killed
outright (SIGKILL, a parent that gives up on it), each child also gets
SIGTERM from the kernel: it starts under ``setpriv --pdeathsig`` where
util-linux has it, which is every Debian system. A thread per child copies its output
line by line under its name and reports two events on one queue: ``ready``
(its ready line appeared) and ``exit``. ``queue.SimpleQueue`` because signal
handlers put on it too, and its ``put`` is reentrant where ``Queue``'s is not.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

# daphne may wait for its application instances to close; 10 s is its own default.
STOP_TIMEOUT_S = 15.0
# How long to let a stopped child's last output reach the terminal (a grandchild may hold the pipe).
PUMP_DRAIN_S = 2.0


# Twisted listens with a backlog of 50: a burst of a thousand handshakes
# overflowed it (224 SYN drops in bench "storm", docs/PERFORMANCE.md).
LISTEN_BACKLOG = 1024


def daphne_command(
    python: str, host: str, port: int | str, *, proxy_headers: bool = False,
    fd: int | None = None,
) -> list[str]:
    """The command line of one feed server: daphne through deploy.serve.

    deploy.serve is daphne with tokens masked in its access log. The endpoint
    string sets the listen backlog, which ``-b``/``-p`` cannot. ``fd``: listen
    on that inherited, already listening socket instead (``listeners``).
    """
    interface = host.replace(":", "\\:")  # an IPv6 address inside Twisted's endpoint syntax
    if fd is None:
        endpoint = f"tcp:port={port}:interface={interface}:backlog={LISTEN_BACKLOG}"
    else:
        # daphne's fd endpoint adopts an IPv4 socket (its domain cannot be given as text).
        endpoint = f"fd:fileno={fd}"
    cmd = [
        python, "-m", "deploy.serve",
        "-e", endpoint,
        "--ping-interval", os.environ.get("FEED_PING_INTERVAL_S", "20"),
        "--ping-timeout", os.environ.get("FEED_PING_TIMEOUT_S", "30"),
        # daphne closes every WebSocket after 24 h by default; a feed stays open.
        "--websocket_timeout", "-1",
    ]
    if proxy_headers:
        # Client address and scheme from the proxy's X-Forwarded-For / -Proto.
        cmd.append("--proxy-headers")
    return [*cmd, "marketfeed.asgi:application"]


def listeners(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on one IPv4 ``host:port``, for ``count`` workers to inherit.

    Each has SO_REUSEPORT, so the kernel spreads new connections over them (a
    hash of the client's address and port), and each worker accepts from its
    own queue: no thundering herd, no worker idle while another is swamped.
    The caller closes its copies once the workers have started: a socket
    nobody accepts from would strand the connections hashed to it.
    """
    made: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            made.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(LISTEN_BACKLOG)
            sock.set_inheritable(True)
    except OSError:
        for sock in made:
            sock.close()
        raise
    return made


def port_number(raw: str) -> int:
    """An argparse ``type`` for a TCP port: 1-65535, with a one-line message otherwise."""
    try:
        port = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port in 1-65535")
    return port


def die_with_parent() -> list[str]:
    """A command prefix that makes the kernel SIGTERM the child when we die; [] where unsupported.

    ``preexec_fn`` could set the same flag, but it is unsafe with threads
    running, and ours are (one output pump per child).
    """
    setpriv = shutil.which("setpriv") if sys.platform == "linux" else None
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


class Printer:
    """Writes ``name | line`` for every process, one whole line at a time."""

    def __init__(self, stream: TextIO = sys.stdout, width: int = 8) -> None:
        self.stream = stream
        self.width = width
        self._lock = threading.Lock()

    def line(self, name: str, text: str) -> None:
        with self._lock:
            try:
                self.stream.write(f"{name:>{self.width}} | {text}\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # our stdout went away (a closed pipe): keep supervising anyway


@dataclass(frozen=True)
class Event:
    """Something the supervisor reacts to: a child ready or gone, or a signal."""

    kind: str  # "ready" | "exit" | "signal"
    child: Child | None = None
    signum: int = 0


Events = queue.SimpleQueue[Event]


@dataclass(eq=False)
class Child:
    """One supervised process: its name (the log prefix), command and ready line."""

    name: str
    command: Sequence[str]
    env: dict[str, str]
    cwd: Path
    ready_text: str | None = None
    pass_fds: tuple[int, ...] = ()  # inherited (a worker's listening socket)
    proc: subprocess.Popen[str] | None = field(default=None, init=False)
    pump: threading.Thread | None = field(default=None, init=False)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, events: Events, printer: Printer) -> None:
        """Start the process; events report when it is ready and when it exits."""
        self.proc = subprocess.Popen(
            [*die_with_parent(), *self.command], cwd=self.cwd, env=self.env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace", process_group=0, pass_fds=self.pass_fds,
        )
        self.pump = threading.Thread(
            target=self._pump, args=(self.proc, events, printer), name=f"pump-{self.name}",
            daemon=True,
        )
        self.pump.start()

    def _pump(self, proc: subprocess.Popen[str], events: Events, printer: Printer) -> None:
        assert proc.stdout is not None
        waiting_for = self.ready_text
        with proc.stdout:
            for line in proc.stdout:
                printer.line(self.name, line.rstrip("\n"))
                if waiting_for is not None and waiting_for in line:
                    waiting_for = None
                    events.put(Event("ready", self))
        proc.wait()
        events.put(Event("exit", self))

    def terminate(self) -> None:
        """Ask the process to stop (SIGTERM to its group: daphne and nginx have workers)."""
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def wait_or_kill(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the exit, then SIGKILL the group."""
        if self.proc is None:
            return
        try:
            self.proc.wait(max(timeout, 0.0))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        if self.pump is not None:
            # Its last lines (the shutdown messages) before ours.
            self.pump.join(PUMP_DRAIN_S)


def describe_exit(returncode: int | None) -> str:
    """'code 3' or 'signal SIGKILL', for a person reading why the cluster stopped."""
    if returncode is None:
        return "no exit status"
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"code {returncode}"


def stop_all(children: Sequence[Child], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM every child at once, then wait for each within one shared grace period."""
    for child in children:
        child.terminate()
    deadline = time.monotonic() + timeout
    for child in children:
        child.wait_or_kill(deadline - time.monotonic())


def run_once(
    command: Sequence[str], *, env: dict[str, str], cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run a setup step (migrate, feeduser) to completion and capture its output."""
    return subprocess.run(
        list(command), cwd=cwd, env=env, capture_output=True, text=True, errors="replace",
        timeout=timeout, stdin=subprocess.DEVNULL,
    )


_TCP_ESTABLISHED = "01"  # the state column of /proc/net/tcp


def established_by_pid(pids: dict[str, int], port: int) -> dict[str, int]:
    """How many established connections to ``port`` each process holds (its own fds).

    Read from /proc: each process's socket inodes, matched against the kernel's TCP
    table. Every name in ``pids`` is in the answer, 0 for a process that holds none.
    """
    inodes: dict[str, str] = {}
    for name, pid in pids.items():
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = name
    counts: Counter[str] = Counter()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == _TCP_ESTABLISHED and fields[9] in inodes:
                counts[inodes[fields[9]]] += 1
    return {name: counts.get(name, 0) for name in pids}
