"""`kcverify fuzz --target processes` on the session's shared stack (tests/integration/conftest.py), with a
small budget: every HTTP operation and every consumer pass runs cases against the reference as separate
processes, and none fails; started with the defect `worker-dies-on-bad-session-count`, the consumer's
negative passes find it there too (a shared system per pass: the first failing case is reported as
generated, and its scenario file is written). The budgets and measured runs are in docs/fuzz.md."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

KCVERIFY = shutil.which("kcverify", path=str(Path(sys.executable).parent)) or "kcverify"
CONSUMER = "consumePurchaseConfirmed"


def fuzz(stack_dir: Path, cwd: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "KCVERIFY_STATE_DIR": str(stack_dir)}
    env.pop("GITHUB_STEP_SUMMARY", None)
    out = cwd / "out"
    result = subprocess.run([KCVERIFY, "fuzz", "--target", "processes", *args, "--report", "json",
                             "--report-dir", str(out)], cwd=cwd, env=env, capture_output=True, text=True, timeout=280)
    assert "Traceback" not in result.stderr, result.stderr
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").is_file() else {}
    return result, report


def cases(entry: dict[str, Any]) -> int:
    found = re.match(r"(\d+) cases", entry["title"])
    assert found, entry["title"]
    return int(found.group(1))


def test_every_operation_and_consumer_pass_runs_cases_on_processes_and_none_fails(stack_dir: Path,
                                                                                   tmp_path: Path) -> None:
    operations = ("createPayment,getPayment,confirmPayment,paymentServiceHealth,getLearningView,"
                  f"invalidateLearningCache,studentServiceHealth,{CONSUMER}")
    result, report = fuzz(stack_dir, tmp_path, "--operations", operations, "--max-examples", "3", "--seed", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    entries = report["scenarios"]
    assert all(e["status"] == "passed" for e in entries), [(e["name"], e["status"], e["reason"]) for e in entries]
    http = [e for e in entries if CONSUMER not in e["name"]]
    consumer = [e for e in entries if CONSUMER in e["name"]]
    labels = {e["name"].split(" ", 1)[1] for e in http}
    assert {"POST /api/v1/payments", "GET /api/v1/payments/{paymentId}", "POST /api/v1/payments/{paymentId}/confirm",
            "GET /api/v1/students/{studentId}/learning", "DELETE /api/v1/students/{studentId}/learning/cache"} \
        <= labels, labels
    assert {e["name"].split(": ", 1)[1] for e in consumer} == {"valid events", "invalid events", "poison then valid"}
    assert all(cases(e) > 0 for e in entries), [(e["name"], e["title"]) for e in entries]
    # the consumer's cases were judged by what they made: purchases, and dead letters for the invalid records
    assert "purchase x" in next(e["title"] for e in consumer if e["name"].endswith("valid events"))
    assert "dead letter" in next(e["title"] for e in consumer if e["name"].endswith("invalid events"))


def test_a_worker_that_dies_on_a_bad_session_count_is_found_on_processes(stack_dir: Path, tmp_path: Path) -> None:
    result, report = fuzz(stack_dir, tmp_path, "--operations", CONSUMER, "--modes", "negative",
                          "--max-examples", "5", "--defect", "worker-dies-on-bad-session-count")
    assert result.returncode == 1, result.stdout + result.stderr
    failed = [e for e in report["scenarios"] if e["status"] == "failed"]
    assert failed, report["scenarios"]
    for entry in failed:
        failure = entry["failures"][0]
        assert failure["check"] == "consumer" and "not shrunk" in entry["title"], entry
        assert any("sessionCount" in label for label in failure["details"]["records"]), failure
        scenario = Path(failure["details"]["scenario_file"])
        assert scenario.is_file() and "publish" in scenario.read_text(encoding="ascii")
        assert entry["reproduce"].startswith("kcverify run") and "--target processes" in entry["reproduce"]
    # Replayed, the worker's death is the reference's own failure (it exits by itself on the event it
    # should dead-letter): a failed scenario naming it, not an error of unknown verdict; without the
    # defect the same file passes.
    scenario = Path(failed[0]["failures"][0]["details"]["scenario_file"])
    replay = run(stack_dir, tmp_path, str(scenario), "--defect", "worker-dies-on-bad-session-count")
    assert replay.returncode == 1, replay.stdout + replay.stderr
    assert re.search(r"component died\s+rules I3", replay.stdout), replay.stdout
    assert "the purchase-worker process exited with status" in replay.stdout, replay.stdout
    assert run(stack_dir, tmp_path, str(scenario)).returncode == 0


def run(stack_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "KCVERIFY_STATE_DIR": str(stack_dir)}
    env.pop("GITHUB_STEP_SUMMARY", None)
    result = subprocess.run([KCVERIFY, "run", "--target", "processes", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=200)
    assert "Traceback" not in result.stderr, result.stderr
    return result
