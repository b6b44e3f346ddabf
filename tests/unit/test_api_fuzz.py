"""Schemathesis against both services of the embedded reference, through `kcverify fuzz`'s package
(kcverify/fuzz/), from the hand-written contracts in contracts/openapi.

Every generated request must get a documented status, the documented media type and headers, and a
body valid against the contract, never a 5xx; every error is a problem+json whose status matches.
Each operation runs in two passes of at least MAX_EXAMPLES generated cases: positive (schema-valid
input: examples, coverage, fuzzing) and negative (input that breaks the contract: coverage, fuzzing),
where a broken path id, body or credential must be refused with a 4xx. Credentials are real (the
target's tokens and gateway signatures) and path ids are aimed at real payments in every status and a
student with purchases, so 200/204/403/409 are exercised as well as 400/401/404.

Explicit tests at the end feed malformed input by hand (bodies that are not JSON, wrong types, huge
numbers, garbage ids, outages)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from kcverify.contracts import openapi, openapi_path
from kcverify.contracts.openapi import SERVICES
from kcverify.fuzz.judge import problem_verdicts
from kcverify.fuzz.runner import Fuzzer, FuzzOptions, PassResult, ServiceDocument
from kcverify.targets.embedded import EmbeddedTarget
from tests.unit.conftest import METADATA, Flow, make_system

MAX_EXAMPLES = 200


@pytest.fixture(scope="module")
def passes() -> list[PassResult]:
    target = EmbeddedTarget()
    target.start(seed=0)
    try:
        documents = [ServiceDocument(service, openapi_path(service)) for service in SERVICES]
        return Fuzzer(target, documents, FuzzOptions(max_examples=MAX_EXAMPLES)).run()
    finally:
        target.stop()


def test_no_generated_request_breaks_the_contract(passes: list[PassResult]) -> None:
    broken = [(p.mode, p.operation, f.check, f.title, f.curl) for p in passes for f in p.findings]
    assert broken == [], broken
    assert all(not p.error for p in passes), [p.error for p in passes]


def test_every_operation_got_its_cases(passes: list[PassResult]) -> None:
    """At least MAX_EXAMPLES generated cases per operation and pass, and the authorized paths ran."""
    by_pass = {(p.mode, p.operation): p for p in passes}
    expected = {"POST /api/v1/payments", "GET /api/v1/payments/{paymentId}",
                "POST /api/v1/payments/{paymentId}/confirm", "GET /health",
                "GET /api/v1/students/{studentId}/learning", "DELETE /api/v1/students/{studentId}/learning/cache"}
    assert {operation for _, operation in by_pass} == expected
    for (mode, operation), result in by_pass.items():
        if operation != "GET /health":  # no input at all: one request to make, nothing to negate
            assert result.cases >= MAX_EXAMPLES, (mode, operation, result.cases)
    for operation in expected:
        positive = by_pass[("positive", operation)]
        assert any(status < 300 for status in positive.statuses), (operation, positive.statuses)
    assert by_pass[("positive", "POST /api/v1/payments/{paymentId}/confirm")].statuses.get(409, 0) > 0
    assert by_pass[("positive", "GET /api/v1/students/{studentId}/learning")].statuses.get(403, 0) > 0
    assert ("negative", "GET /health") not in by_pass  # no input: nothing to break


def _assert_problem(status: int, content_type: str, body: bytes) -> None:
    """Every error is a problem+json, valid against problem.schema.json, whose status is the response's."""
    assert problem_verdicts(status, content_type, body) == [], (status, content_type, body[:300])


# --- explicit malformed input ------------------------------------------------------------------------


@pytest.fixture
def fresh() -> Iterator[Flow]:
    flow = Flow(make_system())
    yield flow
    flow.close()


def _create_body(**overrides: Any) -> dict[str, Any]:
    return {"studentId": "s1", "courseId": "c1", "amountCents": 4900, "currency": "EUR",
            "metadata": METADATA, **overrides}


def _expect_problem(response: Any, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text)
    _assert_problem(response.status_code, response.headers.get("content-type", ""), response.content)
    problem: dict[str, Any] = response.json()
    return problem


