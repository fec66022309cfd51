"""Child processes of a benchmark run, and what /proc says about them.

Every process a scenario starts goes through ``spawn``: it gets its own
process group (so one ``killpg`` takes it and anything it forked), its output
goes to a log file rather than a pipe (a pipe nobody drains would stall the
server being measured), and it is recorded so that ``kill_all`` can end it on
any exit, Ctrl-C included. ``--pin`` wraps server-side commands in
``taskset -c 0``; the load generator pins itself to core 1.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SERVER_CORE = 0
CLIENT_CORE = 1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
STOP_GRACE_S = 5.0

_children: list[subprocess.Popen[bytes]] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def raise_nofile() -> int:
    """Raise this process's open-file soft limit to the hard limit; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _child_setup() -> None:
    """preexec_fn: a new session (process group) and as many file descriptors as allowed."""
    os.setsid()
    raise_nofile()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the bench decides when children stop


def spawn(
    cmd: list[str],
    *,
    env: dict[str, str],
    log: Path,
    pin: bool,
    cwd: Path | None = None,
    stdin_pipe: bool = False,
    stdout_pipe: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` as a recorded child with output in ``log``; on core 0 when ``pin``.

    ``stdout_pipe`` keeps stdout for the caller to read (stderr still goes to ``log``).
    """
    if pin:
        cmd = ["taskset", "-c", str(SERVER_CORE), *cmd]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else out,
            stderr=out if stdout_pipe else subprocess.STDOUT,
            preexec_fn=_child_setup,
        )
    _children.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's process group, SIGKILL it after a grace period."""
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
    else:
        _signal_group(proc, signal.SIGKILL)  # anything it left behind in its group
    if proc in _children:
        _children.remove(proc)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_all() -> None:
    """End every child still recorded, newest first."""
    for proc in reversed(list(_children)):
        stop(proc)


def wait_for_log(log: Path, needle: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Block until ``needle`` appears in ``log``; raise if the process dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if needle in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{log.name}: exited with {proc.returncode}:\n{tail(log)}")
        time.sleep(0.05)
    raise RuntimeError(f"{log.name}: no {needle!r} within {timeout_s:g} s:\n{tail(log)}")


def tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def target_pid(proc: subprocess.Popen[bytes]) -> int:
    """The measured process: taskset execs its command, so the pid stays the same."""
    return proc.pid


@dataclass(frozen=True, slots=True)
class ProcSample:
    cpu_s: float  # utime + stime of all threads
    rss_kib: int


def sample(pid: int) -> ProcSample:
    """CPU time and resident size of one process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # Fields after the command name, which is in parentheses and may hold spaces.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    rss_pages = int(fields[21])
    return ProcSample(cpu_s=(utime + stime) / CLOCK_TICKS, rss_kib=rss_pages * PAGE_KIB)


def rss_kib(pid: int) -> int:
    """VmRSS from /proc/<pid>/status (what ``ps`` shows)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pin_self(core: int) -> None:
    os.sched_setaffinity(0, {core})


def listen_overflows() -> int:
    """TcpExt ListenOverflows: SYNs dropped because an accept queue was full (whole machine)."""
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(table.get("ListenOverflows", 0))
    return 0
