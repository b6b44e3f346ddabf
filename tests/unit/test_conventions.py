"""Expectations come from the rules, never from the system's configuration: a reference configured
with another retry count, backoff or cache TTL than the rules fix is judged wrong by the scenario
library, although it does exactly what its settings say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kcverify.checks import select
from kcverify.core.status import Status
from kcverify.engine.runner import Runner, RunOptions
from kcverify.evidence.evidence import Evidence
from kcverify.evidence.results import CheckResult
from kcverify.reference.settings import Settings
from kcverify.scenario.loader import load_scenarios
from kcverify.spec import policy
from kcverify.targets.base import TargetInfo
from kcverify.targets.embedded import EmbeddedTarget

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_target_info_carries_no_expectations() -> None:
    fields = set(TargetInfo.__dataclass_fields__)
    assert not fields & {"retry_attempts", "retry_backoff", "cache_ttl"}


def test_checks_judge_by_the_spec_conventions_by_default() -> None:
    evidence = Evidence(EmbeddedTarget().info, None)
    assert evidence.conventions == policy.Conventions()
    assert (evidence.conventions.retry_attempts, evidence.conventions.retry_backoff,
            evidence.conventions.cache_ttl) == (3, (1.0, 2.0), 300.0)


@pytest.mark.parametrize("settings", [
    Settings(retry_attempts=4),
    Settings(retry_backoff=(2.0, 4.0)),
    Settings(cache_ttl=600.0),
], ids=["retry_attempts=4", "backoff=2s,4s", "cache_ttl=600s"])
def test_a_reference_configured_against_the_rules_fails_the_library(settings: Settings) -> None:
    run = Runner(EmbeddedTarget(settings), checks=select()).run(load_scenarios([SCENARIOS]))
    assert run.status == Status.FAILED, "the library passed a system whose configuration breaks W7/S2"


class _Spy:
    """A check-shaped probe (not registered): records the conventions the evidence hands to checks."""

    name, rules, needs = "spy", ("W7",), frozenset[str]()
    seen: list[policy.Conventions] = []

    def __init__(self, evidence: Evidence) -> None:
        _Spy.seen.append(evidence.conventions)

    def after_step(self, step: int) -> None: ...

    def finish(self) -> None: ...

    def result(self) -> CheckResult:
        return CheckResult(self.name, self.rules, Status.PASSED)


def test_declared_conventions_reach_the_checks_through_the_evidence() -> None:
    declared = policy.Conventions(retry_attempts=5, retry_backoff=(0.5,), cache_ttl=60.0)
    scenario = load_scenarios([SCENARIOS / "happy-path.yaml"])
    Runner(EmbeddedTarget(), options=RunOptions(conventions=declared), checks=[_Spy]).run(scenario)
    Runner(EmbeddedTarget(), checks=[_Spy]).run(scenario)
    assert _Spy.seen == [declared, policy.SPEC_CONVENTIONS]


def test_a_system_without_cache_headers_is_judged_by_its_cache_key(tmp_path: Path) -> None:
    """`cache_headers: false` (a profile's word): hit or miss is whether the key was there before the read."""
    from dataclasses import replace

    without = RunOptions(conventions=replace(policy.SPEC_CONVENTIONS, cache_headers=False))
    text = (SCENARIOS / "happy-path.yaml").read_text()
    passed = Runner(EmbeddedTarget(), options=without, checks=select()).run(
        load_scenarios([SCENARIOS / "happy-path.yaml"]))
    assert passed.exit_code == 0, [f.message for s in passed.scenarios for f in s.failures]
    wrong = tmp_path / "wrong-cache.yaml"
    old = "  - read: {student: s1, expect: {purchases: 0, cache: miss}}"
    assert old in text
    wrong.write_text(text.replace(old, old.replace("cache: miss", "cache: hit")))
    failed = Runner(EmbeddedTarget(), options=without, checks=select()).run(load_scenarios([wrong]))
    messages = [f.message for s in failed.scenarios for f in s.failures]
    assert any("the cache key was absent before the read (a miss), expected a hit" in m for m in messages), messages


def test_opaque_ids_are_not_judged_as_uuids_and_everything_else_still_is() -> None:
    """`ids: opaque` (a profile's word): `pay_8f3a...` is a payment id; a wrong status still fails."""
    from dataclasses import replace

    from kcverify.checks.contract import ContractCheck
    from kcverify.evidence.evidence import Exchange
    from kcverify.targets.base import HttpReply

    payment = {"id": "pay_8f3a11c2", "studentId": "s1", "courseId": "c1", "amountCents": 4900, "currency": "EUR",
               "status": "initiated", "metadata": {"startDate": "2026-02-02", "classTime": "18:30",
                                                   "classTypeId": "group-small", "scheduleType": "weekly",
                                                   "sessionCount": 10},
               "createdAt": "2026-01-05T09:00:00.000Z", "confirmedAt": None, "provider": "test",
               "providerPaymentId": None}

    def judged(uuid_ids: bool, answer: dict[str, object]) -> list[str]:
        evidence = Evidence(EmbeddedTarget().info, None,
                            conventions=replace(policy.SPEC_CONVENTIONS, uuid_ids=uuid_ids))
        reply = HttpReply(201, {"content-type": "application/json", "location": "/api/v1/payments/pay_8f3a11c2"},
                          json.dumps(answer).encode())
        evidence.exchanges.append(Exchange(1, "create_payment", "payment-service", "POST", "/api/v1/payments",
                                           b"{}", 0.0, 0.0, reply))
        check = ContractCheck(evidence)
        check.after_step(1)
        return [f.message for f in check.failures]

    assert any("is not a 'uuid'" in m for m in judged(True, payment))
    assert judged(False, payment) == []
    assert any("'paid' is not one of" in m for m in judged(False, {**payment, "status": "paid"}))


def test_a_confirmation_of_an_unknown_payment_may_be_refused_as_malformed_when_ids_are_opaque() -> None:
    """`confirm: {payment: unknown}` defaults to 404; with `ids: opaque` a UUID-shaped id may be a 400."""
    from dataclasses import replace

    from kcverify.engine.steps import Context, _unknown_status

    spec = Context(EmbeddedTarget(), Evidence(EmbeddedTarget().info, None))
    opaque = Context(EmbeddedTarget(), Evidence(EmbeddedTarget().info, None,
                                               conventions=replace(policy.SPEC_CONVENTIONS, uuid_ids=False)))
    assert (_unknown_status(spec), _unknown_status(opaque)) == ((404,), (400, 404))


@pytest.mark.parametrize(("status", "headers", "body", "problem_fails", "json_fails"), [
    (422, {"content-type": "application/json"}, b'{"success": false, "message": "startDate is required"}',
     True, False),
    (422, {"content-type": "application/problem+json"},
     b'{"type": "about:blank", "title": "Unprocessable", "status": 422, "errors": []}', False, False),
    (400, {"content-type": "text/html"}, b"<html><body>Bad Request</body></html>", True, True),
    (400, {"content-type": "application/json"}, b'["not", "an", "object"]', True, True),
    (500, {"content-type": "application/json"}, b'{"success": false, "message": "boom"}', True, True),
], ids=["plain-json-422", "problem-422", "html-400", "json-array-400", "json-500"])
def test_plain_json_errors_are_judged_by_status_and_form_not_by_the_problem_fields(
        status: int, headers: dict[str, str], body: bytes, problem_fails: bool, json_fails: bool) -> None:
    """`errors: json` (a profile's word): `{"success": false, ...}` is an error answer; an HTML page, a body
    that is no JSON object or a status the contract does not document for the route still fails."""
    from dataclasses import replace

    from kcverify.checks.contract import ContractCheck
    from kcverify.evidence.evidence import Exchange
    from kcverify.targets.base import HttpReply

    def fails(problem_errors: bool) -> bool:
        evidence = Evidence(EmbeddedTarget().info, None,
                            conventions=replace(policy.SPEC_CONVENTIONS, problem_errors=problem_errors))
        # a request the contract accepts: refused for the system's own reasons (an unknown course), so the
        # 422's entries are not judged against the request's violations here
        sent = json.dumps({"studentId": "s1", "courseId": "c1", "amountCents": 4900, "currency": "EUR",
                           "metadata": {"startDate": "2026-02-02", "classTime": "18:30", "classTypeId": "g",
                                        "scheduleType": "weekly", "sessionCount": 10}}).encode()
        evidence.exchanges.append(Exchange(1, "create_payment", "payment-service", "POST", "/api/v1/payments",
                                           sent, 0.0, 0.0, HttpReply(status, headers, body)))
        check = ContractCheck(evidence)
        check.after_step(1)
        return bool(check.failures)

    assert (fails(True), fails(False)) == (problem_fails, json_fails)