NOT_JSON = [
    pytest.param(b"", id="empty"),
    pytest.param(b"{", id="truncated"),
    pytest.param(b"{'studentId': 's1'}", id="single-quotes"),
    pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
    pytest.param(b"null", id="null"),
    pytest.param(b"[1, 2]", id="array"),
    pytest.param(b'"a string"', id="string"),
    pytest.param(b"[" * 100_000, id="nested-100k"),
    pytest.param(b'{"a":' * 100_000, id="nested-objects-100k"),
    pytest.param(json.dumps(_create_body(metadata={**METADATA, "deep": json.loads("[" * 200 + "]" * 200)})).encode(),
                 id="nested-200-in-metadata"),
    pytest.param(json.dumps(_create_body(metadata={**METADATA, "x": float("nan")})).encode(), id="NaN"),
    pytest.param(json.dumps(_create_body(amountCents=float("inf"))).encode(), id="Infinity"),
    pytest.param(json.dumps(_create_body()).replace('4900', '1e400').encode(), id="1e400"),
    pytest.param(json.dumps(_create_body()).replace('4900', '9' * 5000).encode(), id="5000-digits"),
    pytest.param(json.dumps(_create_body(provider="\ud800")).encode(), id="lone-surrogate"),
    pytest.param(json.dumps(_create_body(metadata={**METADATA, "\udfff": 1})).encode(), id="lone-surrogate-key"),
]


@pytest.mark.parametrize("raw", NOT_JSON)
def test_create_refuses_what_is_not_a_json_object(fresh: Flow, raw: bytes) -> None:
    response = fresh.payments.post("/api/v1/payments", content=raw, headers={"Content-Type": "application/json"})
    _expect_problem(response, 400)
    assert fresh.system.payment_store.all_payments() == []  # P1: nothing stored


@pytest.mark.parametrize("raw", NOT_JSON)
def test_confirm_refuses_what_is_not_a_json_object(fresh: Flow, raw: bytes) -> None:
    payment = fresh.create()
    headers = {"Content-Type": "application/json", "X-Signature": fresh.sign(payment["id"], raw)}
    response = fresh.payments.post(f"/api/v1/payments/{payment['id']}/confirm", content=raw, headers=headers)
    _expect_problem(response, 400)
    assert fresh.payments.get(f"/api/v1/payments/{payment['id']}").json()["status"] == "initiated"


WRONG_TYPES = [
    pytest.param({"amountCents": "12"}, "amountCents", id="amount-as-string"),
    pytest.param({"amountCents": 12.5}, "amountCents", id="amount-fraction"),
    pytest.param({"amountCents": 10**30}, "amountCents", id="amount-huge"),
    pytest.param({"amountCents": -1}, "amountCents", id="amount-negative"),
    pytest.param({"amountCents": True}, "amountCents", id="amount-bool"),
    pytest.param({"studentId": 42}, "studentId", id="student-int"),
    pytest.param({"studentId": "\u2603\u0000"}, "studentId", id="student-unicode"),
    pytest.param({"currency": ["EUR"]}, "currency", id="currency-array"),
    pytest.param({"metadata": "{}"}, "metadata", id="metadata-string"),
    pytest.param({"metadata": {**METADATA, "sessionCount": "10"}}, "metadata.sessionCount", id="session-string"),
    pytest.param({"metadata": {**METADATA, "sessionCount": 10**20}}, "metadata.sessionCount", id="session-huge"),
    pytest.param({"metadata": {**METADATA, "startDate": "2026-02-30"}}, "metadata.startDate", id="no-such-date"),
    pytest.param({"metadata": {**METADATA, "timezone": "Mars/Olympus"}}, "metadata.timezone", id="no-such-zone"),
    pytest.param({"unexpected": {"x": 1}}, None, id="unknown-field"),  # reported against "(body)"
]


@pytest.mark.parametrize(("overrides", "field"), WRONG_TYPES)
def test_create_wrong_types_are_a_422_naming_the_field(fresh: Flow, overrides: dict[str, Any],
                                                       field: str | None) -> None:
    response = fresh.payments.post("/api/v1/payments", json=_create_body(**overrides))
    problem = _expect_problem(response, 422)
    assert field is None or field in [e["field"] for e in problem["errors"]], problem
    assert fresh.system.payment_store.all_payments() == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/jsonx", None])
def test_wrong_content_type_is_a_415(fresh: Flow, content_type: str | None) -> None:
    raw = json.dumps(_create_body()).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    _expect_problem(fresh.payments.post("/api/v1/payments", content=raw, headers=headers), 415)
    payment = fresh.create()
    confirm = json.dumps({"status": "succeeded"}).encode()
    response = fresh.payments.post(f"/api/v1/payments/{payment['id']}/confirm", content=confirm,
                                   headers={**headers, "X-Signature": fresh.sign(payment["id"], confirm)})
    _expect_problem(response, 415)


