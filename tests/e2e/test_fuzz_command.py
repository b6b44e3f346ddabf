"""`kcverify fuzz` as a user runs it: the installed command, in a subprocess, on the embedded reference with
a small budget. It passes on the reference, finds each defect made for it (exit 1, with a curl line and
the command that runs the pass again), and refuses bad input in one line (exit 2)."""

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

ROOT = Path(__file__).resolve().parents[2]
KCVERIFY = shutil.which("kcverify", path=str(Path(sys.executable).parent)) or "kcverify"
SMALL = ("--max-examples", "25")


# The services of a profile whose base URLs answer nothing (port 9, discard, is closed on test machines).
UNREACHABLE = {"KCVERIFY_PAYMENT_URL": "http://127.0.0.1:9", "KCVERIFY_STUDENT_URL": "http://127.0.0.1:9",
               "KCVERIFY_AUTH_SECRET": "test-auth-secret", "KCVERIFY_WEBHOOK_SECRET": "test-webhook-secret"}


def kcverify(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **UNREACHABLE}
    env.pop("GITHUB_STEP_SUMMARY", None)
    return subprocess.run([KCVERIFY, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_reference_passes_and_every_pass_is_reported(tmp_path: Path) -> None:
    result = kcverify("fuzz", *SMALL, "--report", "json,junit", "--report-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    names = {s["name"] for s in report["scenarios"]}
    for operation in ("POST /api/v1/payments", "POST /api/v1/payments/{paymentId}/confirm",
                      "GET /api/v1/students/{studentId}/learning"):
        assert {f"positive {operation}", f"negative {operation}"} <= names, names
        assert f"{operation} " in result.stdout  # the progress line of the pass
    assert "positive flow: stateful sequences" in names  # on by default: every target can settle
    assert all(s["status"] == "passed" for s in report["scenarios"])
    assert "<testsuite" in (tmp_path / "out" / "junit.xml").read_text()


@pytest.mark.parametrize(("defect", "operation", "check"), [
    ("malformed-student-id-html-500", "getLearningView", "problem_json"),
    ("confirm-ignores-unknown-fields", "confirmPayment", "bad_input_refused"),
])
def test_each_fuzz_defect_is_found_with_a_reproduce_line(tmp_path: Path, defect: str, operation: str,
                                                         check: str) -> None:
    assert defect in BY_NAME
    out = tmp_path / "out"
    result = kcverify("fuzz", *SMALL, "--operations", operation, "--defect", defect, "--report", "json",
                      "--report-dir", str(out), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(out.joinpath("report.json").read_text())
    failures = [f for s in report["scenarios"] for f in s["failures"]]
    assert check in {f["check"] for f in failures}, failures
    assert all(f["details"]["curl"].startswith("curl ") for f in failures)
    reproduce = [line.split("reproduce: ", 1)[1] for line in result.stdout.splitlines() if "reproduce: " in line]
    assert reproduce and all(f"--defect {defect}" in line for line in reproduce), result.stdout
    assert any(line.startswith("curl ") for line in result.stdout.splitlines()), result.stdout
    # The reproduce command runs that pass again and finds the failure again.
    again = kcverify(*shlex.split(reproduce[0])[1:], cwd=tmp_path)
    assert again.returncode == 1, again.stdout + again.stderr


@pytest.mark.parametrize(("args", "expected"), [
    (("--target", "nosuch"), "unknown target 'nosuch'"),
    (("--operations", "getPaymnt"), "unknown operation 'getPaymnt'"),
    (("--modes", "sideways"), "unknown mode 'sideways'"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], expected: str) -> None:
    result = kcverify("fuzz", *SMALL, *args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_an_unusable_openapi_document_is_exit_2_naming_it(tmp_path: Path) -> None:
    profile, bad = _external_profile(tmp_path, "openapi: 3.1.0\ninfo: [not, a, mapping]\npaths: 7\n")
    result = kcverify("fuzz", *SMALL, "--target", "external", "--profile", str(profile), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and str(bad) in line and "Traceback" not in line, line


def test_an_unreachable_target_is_exit_2_in_one_line(tmp_path: Path) -> None:
    profile, _ = _external_profile(tmp_path, None)
    result = kcverify("fuzz", *SMALL, "--target", "external", "--profile", str(profile), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr


def _external_profile(tmp_path: Path, document: str | None) -> tuple[Path, Path]:
    """The reference profile with HTTP only, its payment service fuzzed from `document` (None: the
    shipped contract)."""
    text = (ROOT / "profiles" / "reference.yaml").read_text()
    text = text[:text.index("\ndatabases:\n")] + text[text.index("\nconventions:\n"):]
    openapi = tmp_path / "payment-openapi.yaml"
    if document is None:
        openapi = ROOT / "contracts" / "openapi" / "payment-service.yaml"
    else:
        openapi.write_text(document)
    line = "openapi: kcverify:contracts/openapi/payment-service.yaml"
    assert line in text
    text = text.replace(line, f"openapi: {json.dumps(str(openapi))}")
    profile = tmp_path / "profile.yaml"
    profile.write_text(text)
    return profile, openapi
