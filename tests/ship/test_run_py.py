"""run.py as a person meets it, on a copy of its own (never the shared .venv).

Usage and unknown commands, a stale lock, a Python without ensurepip, and a
half-made .venv (no python, no pip, an install that did not finish), which
the next run notices and rebuilds.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.servers import ROOT
from tests.timeouts import timeout

PY_VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"


def locked(name: str, lock_text: str) -> str:
    """The block of one package (its pin and hashes) from a lock file's text."""
    match = re.search(rf"^{re.escape(name)}==.*?(?=^\S|\Z)", lock_text, re.MULTILINE | re.DOTALL)
    assert match, f"{name} is not in the lock"
    return match.group(0)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """run.py with its lock files, the client, and one locked package: setuptools.

    The dev lock is the real one's setuptools entry, hashes and all, so the
    install below is the same ``pip install --require-hashes`` as in the real
    .venv, only quicker.
    """
    root = tmp_path / "repo"
    (root / "deploy").mkdir(parents=True)
    (root / "bench").mkdir()
    for name in ("run.py", "deploy/__init__.py", "deploy/procs.py"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(
        ROOT / "client", root / "client",
        ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build"),
    )
    (root / "requirements.txt").write_text("# the server needs nothing here\n")
    (root / "requirements-dev.txt").write_text("-r requirements.txt\nsetuptools\n")
    (root / "bench" / "requirements.txt").write_text("\n")
    setuptools = locked("setuptools", (ROOT / "requirements-dev.lock").read_text())
    run_py = load_run_py(root)
    bodies = {"requirements-dev.lock": setuptools}
    for lock in run_py.LOCKS:  # in order: each one's digest covers the lock before it
        body = bodies.get(str(lock.path.relative_to(root)), "")
        lock.path.write_text(f"# test lock\n# inputs sha256: {lock.inputs_digest()}\n{body}")
    return root


def load_run_py(root: Path):
    spec = importlib.util.spec_from_file_location("run_copy", root / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(root))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(root))
    return module


def run_py(root: Path, *args: str, env: dict[str, str] | None = None, seconds: float = 180):
    return subprocess.run(
        [sys.executable, "run.py", *args], cwd=root, capture_output=True, text=True,
        env=env or dict(os.environ), timeout=timeout(seconds),
    )


