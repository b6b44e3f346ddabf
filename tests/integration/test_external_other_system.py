"""The external target on a system that is not the reference: tests/othersystem (its own /v2 paths, wrapped
answers, signature recipe, JWT claims, tables without a payment id, Kafka envelope without the canonical
envelope's correlationId, idempotencyKey, occurredAt or headers), described by
profiles/examples/production-shaped.yaml, on real PostgreSQL, Kafka and Redis.

Sized for CI (a few minutes with its own stack): of the catalogue, the profile's capabilities decide exactly
which scenarios could run and which are skipped (asserted from the scenarios' needs, without running them);
a chosen few of the runnable ones run without flaws and must pass: baseline ones and those that show a
flaw, plus two scenarios of tests/othersystem/scenarios/ that show the Kafka-side flaws with Kafka reading
and producing alone (the system is one process: no component control). Then each flaw of the system is
switched on in turn and the check that exists for it must fail on the scenario that shows it.

Runs on the session's shared stack (tests/integration/conftest.py)."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from kcverify import stack
from kcverify.checks import select
from kcverify.core.status import Status
from kcverify.engine.runner import Runner, RunOptions
from kcverify.evidence.results import RunResult
from kcverify.scenario.loader import load_scenarios
from kcverify.targets.external import ExternalTarget
from kcverify.targets.external.profile import load_profile
from tests.e2e.test_serve import kcverify_command
from tests.othersystem import FLAWS, OtherSystem, start_system
from tests.othersystem.common import FOUND_BY_FUZZ

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
OWN_SCENARIOS = ROOT / "tests" / "othersystem" / "scenarios"
PROFILE = ROOT / "profiles" / "examples" / "production-shaped.yaml"
# Of the catalogue, exactly these can run through this profile (HTTP, databases, Kafka read and produce);
# every other scenario needs component control, fault injection, crash points or the clock.
RUNNABLE = {"happy-path", "unsigned-confirm", "payment-validation", "illegal-transitions", "other-students-view",
            "cancelled-stays-cancelled", "student-ids-case-sensitive", "admin-invalidates-mixed-case-id",
            "payment-validation-calendar", "learning-needs-a-valid-token", "many-courses-all-shown",
            "payment-validation-edges", "signature-checked-first", "poison-on-two-partitions",
            "manual-invalidation", "repurchase-same-course", "frontend-fallbacks", "forged-event-unpaid",
            "gateway-retries-confirm", "poison-then-valid", "signature-bound", "malformed-input",
            "metadata-kept-verbatim", "failed-and-cancelled-are-final", "refund-needs-a-valid-signature",
            "two-checkouts-one-course", "poison-letter-replayed"}
# What runs here without flaws: baseline ones, the dead-letter ones, and every scenario of CAUGHT_BY.
CHOSEN = {"happy-path", "unsigned-confirm", "payment-validation", "other-students-view", "repurchase-same-course",
          "signature-bound", "forged-event-unpaid", "poison-then-valid", "forged-before-paid",
          "redelivered-confirmation", "learning-needs-a-valid-token", "payment-validation-edges",
          "signature-checked-first", "refund-needs-a-valid-signature", "failed-and-cancelled-are-final"}
# flaw -> (the scenario that shows it, the check that must catch it, a rule it must cite)
CAUGHT_BY = {
    "unsigned-callback": ("unsigned-confirm", "authority", "P2"),
    "store-before-validate": ("payment-validation", "stored", "P1"),
    "stale-cache": ("happy-path", "freshness", "S3"),
    "stringified-session-count": ("happy-path", "contract", "I4"),
    "view-ignores-owner": ("other-students-view", "authority", "S1"),
    "dedupe-by-course": ("repurchase-same-course", "invariants", "I1"),
    "no-timestamp-tolerance": ("signature-bound", "authority", "P2"),
    "event-wins": ("forged-before-paid", "metadata", "W4"),
    "no-idempotency-guard": ("redelivered-confirmation", "idempotency", "W6"),
    "key-by-payment": ("happy-path", "records", "I4"),  # ordering W1 too, when its partitions differ
    "cache-forever": ("happy-path", "freshness", "S2"),
}
# What the checks must say they could not see on this system (it carries no such fields or headers).
NOT_CARRIED = ("purchase-confirmed: correlationId, idempotencyKey, occurredAt, source, version not carried",
               "purchase-confirmed: header(s) correlationId, eventId, idempotencyKey, type not carried",
               "purchase-confirmed: idempotencyKey not carried")


@pytest.fixture(scope="module")
def settings(stack_dir: Path) -> dict[str, object]:
    """The session's shared stack (tests/integration/conftest.py)."""
    return stack.load_settings(stack_dir)


