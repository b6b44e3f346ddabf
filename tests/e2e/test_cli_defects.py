"""`kcverify defects` as a user runs it: the installed command, in a subprocess, from the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from kcverify import contracts

ROOT = Path(__file__).resolve().parents[2]
KCVERIFY = shutil.which("kcverify", path=str(Path(sys.executable).parent)) or "kcverify"


def kcverify(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    if "GITHUB_STEP_SUMMARY" not in (env or {}):
        full_env.pop("GITHUB_STEP_SUMMARY", None)
    return subprocess.run([KCVERIFY, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)


def test_two_defects_print_the_matrix_and_a_full_score(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    result = kcverify("defects", "--only", "stale-set-race", "--only", "dual-write", "--report", "json,markdown",
                      "--report-dir", str(tmp_path / "out"),
                      env={"GITHUB_STEP_SUMMARY": str(summary), "COLUMNS": "400"})
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Kill matrix" in out
    header = next(line for line in out.splitlines() if "first caught by" in line and "defect" in line)
    for column in ("rule", "step expectation", "settle bound", "freshness", "delivery", "metadata"):
        assert column in header
    [dual] = [line for line in out.splitlines() if line.strip().startswith("dual-write ")]
    # The first-caught cell may wrap its rule ids onto the next line of the table.
    lines = out.splitlines()
    dual_at = lines.index(dual)
    assert "broker-down-at-confirm: delivery" in dual and "[P3" in " ".join(lines[dual_at:dual_at + 2])
    [race] = [line for line in lines if line.strip().startswith("stale-set-race ")]
    race_at = lines.index(race)
    # first caught by a scenario that stores a view after an invalidation (stale-set-race, cache-fails-at-read)
    assert "step expectation [" in " ".join(lines[race_at:race_at + 2])
    assert "kill score: 2/2 killed (100%)" in out
    assert "wall time:" in out
    assert "\x1b[" not in out  # NO_COLOR: plain text for logs
    document = json.loads((tmp_path / "out" / "kill-matrix.json").read_text())
    assert contracts.validate("schemas/kill-matrix-report", document) == []
    assert [m["name"] for m in document["mutants"]] == ["dual-write", "stale-set-race"]  # catalogue order
    assert "Kill score 2/2 (100%)" in summary.read_text()


def test_an_unknown_defect_is_exit_2_with_a_did_you_mean() -> None:
    result = kcverify("defects", "--only", "no-such")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "unknown defect 'no-such'" in result.stderr
    assert "did you mean" in result.stderr
    assert "Traceback" not in result.stderr and "kill score" not in result.stdout
    close = kcverify("defects", "--only", "stale-set-rac")
    assert close.returncode == 2 and "did you mean 'stale-set-race'" in close.stderr


def test_a_survivor_is_exit_1_and_named_with_its_rule(tmp_path: Path) -> None:
    result = kcverify("defects", str(ROOT / "scenarios" / "happy-path.yaml"), "--only", "no-reconciler",
                      cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "kill score: 0/1 killed (0%)" in result.stdout
    assert "no-reconciler [I1]" in result.stdout and "SURVIVED" in result.stdout
