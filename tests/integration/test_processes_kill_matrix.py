"""`kcverify defects --target processes` on a named subset: at least one defect per registered check, each replayed
through the scenarios that describe the behaviour it breaks, against the reference running as
separate processes on real PostgreSQL, Kafka and Redis. Every defect must be killed, and together
they must make every check fail at least once: the checks are blind to nothing on the real stack.
(The whole catalogue over every scenario takes most of an hour on the stack; it is run by hand, see
docs/defects.md.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kcverify.checks import REGISTRY
from kcverify.killmatrix.engine import resolve, run_mutants
from kcverify.scenario.loader import load_scenarios
from kcverify.targets import registry
from kcverify.targets.processes import ProcessesTarget
from kcverify.targets.registry import TargetOptions

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2700)]

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

# defect -> (the check it is here to show failing on the real stack, the scenario that shows it)
SUBSET: dict[str, tuple[str, str]] = {
    "event-wins-merge": ("metadata", "payment-metadata-wins"),
    "no-idempotency-guard": ("idempotency", "triple-delivery"),
    # both scenarios wait past the 1 s freshness bound before their last read, so on real time the check
    # judges it (a read straight after a settle may come within the bound, which the check allows)
    "invalidate-at-confirm-only": ("freshness", "read-between-confirm-and-purchase"),
    "stale-set-race": ("freshness", "stale-set-race"),
    "no-retries": ("delivery", "transient-then-success"),
    "string-session-count": ("contract", "happy-path"),
    "no-reconciler": ("invariants", "reconciler-heals"),
    "unsigned-confirm": ("authority", "unsigned-confirm"),
    # what the API answered against what was stored
    "create-validates-metadata-after-insert": ("stored", "payment-validation"),
    "confirm-records-provider-id-unverified": ("stored", "unsigned-confirm"),
    # outcomes anyone can see, not the worker's word
    "commit-despite-dead-letter-failure": ("delivery", "dead-letter-broker-down"),
    "dead-letter-from-parsed-event": ("delivery", "poison-then-valid"),
    # keyed by paymentId the records leave the scenario's namespace (keyed by student): they are never
    # seen published, which is what the delivery check reports here (the records check, on embedded)
    "confirmed-keyed-by-payment": ("delivery", "happy-path"),
    # keys, headers and records per payment
    "relay-fresh-event-id": ("records", "relay-crash-after-publish"),
    "confirm-retry-enqueues-again": ("records", "gateway-retries-confirm"),
    # metadata judged hop by hop: the W4 merge with an event that disagrees, and documents the standard
    # checkout metadata never had (unicode outside the BMP, tiers other than 10/20/30)
    "merge-null-overrides-event": ("metadata", "event-fills-payment-gaps"),
    "merge-drops-event-only-keys": ("metadata", "event-fills-payment-gaps"),
    "metadata-bmp-only": ("metadata", "happy-path"),
    "tier-from-package-table": ("metadata", "happy-path"),
    # a student's events in order, with two worker processes in the group; a worker deployed with a
    # retry policy other than the spec's
    "relay-newest-first": ("ordering", "per-student-order"),
    "retry-at-topic-end": ("ordering", "per-student-order"),
    "worker-two-attempts": ("delivery", "persistent-failure-dlq-replay"),
}


@pytest.fixture(scope="module")
def state_dir(stack_dir: Path) -> Path:
    """The session's shared stack (tests/integration/conftest.py)."""
    return stack_dir


def test_a_subset_of_defects_covering_every_check_is_killed_on_the_stack(state_dir: Path) -> None:
    """Each defect replays only the scenario that describes what it breaks (grouped by scenario, one
    baseline per scenario), so the subset costs one run per defect, not defects x scenarios."""
    assert {check for check, _ in SUBSET.values()} == set(REGISTRY), \
        "the subset must show every registered check failing"
    by_scenario: dict[str, list[str]] = {}
    for defect, (_, scenario) in SUBSET.items():
        by_scenario.setdefault(scenario, []).append(defect)
    started = time.monotonic()
    mutants = []
    for scenario, defects in by_scenario.items():
        scenarios = load_scenarios([SCENARIOS / f"{scenario}.yaml"])
        chosen = resolve(defects, registry.lookup("processes").defect_catalogue)
        result = run_mutants(scenarios, ProcessesTarget.from_options, chosen, jobs=1,
                             options=TargetOptions(settings={"state_dir": state_dir}))
        mutants.extend(result.mutants)
    print(f"\ndefects on the stack: {len(SUBSET)} defects over {len(by_scenario)} scenarios in "
          f"{time.monotonic() - started:.0f} s")
    survivors = [(m.name, m.outcome.value, [e.reason for e in m.errors]) for m in mutants if not m.killed]
    assert survivors == []
    for mutant in mutants:
        checks = {catch.check for catch in mutant.caught_by}
        assert SUBSET[mutant.name][0] in checks, (mutant.name, sorted(checks))
