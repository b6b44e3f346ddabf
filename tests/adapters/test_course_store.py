"""CourseStore conformance (courses_db): W6's one-transaction record_purchase and its idempotency, the
learning view's read (S1), tracking rows."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from typing import Any

import pytest

from kcverify.core.clock import MANUAL_EPOCH
from kcverify.reference.domain import OutboxMessage, Purchase
from kcverify.reference.ports import CourseStore

CONSUMER = "purchase-worker"
T0 = MANUAL_EPOCH + 0.25

METADATA: dict[str, Any] = {
    "startDate": "2026-02-02",
    "classTime": "18:30",
    "classTypeId": "group-small",
    "scheduleType": "weekly",
    "sessionCount": 10,
    "timezone": "Europe/Berlin",
    "schedule": {"startDate": "2026-02-02", "timeSlot": "18:30", "mode": "online"},
    "extra": [1, 2.5, True, None, "10"],
}


def make_purchase(**overrides: Any) -> Purchase:
    fields: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "payment_id": str(uuid.uuid4()),
        "student_id": "student-1",
        "course_id": "course-1",
        "purchase_tier": 10,
        "metadata": METADATA,
        "metadata_source": "payment",
        "is_active": True,
        "created_at": T0,
    }
    fields.update(overrides)
    return Purchase(**fields)


def key_for(purchase: Purchase) -> str:
    return f"payment:{purchase.payment_id}:PURCHASE_CONFIRMED"


def created_message(purchase: Purchase) -> OutboxMessage:
    return OutboxMessage(topic="purchase-created", key=purchase.student_id,
                         value=f'{{"purchaseId":"{purchase.id}"}}'.encode(),
                         headers=(("type", "PURCHASE_CREATED"),), created_at=purchase.created_at)


def record(store: CourseStore, purchase: Purchase, key: str | None = None, *, track: bool = True) -> bool:
    return store.record_purchase(purchase, CONSUMER, key or key_for(purchase), created_message(purchase),
                                 track=track)


# --- round-trips ------------------------------------------------------------------------------------


def test_w6_record_purchase_writes_purchase_tracking_row_and_outbox_row(course_store: CourseStore) -> None:
    purchase = make_purchase()
    assert record(course_store, purchase) is True
    assert course_store.purchase_for_payment(purchase.payment_id) == purchase
    assert course_store.is_processed(CONSUMER, key_for(purchase))
    [row] = course_store.pending_outbox(10)
    assert dataclasses.replace(row, id=None) == created_message(purchase)


def test_purchase_round_trips_every_field_and_metadata_types(course_store: CourseStore) -> None:
    """W4/F2: the merged metadata comes back exactly: 10 an int, "10" a string."""
    as_int = make_purchase(metadata_source="event")
    as_str = make_purchase(metadata={**METADATA, "sessionCount": "10"})
    record(course_store, as_int)
    record(course_store, as_str)
    loaded_int = course_store.purchase_for_payment(as_int.payment_id)
    loaded_str = course_store.purchase_for_payment(as_str.payment_id)
    assert loaded_int == as_int and loaded_str == as_str
    assert loaded_int is not None and loaded_str is not None
    assert type(loaded_int.metadata["sessionCount"]) is int
    assert loaded_str.metadata["sessionCount"] == "10"
    assert type(loaded_int.purchase_tier) is int
    assert type(loaded_int.is_active) is bool
    assert loaded_int.created_at == T0


def test_record_purchase_without_outbox_row(course_store: CourseStore) -> None:
    purchase = make_purchase()
    assert course_store.record_purchase(purchase, CONSUMER, key_for(purchase), None) is True
    assert course_store.purchase_for_payment(purchase.payment_id) == purchase
    assert course_store.pending_outbox(10) == []


def test_purchase_for_unknown_payment_is_none(course_store: CourseStore) -> None:
    assert course_store.purchase_for_payment(str(uuid.uuid4())) is None


def test_purchased_payments_names_those_with_a_purchase_active_or_not(course_store: CourseStore) -> None:
    bought, refunded = make_purchase(), make_purchase(is_active=False)
    for purchase in (bought, refunded):
        assert course_store.record_purchase(purchase, CONSUMER, key_for(purchase), None) is True
    unknown = str(uuid.uuid4())
    asked = [bought.payment_id, unknown, refunded.payment_id, bought.payment_id]
    assert course_store.purchased_payments(asked) == {bought.payment_id, refunded.payment_id}
    assert course_store.purchased_payments([]) == set()
    many = [str(uuid.uuid4()) for _ in range(1200)] + [bought.payment_id]  # more than one statement's parameters
    assert course_store.purchased_payments(many) == {bought.payment_id}


# --- W6: idempotency ---------------------------------------------------------------------------------


def test_w6_same_key_twice_records_once(course_store: CourseStore) -> None:
    purchase = make_purchase()
    assert record(course_store, purchase) is True
    redelivered = dataclasses.replace(purchase, id=str(uuid.uuid4()))  # the worker mints a new id
    assert record(course_store, redelivered, key_for(purchase)) is False
    assert course_store.all_purchases() == [purchase]
    assert len(course_store.pending_outbox(10)) == 1


def test_w6_other_key_same_payment_writes_nothing(course_store: CourseStore) -> None:
    """A lost race on UNIQUE payment_id is checked and answered False, not raised, and nothing of the
    losing transaction remains: no tracking row, no outbox row."""
    purchase = make_purchase()
    assert record(course_store, purchase) is True
    rival = dataclasses.replace(purchase, id=str(uuid.uuid4()), created_at=T0 + 5)
    assert record(course_store, rival, "another-key") is False
    assert course_store.all_purchases() == [purchase]
    assert not course_store.is_processed(CONSUMER, "another-key")
    assert len(course_store.pending_outbox(10)) == 1


def test_w6_already_processed_key_writes_nothing(course_store: CourseStore) -> None:
    purchase = make_purchase()
    course_store.mark_processed(CONSUMER, key_for(purchase))
    assert record(course_store, purchase) is False
    assert course_store.purchase_for_payment(purchase.payment_id) is None
    assert course_store.pending_outbox(10) == []


def test_w6_tracking_is_per_consumer(course_store: CourseStore) -> None:
    purchase = make_purchase()
    course_store.mark_processed("another-consumer", key_for(purchase))
    assert record(course_store, purchase) is True


def test_w6_repurchase_of_a_course_with_another_payment_is_a_second_purchase(course_store: CourseStore) -> None:
    first = make_purchase(created_at=T0)
    again = make_purchase(created_at=T0 + 10)  # same student and course, another payment
    assert record(course_store, first) is True
    assert record(course_store, again) is True
    assert course_store.purchases_for_student("student-1") == [first, again]


def test_w6_concurrent_deliveries_record_exactly_one_purchase(course_store: CourseStore) -> None:
    """Whatever the concurrency: one purchase, one tracking row, one outbox row per payment."""
    payment_id = str(uuid.uuid4())
    rivals = [make_purchase(payment_id=payment_id) for _ in range(8)]
    results: list[bool] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(rivals))

    def deliver(purchase: Purchase, key: str) -> None:
        try:
            start.wait()
            results.append(record(course_store, purchase, key))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(p, "same-key" if i % 2 else f"key-{i}"))
               for i, p in enumerate(rivals)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(results) == [False] * 7 + [True]
    assert len(course_store.all_purchases()) == 1
    assert len(course_store.pending_outbox(10)) == 1


@pytest.mark.parametrize("tier", [0, 201, 250])
def test_tier_out_of_range_is_an_error_and_writes_nothing(course_store: CourseStore, tier: int) -> None:
    purchase = make_purchase(purchase_tier=tier)
    with pytest.raises(ValueError):
        record(course_store, purchase)
    assert course_store.all_purchases() == []
    assert not course_store.is_processed(CONSUMER, key_for(purchase))
    assert course_store.pending_outbox(10) == []


def test_unknown_metadata_source_is_an_error(course_store: CourseStore) -> None:
    with pytest.raises(ValueError):
        record(course_store, make_purchase(metadata_source="guess"))
    assert course_store.all_purchases() == []


# --- track=False (named defects only) -----------------------------------------------------------------


def test_untracked_record_writes_no_tracking_row(course_store: CourseStore) -> None:
    purchase = make_purchase()
    assert record(course_store, purchase, track=False) is True
    assert course_store.purchase_for_payment(purchase.payment_id) == purchase
    assert not course_store.is_processed(CONSUMER, key_for(purchase))
    assert len(course_store.pending_outbox(10)) == 1


def test_untracked_record_skips_the_processed_check(course_store: CourseStore) -> None:
    purchase = make_purchase()
    course_store.mark_processed(CONSUMER, key_for(purchase))  # the marker-outside-transaction defect
    assert record(course_store, purchase, track=False) is True
    assert course_store.purchase_for_payment(purchase.payment_id) == purchase


def test_untracked_duplicate_still_meets_unique_payment_id(course_store: CourseStore) -> None:
    purchase = make_purchase()
    assert record(course_store, purchase, track=False) is True
    twin = dataclasses.replace(purchase, id=str(uuid.uuid4()))
    assert record(course_store, twin, track=False) is False
    assert course_store.all_purchases() == [purchase]
    assert len(course_store.pending_outbox(10)) == 1


# --- tracking rows ------------------------------------------------------------------------------------


def test_mark_processed_is_idempotent(course_store: CourseStore) -> None:
    assert not course_store.is_processed(CONSUMER, "k")
    course_store.mark_processed(CONSUMER, "k")
    course_store.mark_processed(CONSUMER, "k")
    assert course_store.is_processed(CONSUMER, "k")
    assert not course_store.is_processed("another-consumer", "k")
    assert not course_store.is_processed(CONSUMER, "k2")


# --- S1: the learning view's read ---------------------------------------------------------------------


def test_s1_purchases_for_student_are_active_own_and_oldest_first(course_store: CourseStore) -> None:
    newest = make_purchase(created_at=T0 + 30, course_id="course-3")
    oldest = make_purchase(created_at=T0, course_id="course-1")
    middle = make_purchase(created_at=T0 + 20, course_id="course-2")
    inactive = make_purchase(created_at=T0 + 10, is_active=False)
    someone_else = make_purchase(created_at=T0 + 5, student_id="student-2")
    for purchase in (newest, oldest, inactive, someone_else, middle):
        assert record(course_store, purchase) is True

    assert course_store.purchases_for_student("student-1") == [oldest, middle, newest]
    assert course_store.purchases_for_student("student-2") == [someone_else]
    assert course_store.purchases_for_student("student-none") == []
    everything = sorted(course_store.all_purchases(), key=lambda p: p.id)
    assert everything == sorted([newest, oldest, middle, inactive, someone_else], key=lambda p: p.id)


def test_merged_metadata_with_any_allowed_text_is_stored_as_written(course_store: CourseStore) -> None:
    """W4/F2: the merged metadata keeps U+0000 and characters outside the BMP, in both stores."""
    purchase = make_purchase(metadata={**METADATA, "classTypeTitle": "a\x00b \U0001f600"})
    record(course_store, purchase)
    assert course_store.purchase_for_payment(purchase.payment_id) == purchase
