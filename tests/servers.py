"""Real server processes for live and browser tests: daphne on a free port, manage.py."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

from tests.timeouts import timeout

ROOT = Path(__file__).resolve().parents[1]
# Live servers start on a fresh database; two days of backfilled bars would
# cost each one seconds of CPU the test does not look at. The tests of the
# backfill itself turn it back on.
NO_HISTORY = {"FEED_BACKFILL_DAYS": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=timeout(120),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


class Server:
    """A process of ours (daphne by default) that is ready once it logs ``ready``."""

    def __init__(
        self, env: dict[str, str], port: int, *, ready: str = "ticker started",
        command: list[str] | None = None,
    ) -> None:
        self.env, self.port, self.ready = env, port, ready
        self.command = command or [
            sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
            "marketfeed.asgi:application",
        ]
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/ws/quotes/"
        self.proc: subprocess.Popen[str] | None = None
        self.log: list[str] = []

    def start(self) -> None:
        ready = threading.Event()
        self.proc = subprocess.Popen(
            self.command,
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )

        def pump() -> None:
            assert self.proc
            assert self.proc.stdout
            for line in self.proc.stdout:
                self.log.append(line)
                if self.ready in line:
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        # Ready when it says so (the embedded ticker starts with the reactor, after listen).
        assert ready.wait(timeout(30)), "".join(self.log)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()


