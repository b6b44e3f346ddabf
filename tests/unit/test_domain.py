"""Pure domain rules: the payment state machine (P4), the metadata merge (W4), keys and envelopes."""

from __future__ import annotations

import pytest

from kcverify import contracts
from kcverify.core.ids import event_id_for
from kcverify.reference import domain
from kcverify.reference.domain import IllegalTransition, PaymentStatus, merge_metadata, transition


@pytest.mark.parametrize(("current", "requested"), [
    ("initiated", "succeeded"), ("initiated", "failed"), ("initiated", "cancelled"), ("succeeded", "refunded"),
])
def test_p4_legal_transitions_change_status(current: str, requested: str) -> None:
    assert transition(PaymentStatus(current), PaymentStatus(requested)) is True


@pytest.mark.parametrize("status", list(PaymentStatus))
def test_p4_repeating_a_status_is_a_no_op(status: PaymentStatus) -> None:
    assert transition(status, status) is False


@pytest.mark.parametrize(("current", "requested"), [
    ("failed", "succeeded"), ("succeeded", "failed"), ("cancelled", "succeeded"), ("refunded", "succeeded"),
    ("initiated", "refunded"), ("succeeded", "initiated"),
])
def test_p4_illegal_transitions_raise(current: str, requested: str) -> None:
    with pytest.raises(IllegalTransition):
        transition(PaymentStatus(current), PaymentStatus(requested))


def test_w4_payment_value_wins_when_present_and_not_null() -> None:
    payment = {"classTime": "18:30", "sessionCount": 10, "timezone": None}
    event = {"classTime": "16:00", "sessionCount": 30, "timezone": "UTC", "promo": "x"}
    merged = merge_metadata(payment, event)
    assert merged == {"classTime": "18:30", "sessionCount": 10, "timezone": "UTC", "promo": "x"}


def test_w4_keys_only_the_event_has_are_kept_verbatim() -> None:
    assert merge_metadata({}, {"extra": {"nested": [1, "2"]}}) == {"extra": {"nested": [1, "2"]}}


def test_idempotency_keys_and_derived_event_ids_are_stable() -> None:
    key = domain.confirmed_key("0b7d5c3e-1111-4222-8333-444455556666")
    assert key == "payment:0b7d5c3e-1111-4222-8333-444455556666:PURCHASE_CONFIRMED"
    assert event_id_for(key) == event_id_for(key)
    assert event_id_for(key) != event_id_for(domain.created_key("0b7d5c3e-1111-4222-8333-444455556666"))


def test_event_message_headers_repeat_the_envelope_and_key_is_student() -> None:
    payment = domain.Payment("0b7d5c3e-1111-4222-8333-444455556666", "s1", "c1", 100, "EUR",
                             PaymentStatus.SUCCEEDED, "test", None,
                             {"startDate": "2026-01-01", "classTime": "10:00", "classTypeId": "x",
                              "scheduleType": "daily", "sessionCount": 10}, 0.0, 1.0)
    event = domain.purchase_confirmed(payment, 1.0)
    assert contracts.validate("events/purchase-confirmed", event) == []
    message = domain.event_message(domain.TOPIC_CONFIRMED, payment.student_id, event)
    assert message.key == "s1"
    assert dict(message.headers) == {"eventId": event["eventId"], "type": "PURCHASE_CONFIRMED",
                                     "correlationId": payment.id, "idempotencyKey": event["idempotencyKey"]}
