"""The fuzz package's own parts, without a whole pass: kcverify's checks on an answer, the operation
selection, and the transport's signing (a callback the fuzzer signs is one the reference accepts)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from kcverify.contracts import openapi_path
from kcverify.core.errors import InputError
from kcverify.fuzz.judge import json_error_verdicts, problem_verdicts
from kcverify.fuzz.profiles import document_path, documents_of
from kcverify.fuzz.runner import FuzzOptions, ServiceDocument, load_schema, select
from kcverify.fuzz.transport import SIGN_ME, base_url, session_for
from kcverify.targets.embedded import EmbeddedTarget
from kcverify.targets.external.profile import load_profile

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = json.dumps({"type": "about:blank", "title": "Bad Request", "status": 400, "detail": "x"}).encode()


def test_a_problem_passes_and_an_html_error_page_does_not() -> None:
    assert problem_verdicts(400, "application/problem+json", PROBLEM) == []
    assert problem_verdicts(200, "text/html", b"<html>") == []  # a success is not judged as a problem
    html = problem_verdicts(500, "text/html; charset=utf-8", b"<html><h1>Internal Server Error</h1></html>")
    assert [v.check for v in html] == ["problem_json"]
    assert [v.check for v in problem_verdicts(404, "application/problem+json", PROBLEM)] == ["problem_json"]
    assert [v.check for v in problem_verdicts(400, "application/problem+json", b"{")] == ["problem_json"]


def test_a_system_with_plain_json_errors_is_judged_by_their_form() -> None:
    """`conventions.errors: json`: `{success: false, ...}` passes; an HTML page, a non-object or a body
    that is not JSON does not."""
    assert json_error_verdicts(422, "application/json", b'{"success": false, "message": "x"}') == []
    assert json_error_verdicts(400, "application/problem+json", PROBLEM) == []
    for content_type, body in (("text/html", b"<html>"), ("application/json", b"[1]"), ("application/json", b"{")):
        assert [v.check for v in json_error_verdicts(500, content_type, body)] == ["json_error"], body


def test_a_profile_declaring_plain_json_errors_reaches_the_fuzzed_documents() -> None:
    environ = {k: "x" for k in ("OTHERSYS_DSN", "OTHERSYS_JWT_SECRET", "OTHERSYS_WEBHOOK_SECRET")}
    shaped = load_profile(ROOT / "profiles/examples/production-shaped.yaml", environ=environ)
    reference = load_profile(ROOT / "profiles/reference.yaml", environ={
        k: "x" for k in ("KCVERIFY_WEBHOOK_SECRET", "KCVERIFY_AUTH_SECRET")})
    assert {d.problem_errors for d in documents_of(SimpleNamespace(profile=shaped)) or []} == {False}
    assert {d.problem_errors for d in documents_of(SimpleNamespace(profile=reference)) or []} == {True}


def test_operations_are_chosen_by_operation_id_or_label_and_a_typo_is_named() -> None:
    document = ServiceDocument("payment-service", openapi_path("payment-service"))
    schemas = {"payment-service": load_schema(document, "positive", FuzzOptions())}
    chosen = select(schemas, ["confirmPayment", "GET /health"])
    assert sorted(op.label for op in chosen["payment-service"]) == ["GET /health",
                                                                   "POST /api/v1/payments/{paymentId}/confirm"]
    with pytest.raises(InputError, match="unknown operation 'confirmPaymnt'") as caught:
        select(schemas, ["confirmPaymnt"])
    assert "confirmPayment" in (caught.value.hint or "")


def test_the_transport_signs_the_exact_bytes_it_sends() -> None:
    target = EmbeddedTarget()
    target.start(seed=0)
    try:
        created = target.http("payment-service", "POST", "/api/v1/payments", headers={
            "Content-Type": "application/json"}, body=json.dumps({
                "studentId": "s1", "courseId": "c1", "amountCents": 4900, "currency": "EUR",
                "metadata": {"startDate": "2026-03-02", "classTime": "18:30", "classTypeId": "group",
                             "scheduleType": "weekly", "sessionCount": 10}}).encode())
        assert created.status == 201, created.body
        payment_id = created.json()["id"]
        session = session_for(target, [ServiceDocument("payment-service", openapi_path("payment-service"))])
        url = f"{base_url('payment-service')}/api/v1/payments/{payment_id}/confirm"
        signed = session.post(url, data=b'{"status": "succeeded"}',
                              headers={"Content-Type": "application/json", "X-Signature": SIGN_ME})
        assert signed.status_code == 200, signed.text
        unsigned = session.post(url, data=b'{"status": "failed"}',
                                headers={"Content-Type": "application/json", "X-Signature": "t=0,v1=" + "1" * 64})
        assert unsigned.status_code == 401
        assert unsigned.headers["content-type"].startswith("application/problem+json")
    finally:
        target.stop()


def test_a_missing_document_is_an_input_error_naming_it() -> None:
    with pytest.raises(InputError, match="no such OpenAPI document"):
        load_schema(ServiceDocument("payment-service", openapi_path("payment-service").with_name("nope.yaml")),
                    "positive", FuzzOptions())


def test_the_reference_profile_names_the_shipped_openapi_documents(tmp_path: Path) -> None:
    """`kcverify:contracts/PATH` is a contract kcverify ships (from a checkout or a wheel alike); any other
    value is relative to the profile's folder."""
    profile = load_profile(ROOT / "profiles" / "reference.yaml", {})

    class Profiled:
        pass

    target = Profiled()
    target.profile = profile  # type: ignore[attr-defined]
    found = {d.service: d for d in documents_of(target)}
    assert set(found) == {"payment", "student"}
    assert found["payment"].openapi.resolve() == openapi_path("payment-service").resolve()
    assert found["student"].openapi.resolve() == openapi_path("student-service").resolve()
    assert all(d.direct and d.curl_base.startswith("http://") for d in found.values())
    assert document_path(tmp_path, "docs/api.yaml") == tmp_path / "docs" / "api.yaml"
