"""Schemathesis against both ASGI apps, in-process, from the hand-written contracts in contracts/openapi.

Every generated request must get a documented status, the documented media type and headers, and a
body valid against the contract, never a 5xx; every error is a problem+json whose status matches.
Each operation runs in two passes of at least 200 generated cases: positive (schema-valid input:
examples, coverage, fuzzing) and negative (input that breaks the contract: coverage, fuzzing), where
a broken path id, body or credential must be refused with a 4xx.

Requests carry realistic credentials so the authorized paths run too: a valid HS256 bearer token
(admin, the student itself, another student, or the generated garbage) and, on the gateway callback,
a valid X-Signature computed over the exact bytes sent (`SigningClient`). Path ids are swapped, in
rotation, for real ones (payments in every status, a student with purchases), so 200/204/409 are
exercised as well as 404.

`test_every_operation_got_its_cases` checks the case counts; explicit tests at the end feed malformed
input by hand (bodies that are not JSON, wrong types, huge numbers, garbage ids, outages)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation
from schemathesis.python.asgi import ASGIClient

from kcverify import contracts
from kcverify.contracts import openapi, openapi_path
from kcverify.reference.bootstrap import System
from kcverify.reference.http import PROBLEM_JSON
from tests.unit.conftest import METADATA, Flow, make_system

MAX_EXAMPLES = 200
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
SIGN_ME = "t=0,v1=" + "0" * 64  # placeholder that SigningClient replaces with the gateway's real signature
STUDENT_WITH_PURCHASES = "fuzz-student"


CHECKS = {
    "not_a_server_error": {"enabled": True},
    "status_code_conformance": {"enabled": True},
    "content_type_conformance": {"enabled": True},
    "response_schema_conformance": {"enabled": True},
    "response_headers_conformance": {"enabled": True},
    "negative_data_rejection": {"enabled": True},
    "ignored_auth": {"enabled": True},
    # Schema-valid input legitimately meets 404/409 (unknown or final payments) and 401/403 by design.
    "positive_data_acceptance": {"enabled": False},
    # Re-sends without X-Signature expecting 400/422-style rejection; a missing signature is a 401 (P2),
    # which `_must_reject` below asserts for every negative case whose credential header is broken.
    "missing_required_header": {"enabled": False},
}


def _config(mode: str, examples: int = MAX_EXAMPLES) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict({
        "generation": {"mode": mode, "max-examples": examples, "deterministic": True},
        "phases": {"examples": {"enabled": mode == "positive"}, "coverage": {"enabled": True},
                   "fuzzing": {"enabled": True}, "stateful": {"enabled": False}},
        "checks": CHECKS,
    })


class SigningClient(ASGIClient):
    """An in-process client that signs the raw request body, exactly as sent, when the test asks for
    it (X-Signature = SIGN_ME): what the payment gateway does."""

    def __init__(self, app: Any, flow: Flow) -> None:
        super().__init__(app)
        self.flow = flow

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if request.headers.get("X-Signature") == SIGN_ME:
            body = request.body or b""
            assert isinstance(body, str | bytes), type(body)  # schemathesis sends JSON as one buffer
            path = urlsplit(request.url or "").path  # /api/v1/payments/{id}/confirm: signed for that id
            payment_id = unquote(path.removesuffix("/confirm").rsplit("/", 1)[-1])
            raw = body.encode() if isinstance(body, str) else body
            request.headers["X-Signature"] = self.flow.sign(payment_id, raw)
        return super().send(request, **kwargs)


class Harness:
    """A fresh embedded system, its two apps, and real ids for the fuzzer to aim at."""

    def __init__(self) -> None:
        self.system: System = make_system()
        self.secret = self.system.settings.webhook_secret
        self.flow = Flow(self.system)
        self.payment_app = self.system.payment_app()
        self.student_app = self.system.student_app()
        self.payments = SigningClient(self.payment_app, self.flow)
        self.students = SigningClient(self.student_app, self.flow)
        # A student with purchases, so the learning view has rows (and both cache paths run).
        self.flow.buy(STUDENT_WITH_PURCHASES, "course-a")
        self.flow.buy(STUDENT_WITH_PURCHASES, "course-b", {**METADATA, "extra": {"kept": [1, "x"]}})
        self.flow.settle()

    def token(self, subject: str, role: str) -> str:
        return self.flow.token(subject, role)

    def payment(self, *statuses: str) -> str:
        """A new payment moved through `statuses`, so confirm meets every transition."""
        service = self.system.payment_service
        payment = service.create(json.dumps({"studentId": "p-owner", "courseId": "c-1", "amountCents": 4900,
                                             "currency": "EUR", "metadata": METADATA}).encode())
        for status in statuses:
            raw = json.dumps({"status": status}).encode()
            service.confirm(payment.id, raw, self.flow.sign(payment.id, raw))
        return payment.id

    def close(self) -> None:
        self.payments.close()
        self.students.close()
        self.flow.close()


# One fresh embedded system for this module. Built at import because a schema must know its app when
# it is parametrized: schemathesis' own probes (ignored_auth) call the app without our client.
HARNESS = Harness()


def _load(service: str, mode: str, app: Any, examples: int = MAX_EXAMPLES) -> Any:
    # From the file path, so the relative $refs into contracts/schemas resolve.
    schema = schemathesis.openapi.from_path(openapi_path(service), config=_config(mode, examples))
    schema.app = app
    return schema


PAYMENT_POSITIVE = _load("payment-service", "positive", HARNESS.payment_app)
# /health takes no input, so it has no negative cases: left out rather than reported as skipped.
PAYMENT_NEGATIVE = _load("payment-service", "negative", HARNESS.payment_app).exclude(path="/health")
STUDENT_POSITIVE = _load("student-service", "positive", HARNESS.student_app)
STUDENT_NEGATIVE = _load("student-service", "negative", HARNESS.student_app).exclude(path="/health")

CASES: Counter[tuple[str, str]] = Counter()  # (mode, operation) -> cases sent
STATUSES: Counter[tuple[str, str, int]] = Counter()  # (mode, operation, status) -> responses
RAN: set[tuple[str, str]] = set()  # (service, mode) passes that sent cases


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    yield HARNESS
    HARNESS.close()


# Operations whose headers carry a credential (X-Signature, bearer token): a broken one is a 401.
GUARDED = frozenset({"POST /api/v1/payments/{paymentId}/confirm", "GET /api/v1/students/{studentId}/learning",
                     "DELETE /api/v1/students/{studentId}/learning/cache"})

# What a case with a valid path id is aimed at, in rotation: an existing payment moved through these
# statuses, or (None) the generated id, which names no payment (404).
PAYMENT_TARGETS: tuple[tuple[str, ...] | None, ...] = (
    (), ("succeeded",), (), ("failed",), None, ("cancelled",), ("succeeded", "refunded"), None)
# Credentials in rotation: None keeps the generated (garbage) token, "self" is the student of the path.
STUDENT_TOKENS = ("admin", "self", "admin", "other", None, "admin")


def _negative(case: Any) -> set[ParameterLocation]:
    if case.meta is None:
        return set()
    return {location for location, info in case.meta.components.items() if info.mode.is_negative}


def _must_reject(case: Any) -> bool:
    """Whether the contract demands a 4xx: a broken path id or body, or a broken credential header.
    (An extra header on GET /health is negative data too, and harmless.)"""
    negative = _negative(case)
    if negative & {ParameterLocation.PATH, ParameterLocation.BODY}:
        return True
    return ParameterLocation.HEADER in negative and case.operation.label in GUARDED


def _assert_problem(status: int, content_type: str, body: bytes) -> None:
    """Every error is a problem+json, valid against problem.schema.json, whose status is the response's."""
    if status < 400:
        return
    assert content_type.split(";")[0].strip() == PROBLEM_JSON, (status, content_type, body[:300])
    problem = json.loads(body)
    assert contracts.validate("schemas/problem", problem) == [], problem
    assert problem["status"] == status, problem


