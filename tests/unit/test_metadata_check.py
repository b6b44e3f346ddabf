"""The metadata check judges each hop by the spec (W4 merge, F1 display), not by checkout alone: it
passes the reference's correct merge of a null extra key and an event-only key, and fails merges that
let a null override, drop extra keys, or lose a key only the event has."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kcverify.checks import select
from kcverify.core.status import Status
from kcverify.engine.runner import Runner
from kcverify.evidence.results import Failure, ScenarioResult
from kcverify.reference import domain
from kcverify.scenario.loader import load_scenario
from kcverify.spec import names, oracle
from kcverify.targets.embedded import EmbeddedTarget

# Checkout carries an extra key `note: null`; an event about the same payment arrives first with other
# values, `note` set and a key of its own (`promo`). W4: the payment's non-null values win, its null
# `note` does not (the event's value stands), `promo` is kept.
SCENARIO = """\
title: null extra key in the payment, a key only the event has
covers: [W4]
steps:
  - stop: {component: payment-relay}
  - create_payment:
      as: p1
      student: s1
      metadata: {startDate: "2026-02-02", classTime: "18:30", classTypeId: group-small, scheduleType: weekly,
                 sessionCount: 10, timezone: Europe/Berlin, classTypeTitle: Small, note: null}
  - confirm: {payment: p1}
  - publish:
      forged:
        payment: p1
        metadata: {startDate: "2026-03-03", classTime: "16:00", classTypeId: group-small, scheduleType: daily,
                   sessionCount: 30, note: from the event, promo: SPRING}
  - settle: {}
  - read: {student: s1, expect: {shows: [p1]}}
  - restart: {component: payment-relay}
  - settle: {}
"""

Merge = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


def run(tmp_path: Path) -> ScenarioResult:
    path = tmp_path / "null-extra-event-only.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    [result] = Runner(EmbeddedTarget(), checks=select(["metadata"])).run([load_scenario(path)]).scenarios
    return result


def metadata_failures(result: ScenarioResult) -> list[Failure]:
    return [f for f in result.failures if f.check == "metadata"]


def test_the_reference_merge_of_a_null_extra_key_and_an_event_only_key_passes(tmp_path: Path) -> None:
    result = run(tmp_path)
    assert metadata_failures(result) == [] and result.status == Status.PASSED
    [check] = result.checks
    assert "1 purchase(s) traced" in check.summary


def _null_overrides(payment: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    return {**event, **payment}


def _drops_extra_keys(payment: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in oracle.merge(payment, event).items() if k in names.REQUIRED_METADATA}


def _loses_event_only_key(payment: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if v is not None else event.get(k)) for k, v in payment.items()}


@pytest.mark.parametrize(("merge", "field", "expected"), [
    (_null_overrides, "note", "from the event"),
    (_drops_extra_keys, "classTypeTitle", "Small"),
    (_loses_event_only_key, "promo", "SPRING"),
])
def test_a_wrong_merge_fails_at_the_purchase_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, merge: Merge,
                                                 field: str, expected: Any) -> None:
    monkeypatch.setattr(domain, "merge_metadata", merge)
    [failure] = metadata_failures(run(tmp_path))
    assert failure.details["hop"] == "purchase row"
    assert failure.details["field"] == field and failure.details["expected"] == expected
    assert "W4" in failure.rules
    assert failure.evidence is not None and field in failure.evidence.columns
