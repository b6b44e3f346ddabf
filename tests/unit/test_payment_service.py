"""Payment service rules P1-P5, through its HTTP face."""

from __future__ import annotations

import json

from kcverify.reference import domain
from tests.unit.conftest import METADATA, Flow


def test_p1_invalid_metadata_is_422_with_one_entry_per_field_and_nothing_stored(flow: Flow) -> None:
    bad = {**METADATA, "sessionCount": "10", "classTime": "25:00"}
    del bad["startDate"]
    response = flow.payments.post("/api/v1/payments", json={
        "studentId": "s1", "courseId": "c1", "amountCents": 100, "currency": "EUR", "metadata": bad})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    fields = [e["field"] for e in response.json()["errors"]]
    assert fields == ["metadata.classTime", "metadata.sessionCount", "metadata.startDate"]
    assert flow.system.payment_store.all_payments() == []


def test_p1_malformed_json_and_wrong_media_type_are_4xx_problems(flow: Flow) -> None:
    r1 = flow.payments.post("/api/v1/payments", content=b"{nope", headers={"Content-Type": "application/json"})
    r2 = flow.payments.post("/api/v1/payments", content=b"{}", headers={"Content-Type": "text/plain"})
    r3 = flow.payments.post("/api/v1/payments", json=[1, 2])
    assert (r1.status_code, r2.status_code, r3.status_code) == (400, 415, 400)
    for r in (r1, r2, r3):
        assert r.headers["content-type"].startswith("application/problem+json")


def test_p1_malformed_payment_id_is_400_not_500(flow: Flow) -> None:
    response = flow.payments.get("/api/v1/payments/not-a-uuid")
    assert response.status_code == 400
    assert response.json()["status"] == 400


def test_p2_unsigned_or_wrongly_signed_confirm_is_401_and_changes_nothing(flow: Flow) -> None:
    payment = flow.create()
    unsigned = flow.confirm_raw(payment["id"], {"status": "succeeded"}, signed=False)
    raw = json.dumps({"status": "succeeded"}).encode()
    forged = flow.payments.post(f"/api/v1/payments/{payment['id']}/confirm", content=raw,
                                headers={"Content-Type": "application/json", "X-Signature": "sha256=00"})
    assert unsigned.status_code == forged.status_code == 401
    assert flow.payments.get(f"/api/v1/payments/{payment['id']}").json()["status"] == "initiated"
    assert flow.system.payment_store.pending_outbox(10) == []


def test_p2_confirm_cannot_change_course_amount_or_metadata(flow: Flow) -> None:
    payment = flow.create()
    for field, value in (("courseId", "c-other"), ("amountCents", 1), ("metadata", {})):
        response = flow.confirm_raw(payment["id"], {"status": "succeeded", field: value})
        assert response.status_code == 422, field
    stored = flow.payments.get(f"/api/v1/payments/{payment['id']}").json()
    assert (stored["courseId"], stored["amountCents"], stored["status"]) == ("c1", 4900, "initiated")


def test_p3_succeeded_saves_status_metadata_and_one_outbox_row_together(flow: Flow) -> None:
    payment = flow.create()
    confirmed = flow.confirm(payment["id"])
    assert confirmed["status"] == "succeeded" and confirmed["confirmedAt"] is not None
    assert confirmed["metadata"] == METADATA
    rows = flow.system.payment_store.pending_outbox(10)
    assert len(rows) == 1 and rows[0].topic == domain.TOPIC_CONFIRMED and rows[0].key == "s1"
    event = json.loads(rows[0].value)
    assert event["payload"]["metadata"] == METADATA
    assert event["idempotencyKey"] == f"payment:{payment['id']}:PURCHASE_CONFIRMED"


def test_p3_crash_between_commit_and_publish_loses_nothing(flow: Flow) -> None:
    payment = flow.create()
    flow.system.crash_points.arm("payment.after_commit")
    try:
        flow.confirm(payment["id"])
    except BaseException as exc:  # the in-process app dies with the crash, as the process would
        assert type(exc).__name__ == "SimulatedCrash"
    flow.settle()
    assert flow.system.course_store.purchase_for_payment(payment["id"]) is not None


def test_p3_relay_crash_after_publish_republishes_the_same_event(flow: Flow) -> None:
    flow.buy()
    flow.system.crash_points.arm("payment-relay.after_publish")
    flow.system.step("payment-relay")
    assert "payment-relay" in flow.system.down
    flow.system.restart("payment-relay")
    flow.settle()
    confirmed = flow.topic(domain.TOPIC_CONFIRMED)
    assert len(confirmed) == 2 and confirmed[0]["eventId"] == confirmed[1]["eventId"]
    assert len(flow.system.course_store.all_purchases()) == 1
    assert len(flow.topic(domain.TOPIC_CREATED)) == 1


def test_p4_gateway_retry_is_idempotent(flow: Flow) -> None:
    payment = flow.create()
    first = flow.confirm(payment["id"])
    second = flow.confirm(payment["id"])
    assert first == second
    assert len(flow.system.payment_store.pending_outbox(10)) == 1


def test_p4_illegal_transitions_are_409(flow: Flow) -> None:
    failed = flow.create()
    flow.confirm(failed["id"], "failed")
    assert flow.confirm_raw(failed["id"], {"status": "succeeded"}).status_code == 409
    done = flow.create()
    flow.confirm(done["id"])
    response = flow.confirm_raw(done["id"], {"status": "failed"})
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")


def test_p4_unknown_payment_is_404(flow: Flow) -> None:
    response = flow.confirm_raw("0b7d5c3e-1111-4222-8333-444455556666", {"status": "succeeded"})
    assert response.status_code == 404


def test_p5_success_invalidates_the_learning_cache(flow: Flow) -> None:
    key = domain.cache_key("s1")
    before = flow.system.cache.version(key)
    flow.buy()
    assert flow.system.cache.version(key) == before + 1


def test_p5_cache_outage_does_not_fail_the_confirmation(flow: Flow) -> None:
    payment = flow.create()
    flow.system.faults.fail_next("cache", 5)
    assert flow.confirm(payment["id"])["status"] == "succeeded"


def test_health(flow: Flow) -> None:
    assert flow.payments.get("/health").json() == {"status": "ok"}
    assert flow.students.get("/health").json() == {"status": "ok"}


def test_unknown_route_and_method_are_problems(flow: Flow) -> None:
    r404 = flow.payments.get("/nope")
    r405 = flow.payments.request("PUT", "/api/v1/payments")
    assert (r404.status_code, r405.status_code) == (404, 405)
    assert r404.headers["content-type"].startswith("application/problem+json")
