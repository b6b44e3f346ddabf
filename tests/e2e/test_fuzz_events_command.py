"""`kcverify fuzz --operations consumePurchaseConfirmed` as a user runs it: the consumer passes on the embedded
reference with a small budget. The reference passes; each defect made for them is found (exit 1), and the
scenario file written for its shrunk case fails again under `kcverify run` with the defect on, and passes
without it; bad input is one line and exit 2."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kcverify.reference.defects import BY_NAME

KCVERIFY = shutil.which("kcverify", path=str(Path(sys.executable).parent)) or "kcverify"
EVENTS = ("--operations", "consumePurchaseConfirmed")
SMALL = ("--max-examples", "25")  # 5 cases per consumer pass
PASSES = ("positive consumePurchaseConfirmed: valid events", "negative consumePurchaseConfirmed: invalid events",
          "negative consumePurchaseConfirmed: poison then valid")


def kcverify(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("GITHUB_STEP_SUMMARY", None)
    return subprocess.run([KCVERIFY, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_reference_passes_every_consumer_pass(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = kcverify("fuzz", *EVENTS, *SMALL, "--report", "json", "--report-dir", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "report.json").read_text())
    assert [s["name"] for s in report["scenarios"]] == list(PASSES)  # only the consumer passes were selected
    assert all(s["status"] == "passed" for s in report["scenarios"]), report["scenarios"]
    for name in PASSES:
        assert name.split(" ", 1)[1] in result.stdout  # the progress line of the pass
    assert "5 cases" in result.stdout and "dead letter schema_violation" in result.stdout
    assert not (out / "fuzz-scenarios").exists()  # nothing failed: no scenario file


@pytest.mark.parametrize("defect", ["worker-dies-on-bad-session-count", "poison-blocks-partition"])
def test_each_consumer_defect_is_found_and_its_scenario_file_fails_again(tmp_path: Path, defect: str) -> None:
    assert defect in BY_NAME
    out = tmp_path / "out"
    result = kcverify("fuzz", *EVENTS, *SMALL, "--modes", "negative", "--defect", defect, "--report", "json",
                      "--report-dir", str(out), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads((out / "report.json").read_text())
    failed = [s for s in report["scenarios"] if s["status"] == "failed"]
    assert failed, report["scenarios"]
    for entry in failed:
        assert {f["check"] for f in entry["failures"]} == {"consumer"}
        command = shlex.split(entry["reproduce"])
        assert command[:2] == ["kcverify", "run"] and f"--defect {defect}" in entry["reproduce"]
        scenario = Path(command[-1])
        assert scenario.is_file() and scenario.parent == out / "fuzz-scenarios"
        assert f"reproduce: {entry['reproduce']}" in result.stdout
    # The written scenario fails again with the defect on, and passes on the correct reference (one of the
    # files: each subprocess costs seconds on a loaded machine; the same writer wrote them all).
    command = shlex.split(failed[-1]["reproduce"])
    again = kcverify(*command[1:], cwd=tmp_path)
    assert again.returncode == 1, again.stdout + again.stderr
    clean = kcverify("run", command[-1], cwd=tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr


@pytest.mark.parametrize(("args", "expected"), [
    (("--modes", "sideways"), "unknown mode 'sideways'"),
    (("--operations", "consumePurchaseConfirmed,nosuchOperation"), "unknown operation 'nosuchOperation'"),
])
def test_bad_input_of_the_consumer_passes_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...],
                                                                 expected: str) -> None:
    result = kcverify("fuzz", *EVENTS, *SMALL, *args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
