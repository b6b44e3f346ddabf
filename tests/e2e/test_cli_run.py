"""`kcverify run` as a user runs it: the installed command, in a subprocess, from a project folder."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import junitparser
import pytest

ROOT = Path(__file__).resolve().parents[2]
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
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    full_env.pop("GITHUB_STEP_SUMMARY", None) if "GITHUB_STEP_SUMMARY" not in (env or {}) else None
    return subprocess.run([KCVERIFY, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_the_shipped_scenarios_all_pass_and_the_time_is_printed(tmp_path: Path) -> None:
    result = kcverify("run", str(ROOT / "scenarios"), "--no-color", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and " s" in result.stdout.splitlines()[-3]


@pytest.mark.parametrize(("text", "where", "message"), [
    ("title: x\ncovers: [W6]\nsteps:\n  - confirm: {payment: p1\n", ":5:", "expected"),
    ("title: x\ncovers: [W6]\nsteps:\n  - confrim: {payment: p1}\n", ":4:5:", "did you mean 'confirm'"),
    ("title: x\ncovers: [W6]\nsteps:\n  - create_payment: {as: p1}\n  - confirm: {payment: p1, times: '2'}\n",
     ":5:", "'times' must be an integer"),
])
def test_bad_scenario_files_give_file_line_and_exit_2(tmp_path: Path, text: str, where: str, message: str) -> None:
    bad = write(tmp_path, "bad.yaml", text)
    result = kcverify("run", str(bad), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith(str(bad) + where), first
    assert message in first
    assert "Traceback" not in result.stderr


def test_a_failing_scenario_exits_1_and_its_reproduce_command_fails_the_same_way(tmp_path: Path) -> None:
    scenario = write(tmp_path, "race.yaml", (ROOT / "scenarios" / "stale-set-race.yaml").read_text())
    first = kcverify("run", str(scenario), "--defect", "stale-set-race", "--seed", "7", cwd=tmp_path)
    assert first.returncode == 1, first.stdout + first.stderr
    [line] = [x for x in first.stdout.splitlines() if x.strip().startswith("reproduce:")]
    command = shlex.split(line.split("reproduce:", 1)[1])
    assert command[:2] == ["kcverify", "run"] and "--seed" in command and "7" in command
    again = kcverify(*command[1:], cwd=tmp_path)
    assert again.returncode == 1
    assert "check freshness" in first.stdout and "check freshness" in again.stdout
    assert "rules S3" in again.stdout


def test_reports_are_written_and_junit_loads(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", GOOD)
    summary = tmp_path / "summary.md"
    write(tmp_path, "claims.yaml", "claims:\n  - id: happy\n    text: A purchase shows up\n    rules: [S1]\n")
    result = kcverify("run", "good.yaml", "--report", "junit,json,markdown,html", "--report-dir", "out",
                      "--claims", "claims.yaml", cwd=tmp_path, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.returncode == 0, result.stdout + result.stderr
    suite = junitparser.JUnitXml.fromfile(str(tmp_path / "out" / "junit.xml"))
    assert sum(s.tests for s in suite) == 1 if hasattr(suite, "__iter__") else suite.tests == 1
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"junit.xml", "report.json", "report.md", "report.html"}
    assert "## Claims, judged by evidence" in summary.read_text()
    assert "Claims, judged by evidence" in result.stdout


def test_settings_come_from_kcverify_toml_then_env_then_flags(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", GOOD)
    write(tmp_path, "kcverify.toml", 'paths = ["good.yaml"]\nreport_dir = "from-file"\n[run]\nreport = ["json"]\n')
    assert kcverify("run", cwd=tmp_path).returncode == 0
    assert (tmp_path / "from-file" / "report.json").is_file()
    assert kcverify("run", cwd=tmp_path, env={"KCVERIFY_REPORT_DIR": "from-env"}).returncode == 0
    assert (tmp_path / "from-env" / "report.json").is_file()
    assert kcverify("run", "--report-dir", "from-flag", cwd=tmp_path,
                    env={"KCVERIFY_REPORT_DIR": "from-env-2"}).returncode == 0
    assert (tmp_path / "from-flag" / "report.json").is_file()
    assert not (tmp_path / "from-env-2").exists()


def test_a_misspelt_setting_is_an_input_error(tmp_path: Path) -> None:
    write(tmp_path, "kcverify.toml", 'seed = 1\n[run]\nreprot = ["json"]\n')
    result = kcverify("run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{tmp_path / 'kcverify.toml'}:3: unknown setting 'run.reprot'")
    assert "did you mean 'report'" in result.stderr


def test_select_by_name_or_tag_and_nothing_selected_is_exit_2(tmp_path: Path) -> None:
    result = kcverify("run", str(ROOT / "scenarios"), "-k", "race", cwd=tmp_path)
    assert result.returncode == 0
    assert "stale-set-race" in result.stdout and "happy-path" not in result.stdout
    tagged = kcverify("run", str(ROOT / "scenarios"), "-k", "smoke", cwd=tmp_path)
    assert "happy-path" in tagged.stdout
    none = kcverify("run", str(ROOT / "scenarios"), "-k", "no-such-scenario", cwd=tmp_path)
    assert none.returncode == 2 and "no scenario selected" in none.stderr


def test_missing_path_is_exit_2(tmp_path: Path) -> None:
    result = kcverify("run", "nope/", cwd=tmp_path)
    assert result.returncode == 2
    assert "nope" in result.stderr


def test_checks_are_selected_by_name_and_an_unknown_one_is_exit_2(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", GOOD)
    only = kcverify("run", "good.yaml", "--checks", "metadata,freshness", "-v", cwd=tmp_path)
    assert only.returncode == 0, only.stdout + only.stderr
    assert "check ✓ PASS  metadata" in only.stdout and "freshness" in only.stdout
    assert "delivery" not in only.stdout and "contract" not in only.stdout
    but = kcverify("run", "good.yaml", "--exclude-checks", "delivery", "-v", cwd=tmp_path)
    assert but.returncode == 0 and "check ✓ PASS  metadata" in but.stdout and "delivery [" not in but.stdout
    wrong = kcverify("run", "good.yaml", "--checks", "metadta", cwd=tmp_path)
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert "unknown check 'metadta'" in wrong.stderr and "did you mean 'metadata'" in wrong.stderr
    assert "known checks: " in wrong.stderr and "freshness" in wrong.stderr
    none = kcverify("run", "good.yaml", "--checks", "metadata", "--exclude-checks", "metadata", cwd=tmp_path)
    assert none.returncode == 2 and "no check selected" in none.stderr


def test_a_failed_step_expectation_is_not_reported_as_a_check(tmp_path: Path) -> None:
    write(tmp_path, "expect.yaml", GOOD.replace("expect: {shows: [p1]}", "expect: {status: 404}"))
    result = kcverify("run", "expect.yaml", "--report", "markdown", "--report-dir", "out", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "step expectation" in result.stdout and "check step expectation" not in result.stdout
    assert "check expect" not in result.stdout
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "step expectation" in markdown and "check `step expectation`" not in markdown
