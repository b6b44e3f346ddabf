"""What the Runner does with what happens to a target outside the scenario's steps: an incident (a
component process that died and was restarted) ends that scenario as ERROR naming it and the step when it
was killed from outside, as FAILED with a failure of that step when it ended by itself, and the run goes
on; TargetUnreachable (the infrastructure gone) stops the whole run, saying where. The processes target's
side of both runs on the real stack in tests/integration/test_processes_death.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from kcverify.checks import select
from kcverify.core.errors import TargetUnreachable
from kcverify.core.status import Status
from kcverify.engine.runner import Runner
from kcverify.evidence.results import COMPONENT_DIED
from kcverify.scenario.loader import load_scenarios
from kcverify.scenario.model import Scenario
from kcverify.targets.base import Incident
from kcverify.targets.embedded import EmbeddedTarget

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


class _Watched(EmbeddedTarget):
    """The embedded target with the optional watch: an incident reported after step `after` of the
    first scenario; TargetUnreachable from `start` of scenario `gone_at`."""

    def __init__(self, after: int | None = None, gone_at: int | None = None, own: bool = False,
                 both: bool = False) -> None:
        super().__init__()
        self.after, self.gone_at, self.own, self.both = after, gone_at, own, both
        self.scenario = self.steps = 0
        self.closed = False

    def start(self, *, seed: int) -> None:
        self.scenario += 1
        self.steps = 0
        if self.scenario == self.gone_at:
            raise TargetUnreachable("the Kafka broker at 127.0.0.1:9 is gone; run `kcverify stack up`")
        super().start(seed=seed)

    def incidents(self) -> list[Incident]:
        self.steps += 1
        if self.scenario == 1 and self.steps == self.after:
            mine = Incident("the purchase-worker process exited with status 1", "restarted", own=True)
            if self.both:
                return [mine, Incident("the payment-service process exited (signal 9)", "restarted")]
            if self.own:
                return [mine]
            return [Incident("the purchase-worker process exited (signal 9)", "restarted")]
        return []

    def close(self) -> None:
        self.closed = True


def _two() -> list[Scenario]:
    return load_scenarios([SCENARIOS / "happy-path.yaml", SCENARIOS / "transient-then-success.yaml"])


def test_an_incident_makes_that_scenario_an_error_at_its_step_and_the_next_runs() -> None:
    target = _Watched(after=2)
    run = Runner(target, checks=select()).run(_two())
    first, second = run.scenarios
    assert first.status == Status.ERROR
    assert first.reason == "the purchase-worker process exited (signal 9) during step 2; restarted"
    assert [s.status for s in first.steps] == [Status.PASSED, Status.ERROR]  # stopped at the step
    assert first.steps[-1].reason == first.reason
    assert second.status == Status.PASSED, second.reason


def test_a_component_that_ended_by_itself_fails_that_step_and_the_next_scenario_runs() -> None:
    target = _Watched(after=2, own=True)
    run = Runner(target, checks=select()).run(_two())
    first, second = run.scenarios
    assert first.status == Status.FAILED, first.reason
    assert [s.status for s in first.steps] == [Status.PASSED, Status.FAILED]  # stopped at the step
    (failure,) = [f for f in first.steps[-1].failures if f.check == COMPONENT_DIED]
    assert failure.step == 2 and failure.source == "step" and failure.rules == ("I3",)
    assert failure.message.startswith("the purchase-worker process exited with status 1 during step 2; restarted")
    assert second.status == Status.PASSED, second.reason


def test_a_component_that_ended_by_itself_in_the_final_settle_fails_the_scenario() -> None:
    steps = len(_two()[0].steps)
    target = _Watched(after=steps + 1, own=True)  # the Runner asks once more after the final settle
    first, _ = Runner(target, checks=select()).run(_two()).scenarios
    assert first.status == Status.FAILED, first.reason
    failures = [f for s in first.steps for f in s.failures if f.check == COMPONENT_DIED]
    assert [f.step for f in failures] == [steps + 1], failures
    assert "during the final settle and reads" in failures[0].message


def test_an_own_death_seen_with_a_kill_from_outside_is_told_in_the_error() -> None:
    first, second = Runner(_Watched(after=2, both=True), checks=select()).run(_two()).scenarios
    assert first.status == Status.ERROR
    assert first.reason == ("the purchase-worker process exited with status 1 during step 2; restarted; "
                            "the payment-service process exited (signal 9) during step 2; restarted")
    assert second.status == Status.PASSED, second.reason


@pytest.mark.parametrize(("status", "own"), [(1, True), (137, True), (-11, True), (-6, True), (0, False),
                                             (-9, False), (-15, False), (-2, False)])
def test_a_process_ended_by_itself_is_told_from_one_stopped_or_killed_from_outside(status: int, own: bool) -> None:
    from kcverify.targets.processes import died_by_itself

    assert died_by_itself(status) is own


def test_without_incidents_the_same_run_passes() -> None:
    run = Runner(_Watched(), checks=select()).run(_two())
    assert [s.status for s in run.scenarios] == [Status.PASSED, Status.PASSED]


def test_an_unreachable_target_stops_the_run_saying_where() -> None:
    target = _Watched(gone_at=2)
    with pytest.raises(TargetUnreachable) as caught:
        Runner(target, checks=select()).run(_two())
    message = str(caught.value)
    assert message.startswith("the Kafka broker at 127.0.0.1:9 is gone; run `kcverify stack up`"), message
    assert "the run stopped early, in scenario 2 of 2: transient-then-success" in message, message
    assert target.closed  # the target's processes are stopped all the same
