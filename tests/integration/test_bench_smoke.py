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

HOPS = {"confirm", "commit", "visible", "confirm_to_visible", "end_to_end"}


@pytest.fixture(scope="module")
def state_dir(stack_dir: Path) -> Path:
    """The session's shared stack (tests/integration/conftest.py)."""
    return stack_dir


def _system_checks(part: dict[str, object], scheduled: int) -> None:
    """One system's steps, total, tally and closed-loop maximum: keys, counts, nothing lost."""
    assert {"warmup", "steps", "total", "integrity", "maxThroughput"} <= set(part)
    warm = part["warmup"]  # type: ignore[index]
    assert warm["offeredRate"] == 5 and warm["durationSeconds"] == 1 and warm["scheduled"] == 5
    assert warm["confirmed"] == warm["visible"] == 5  # drained before the step began
    step = part["steps"][0]  # type: ignore[index]
    assert step["offeredRate"] == 5 and step["scheduled"] == scheduled
    assert step["confirmed"] > 0 and step["visible"] > 0 and step["achievedRate"] > 0
    assert set(step["latencyMs"]) == HOPS
    for hop in HOPS:
        values = step["latencyMs"][hop]
        assert values["count"] > 0 and set(values) == {"count", "p50", "p90", "p99", "max"}
        # a purchase committed before its confirm answer arrived has a commit hop of ~0 (recorded as 1 µs)
        assert 0 <= values["p50"] <= values["p90"] <= values["p99"] <= values["max"] and values["max"] > 0
    assert step["readers"]["requests"] >= step["visible"]
    tally = part["integrity"]  # type: ignore[index]
    assert tally["confirmed"] == warm["confirmed"] + step["confirmed"] and step["confirmed"] > 0
    assert tally["lost"] == 0 and tally["duplicated"] == 0 and tally["shownTwice"] == 0 and tally["ok"] is True
    assert tally["purchases"] == tally["confirmed"]
    most = part["maxThroughput"]  # type: ignore[index]
    assert set(most) == {"workers", "seconds", "visible", "perSecond", "errors"}
    assert most["visible"] > 0 and most["seconds"] >= 1
    # "seconds" is rounded to the millisecond, "perSecond" (to 0.01) from the unrounded time: the bound
    # is what half a millisecond of rounding moves visible / seconds by, plus the rate's own rounding
    rounding = most["visible"] * 0.0005 / most["seconds"] ** 2 + 0.005
    assert most["perSecond"] == pytest.approx(most["visible"] / most["seconds"], abs=rounding + 1e-9)


def test_a_short_bench_reports_every_hop_and_loses_nothing(state_dir: Path, tmp_path: Path) -> None:
    """About 12 s of load: 1 s of warm-up, 4 s open loop and 1 s closed loop on the reference, the same on
    the bare pipeline."""
    reports = tmp_path / "reports"
    result = CliRunner().invoke(cli, ["bench", "--state-dir", str(state_dir), "--rate", "5", "--duration", "4",
                                      "--warmup", "1", "--students", "5", "--max-duration", "1", "--report",
                                      "json,markdown", "--report-dir", str(reports), "--no-color"])
    assert result.exit_code == 0, result.output + result.stderr
    doc = json.loads((reports / "bench.json").read_text())
    assert set(doc) == {"format", "target", "startedAt", "options", "hops", "warmup", "steps", "total",
                        "integrity", "maxThroughput", "bare", "comparison"}
    assert doc["target"] == "processes" and len(doc["steps"]) == 1 and len(doc["bare"]["steps"]) == 1
    _system_checks(doc, 20)
    _system_checks(doc["bare"], 20)
    comparison = doc["comparison"]
    assert set(comparison["p99Ratio"]) == HOPS
    for hop in HOPS:
        assert comparison["p99Ratio"][hop] == round(doc["total"]["latencyMs"][hop]["p99"]
                                                    / doc["bare"]["total"]["latencyMs"][hop]["p99"], 2)
    assert comparison["maxThroughputRatio"] == round(doc["maxThroughput"]["perSecond"]
                                                     / doc["bare"]["maxThroughput"]["perSecond"], 2)
    markdown = (reports / "bench.md").read_text()
    assert "| end_to_end" in markdown and "# The bare pipeline" in markdown and "Maximum throughput ratio" in markdown
    assert "integrity: " in result.output and "bare pipeline integrity: " in result.output
    assert "reference / bare pipeline: p99 " in result.output
