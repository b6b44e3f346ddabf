"""`kcverify fuzz --operations flow` as a user runs it: stateful sequences across the flow (create, signed
confirm, settle, learning view) on the embedded reference with a small budget. The reference passes; a
named defect that corrupts the metadata on its way to the purchase is found, reported through every
reporter with the shrunk sequence and the command that runs the pass again (same seed, same sequences)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from kcverify.reference.defects import BY_NAME
from tests.e2e.test_fuzz_events_command import kcverify  # one way to run the command, with a plain console

FLOW = ("--operations", "flow", "--max-examples", "50")  # 5 sequences
NAME = "positive flow: stateful sequences"


def test_the_reference_passes_the_flow_pass(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = kcverify("fuzz", *FLOW, "--report", "json", "--report-dir", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "report.json").read_text())
    assert [(s["name"], s["status"]) for s in report["scenarios"]] == [(NAME, "passed")]  # only the flow pass
    assert "flow: stateful sequences" in result.stdout and "confirm 200" in result.stdout


@pytest.mark.parametrize("defect", ["metadata-bmp-only"])
def test_a_defect_of_the_flow_is_found_and_reproduced(tmp_path: Path, defect: str) -> None:
    assert defect in BY_NAME
    out = tmp_path / "out"
    args = ("fuzz", *FLOW, "--defect", defect, "--report", "json,junit,markdown,html", "--report-dir", str(out))
    result = kcverify(*args, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads((out / "report.json").read_text())
    [entry] = report["scenarios"]
    assert (entry["name"], entry["status"]) == (NAME, "failed")
    [failure] = entry["failures"]
    assert failure["check"] == "flow" and "W4" in failure["rules"]
    assert "shrunk sequence: create p1" in failure["message"] and "confirm p1 succeeded" in failure["message"]
    command = shlex.split(entry["reproduce"])
    assert command[:2] == ["kcverify", "fuzz"] and f"--defect {defect}" in entry["reproduce"]
    assert command[-4:] == ["--operations", "flow", "--modes", "positive"]
    for name in ("junit.xml", "report.md", "report.html"):
        assert "stateful sequences" in (out / name).read_text(), name
