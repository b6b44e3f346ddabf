"""`kcverify bench` on the processes target, briefly and at a low rate: the command runs end to end with
free-running components and writes its reports. Asserts the output's structure (keys, counts, no lost or
duplicated purchase), never its speed: the machine running CI decides that.

Runs on the session's shared stack (tests/integration/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kcverify.cli.main import cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

HOPS = {"confirm", "commit", "visible", "end_to_end"}


@pytest.fixture(scope="module")
def state_dir(stack_dir: Path) -> Path:
    """The session's shared stack (tests/integration/conftest.py)."""
    return stack_dir


def test_a_short_bench_reports_every_hop_and_loses_nothing(state_dir: Path, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    result = CliRunner().invoke(cli, ["bench", "--state-dir", str(state_dir), "--rate", "5", "--duration", "10",
                                      "--students", "5", "--report", "json,markdown", "--report-dir", str(reports),
                                      "--no-color"])
    assert result.exit_code == 0, result.output + result.stderr
    doc = json.loads((reports / "bench.json").read_text())
    assert set(doc) == {"format", "target", "startedAt", "options", "hops", "steps", "total", "integrity"}
    assert doc["target"] == "processes" and len(doc["steps"]) == 1
    step = doc["steps"][0]
    assert step["offeredRate"] == 5 and step["scheduled"] == 50
    assert step["confirmed"] > 0 and step["visible"] > 0 and step["achievedRate"] > 0
    assert set(step["latencyMs"]) == HOPS
    for hop in HOPS:
        values = step["latencyMs"][hop]
        assert values["count"] > 0 and set(values) == {"count", "p50", "p90", "p99", "max"}
        assert 0 < values["p50"] <= values["p90"] <= values["p99"] <= values["max"]
    assert step["readers"]["requests"] >= step["visible"]
    tally = doc["integrity"]
    assert tally["confirmed"] == step["confirmed"] > 0
    assert tally["lost"] == 0 and tally["duplicated"] == 0 and tally["shownTwice"] == 0 and tally["ok"] is True
    assert tally["purchases"] == tally["confirmed"]
    assert "| end_to_end" in (reports / "bench.md").read_text()
    assert "integrity: " in result.output
