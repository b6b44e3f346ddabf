"""The external target on a system that is not the reference: tests/othersystem (its own /v2 paths, wrapped
answers, signature recipe, JWT claims, tables without a payment id, Kafka envelope), described by
profiles/examples/production-shaped.yaml, on real PostgreSQL, Kafka and Redis.

Without flaws, every scenario of the catalogue that the profile's capabilities allow passes and the rest
are skipped naming a capability the target lacks. Then each classic flaw of the system is switched on in
turn and the check that exists for it must fail on the scenario that shows it. A flaw whose scenario needs
a capability the target does not have yet (the Kafka side) is asserted to be reported skipped for that
reason, so this test starts demanding the catch as soon as the capability arrives.

Uses the stack in $KCVERIFY_STATE_DIR when that is set; otherwise brings one up in a temporary directory."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
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

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
PROFILE = ROOT / "profiles" / "examples" / "production-shaped.yaml"
# What HTTP and the databases alone must already verify on this system.
MUST_RUN = {"happy-path", "unsigned-confirm", "payment-validation", "illegal-transitions", "other-students-view",
            "manual-invalidation", "repurchase-same-course", "frontend-fallbacks"}
# flaw -> (the scenario that shows it, the check that must catch it, a rule it must cite)
CAUGHT_BY = {
    "unsigned-callback": ("unsigned-confirm", "authority", "P2"),
    "store-before-validate": ("payment-validation", "stored", "P1"),
    "stale-cache": ("happy-path", "freshness", "S3"),
    "stringified-session-count": ("happy-path", "contract", "I4"),
    "view-ignores-owner": ("other-students-view", "authority", "S1"),
    "dedupe-by-course": ("repurchase-same-course", "invariants", "I1"),
    "no-timestamp-tolerance": ("signature-bound", "authority", "P2"),
    "event-wins": ("payment-metadata-wins", "metadata", "W4"),
    "no-idempotency-guard": ("triple-delivery", "idempotency", "W6"),
}
NEEDS = re.compile(r"needs ([a-z_, ]+) \(target external lacks it\)")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    given = os.environ.get(stack.ENV_STATE_DIR)
    if given:
        yield stack.load_settings(given)
        return
    directory = tmp_path_factory.mktemp("other-system") / "state"
    try:
        stack.up(directory, timeout=180)
        yield stack.load_settings(directory)
    finally:
        stack.down(directory, purge=True)


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
        scenarios = load_scenarios([SCENARIOS])
        if names is not None:
            scenarios = [s for s in scenarios if s.name in names]
        target = ExternalTarget(load_profile(profile, environ=env))
        try:
            return Runner(target, options=RunOptions(target_name="external"), checks=select()).run(scenarios)
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
    correct = run(settings, frozenset(), check_profile=True)
    results = {r.name: r for r in correct.scenarios}
    ran = {name for name, r in results.items() if r.status != Status.SKIPPED}
    capabilities = load_profile(PROFILE, environ={k: "x" for k in (
        "OTHERSYS_DSN", "OTHERSYS_JWT_SECRET", "OTHERSYS_WEBHOOK_SECRET")}).capabilities
    runnable = {s.name for s in load_scenarios([SCENARIOS]) if s.capabilities_needed() <= capabilities}
    print(f"\nno flaws: {len(ran)} of {len(results)} scenarios ran in {correct.duration:.1f} s: {sorted(ran)}")

    assert all(results[name].status == Status.PASSED for name in ran), describe(correct)
    assert ran == runnable, (sorted(runnable - ran), sorted(ran - runnable))  # none silently skipped
    assert ran >= MUST_RUN, sorted(MUST_RUN - ran)
    for name in set(results) - ran:  # skipped only for a capability the target lacks, named
        match = NEEDS.search(" ".join(results[name].reason.split()))
        assert match, (name, results[name].reason)
        assert not {c.strip() for c in match.group(1).split(",")} <= capabilities, (name, results[name].reason)

    assert set(CAUGHT_BY) == set(FLAWS)
    measured: list[str] = []
    for flaw, (scenario, check, rule) in CAUGHT_BY.items():
        if scenario not in ran:  # its scenario needs what the target does not have yet: reported, not passed
            assert results[scenario].status == Status.SKIPPED and "needs" in results[scenario].reason
            measured.append(f"{flaw}: {scenario} skipped ({' '.join(results[scenario].reason.split())})")
            continue
        flawed = run(settings, frozenset({flaw}), {scenario})
        (result,) = flawed.scenarios
        caught = [f for f in result.failures if f.from_check and f.check == check and rule in f.rules]
        assert result.status == Status.FAILED and caught, f"{flaw} not caught by {check}:\n{describe(flawed)}"
        measured.append(f"{flaw}: {scenario} failed, {check} {rule} ({len(caught)} failure(s); checks failing: "
                        f"{sorted({f.check for f in result.failures})})")
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