GARBAGE_IDS = ["%E2%98%83", "%00", "%F0%9F%92%A9" * 20, "a%2Fb", "%2E%2E", "%ff%fe", "x" * 5000, "%20",
               "DROP%20TABLE%20payments;--", "{paymentId}", "-leading-dash", "%E2%80%AEevil", "%0A", "ok%0A"]


@pytest.mark.parametrize("garbage", GARBAGE_IDS)
def test_garbage_path_ids_are_problems(fresh: Flow, garbage: str) -> None:
    # A slash decoded from %2F or '..' leaves the payment routes: 404 (documented), otherwise 400.
    _expect_problem(fresh.payments.get(f"/api/v1/payments/{garbage}"), 400, 404)
    raw = b'{"status":"succeeded"}'
    headers = {"Content-Type": "application/json", "X-Signature": fresh.sign(garbage, raw)}
    response = fresh.payments.post(f"/api/v1/payments/{garbage}/confirm", content=raw, headers=headers)
    _expect_problem(response, 400, 404)
    admin = {"Authorization": f"Bearer {fresh.token('admin', 'admin')}"}
    # The student routes take every id to the id check: always the documented 400.
    _expect_problem(fresh.students.get(f"/api/v1/students/{garbage}/learning", headers=admin), 400)
    _expect_problem(fresh.students.delete(f"/api/v1/students/{garbage}/learning/cache", headers=admin), 400)


def test_an_upper_case_uuid_is_not_a_payment_id(fresh: Flow) -> None:
    payment_id = fresh.create()["id"]
    _expect_problem(fresh.payments.get(f"/api/v1/payments/{payment_id.upper()}"), 400)


def test_empty_ids_and_stray_slashes_are_problems_not_redirects(fresh: Flow) -> None:
    admin = {"Authorization": f"Bearer {fresh.token('admin', 'admin')}"}
    _expect_problem(fresh.students.get("/api/v1/students//learning", headers=admin), 400)
    _expect_problem(fresh.payments.get("/api/v1/payments/"), 404)
    _expect_problem(fresh.payments.get("/health/"), 404)


def test_a_signature_that_is_not_ascii_is_a_401(fresh: Flow) -> None:
    payment = fresh.create()
    response = fresh.payments.post(f"/api/v1/payments/{payment['id']}/confirm", content=b'{"status":"succeeded"}',
                                   headers={"Content-Type": "application/json", "X-Signature": b"\xe9" * 64})
    _expect_problem(response, 401)


@pytest.mark.parametrize("authorization", [b"Bearer \xe9\xff", b"Bearer", b"Basic YTpi", b"Bearer a.b.c",
                                           b"bearer " + b"x" * 10_000])
def test_broken_bearer_tokens_are_a_401(fresh: Flow, authorization: bytes) -> None:
    response = fresh.students.get("/api/v1/students/s1/learning", headers={"Authorization": authorization})
    _expect_problem(response, 401)


def test_payments_db_outage_is_a_503_not_a_500(fresh: Flow) -> None:
    payment = fresh.create()
    faults = fresh.system.faults
    faults.fail_next("payments_db", 1)
    response = fresh.payments.post("/api/v1/payments", json=_create_body())
    _expect_problem(response, 503)
    assert response.headers["retry-after"] == "1"
    faults.fail_next("payments_db", 1)
    _expect_problem(fresh.payments.get(f"/api/v1/payments/{payment['id']}"), 503)
    faults.fail_next("payments_db", 1, op="save_status")
    _expect_problem(fresh.confirm_raw(payment["id"], {"status": "succeeded"}), 503)
    faults.clear()
    assert fresh.payments.get(f"/api/v1/payments/{payment['id']}").json()["status"] == "initiated"


def test_cache_outage_on_invalidation_is_a_documented_503(fresh: Flow) -> None:
    fresh.system.faults.fail_next("cache", 1)
    admin = {"Authorization": f"Bearer {fresh.token('admin', 'admin')}"}
    _expect_problem(fresh.students.delete("/api/v1/students/s1/learning/cache", headers=admin), 503)
    operation = openapi.document("student-service")["paths"]["/api/v1/students/{studentId}/learning/cache"]["delete"]
    assert "503" in operation["responses"]

