"""`kcverify explore` shows its progress as a share of its budget: a spinner line on a terminal, a line per
tenth of the budget in a log."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from kcverify.cli import explore as explore_cli
from kcverify.cli.main import cli
from kcverify.core.errors import InputError
from kcverify.explore.explorer import Budget, Progress


def test_the_share_of_a_time_or_schedule_budget() -> None:
    assert Budget(schedules=200).spent(50, 999.0) == 0.25
    assert Budget(seconds=60).spent(10_000, 15.0) == 0.25
    assert Budget(seconds=60).spent(1, 90.0) == 1.0
    assert explore_cli.progress_text(Progress(81, 24.4, "search"), Budget(seconds=60)) == \
        "searching: 41% of the budget (24 of 60 s, 81 schedules)"
    assert explore_cli.progress_text(Progress(30, 7.0, "search"), Budget(schedules=120)) == \
        "searching: 25% of the budget (30 of 120 schedules, 7 s)"
    assert explore_cli.progress_text(Progress(140, 70.0, "shrink"), Budget(seconds=60)).startswith("shrinking")


def test_a_log_gets_a_line_per_tenth_of_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(options: object, progress: object = None, *, targets: object) -> None:
        assert callable(progress)
        for n in range(1, 101):  # 100 schedules of a 100-schedule budget, progress after each
            progress(Progress(n, n / 10, "search"))
        progress(Progress(101, 10.1, "shrink"))
        progress(Progress(102, 10.2, "shrink"))
        raise InputError("stop here")

    monkeypatch.setattr(explore_cli, "run_exploration", fake)
    done = CliRunner().invoke(cli, ["explore", "--budget", "100", "--no-color", "--out", "findings"])
    lines = [line for line in done.output.splitlines() if line.startswith(("searching", "shrinking"))]
    assert lines[:10] == [f"searching: {p}% of the budget ({p} of 100 schedules, {p / 10:.0f} s)"
                          for p in range(10, 101, 10)]
    assert lines[10:] == ["shrinking the finding: 101 schedules, 10 s"]
    assert done.exit_code == 2