@pytest.mark.parametrize("asking", ["help", "-h", "--help"])
def test_help_prints_the_usage_and_exits_0(repo, asking):
    result = run_py(repo, asking, seconds=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("One entry point that needs only Python 3.11+")
    assert "python3 run.py lock" in result.stdout
    assert not (repo / ".venv").exists()


@pytest.mark.parametrize("argv", [["tests"], ["serve", "now"], ["--port", "9000"]])
def test_an_unknown_command_prints_the_usage_and_exits_2_before_anything_starts(repo, argv):
    result = run_py(repo, *argv, seconds=30)
    assert result.returncode == 2
    assert f"run.py: unknown command {argv[0]!r}" in result.stderr
    assert "python3 run.py test " in result.stderr
    assert result.stdout == ""
    assert not (repo / ".venv").exists()


def test_a_lock_older_than_its_requirements_says_to_run_lock(repo):
    with (repo / "requirements.txt").open("a") as requirements:
        requirements.write("Django==5.2.19\n")
    result = run_py(repo, "setup", seconds=30)
    assert result.returncode == 1
    assert "requirements-dev.lock is older than its inputs" in result.stderr
    assert "python3 run.py lock" in result.stderr
    assert not (repo / ".venv").exists()


def test_without_ensurepip_it_names_the_package_to_install(repo, tmp_path):
    # As on Debian or Ubuntu without python3-venv: the module is not there.
    shadow = tmp_path / "no-ensurepip" / "ensurepip"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named ensurepip')\n")
    env = dict(os.environ, PYTHONPATH=str(shadow.parent))
    result = run_py(repo, "setup", env=env, seconds=60)
    assert result.returncode != 0
    assert "apt install python3-venv" in result.stderr
    assert f"{PY_VERSION}-venv" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (repo / ".venv").exists()


def site_packages(venv: Path) -> Path:
    return venv / "lib" / PY_VERSION / "site-packages"


def test_each_way_a_venv_is_half_made_is_noticed(repo):
    run = load_run_py(repo)
    venv_dir = repo / ".venv"

    def made(*, python: bool = True, pip: bool = True, stamp: bool = True) -> str | None:
        shutil.rmtree(venv_dir, ignore_errors=True)
        venv.EnvBuilder(with_pip=False, symlinks=True).create(venv_dir)
        if not python:
            for path in (venv_dir / "bin").glob("python*"):
                path.unlink()
        if pip:  # enough of a pip for `import pip`
            (site_packages(venv_dir) / "pip").mkdir()
            (site_packages(venv_dir) / "pip" / "__init__.py").touch()
        if stamp:
            (venv_dir / ".requirements.sha256").write_text("a finished install\n")
        return run.venv_problem()

    assert made() is None
    assert made(python=False) == "it has no python"
    assert made(pip=False) == "its python or pip does not run"
    assert made(stamp=False) == "an earlier install did not finish"


@pytest.mark.install
def test_a_half_made_venv_is_rebuilt_and_a_whole_one_reused(repo):
    venv_dir = repo / ".venv"
    first = run_py(repo, "setup")
    assert first.returncode == 0, first.stderr
    assert "creating .venv" in first.stdout
    assert "installing the locked requirements" in first.stdout

    # An install stopped half-way (Ctrl-C, a lost network) leaves no stamp behind.
    (venv_dir / "left-from-before").touch()
    (venv_dir / ".requirements.sha256").unlink()
    again = run_py(repo, "setup")
    assert again.returncode == 0, again.stderr
    assert "rebuilding .venv (an earlier install did not finish)" in again.stdout
    assert not (venv_dir / "left-from-before").exists()
    # setuptools from the lock; the client's package from client/ (its dependency,
    # websockets, is not in this small lock: the package is found, not imported).
    check = subprocess.run(
        [str(venv_dir / "bin" / "python"), "-c",
         "import importlib.util, setuptools; assert importlib.util.find_spec('marketfeed_client')"],
        cwd=repo.parent, capture_output=True, text=True, timeout=timeout(60),
    )
    assert check.returncode == 0, check.stderr

    unchanged = run_py(repo, "setup")
    assert unchanged.returncode == 0, unchanged.stderr
    assert unchanged.stdout == ""


@pytest.fixture
def a11y(repo: Path) -> Path:
    """The copy's tests/a11y: the real package.json and package-lock.json (axe-core, pinned)."""
    folder = repo / "tests" / "a11y"
    folder.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(ROOT / "tests" / "a11y" / name, folder / name)
    return folder


def test_without_npm_axe_is_skipped_saying_so_but_under_ci_it_is_an_error(repo, a11y, capsys):
    run = load_run_py(repo)
    run.ensure_axe(npm=None, ci=False)
    assert "the accessibility tests skip" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="npm is missing"):
        run.ensure_axe(npm=None, ci=True)
    assert not (a11y / "node_modules").exists()


@pytest.mark.install
def test_npm_ci_installs_the_pinned_axe_core_once(repo, a11y, capsys):
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("no npm on this machine")
    run = load_run_py(repo)
    run.ensure_axe(npm=npm, ci=True)
    installed = (a11y / "node_modules" / "axe-core" / "package.json").read_text()
    pinned = re.search(r'"axe-core": "([^"]+)"', (a11y / "package.json").read_text())
    assert pinned
    assert f'"version": "{pinned.group(1)}"' in installed
    capsys.readouterr()
    run.ensure_axe(npm=npm, ci=True)  # the same lock: nothing to do
    assert capsys.readouterr().out == ""


def test_the_suite_runs_in_one_process_per_core_unless_the_arguments_choose(monkeypatch):
    run = load_run_py(Path(__file__).resolve().parents[2])
    monkeypatch.setattr(run.os, "cpu_count", lambda: 2)
    assert run.test_workers(["-q"]) == ["-n", "2"]
    assert run.test_workers(["-n", "0"]) == []
    assert run.test_workers(["-n0"]) == []
    assert run.test_workers(["--numprocesses=3"]) == []
    monkeypatch.setattr(run.os, "cpu_count", lambda: 64)
    assert run.test_workers([]) == ["-n", str(run.MAX_TEST_WORKERS)]
    monkeypatch.setattr(run.os, "cpu_count", lambda: 1)
    assert run.test_workers([]) == []
