"""``python -m deploy.cluster``: one-line errors before anything starts, and no orphans after."""

from __future__ import annotations

import os
import select
import signal
import socket
import tempfile
from pathlib import Path

import pytest

from tests.deploy.conftest import ClusterProcess, alive, cluster_env, run_cluster_command
from tests.servers import free_port
from tests.timeouts import timeout


def one_line_error(result) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cluster: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--ports", "8001,x"], "'x' is not a port number"),
        (["--ports", "8001,8001"], "names a port twice"),
        (["--ports", "70000"], "not a port in 1-65535"),
        (["--ports", ","], "at least one port"),
        (["--nginx", "8001"], "also in --ports"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_a_bad_flag_is_one_line_and_exit_2(tmp_path, args, says):
    assert says in one_line_error(run_cluster_command(args, cluster_env(tmp_path)))


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cluster_command(["--ports", f"{free_port()},{port}"], cluster_env(tmp_path))
    assert f"127.0.0.1:{port}" in one_line_error(result)


def test_an_unreachable_redis_url_is_one_line(tmp_path):
    url = f"redis://127.0.0.1:{free_port()}/0"
    env = cluster_env(tmp_path, REDIS_URL=url)
    line = one_line_error(run_cluster_command(["--ports", f"{free_port()},{free_port()}"], env))
    assert f"REDIS_URL={url} does not answer" in line


@pytest.mark.live
@pytest.mark.redis
def test_a_dead_child_stops_the_cluster_names_it_and_leaves_nothing_running():
    web = (free_port(), free_port())
    with tempfile.TemporaryDirectory(prefix="marketfeed-cluster-test-") as var:
        process = ClusterProcess(
            ["--ports", f"{web[0]},{web[1]}", "--private-redis"], cluster_env(Path(var))
        ).start()
        try:
            process.wait_for(r"cluster is up", seconds=180)
            pids = process.pids()
            assert set(pids) == {"redis", "ticker", f"web-{web[0]}", f"web-{web[1]}"}, pids
            os.kill(pids[f"web-{web[1]}"], signal.SIGKILL)
            process.wait_for(rf"web-{web[1]} exited \(signal SIGKILL\); stopping the others")
            code = process.wait_exit()
        finally:
            if process.proc and process.proc.poll() is None:
                process.terminate()
    assert code == 1
    assert not [name for name, pid in pids.items() if alive(pid)], "children left running"


def wait_gone(pids: dict[str, int], seconds: float) -> list[str]:
    """Wait (on pidfds: an event, not a poll) until every pid has exited; return the survivors."""
    survivors = []
    for name, pid in pids.items():
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            ready, _, _ = select.select([fd], [], [], timeout(seconds))
        finally:
            os.close(fd)
        if not ready:
            survivors.append(name)
    return survivors


@pytest.mark.live
@pytest.mark.redis
def test_a_killed_cluster_takes_every_child_with_it():
    """SIGKILL leaves the cluster no chance to clean up; the parent-death signal does it."""
    web = (free_port(), free_port())
    with tempfile.TemporaryDirectory(prefix="marketfeed-cluster-test-") as var:
        process = ClusterProcess(
            ["--ports", f"{web[0]},{web[1]}", "--private-redis"], cluster_env(Path(var))
        ).start()
        try:
            process.wait_for(r"cluster is up", seconds=180)
            pids = process.pids()
            assert len(pids) == 4, pids
            process.proc.kill()
            process.wait_exit()
            survivors = wait_gone(pids, 30)
        finally:
            for pid in process.pids().values():
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
    assert not survivors, f"{survivors} outlived a SIGKILLed cluster"
