"""A settle is bounded: by `timeout` in simulated seconds on the embedded target (manual clock), and by
rounds in proportion to the work there is, so a stuck flow ends the settle at once, not quiet (I3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kcverify.checks import select
from kcverify.core.status import Status
from kcverify.engine.runner import Runner, RunOptions
from kcverify.reference import bootstrap as reference_bootstrap
from kcverify.reference import domain
from kcverify.reference.bootstrap import ROUND_BUDGET_BASE, ROUNDS_PER_ITEM, bootstrap
from kcverify.reference.settings import Settings
from kcverify.scenario.loader import load_scenario
from kcverify.targets.embedded import EmbeddedTarget

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def _started(*defects: str) -> EmbeddedTarget:
    target = EmbeddedTarget(defects=frozenset(defects))
    target.start(seed=0)
    return target


def test_a_component_that_works_forever_without_the_clock_ends_the_settle_within_its_round_budget() -> None:
    system = bootstrap(Settings())
    system.payment_relay.run_once = lambda: 1  # type: ignore[method-assign]  # "published one" every round
    budget = system._round_budget()
    assert budget == ROUND_BUDGET_BASE  # nothing in the system yet
    result = system.settle()
    assert not result.quiet
    assert result.rounds == budget + 1 and result.advanced == 0.0


def test_the_round_budget_grows_with_the_work_in_the_system() -> None:
    system = bootstrap(Settings())
    before = system._round_budget()
    for n in range(5):
        system.unfaulted[2].publish(domain.TOPIC_CONFIRMED, f"s{n}", b"{}")
    assert system._round_budget() == before + 5 * ROUNDS_PER_ITEM


def test_timeout_bounds_the_simulated_seconds_of_a_stuck_settle() -> None:
    target = _started("poison-blocks-partition")  # the worker retries a poison event every second, forever
    try:
        target.publish(domain.TOPIC_CONFIRMED, "s1", b"{not json")
        start = target.now()
        assert target.settle(1.0) is False
        assert 0.0 < target.now() - start <= 1.0
        start = target.now()
        assert target.settle(5.0) is False
        assert 1.0 < target.now() - start <= 5.0
    finally:
        target.stop()


def _broker_refuses_twice(timeout: float | None) -> tuple[bool, float]:
    """A poison event whose dead letter the broker refuses twice: timed retries, then quiet."""
    target = _started()
    try:
        target.system.faults.fail_next("bus", 2, "publish")
        target.publish(domain.TOPIC_CONFIRMED, "s1", b"{not json")  # the scenario's own publish is unfaulted
        start = target.now()
        quiet = target.settle(timeout)
        return quiet, target.now() - start
    finally:
        target.stop()


def test_a_timeout_long_enough_for_the_work_settles_quiet_and_a_shorter_one_does_not() -> None:
    quiet, needed = _broker_refuses_twice(None)
    assert quiet and needed > 0.0  # the retries took simulated time
    assert _broker_refuses_twice(needed) == (True, needed)
    quiet, reached = _broker_refuses_twice(needed - 0.5)
    assert not quiet and reached <= needed - 0.5


def test_the_regression_scenario_hits_its_bound_and_then_catches_up() -> None:
    result = Runner(EmbeddedTarget(), (), RunOptions(), checks=select()).run_scenario(
        load_scenario(SCENARIOS / "settle-bound-broker-down.yaml"))
    assert result.status == Status.PASSED, [f.message for f in result.failures]


def test_expecting_a_bound_that_is_not_hit_fails_the_step(tmp_path: Path) -> None:
    path = tmp_path / "quiet-after-all.yaml"
    path.write_text("title: t\ncovers: [I3]\nsteps:\n  - create_payment: {as: p1}\n"
                    "  - settle: {timeout: 5, expect: {quiet: false}}\n")
    result = Runner(EmbeddedTarget(), (), RunOptions(), checks=select()).run_scenario(load_scenario(path))
    assert result.status == Status.FAILED
    [failure] = result.failures
    assert failure.check == "step expectation" and failure.step == 2 and "became quiet" in failure.message


def test_a_settle_that_runs_out_of_kcverifys_rounds_says_so_and_is_no_verdict_on_the_system(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker refuses 40 publishes: the correct reference retries on timed backoffs, so it keeps making
    progress; with the cap on rounds made tiny, the settle ends at kcverify's own limit. The scenario errors
    with a message naming the limit and the work, and no check or step blames the system (no I3)."""
    monkeypatch.setattr(reference_bootstrap, "MAX_ROUNDS_BASE", 0)
    monkeypatch.setattr(reference_bootstrap, "ROUND_BUDGET_BASE", 5)
    path = tmp_path / "many-refusals.yaml"
    path.write_text("title: t\ncovers: [I3]\nsteps:\n  - create_payment: {as: p1}\n"
                    "  - fail: {resource: bus, op: publish, times: 40}\n  - confirm: {payment: p1}\n"
                    "  - settle: {}\n")
    result = Runner(EmbeddedTarget(), (), RunOptions(), checks=select()).run_scenario(load_scenario(path))
    assert result.status == Status.ERROR
    assert "kcverify's own settle limit" in result.reason and "not a defect of the system" in result.reason
    cap = 5 + ROUNDS_PER_ITEM * 2  # the payment and its outbox row when the settle started
    assert f"cap of {cap} rounds" in result.reason and "items in the system at the end" in result.reason
    assert "settle: {}" in result.reason  # how to give the work more room
    assert not [f for f in result.failures if "I3" in f.rules]


def test_the_same_settle_with_the_usual_cap_is_quiet_and_passes(tmp_path: Path) -> None:
    path = tmp_path / "many-refusals.yaml"
    path.write_text("title: t\ncovers: [I3]\nsteps:\n  - create_payment: {as: p1}\n"
                    "  - fail: {resource: bus, op: publish, times: 40}\n  - confirm: {payment: p1}\n"
                    "  - settle: {}\n")
    result = Runner(EmbeddedTarget(), (), RunOptions(), checks=select()).run_scenario(load_scenario(path))
    assert result.status == Status.PASSED, result.reason


def test_a_stuck_component_is_still_the_systems_failure_not_kcverifys_limit() -> None:
    target = _started("poison-blocks-partition")  # retries forever: the horizon ends it, judged I3
    try:
        target.publish(domain.TOPIC_CONFIRMED, "s1", b"{not json")
        assert target.settle(None) is False
        assert target.settle_limit() is None
    finally:
        target.stop()
