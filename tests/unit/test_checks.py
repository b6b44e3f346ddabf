"""Every check is shown to fail: the reference with a named defect switched on, replayed through the
scenario that describes the behaviour the check guards, must produce a failure of that check citing
the rule the defect breaks. And the reference without defects passes every scenario (no false alarm)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kcverify.checks import REGISTRY, select
from kcverify.checks.base import same
from kcverify.core.status import Status
from kcverify.engine.runner import Runner, RunOptions
from kcverify.evidence.results import ScenarioResult
from kcverify.scenario.loader import load_scenario, load_scenarios
from kcverify.targets.embedded import EmbeddedTarget
from kcverify.targets.registry import TargetOptions

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def run(scenario: str, *defects: str) -> ScenarioResult:
    built = TargetOptions(defects=frozenset(defects))  # as `kcverify run --defect` builds it
    runner = Runner(EmbeddedTarget.from_options(built), options=RunOptions(extra_reproduce=built.reproduce_args()),
                    checks=select())
    [result] = runner.run([load_scenario(SCENARIOS / f"{scenario}.yaml")]).scenarios
    return result


def test_the_reference_without_defects_passes_every_scenario() -> None:
    result = Runner(EmbeddedTarget(), checks=select()).run(load_scenarios([SCENARIOS]))
    failed = {s.name: [f.message for f in s.failures] for s in result.scenarios if s.status != Status.PASSED}
    assert failed == {}
    assert len(result.scenarios) >= 20


# (check, defect, scenario, a rule the failure must cite)
CAUGHT = [
    ("metadata", "event-wins-merge", "payment-metadata-wins", "W4"),
    ("metadata", "fallback-drops-fields", "fallback-payments-db-down", "W5"),
    ("metadata", "created-event-unmerged-metadata", "payment-metadata-wins", "W4"),
    ("metadata", "default-tier-30", "fallback-incomplete-event", "W5"),
    ("idempotency", "no-idempotency-guard", "triple-delivery", "W6"),
    ("idempotency", "no-idempotency-guard", "worker-crash-after-commit", "W6"),
    ("freshness", "invalidate-at-confirm-only", "read-between-confirm-and-purchase", "S3"),
    ("freshness", "stale-set-race", "stale-set-race", "S3"),
    ("freshness", "errors-cached", "errors-not-cached", "S3"),
    ("delivery", "no-retries", "transient-then-success", "W7"),
    ("delivery", "commit-offset-before-handling", "worker-crash-before-handling", "I3"),
    ("delivery", "latest-offset-reset", "poison-then-valid", "W1"),
    ("records", "latest-offset-reset", "happy-path", "P3"),
    ("delivery", "dual-write", "broker-down-at-confirm", "P3"),
    ("delivery", "poison-blocks-partition", "poison-then-valid", "W2"),
    ("contract", "string-session-count", "happy-path", "I4"),
    ("invariants", "no-reconciler", "reconciler-heals", "I1"),
    ("invariants", "unique-per-student-course", "repurchase-same-course", "I1"),
    ("invariants", "marker-outside-transaction", "transient-then-success", "I1"),
    ("invariants", "poison-blocks-partition", "poison-then-valid", "I3"),
    ("authority", "unsigned-confirm", "unsigned-confirm", "P2"),
    ("authority", "confirm-mutates-course", "unsigned-confirm", "P2"),
    ("authority", "confirm-ignores-unknown-fields", "malformed-input", "P2"),
    ("contract", "malformed-student-id-html-500", "malformed-input", "I4"),
    ("authority", "learning-view-ignores-authz", "other-students-view", "S1"),
    ("authority", "signature-not-bound", "signature-bound", "P2"),
    ("step expectation", "signature-not-bound", "signature-bound", "P2"),
    ("step expectation", "signature-not-bound", "signature-replay", "P2"),
    ("step expectation", "unsigned-confirm", "unsigned-confirm", "P2"),
    ("step expectation", "confirm-mutates-course", "unsigned-confirm", "P2"),
    ("step expectation", "learning-view-ignores-authz", "other-students-view", "S1"),
    ("stored", "create-validates-metadata-after-insert", "payment-validation", "P1"),
    ("stored", "confirm-records-provider-id-unverified", "unsigned-confirm", "P2"),
    ("stored", "confirm-mutates-course", "unsigned-confirm", "P2"),
    ("delivery", "commit-despite-dead-letter-failure", "dead-letter-broker-down", "W1"),
    ("delivery", "dead-letter-from-parsed-event", "poison-then-valid", "W8"),
    ("records", "confirmed-keyed-by-payment", "happy-path", "I4"),
    ("records", "relay-fresh-event-id", "relay-crash-after-publish", "P3"),
    ("records", "confirm-retry-enqueues-again", "gateway-retries-confirm", "P4"),
    ("metadata", "merge-null-overrides-event", "event-fills-payment-gaps", "W4"),
    ("metadata", "frontend-schedule-first", "frontend-fallbacks", "F1"),
    ("freshness", "cache-status-always-stored", "cache-fails-at-read", "S2"),
    ("delivery", "letter-first-failed-at-last-try", "persistent-failure-dlq-replay", "W7"),
    ("stored", "decision-sets-confirmed-at", "failed-and-cancelled-are-final", "P2"),
    ("records", "failed-payment-announced", "failed-and-cancelled-are-final", "P3"),
    ("freshness", "purchase-time-local-as-utc", "happy-path", "S1"),
    ("invariants", "reconciler-republishes-once", "reconciler-tries-again", "I1"),
    ("metadata", "merge-drops-event-only-keys", "event-fills-payment-gaps", "W4"),
    ("metadata", "metadata-bmp-only", "happy-path", "P3"),
    ("stored", "metadata-bmp-only", "happy-path", "P1"),
    ("metadata", "tier-from-package-table", "happy-path", "W4"),
    ("ordering", "relay-newest-first", "per-student-order", "P3"),
    ("ordering", "retry-at-topic-end", "per-student-order", "W1"),
    ("delivery", "worker-two-attempts", "persistent-failure-dlq-replay", "W7"),
    ("delivery", "retry-backoff-subsecond", "transient-then-success", "W7"),
    ("freshness", "cache-ttl-in-milliseconds", "happy-path", "S2"),
    ("invariants", "worker-ignores-event-student", "forged-event-mismatch", "W3"),
    ("invariants", "purchase-course-from-event", "forged-event-mismatch", "W3"),
    ("stored", "cancelled-payment-can-succeed", "cancelled-stays-cancelled", "P4"),
    ("ordering", "relay-skips-refused-row", "relay-refused-mid-batch", "P3"),
    ("metadata", "merge-drops-falsy-payment-values", "merge-falsy-payment-values", "W4"),
    ("freshness", "invalidator-gives-up-on-cache-error", "invalidation-retried-cache-down", "S3"),
    ("authority", "authz-ignores-case", "student-ids-case-sensitive", "S1"),
    ("authority", "learning-view-anonymous-allowed", "learning-needs-a-valid-token", "S1"),
    ("authority", "token-signature-unverified", "learning-needs-a-valid-token", "S1"),
    ("authority", "token-expiry-ignored", "learning-needs-a-valid-token", "S1"),
    ("authority", "view-query-ignores-case", "mixed-case-students", "S1"),
    ("contract", "validation-reports-first-error-only", "payment-validation-edges", "P1"),
    ("records", "reconciler-grace-from-created", "reconciler-grace-from-confirmation", "I1"),
    ("freshness", "hit-age-always-zero", "ttl-expiry", "S2"),
    ("delivery", "relay-marks-whole-batch", "relay-refused-after-first", "P3"),
    ("records", "event-amount-in-major-units", "happy-path", "P3"),
    ("idempotency", "event-id-per-student", "many-courses-all-shown", "W6"),
    ("stored", "refund-overwrites-confirmed-at", "illegal-transitions", "P2"),
    ("metadata", "view-created-at-is-read-time", "many-courses-all-shown", "S1"),
    ("step expectation", "confirm-invalidates-payment-key", "confirm-invalidates-at-once", "P5"),
    ("step expectation", "cache-ttl-three-minutes", "ttl-expiry", "S2"),
    ("contract", "confirm-assumes-payment-exists", "malformed-input", "I4"),
    ("records", "created-correlated-by-purchase", "happy-path", "I4"),
    ("records", "reconciler-grace-five-seconds", "reconciler-waits-for-grace", "I1"),
    ("contract", "create-skips-date-format", "payment-validation-calendar", "P1"),
    ("contract", "create-accepts-zero-amount", "payment-validation-calendar", "P1"),
    ("metadata", "fallback-source-not-marked", "fallback-marks-event-source", "W5"),
    ("invariants", "fallback-at-first-failure", "payments-db-blip-forged-unpaid", "W3"),
    ("step expectation", "fallback-at-first-failure", "payments-db-blip-forged-unpaid", "W7"),
    ("step expectation", "admin-invalidate-lowercases-id", "admin-invalidates-mixed-case-id", "S4"),
    ("step expectation", "admin-invalidate-ignores-cache-down", "admin-invalidate-cache-down", "S4"),
]


@pytest.mark.parametrize(("check", "defect", "scenario", "rule"), CAUGHT,
                         ids=[f"{c}-{d}" for c, d, _, _ in CAUGHT])
def test_check_fails_on_the_defect_it_exists_for(check: str, defect: str, scenario: str, rule: str) -> None:
    assert run(scenario).status == Status.PASSED  # the same scenario passes without the defect
    result = run(scenario, defect)
    assert result.status == Status.FAILED
    mine = [f for f in result.failures if f.check == check]
    assert mine, f"{check} did not fail; failures: {[(f.check, f.message) for f in result.failures]}"
    assert any(rule in f.rules for f in mine), [(f.rules, f.message) for f in mine]


def test_every_registered_check_is_shown_to_fail() -> None:
    assert set(REGISTRY) <= {c for c, *_ in CAUGHT}


def test_metadata_failure_shows_the_hop_by_field_table_with_the_first_bad_hop() -> None:
    result = run("payment-metadata-wins", "event-wins-merge")
    [failure] = [f for f in result.failures if f.check == "metadata"]
    assert failure.details["hop"] == "purchase row"
    assert failure.evidence is not None
    assert failure.evidence.columns[0] == "hop" and "classTime" in failure.evidence.columns
    assert [row[0] for row in failure.evidence.rows][:4] == ["checkout", "payments row", "PURCHASE_CONFIRMED",
                                                             "purchase row"]
    assert failure.evidence.highlight  # the changed cells are marked


def test_a_stale_read_carries_its_timeline_in_step_order_with_the_stale_read_marked() -> None:
    result = run("stale-set-race", "stale-set-race")
    [failure] = [f for f in result.failures if f.check == "freshness"]
    table = failure.evidence
    assert table is not None and table.columns == ("step", "time", "what happened")
    what = [row[2] for row in table.rows]
    order = [next(i for i, w in enumerate(what) if w.startswith(start)) for start in (
        "split read began", "purchase of p1 committed", "PURCHASE_CREATED published", "split read finished",
        "read began")]
    assert order == sorted(order), what  # the race, as it happened
    assert "stored" in what[order[3]] and "without p1" in what[order[3]]
    assert table.highlight == ((order[4], 2),)  # the read the check failed


def test_type_drift_is_a_failure_int_10_vs_string_10() -> None:
    result = run("read-between-confirm-and-purchase", "string-session-count")  # the default metadata: 10
    [failure] = [f for f in result.failures if f.check == "metadata"]
    assert failure.details["field"] == "sessionCount"
    assert '"10"' in failure.message


def test_freshness_reports_measured_windows() -> None:
    result = run("happy-path")
    [freshness] = [c for c in result.checks if c.name == "freshness"]
    assert freshness.metrics["windows_ms"] == {"p1": 0.0}
    assert "staleness windows" in freshness.summary


def test_failures_carry_a_reproduce_command() -> None:
    result = run("stale-set-race", "stale-set-race")
    assert result.reproduce == "kcverify run " + str(SCENARIOS / "stale-set-race.yaml") + \
        " --seed 0 --defect stale-set-race"


@pytest.mark.parametrize(("a", "b", "equal"), [
    (10, 10, True), (10, "10", False), (1, True, False), ({"a": [1]}, {"a": [1]}, True),
    ({"a": 1}, {"a": 1, "b": None}, False), ("16:00", "18:30", False),
])
def test_same_respects_json_types(a: object, b: object, equal: bool) -> None:
    assert same(a, b) is equal


def test_a_forged_token_differs_from_the_issued_one_in_its_signature_only() -> None:
    from kcverify.engine.steps import _tampered
    from kcverify.reference.auth import issue_token

    token = issue_token("secret", "s1", "student", now=0.0)
    forged = _tampered(token)
    assert forged != token and forged.rsplit(".", 1)[0] == token.rsplit(".", 1)[0]
    assert _tampered("static-token") != "static-token"


@pytest.mark.parametrize(("written", "path"), [("metadata.sessionCount", "metadata.sessionCount"),
                                               ("$.metadata.sessionCount", "metadata.sessionCount"),
                                               ("/metadata/sessionCount", "metadata.sessionCount"),
                                               ("#/metadata/sessionCount", "metadata.sessionCount"),
                                               ("items[0].id", "items.0.id"), ("$", "")])
def test_a_422_entry_names_its_field_in_any_of_the_forms_services_write(written: str, path: str) -> None:
    from kcverify.checks.contract import _field_path, _names

    assert _field_path(written) == path
    if path:
        assert _names(path, "", path) and _names("checkout." + path, "", path)  # a reshaped request's own path


def test_a_missing_field_may_be_named_in_its_parents_entry_and_a_wrong_one_is_not_named_by_another() -> None:
    from kcverify.checks.contract import _names

    assert _names("metadata", "'startDate' is a required property", "metadata.startDate")
    assert _names("(body)", "'studentId' is a required property", "studentId")
    assert not _names("metadata", "'classTime' is a required property", "metadata.startDate")
    assert not _names("metadata.classTime", "does not match", "metadata.sessionCount")


def test_a_name_two_offending_fields_share_names_neither() -> None:
    from kcverify.checks.contract import _names

    for field in ("metadata.startDate", "metadata.schedule.startDate"):
        assert _names("startDate", "", field)  # the only startDate that is wrong: its name is enough
        assert not _names("startDate", "", field, ambiguous=True)
        assert _names(field, "", field, ambiguous=True) and _names("checkout." + field, "", field, ambiguous=True)
    assert _names("schedule.startDate", "", "metadata.schedule.startDate", ambiguous=True)
    assert not _names("schedule.startDate", "", "metadata.startDate", ambiguous=True)
