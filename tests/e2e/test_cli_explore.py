"""`kcverify explore` as a user runs it: the installed command, in a subprocess. A finding is written as
a scenario file that `kcverify run` replays to the same failure, and passes without the defect."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

KCVERIFY = shutil.which("kcverify", path=str(Path(sys.executable).parent)) or "kcverify"


def kcverify(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.run([KCVERIFY, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)


def test_a_finding_is_written_and_replays_with_kcverify_run(tmp_path: Path) -> None:
    found = kcverify("explore", "--seed", "1", "--defect", "no-idempotency-guard", "--budget", "300",
                     "--out", "findings", "--no-color", cwd=tmp_path)
    assert found.returncode == 1, found.stdout + found.stderr
    out = found.stdout
    assert "seed 1" in out and "schedules/s" in out
    assert "FAILED: the idempotency check" in out
    assert "written: findings/no-idempotency-guard-1.yaml" in out
    assert "without the defect it passes" in out and out.rstrip().endswith("exit 1")
    assert "crash point" in out and "fault" in out  # the coverage table
    path = tmp_path / "findings" / "no-idempotency-guard-1.yaml"
    text = path.read_text()
    assert text.startswith("# Found by `kcverify explore --seed 1 --defect no-idempotency-guard`")
    assert "tags: [explore]" in text and "covers: [" in text

    broken = kcverify("run", str(path), "--defect", "no-idempotency-guard", "--no-color", cwd=tmp_path)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "idempotency" in broken.stdout
    clean = kcverify("run", str(path), "--no-color", cwd=tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr


def test_nothing_found_on_the_reference_exits_0_with_rate_and_coverage(tmp_path: Path) -> None:
    result = kcverify("explore", "--seed", "2", "--budget", "60", "--no-color", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"seed 2: 60 schedules in [\d.]+ s, [\d.]+ schedules/s", result.stdout)
    assert "no failure found" in result.stdout
    for row in ("begin_read", "purchase-worker", "worker.after_commit", "payments_db.find_succeeded", "freshness"):
        assert row in result.stdout
    assert not (tmp_path / "explore-findings").exists()


def test_history_does_not_depend_on_the_process(tmp_path: Path) -> None:
    """Same seed and budget in schedules, two processes with different hash seeds: the same history."""
    digests = []
    for hash_seed in ("1", "2"):
        result = kcverify("explore", "--seed", "5", "--budget", "40", "--no-color", cwd=tmp_path,
                          env={"PYTHONHASHSEED": hash_seed})
        assert result.returncode == 0, result.stdout + result.stderr
        match = re.search(r"history sha256 ([0-9a-f]{16})", result.stdout)
        assert match, result.stdout
        digests.append(match.group(1))
    assert digests[0] == digests[1]


def test_bad_budget_is_a_usage_error(tmp_path: Path) -> None:
    result = kcverify("explore", "--budget", "soon", cwd=tmp_path)
    assert result.returncode == 2
    assert "neither a time" in result.stderr
