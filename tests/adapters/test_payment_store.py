"""PaymentStore conformance (payments_db): round-trips, P3's one-transaction status change + outbox row,
W3's three-condition read, the reconciler's scan (I1)."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest

from kcverify.core.clock import MANUAL_EPOCH
from kcverify.reference.domain import OutboxMessage, Payment, PaymentStatus
from kcverify.reference.ports import PaymentStore

# Timestamps with few binary digits: they survive TIMESTAMPTZ's microseconds exactly, as well as REAL.
T0 = MANUAL_EPOCH + 0.25
T1 = MANUAL_EPOCH + 60.5
T2 = MANUAL_EPOCH + 120.75

METADATA: dict[str, Any] = {
    "startDate": "2026-02-02",
    "classTime": "18:30",
    "classTypeId": "group-small",
    "scheduleType": "weekly",
    "sessionCount": 10,
    "timezone": "Europe/Berlin",
    "classTypeTitle": "Petite classe — ☀",
    "schedule": {"startDate": "2026-02-02", "timeSlot": "18:30", "mode": "online"},
    "extra": {"list": [1, 2.5, True, None, "10"], "empty": {}, "zero": 0, "off": False},
    "price": 12.5,
}


def make_payment(**overrides: Any) -> Payment:
    fields: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "student_id": f"student-{uuid.uuid4().hex[:8]}",
        "course_id": "course-1",
        "amount_cents": 4900,
        "currency": "EUR",
        "status": PaymentStatus.INITIATED,
        "provider": "fakepay",
        "provider_payment_id": None,
        "metadata": METADATA,
        "created_at": T0,
        "confirmed_at": None,
    }
    fields.update(overrides)
    return Payment(**fields)


def by_id(payments: list[Payment]) -> list[Payment]:
    """The port promises no order for these lists."""
    return sorted(payments, key=lambda p: p.id)


def confirm(payment: Payment, at: float = T1, provider_id: str = "pi_123") -> Payment:
    return dataclasses.replace(payment, status=PaymentStatus.SUCCEEDED, provider_payment_id=provider_id,
                               confirmed_at=at)


def message(payment: Payment, n: int = 0) -> OutboxMessage:
    return OutboxMessage(topic="purchase-confirmed", key=payment.student_id,
                         value=f'{{"paymentId":"{payment.id}","n":{n}}}'.encode(),
                         headers=(("eventId", f"e-{n}"), ("type", "PURCHASE_CONFIRMED")), created_at=T1)


# --- round-trips ------------------------------------------------------------------------------------


def test_insert_then_get_round_trips_every_field(payment_store: PaymentStore) -> None:
    payment = make_payment(provider_payment_id="pi_0", confirmed_at=None)
    payment_store.insert_payment(payment)
    loaded = payment_store.get_payment(payment.id)
    assert loaded == payment
    assert loaded is not None and isinstance(loaded.status, PaymentStatus)
    assert isinstance(loaded.created_at, float) and loaded.created_at == T0


def test_metadata_types_are_kept_verbatim(payment_store: PaymentStore) -> None:
    """W4/F2: the store never coerces: 10 stays an int, "10" stays a string, floats and bools stay."""
    as_int = make_payment(metadata={**METADATA, "sessionCount": 10})
    as_str = make_payment(metadata={**METADATA, "sessionCount": "10"})
    payment_store.insert_payment(as_int)
    payment_store.insert_payment(as_str)
    loaded_int = payment_store.get_payment(as_int.id)
    loaded_str = payment_store.get_payment(as_str.id)
    assert loaded_int is not None and loaded_str is not None
    assert type(loaded_int.metadata["sessionCount"]) is int
    assert loaded_str.metadata["sessionCount"] == "10"
    assert loaded_int.metadata["extra"] == {"list": [1, 2.5, True, None, "10"], "empty": {}, "zero": 0,
                                            "off": False}
    assert type(loaded_int.metadata["extra"]["list"][2]) is bool
    assert type(loaded_int.metadata["price"]) is float


def test_get_missing_payment_is_none(payment_store: PaymentStore) -> None:
    assert payment_store.get_payment(str(uuid.uuid4())) is None


def test_duplicate_payment_id_is_rejected(payment_store: PaymentStore) -> None:
    payment = make_payment()
    payment_store.insert_payment(payment)
    with pytest.raises(ValueError):
        payment_store.insert_payment(dataclasses.replace(payment, course_id="course-2"))
    assert payment_store.get_payment(payment.id) == payment


@pytest.mark.parametrize("amount", [0, -100])
def test_amount_must_be_positive(payment_store: PaymentStore, amount: int) -> None:
    payment = make_payment(amount_cents=amount)
    with pytest.raises(ValueError):
        payment_store.insert_payment(payment)
    assert payment_store.get_payment(payment.id) is None


def test_all_payments_lists_every_payment(payment_store: PaymentStore) -> None:
    first = make_payment(created_at=T0)
    second = make_payment(created_at=T1, status=PaymentStatus.FAILED)
    payment_store.insert_payment(second)
    payment_store.insert_payment(first)
    assert by_id(payment_store.all_payments()) == by_id([first, second])


# --- P3: status change and outbox row, one transaction ----------------------------------------------


def test_p3_save_status_writes_status_and_outbox_row_together(payment_store: PaymentStore) -> None:
    payment = make_payment()
    payment_store.insert_payment(payment)
    assert payment_store.pending_outbox(10) == []

    succeeded = confirm(payment)
    outbox = message(payment)
    payment_store.save_status(succeeded, outbox)

    assert payment_store.get_payment(payment.id) == succeeded
    [row] = payment_store.pending_outbox(10)
    assert row.id is not None
    assert dataclasses.replace(row, id=None) == outbox


def test_p3_save_status_without_outbox_row(payment_store: PaymentStore) -> None:
    payment = make_payment()
    payment_store.insert_payment(payment)
    failed = dataclasses.replace(payment, status=PaymentStatus.FAILED, provider_payment_id="pi_9")
    payment_store.save_status(failed, None)
    assert payment_store.get_payment(payment.id) == failed
    assert payment_store.pending_outbox(10) == []


def test_p2_save_status_changes_only_status_provider_ids_and_confirmed_at(payment_store: PaymentStore) -> None:
    """P2: courseId, amount and metadata are immutable; the store writes only what may change."""
    payment = make_payment()
    payment_store.insert_payment(payment)
    tampered = dataclasses.replace(confirm(payment), course_id="course-other", amount_cents=1,
                                   metadata={**METADATA, "sessionCount": 99}, provider="otherpay")
    payment_store.save_status(tampered, None)
    loaded = payment_store.get_payment(payment.id)
    assert loaded == dataclasses.replace(confirm(payment), provider="otherpay")


def test_p3_failed_outbox_insert_leaves_the_status_unchanged(payment_store: PaymentStore) -> None:
    """P3: the outbox row is visible only together with the status change: a failure writes neither."""
    payment = make_payment()
    payment_store.insert_payment(payment)
    broken = dataclasses.replace(message(payment), topic=None)  # type: ignore[arg-type]  # NOT NULL
    with pytest.raises(ValueError):
        payment_store.save_status(confirm(payment), broken)
    assert payment_store.get_payment(payment.id) == payment
    assert payment_store.pending_outbox(10) == []


def test_p3_save_status_of_a_missing_payment_writes_nothing(payment_store: PaymentStore) -> None:
    ghost = make_payment()
    with pytest.raises(LookupError):
        payment_store.save_status(confirm(ghost), message(ghost))
    assert payment_store.get_payment(ghost.id) is None
    assert payment_store.pending_outbox(10) == []


# --- W3: the worker's read ----------------------------------------------------------------------------


def test_w3_find_succeeded_needs_id_student_and_status(payment_store: PaymentStore) -> None:
    succeeded = confirm(make_payment())
    initiated = make_payment(student_id=succeeded.student_id)
    payment_store.insert_payment(succeeded)
    payment_store.insert_payment(initiated)

    assert payment_store.find_succeeded(succeeded.id, succeeded.student_id) == succeeded
    assert payment_store.find_succeeded(str(uuid.uuid4()), succeeded.student_id) is None  # wrong id
    assert payment_store.find_succeeded(succeeded.id, "student-forged") is None  # wrong student
    assert payment_store.find_succeeded(initiated.id, initiated.student_id) is None  # not succeeded


@pytest.mark.parametrize("status", [PaymentStatus.FAILED, PaymentStatus.CANCELLED, PaymentStatus.REFUNDED])
def test_w3_find_succeeded_ignores_other_statuses(payment_store: PaymentStore, status: PaymentStatus) -> None:
    payment = make_payment(status=status, confirmed_at=T1)
    payment_store.insert_payment(payment)
    assert payment_store.find_succeeded(payment.id, payment.student_id) is None


def test_w3_find_succeeded_sees_a_status_change(payment_store: PaymentStore) -> None:
    payment = make_payment()
    payment_store.insert_payment(payment)
    assert payment_store.find_succeeded(payment.id, payment.student_id) is None
    payment_store.save_status(confirm(payment), message(payment))
    assert payment_store.find_succeeded(payment.id, payment.student_id) == confirm(payment)


# --- I1: the reconciler's candidates ------------------------------------------------------------------


def test_i1_succeeded_confirmed_before_is_inclusive(payment_store: PaymentStore) -> None:
    late = confirm(make_payment(), at=T2)
    on_the_bound = confirm(make_payment(), at=T1)
    early = confirm(make_payment(), at=T0)
    refunded = dataclasses.replace(confirm(make_payment(), at=T0), status=PaymentStatus.REFUNDED)
    pending = make_payment()
    for payment in (late, on_the_bound, early, refunded, pending):
        payment_store.insert_payment(payment)

    def confirmations(*payments: Payment) -> list[tuple[str, float | None]]:
        return [(p.id, p.confirmed_at) for p in payments]

    assert payment_store.succeeded_confirmed_before(T1) == confirmations(early, on_the_bound)
    assert payment_store.succeeded_confirmed_before(T0 - 1) == []
    assert payment_store.succeeded_confirmed_before(T2) == confirmations(early, on_the_bound, late)
    # the reconciler's watermark: only those confirmed strictly after it
    assert payment_store.succeeded_confirmed_before(T2, after=T0) == confirmations(on_the_bound, late)
    assert payment_store.succeeded_confirmed_before(T2, after=T1) == confirmations(late)
    assert payment_store.succeeded_confirmed_before(T1, after=T1) == []


def test_any_text_the_metadata_contract_allows_is_stored_as_written(payment_store: PaymentStore) -> None:
    """P1/P3: a schema-valid string may hold U+0000 or characters outside the BMP; both stores keep them
    (PostgreSQL's JSONB could not: a valid checkout answered 500 on the processes target, found by fuzzing)."""
    payment = make_payment(metadata={**METADATA, "classTypeTitle": "a\x00b \U0001f600", "note\x00": ["\x00"]})
    payment_store.insert_payment(payment)
    loaded = payment_store.get_payment(payment.id)
    assert loaded is not None and loaded.metadata == payment.metadata
