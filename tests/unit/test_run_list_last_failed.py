"""`kcverify run --list` shows what would run and runs nothing; `kcverify run --last-failed` re-runs only
what failed or errored last time (the record in .kcverify/last-run.json), and all of it, with a note,
when there is no record or no failure (as pytest's --lf)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from kcverify import api
from kcverify.checks import REGISTRY
from kcverify.cli.main import cli
from kcverify.scenario.loader import load_scenarios
from kcverify.targets import registry

ROOT = Path(__file__).resolve().parents[2]
FAILS, PASSES = "stale-set-race", "unsigned-confirm"  # with --defect stale-set-race: one fails, one passes


def _invoke(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(cli, ["run", *args, "--no-color"], terminal_width=200)
    return done.exit_code, done.output


def test_list_shows_scenarios_capabilities_and_checks_and_runs_nothing(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    def no_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("--list ran scenarios")

    monkeypatch.setattr(api, "run", no_run)
    scenarios = load_scenarios([ROOT / "scenarios"])
    declared = registry.lookup("processes").capabilities
    assert declared is not None
    code, output = _invoke(str(ROOT / "scenarios"), "--list", "--target", "processes",
                           "--exclude-checks", "ordering", "--report", "junit")
    assert code == 0, output
    lines = output.splitlines()
    for scenario in scenarios:
        [at] = [i for i, line in enumerate(lines) if line.split()[:1] == [scenario.name]]
        detail = lines[at + 1]
        assert f"{len(scenario.steps)} step" in detail
        assert all(c in detail for c in scenario.capabilities_needed())
        lacking = sorted(scenario.capabilities_needed() - declared)
        assert detail.endswith(f"would skip: target lacks {', '.join(lacking)}" if lacking else "runs")
    listed = [line.split()[0] for line in lines[lines.index(next(x for x in lines if x.startswith("checks ("))) + 1:]]
    assert listed == [name for name in REGISTRY if name != "ordering"]
    assert not (tmp_path / ".kcverify").exists() and not (tmp_path / "kcverify-report").exists()


def test_last_failed_reruns_only_what_failed_then_all_when_nothing_failed(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scenarios").mkdir()
    for name in (FAILS, PASSES):
        shutil.copy(ROOT / "scenarios" / f"{name}.yaml", tmp_path / "scenarios")

    code, output = _invoke("scenarios", "--last-failed", "--defect", "stale-set-race")
    assert code == 1, output
    assert "no record of a previous run" in output and "running all 2 scenarios" in output
    record = json.loads((tmp_path / ".kcverify" / "last-run.json").read_text(encoding="utf-8"))
    assert sorted(record["scenarios"].values()) == ["failed", "passed"]

    code, output = _invoke("scenarios", "--last-failed", "--list")
    assert code == 0 and "re-running the 1 of 2" in output
    assert FAILS in output and PASSES not in output

    code, output = _invoke("scenarios", "--last-failed")  # without the defect: the failure is fixed
    assert code == 0, output
    assert "re-running the 1 of 2" in output and "1 passed" in output.lower()
    code, output = _invoke("scenarios", "--last-failed", "--list")
    assert "no failure in the last run: running all 2 scenarios" in output
    assert FAILS in output and PASSES in output


def test_an_unreadable_record_means_no_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".kcverify").mkdir()
    (tmp_path / ".kcverify" / "last-run.json").write_text("{not json", encoding="utf-8")
    code, output = _invoke(str(ROOT / "scenarios" / f"{PASSES}.yaml"), "--last-failed", "--list")
    assert code == 0 and "no record of a previous run" in output