def _run(case: Any, client: SigningClient, service: str, mode: str) -> None:
    RAN.add((service, mode))
    CASES[(mode, case.operation.label)] += 1
    response = case.call_and_validate(session=client)
    STATUSES[(mode, case.operation.label, response.status_code)] += 1
    assert response.status_code < 500, response.text
    if _must_reject(case):
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
    _assert_problem(response.status_code, response.headers.get("content-type", [""])[0], response.content)


def _prepare_payment(case: Any, turn: int, harness: Harness) -> None:
    negative = _negative(case)
    if "{paymentId}" in case.operation.path and ParameterLocation.PATH not in negative:
        statuses = PAYMENT_TARGETS[turn % len(PAYMENT_TARGETS)]
        if statuses is not None:
            case.path_parameters["paymentId"] = harness.payment(*statuses)
    if case.operation.path.endswith("/confirm") and ParameterLocation.HEADER not in negative:
        case.headers["X-Signature"] = SIGN_ME


def _prepare_student(case: Any, turn: int, harness: Harness) -> None:
    if "{studentId}" not in case.operation.path:
        return
    negative = _negative(case)
    if ParameterLocation.PATH not in negative and turn % 3 == 0:
        case.path_parameters["studentId"] = STUDENT_WITH_PURCHASES
    if ParameterLocation.HEADER in negative:
        return  # the generated (broken) credential is the point of this case
    student = str(case.path_parameters["studentId"])
    who = STUDENT_TOKENS[turn % len(STUDENT_TOKENS)]
    if who is not None:
        subject, role = {"admin": ("fuzz-admin", "admin"), "self": (student, "student"),
                         "other": ("someone-else", "student")}[who]
        case.headers["Authorization"] = f"Bearer {harness.token(subject, role)}"