def run(settings: dict[str, object], flaws: frozenset[str], names: set[str] | None = None,
        profile: Path = PROFILE, check_profile: bool = False) -> RunResult:
    """The scenarios (all, or `names`) through the external target against the system with `flaws`; first
    `kcverify profile check` when asked (it must accept the profile for the running system)."""
    secret_jwt, secret_hook = secrets.token_hex(32), secrets.token_hex(32)
    system: OtherSystem = start_system(settings, webhook_secret=secret_hook, jwt_secret=secret_jwt, flaws=flaws)
    env = {"OTHERSYS_PAYMENT_URL": system.payment_url, "OTHERSYS_STUDENT_URL": system.student_url,
           "OTHERSYS_DSN": system.dsn, "OTHERSYS_JWT_SECRET": secret_jwt, "OTHERSYS_WEBHOOK_SECRET": secret_hook,
           "OTHERSYS_KAFKA_BOOTSTRAP": str(settings["kafka_bootstrap"]),
           "OTHERSYS_REDIS_URL": str(settings["redis_url"])}
    try:
        if check_profile:
            checked = subprocess.run([kcverify_command(), "profile", "check", str(profile), "--no-color"],
                                     env={**os.environ, **env}, capture_output=True, text=True, timeout=120, cwd=ROOT)
            assert checked.returncode == 0 and "query purchases" in checked.stdout, checked.stdout + checked.stderr
        scenarios = load_scenarios([SCENARIOS, OWN_SCENARIOS])
        if names is not None:
            scenarios = [s for s in scenarios if s.name in names]
        target = ExternalTarget(load_profile(profile, environ=env))
        try:
            options = RunOptions(target_name="external", conventions=target.conventions)  # the profile's, as the CLI
            return Runner(target, options=options, checks=select()).run(scenarios)
        finally:
            target.close()
    finally:
        system.stop()


def describe(run_result: RunResult) -> str:
    return "\n".join(f"{r.name}: {r.status.value} {r.reason}".strip() + "".join(
        f"\n    {f.check} {','.join(f.rules)} step {f.step}: {f.message}" for f in r.failures)
        for r in run_result.scenarios)


def test_the_other_system_passes_and_each_flaw_is_caught(settings: dict[str, object], tmp_path: Path) -> None:
    started = time.monotonic()
    capabilities = load_profile(PROFILE, environ={k: "x" for k in (
        "OTHERSYS_DSN", "OTHERSYS_JWT_SECRET", "OTHERSYS_WEBHOOK_SECRET")}).capabilities
    catalogue = load_scenarios([SCENARIOS])
    runnable = {s.name for s in catalogue if s.capabilities_needed() <= capabilities}
    assert runnable == RUNNABLE, (sorted(runnable - RUNNABLE), sorted(RUNNABLE - runnable))
    for scenario in catalogue:  # the rest is skipped for a capability this profile does not give
        assert scenario.name in runnable or scenario.capabilities_needed() - capabilities, scenario.name
    own = {s.name for s in load_scenarios([OWN_SCENARIOS])}
    assert {scenario for scenario, _, _ in CAUGHT_BY.values()} <= CHOSEN <= RUNNABLE | own

    correct = run(settings, frozenset(), CHOSEN, check_profile=True)
    results = {r.name: r for r in correct.scenarios}
    print(f"\nno flaws: {len(results)} scenarios in {correct.duration:.1f} s: " + ", ".join(
        f"{r.name} {r.duration:.1f} s" for r in correct.scenarios))
    assert set(results) == CHOSEN, sorted(CHOSEN ^ set(results))
    assert all(r.status == Status.PASSED for r in results.values()), describe(correct)
    notes = " | ".join(c.summary for r in correct.scenarios for c in r.checks)
    for note in NOT_CARRIED:  # what the system lacks is said, not failed
        assert note in notes, (note, notes)

    assert set(CAUGHT_BY) == set(FLAWS) - FOUND_BY_FUZZ  # those are found by kcverify fuzz (test_fuzz_other_system)
    measured: list[str] = []
    for flaw, (scenario, check, rule) in CAUGHT_BY.items():
        flawed = run(settings, frozenset({flaw}), {scenario})
        (result,) = flawed.scenarios
        caught = [f for f in result.failures if f.from_check and f.check == check and rule in f.rules]
        assert result.status == Status.FAILED and caught, f"{flaw} not caught by {check}:\n{describe(flawed)}"
        measured.append(f"{flaw}: {scenario} failed, {check} {rule} ({len(caught)} failure(s); checks failing: "
                        f"{sorted({f.check for f in result.failures})}; {flawed.duration:.1f} s)")
    print("\n".join(measured))

    # The system sells only to registered students and published courses: the profile's preconditions make
    # those rows; without them the same scenario is refused at its first payment.
    bare = tmp_path / "no-preconditions.yaml"
    bare.write_text(re.sub(r"(?ms)^preconditions:.*?(?=^kafka:)", "", PROFILE.read_text()))
    refused = run(settings, frozenset(), {"happy-path"}, profile=bare)
    (result,) = refused.scenarios
    assert result.status == Status.ERROR, describe(refused)  # its first payment was never created
    assert any(f.step == 2 and "got 422" in f.message and "student.id" in f.message
               for f in result.failures), describe(refused)
    print(f"whole test: {time.monotonic() - started:.1f} s")
