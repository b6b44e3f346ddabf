"""Ctrl-C: each long-running command stops within a second with exit 130 and the one line "interrupted",
however busy it is (Hypothesis inside `explore` could lose a KeyboardInterrupt and search on)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.robustness.conftest import REPO, SCENARIOS, cap_memory

TRIES = 4  # per command in the test command; `make deep` runs 20 tries of explore and run
DEEP_TRIES = 20
AT_ONCE = 4  # tries run side by side: each waits mostly for its process to start


def _start(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KCVERIFY_")}
    return subprocess.Popen([sys.executable, "-m", "kcverify", *args], cwd=cwd, env={**env, "COLUMNS": "120"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=cap_memory)


def _interrupt(processes: list[subprocess.Popen[bytes]], rng: random.Random) -> list[tuple[int | None, float, str]]:
    for process in processes:
        assert process.stdout is not None
        process.stdout.readline()  # the command has started its work
    time.sleep(rng.uniform(0.2, 1.0))  # somewhere inside it
    outcomes = []
    for process in processes:
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            process.kill()
        elapsed = time.monotonic() - sent
        _, err = process.communicate()
        outcomes.append((process.returncode, elapsed, err.decode(errors="replace")))
    return outcomes


LONG = "long.yaml"  # written into each test's directory: the catalogue alone may end before the signal

COMMANDS = [
    pytest.param(["explore", "--budget", "60s", "--no-color"], id="explore"),
    pytest.param(["run", str(SCENARIOS), LONG, "--no-color"], id="run"),
    pytest.param(["defects", str(SCENARIOS), "--no-color"], id="defects"),
]


def _write_long(directory: Path) -> None:
    """A 2,000-step scenario (tests/perf/bench_long_scenarios.py): `run` stays busy for seconds, so the
    signal lands inside it however fast the catalogue runs."""
    from tests.perf.bench_long_scenarios import scenario_text

    (directory / LONG).write_text(scenario_text(2000))


def _judge(args: list[str], tries: int, cwd: Path) -> None:
    rng = random.Random(args[0])
    results = []
    for batch in range(0, tries, AT_ONCE):
        processes = [_start(args, cwd) for _ in range(min(AT_ONCE, tries - batch))]
        results += _interrupt(processes, rng)
    for code, elapsed, err in results:
        assert code == 130, (code, err[-2000:])
        assert elapsed < 1.0, (elapsed, err[-2000:])
        assert "Traceback" not in err, err[-2000:]
        assert err.strip().splitlines()[-1] == "interrupted", err[-2000:]


@pytest.mark.parametrize("args", COMMANDS)
def test_ctrl_c_exits_130_within_a_second(tmp_path: Path, args: list[str]) -> None:
    _write_long(tmp_path)
    _judge(args, TRIES, tmp_path)


@pytest.mark.deep
@pytest.mark.parametrize("args", COMMANDS[:2])
def test_ctrl_c_exits_130_within_a_second_in_twenty_of_twenty_tries(tmp_path: Path, args: list[str]) -> None:
    _write_long(tmp_path)
    _judge(args, DEEP_TRIES, tmp_path)


def test_the_repository_is_where_the_suite_expects() -> None:
    assert (REPO / "pyproject.toml").is_file() and SCENARIOS.is_dir()