def _turn(case: Any, mode: str) -> int:
    return CASES[(mode, case.operation.label)]


@PAYMENT_POSITIVE.parametrize()
@FUZZ_SETTINGS
def test_payment_service_positive(case: Any, harness: Harness) -> None:
    _prepare_payment(case, _turn(case, "positive"), harness)
    _run(case, harness.payments, "payment-service", "positive")


@PAYMENT_NEGATIVE.parametrize()
@FUZZ_SETTINGS
def test_payment_service_negative(case: Any, harness: Harness) -> None:
    _prepare_payment(case, _turn(case, "negative"), harness)
    _run(case, harness.payments, "payment-service", "negative")


@STUDENT_POSITIVE.parametrize()
@FUZZ_SETTINGS
def test_student_service_positive(case: Any, harness: Harness) -> None:
    _prepare_student(case, _turn(case, "positive"), harness)
    _run(case, harness.students, "student-service", "positive")


@STUDENT_NEGATIVE.parametrize()
@FUZZ_SETTINGS
def test_student_service_negative(case: Any, harness: Harness) -> None:
    _prepare_student(case, _turn(case, "negative"), harness)
    _run(case, harness.students, "student-service", "negative")


# Operations with no input at all: there is one request to make, and nothing to negate.
NO_INPUT = frozenset({"GET /health"})


def test_every_operation_got_its_cases() -> None:
    """At least MAX_EXAMPLES generated cases per operation and pass, and the authorized paths ran.
    Judges the passes that ran before it (all four in a whole-file run); with none, it fails."""
    assert RAN, "no fuzz pass ran before this test: run the whole file"
    services = {"payment-service": PAYMENT_POSITIVE, "student-service": STUDENT_POSITIVE}
    for (service, mode) in sorted(RAN):
        for result in services[service].get_all_operations():
            label = result.ok().label
            if label not in NO_INPUT:
                assert CASES[(mode, label)] >= MAX_EXAMPLES, (mode, label, CASES[(mode, label)])
    expected = {
        "payment-service": {"POST /api/v1/payments", "GET /api/v1/payments/{paymentId}",
                            "POST /api/v1/payments/{paymentId}/confirm", "GET /health"},
        "student-service": {"GET /api/v1/students/{studentId}/learning",
                            "DELETE /api/v1/students/{studentId}/learning/cache", "GET /health"},
    }
    successes = {label for (mode, label, status) in STATUSES if mode == "positive" and status < 300}
    for service, labels in expected.items():
        if (service, "positive") in RAN:
            assert labels <= successes, (service, STATUSES)
    if ("payment-service", "positive") in RAN:
        assert STATUSES[("positive", "POST /api/v1/payments/{paymentId}/confirm", 409)] > 0, STATUSES
    if ("student-service", "positive") in RAN:
        assert STATUSES[("positive", "GET /api/v1/students/{studentId}/learning", 403)] > 0, STATUSES


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

