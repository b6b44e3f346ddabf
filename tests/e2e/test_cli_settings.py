"""Settings and destinations as a user meets them: the installed command in a subprocess. Every bad
setting, bad number or unusable destination is exit 2 with one line and no traceback, before any work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

KCVERIFY = shutil.which("kcverify", path=str(Path(sys.executable).parent)) or "kcverify"
GOOD = """\
title: one purchase
covers: [W6]
steps:
  - create_payment: {as: p1, student: s1}
  - confirm: {payment: p1}
  - settle: {}
  - read: {student: s1, expect: {shows: [p1]}}
"""


def kcverify(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KCVERIFY_") and k != "GITHUB_STEP_SUMMARY"}
    return subprocess.run([KCVERIFY, *args], cwd=cwd, env={**base, "NO_COLOR": "1", **(env or {})},
                          capture_output=True, text=True, timeout=300)


def one_line_exit_2(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_an_unwritable_report_dir_stops_run_before_any_scenario(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "blocker").write_text("")
    result = kcverify("run", "good.yaml", "--report", "json", "--report-dir", "blocker/out", cwd=tmp_path)
    line = one_line_exit_2(result)
    assert line == "report dir blocker/out: cannot write there (Not a directory)"
    assert "one purchase" not in result.stdout and "passed" not in result.stdout


def test_an_unwritable_report_dir_stops_defects_before_the_baseline(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "blocker").write_text("")
    result = kcverify("defects", "good.yaml", "--only", "dual-write", "--report", "json", "--report-dir",
                      "blocker/out", cwd=tmp_path)
    assert one_line_exit_2(result).startswith("report dir blocker/out: cannot write there")
    assert "baseline" not in result.stdout


def test_a_step_summary_that_cannot_be_appended_to_is_exit_2_only_when_markdown_is_written(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    summary = tmp_path / "summary-is-a-folder"
    summary.mkdir()
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    failed = kcverify("run", "good.yaml", "--report", "markdown", cwd=tmp_path, env=env)
    assert one_line_exit_2(failed).startswith(f"GITHUB_STEP_SUMMARY {summary}: cannot append to it")
    assert kcverify("run", "good.yaml", "--report", "json", cwd=tmp_path, env=env).returncode == 0


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_stack_up_with_a_bad_timeout_is_exit_2(tmp_path: Path, value: str) -> None:
    result = kcverify("stack", "up", "--timeout", value, "--state-dir", str(tmp_path / "state"), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Invalid value for '--timeout'" in result.stderr
    assert not (tmp_path / "state").exists()


def test_columns_that_is_not_a_number_breaks_nothing(tmp_path: Path) -> None:
    shown = kcverify("run", "--help", cwd=tmp_path, env={"COLUMNS": "abc"})
    assert shown.returncode == 0 and "--report-dir" in shown.stdout and not shown.stderr
    unknown = kcverify("defects", "--only", "no-such", cwd=tmp_path, env={"COLUMNS": "abc"})
    assert one_line_exit_2(unknown).startswith("unknown defect 'no-such'")


def test_bad_settings_files_and_variables_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_bytes(b'[tool.kcverify]\nseed = 1 # caf\xe9\n')
    line = one_line_exit_2(kcverify("run", cwd=tmp_path))
    assert line == f"{tmp_path / 'pyproject.toml'}: not UTF-8 text (byte 0xe9 at offset 30)"
    (tmp_path / "pyproject.toml").write_text('[tool.kcverify]\nseed = "7"\n')
    line = one_line_exit_2(kcverify("explore", cwd=tmp_path))
    assert line == f"{tmp_path / 'pyproject.toml'}:2: seed: expected an integer, got '7'"
    (tmp_path / "pyproject.toml").unlink()
    line = one_line_exit_2(kcverify("serve", "embedded", cwd=tmp_path,
                                    env={"KCVERIFY_SERVE_EMBEDDED_PAYMENT_PORT": "http"}))
    assert line == "KCVERIFY_SERVE_EMBEDDED_PAYMENT_PORT: expected an integer, got 'http'"


def test_settings_reach_stack_and_serve_too(tmp_path: Path) -> None:
    (tmp_path / "kcverify.toml").write_text('state_dir = "elsewhere"\n')
    result = kcverify("serve", "worker", "--dev", cwd=tmp_path)
    assert result.returncode == 2
    assert f"no running stack in {tmp_path / 'elsewhere'}" in result.stderr
