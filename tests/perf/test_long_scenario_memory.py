"""A long run must not go quadratic again: a 400-step scenario keeps two snapshots whole, and the
memory it allocates stays far below what one full snapshot per step took (1,600 steps held 1.5 GB)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from kcverify.checks import select
from kcverify.core.status import Status
from kcverify.engine import runner
from kcverify.engine.runner import Runner
from kcverify.evidence.evidence import Evidence
from kcverify.scenario.loader import load_scenario
from kcverify.targets.embedded import EmbeddedTarget
from tests.perf.bench_long_scenarios import scenario_text

STEPS = 400
PEAK_MB = 60  # one full snapshot kept per step passed this by 400 steps (68 MB at 200 steps in RSS)


class _Kept(Evidence):
    """The runner's evidence, remembered so the test can look at what it kept."""

    instances: list[Evidence] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _Kept.instances.append(self)


def test_a_400_step_scenario_keeps_memory_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "long.yaml"
    path.write_text(scenario_text(STEPS))
    scenario = load_scenario(path)
    monkeypatch.setattr(runner, "Evidence", _Kept)
    tracemalloc.start()
    try:
        result = Runner(EmbeddedTarget(), checks=select()).run([scenario])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.scenarios[0].status == Status.PASSED, result.scenarios[0].reason
    [evidence] = _Kept.instances
    assert len(evidence.snapshots) == 2 and len(evidence.history) == STEPS + 1
    assert peak / 2**20 < PEAK_MB, f"peak {peak / 2**20:.0f} MB"
