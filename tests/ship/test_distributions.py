"""The two distributions: the client installs alone into a clean virtual environment
(no Django), and the server builds a wheel of its own packages.

The client test makes a virtual environment and installs from the package
index as configured for pip (``install`` marker, about 20 s).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.servers import ROOT
from tests.timeouts import timeout

IGNORED = shutil.ignore_patterns("*.egg-info", "__pycache__", "build", "*.pyc")


def run(*command: str | Path, cwd: Path, seconds: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout(seconds),
    )


@pytest.mark.install
def test_the_client_installs_alone_and_its_table_asks_for_the_cli_extra(tmp_path):
    # A copy: pip builds a local directory in place, and the work tree stays clean.
    client = tmp_path / "client"
    shutil.copytree(ROOT / "client", client, ignore=IGNORED)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python, pip = env_dir / "bin" / "python", [env_dir / "bin" / "python", "-m", "pip"]
    elsewhere = tmp_path  # not the repository: nothing importable by accident

    installed = run(*pip, "install", "--quiet", "--disable-pip-version-check", client,
                    cwd=elsewhere, seconds=240)
    assert installed.returncode == 0, installed.stderr
    assert run(python, "-c", "import django", cwd=elsewhere).returncode != 0
    assert run(python, "-c", "import rich", cwd=elsewhere).returncode != 0

    for command in ([python, "-m", "marketfeed_client"], [env_dir / "bin" / "marketfeed-client"]):
        helped = run(*command, "--help", cwd=elsewhere)
        assert helped.returncode == 0, helped.stderr
        assert "Stream live quotes from a marketfeed server." in helped.stdout
        assert "marketfeed-client[cli]" in helped.stdout

    table = run(python, "-m", "marketfeed_client", "--token", "t", "AAPL", cwd=elsewhere)
    assert table.returncode == 2
    assert "the live table needs the 'cli' extra (rich)" in table.stderr
    assert "pip install 'marketfeed-client[cli]'" in table.stderr
    assert "Traceback" not in table.stderr

    extra = run(*pip, "install", "--quiet", "--disable-pip-version-check", f"{client}[cli]",
                cwd=elsewhere, seconds=240)
    assert extra.returncode == 0, extra.stderr
    assert run(python, "-c", "import rich, marketfeed_client.cli", cwd=elsewhere).returncode == 0
    assert run(python, "-c", "import django", cwd=elsewhere).returncode != 0


def test_the_server_builds_a_wheel_of_feeds_and_marketfeed(tmp_path):
    source = tmp_path / "server"
    source.mkdir()
    for name in ("pyproject.toml", "requirements.txt"):
        shutil.copy(ROOT / name, source / name)
    for package in ("feeds", "marketfeed"):
        shutil.copytree(ROOT / package, source / package, ignore=IGNORED)
    built = run(
        sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--no-build-isolation", "--wheel-dir", tmp_path / "dist", source,
        cwd=tmp_path, seconds=120,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("marketfeed-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "feeds/core/engine.py", "feeds/migrations/0001_initial.py", "feeds/static/feeds/ticker.js",
        "marketfeed/settings.py", "marketfeed/asgi.py",
    ):
        assert expected in names
    assert not {n for n in names if n.split("/")[0] in ("tests", "bench", "client", "deploy")}
    # Its dependencies are requirements.txt's pins, and nothing only the client needs.
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    lines = zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
    requires = {line.removeprefix("Requires-Dist: ").replace(" ", "").lower()
                for line in lines if line.startswith("Requires-Dist:")}
    pinned = {line.strip().lower() for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    assert requires == pinned
    assert not {r for r in requires if r.startswith(("rich", "websockets"))}
