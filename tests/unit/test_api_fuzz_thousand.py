"""The contract fuzz of test_api_fuzz.py at depth: at least THOUSAND generated cases per operation and
pass (positive and negative), against both ASGI apps in-process, with 0 mismatches between contract and
service. The same checks, credentials, id rotation and format generators as test_api_fuzz.py (imported
from it); its own embedded system and its own counts. A file of its own because it takes minutes
(docs/measurements.md): test_api_fuzz.py is the quick pass of the edit loop, this one the depth the
suite promises.

Settings are kept tight for a reproducible CI run: derandomized generation (schemathesis `deterministic`
and Hypothesis `derandomize`), no deadline, no example database.

The contract's own formats: `metadata.timezone` is `format: iana-timezone`; test_api_fuzz.py registers a
generator for it (IANA zone names), so generated bodies are valid for the service. When the contract
states the zones as an enum instead, the generator becomes unused and can go."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings

from tests.unit.test_api_fuzz import (
    FUZZ_SETTINGS,
    NO_INPUT,
    Harness,
    SigningClient,
    _assert_problem,
    _load,
    _must_reject,
    _prepare_payment,
    _prepare_student,
)

# ~4.5 minutes of CPU: a measurement (`make deep`), not part of the test command.
pytestmark = pytest.mark.deep

THOUSAND = 1000
DEEP_SETTINGS = settings(FUZZ_SETTINGS, max_examples=THOUSAND)

HARNESS = Harness()
PAYMENT_POSITIVE = _load("payment-service", "positive", HARNESS.payment_app, THOUSAND)
PAYMENT_NEGATIVE = _load("payment-service", "negative", HARNESS.payment_app, THOUSAND).exclude(path="/health")
STUDENT_POSITIVE = _load("student-service", "positive", HARNESS.student_app, THOUSAND)
STUDENT_NEGATIVE = _load("student-service", "negative", HARNESS.student_app, THOUSAND).exclude(path="/health")

CASES: Counter[tuple[str, str]] = Counter()  # (mode, operation) -> cases sent
MISMATCHES: Counter[tuple[str, str]] = Counter()  # (mode, operation) -> cases that failed a check
RAN: set[tuple[str, str]] = set()


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    yield HARNESS
    HARNESS.close()


def _run(case: Any, client: SigningClient, service: str, mode: str) -> None:
    RAN.add((service, mode))
    turn = CASES[(mode, case.operation.label)]
    CASES[(mode, case.operation.label)] += 1
    if service == "payment-service":
        _prepare_payment(case, turn, HARNESS)
    else:
        _prepare_student(case, turn, HARNESS)
    try:
        response = case.call_and_validate(session=client)
        assert response.status_code < 500, response.text
        if _must_reject(case):
            assert 400 <= response.status_code < 500, (response.status_code, response.text)
        _assert_problem(response.status_code, response.headers.get("content-type", [""])[0], response.content)
    except BaseException:
        MISMATCHES[(mode, case.operation.label)] += 1
        raise


@PAYMENT_POSITIVE.parametrize()
@DEEP_SETTINGS
def test_payment_service_positive_deep(case: Any, harness: Harness) -> None:
    _run(case, harness.payments, "payment-service", "positive")


@PAYMENT_NEGATIVE.parametrize()
@DEEP_SETTINGS
def test_payment_service_negative_deep(case: Any, harness: Harness) -> None:
    _run(case, harness.payments, "payment-service", "negative")


@STUDENT_POSITIVE.parametrize()
@DEEP_SETTINGS
def test_student_service_positive_deep(case: Any, harness: Harness) -> None:
    _run(case, harness.students, "student-service", "positive")


@STUDENT_NEGATIVE.parametrize()
@DEEP_SETTINGS
def test_student_service_negative_deep(case: Any, harness: Harness) -> None:
    _run(case, harness.students, "student-service", "negative")


def test_every_operation_got_a_thousand_cases_and_no_mismatch() -> None:
    """Judges the passes that ran before it (all four in a whole-file run); with none, it fails."""
    assert RAN, "no fuzz pass ran before this test: run the whole file"
    services = {"payment-service": PAYMENT_POSITIVE, "student-service": STUDENT_POSITIVE}
    counts: dict[str, int] = {}
    for (service, mode) in sorted(RAN):
        for result in services[service].get_all_operations():
            label = result.ok().label
            if label not in NO_INPUT:
                counts[f"{mode} {label}"] = CASES[(mode, label)]
    print("\ncases per operation and pass: " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    assert all(n >= THOUSAND for n in counts.values()), counts
    assert not MISMATCHES, MISMATCHES
