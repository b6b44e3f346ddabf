"""Helpers of the robustness suite: every command is fed bad input and must answer with exit 2 and one
line, never a traceback, never an unbounded amount of memory or time.

Subprocesses run with their address space capped (MEMORY_CAP), so a regression that reads /dev/zero or
expands aliases shows up as a failed test, not as a machine that swaps. Where a subprocess is not needed
(the outcome of a command on an input file), commands run in-process through click's CliRunner."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from kcverify.cli.main import cli

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"
MEMORY_CAP = 2 * 1024**3  # bytes of address space a command may take in these tests


@dataclass(frozen=True)
class Outcome:
    code: int
    output: str  # stdout and stderr together

    def lines(self) -> list[str]:
        return [line for line in self.output.splitlines() if line.strip()]


def cap_memory() -> None:
    """preexec_fn: the child may not grow beyond MEMORY_CAP (allocation fails: MemoryError, not a kill)."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def command(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60) -> Outcome:
    """`kcverify ARGS` as a separate, memory-capped process."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("KCVERIFY_") and k != "GITHUB_STEP_SUMMARY"}
    environ = {**inherited, "COLUMNS": "120", **(env or {})}
    done = subprocess.run([sys.executable, "-m", "kcverify", *args], cwd=cwd, env=environ, capture_output=True,
                          text=True, errors="replace", timeout=timeout, preexec_fn=cap_memory)
    return Outcome(done.returncode, done.stdout + done.stderr)


def invoke(*args: str, env: dict[str, str] | None = None) -> Outcome:
    """`kcverify ARGS` in this process (the working directory is the test's)."""
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=True)
    output = result.output  # click 8.2: stdout and stderr as the user sees them
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        output += f"\nTraceback: {type(result.exception).__name__}: {result.exception}"
    return Outcome(result.exit_code, output)


def assert_refused(outcome: Outcome, *expected: str) -> None:
    """Exit 2, no traceback, and one line saying what is wrong (containing each of `expected`)."""
    assert "Traceback" not in outcome.output, outcome.output[-3000:]
    assert outcome.code == 2, (outcome.code, outcome.output[-3000:])
    lines = outcome.lines()
    assert len(lines) == 1, lines[:20]
    for word in expected:
        assert word in lines[0], (word, lines[0])


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (no kcverify.toml of the checkout is read)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    for name in list(os.environ):
        if name.startswith("KCVERIFY_"):
            monkeypatch.delenv(name)
    return tmp_path
