"""kcverify as a new user gets it: the wheel, built from this checkout, installed into a clean virtual
environment outside the repository (no --system-site-packages, no editable install, no repository on
the path). In an empty folder `kcverify init && kcverify run` passes with the packaged example scenarios
and contracts alone; without the `stack` extra the Kafka/PostgreSQL/Redis clients are absent, and
`kcverify run --target processes` is exit 2 naming the extra to install.

It builds a wheel and installs its dependencies (from pip's cache when warm): about 65-80 s here (build 9 s,
venv and install 40 s, runs 13 s). It runs in the normal suite; KCVERIFY_WHEEL (a path to an already
built wheel) skips the build step."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ("confluent_kafka", "psycopg", "psycopg_pool", "redis")


def _run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    # A clean environment: nothing of this checkout's virtualenv or PYTHONPATH leaks into the new one.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "KCVERIFY_"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, f"{done.args}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("KCVERIFY_WHEEL")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("dist")
    _ok(_run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)], cwd=out))
    (built,) = out.glob("kcverify-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("venv") / "env"
    _ok(_run([sys.executable, "-m", "venv", str(where)], cwd=where.parent))
    _ok(_run([str(where / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], cwd=where.parent))
    return where


def test_the_wheel_carries_contracts_scenarios_and_profiles(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("contracts", "scenarios", "profiles"):
        shipped = {p.relative_to(ROOT / folder).as_posix() for p in (ROOT / folder).rglob("*") if p.is_file()}
        packaged = {n.removeprefix(f"kcverify/_{folder}/") for n in names if n.startswith(f"kcverify/_{folder}/")}
        assert shipped and shipped <= packaged, f"{folder}: missing from the wheel: {sorted(shipped - packaged)[:5]}"
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "kcverify = kcverify.pytest_plugin" in zipfile.ZipFile(wheel).read(entry_points).decode()
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Provides-Extra: stack" in text
    assert "Project-URL:" in text
    # the description is README.md with links that work on a package index (absolute, to the repository)
    description = text.split("\n\n", 1)[1]
    assert "](https://github.com/kcverify/kcverify/blob/main/docs/" in description
    assert not re.findall(r"\]\((?!https?://|#)[^)]+\)", description), "a relative link in the description"
    for line in text.splitlines():  # the clients are only required through the extra
        if line.startswith("Requires-Dist:") and any(c in line for c in ("confluent-kafka", "psycopg", "redis")):
            assert "extra ==" in line, line


def test_init_then_run_in_an_empty_folder_passes(venv: Path, tmp_path: Path) -> None:
    kcverify = str(venv / "bin" / "kcverify")
    # the clients of the real infrastructure are not installed by the plain wheel
    code = f"import importlib.util as u;print([m for m in {CLIENTS!r} if u.find_spec(m)])"
    probe = _ok(_run([str(venv / "bin" / "python"), "-c", code], tmp_path))
    assert probe.stdout.strip() == "[]"

    bare = _run([kcverify, "run"], tmp_path)
    assert bare.returncode == 2
    assert "kcverify init" in bare.stderr and "Traceback" not in bare.stderr

    _ok(_run([kcverify, "init"], tmp_path))
    assert (tmp_path / "kcverify.toml").is_file() and (tmp_path / "profiles" / "my-system.yaml").is_file()
    examples = sorted(p.name for p in (ROOT / "scenarios").glob("*.yaml"))
    assert sorted(p.name for p in (tmp_path / "scenarios").glob("*.yaml")) == examples

    done = _ok(_run([kcverify, "run", "--no-color"], tmp_path))
    assert f"{len(examples)} passed" in done.stdout

    again = _ok(_run([kcverify, "init"], tmp_path))
    assert "skipped" in again.stdout and "wrote" not in again.stdout


def test_the_processes_target_without_the_stack_extra_names_it(venv: Path, tmp_path: Path) -> None:
    kcverify = str(venv / "bin" / "kcverify")
    _ok(_run([kcverify, "init"], tmp_path))
    done = _run([kcverify, "run", "--target", "processes"], tmp_path)
    assert done.returncode == 2, done.stderr
    assert "kcverify[stack]" in done.stderr and "Traceback" not in done.stderr
    stack = _run([kcverify, "stack", "status"], tmp_path)
    assert stack.returncode == 2 and "kcverify[stack]" in stack.stderr
