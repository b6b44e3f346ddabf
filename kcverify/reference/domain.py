"""The purchase flow's domain: payments and their state machine (P4), purchases, the metadata merge
(W4), idempotency keys, and the event envelopes of contracts/events/. Pure functions and frozen
values only: no I/O, so every rule here is unit-testable in microseconds."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kcverify.core.clock import rfc3339
from kcverify.core.ids import event_id_for
from kcverify.spec import names

# The rules' literal names, shared with the verifier (kcverify.spec.names).
REQUIRED_METADATA = names.REQUIRED_METADATA
TOPIC_CONFIRMED = names.TOPIC_CONFIRMED
TOPIC_CREATED = names.TOPIC_CREATED
TOPIC_DLQ = names.TOPIC_DLQ
TOPICS = names.TOPICS
EVENT_CONFIRMED = names.EVENT_CONFIRMED
EVENT_CREATED = names.EVENT_CREATED
EVENT_VERSION = names.EVENT_VERSION
WORKER_GROUP = names.WORKER_GROUP
INVALIDATOR_GROUP = names.INVALIDATOR_GROUP


class PaymentStatus(StrEnum):
    INITIATED = "initiated"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


# P4: the only legal moves. Anything else is a 409; repeating the current status is a no-op (200).
TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.INITIATED: frozenset(
        {PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.CANCELLED}
    ),
    PaymentStatus.SUCCEEDED: frozenset({PaymentStatus.REFUNDED}),
    PaymentStatus.FAILED: frozenset(),
    PaymentStatus.CANCELLED: frozenset(),
    PaymentStatus.REFUNDED: frozenset(),
}


class IllegalTransition(Exception):
    def __init__(self, current: PaymentStatus, requested: PaymentStatus) -> None:
        self.current = current
        self.requested = requested
        super().__init__(f"a {current} payment cannot become {requested}")


def transition(current: PaymentStatus, requested: PaymentStatus) -> bool:
    """True when the status changes, False for a repeat (idempotent retry); raises when illegal."""
    if current == requested:
        return False
    if requested not in TRANSITIONS[current]:
        raise IllegalTransition(current, requested)
    return True


@dataclass(frozen=True)
class Payment:
    id: str
    student_id: str
    course_id: str
    amount_cents: int
    currency: str
    status: PaymentStatus
    provider: str
    provider_payment_id: str | None
    metadata: dict[str, Any]
    created_at: float
    confirmed_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The API shape (contracts/openapi/payment-service.yaml, schema Payment)."""
        return {
            "id": self.id,
            "studentId": self.student_id,
            "courseId": self.course_id,
            "amountCents": self.amount_cents,
            "currency": self.currency,
            "status": str(self.status),
            "provider": self.provider,
            "providerPaymentId": self.provider_payment_id,
            "metadata": self.metadata,
            "createdAt": rfc3339(self.created_at),
            "confirmedAt": rfc3339(self.confirmed_at) if self.confirmed_at is not None else None,
        }


@dataclass(frozen=True)
class Purchase:
    id: str
    payment_id: str
    student_id: str
    course_id: str
    purchase_tier: int
    metadata: dict[str, Any]
    metadata_source: str  # "payment" | "event"
    is_active: bool
    created_at: float

    def to_json(self) -> dict[str, Any]:
        """The learning view's purchase item (contracts/schemas/learning-view.schema.json)."""
        return {
            "purchaseId": self.id,
            "paymentId": self.payment_id,
            "studentId": self.student_id,
            "courseId": self.course_id,
            "purchaseTier": self.purchase_tier,
            "metadata": self.metadata,
            "metadataSource": self.metadata_source,
            "isActive": self.is_active,
            "createdAt": rfc3339(self.created_at),
        }


def merge_metadata(payment_md: dict[str, Any], event_md: dict[str, Any]) -> dict[str, Any]:
    """W4: the payment row is the source of truth. For each key the payment's value wins when present
    and non-null; keys only the event carries are kept (verbatim)."""
    merged = dict(event_md)
    for key, value in payment_md.items():
        if value is not None:
            merged[key] = value
        else:
            merged.setdefault(key, None)
    return merged


def confirmed_key(payment_id: str) -> str:
    return f"payment:{payment_id}:{EVENT_CONFIRMED}"


def created_key(purchase_id: str) -> str:
    return f"purchase:{purchase_id}:{EVENT_CREATED}"


def cache_key(student_id: str) -> str:
    return f"student:learning:{student_id}"


@dataclass(frozen=True)
class OutboxMessage:
    """A message waiting in a database's outbox table to be published by a relay (P3, W6)."""

    topic: str
    key: str
    value: bytes
    headers: tuple[tuple[str, str], ...] = ()
    id: int | None = None  # assigned by the store
    created_at: float = 0.0


def envelope(*, event_type: str, payload: dict[str, Any], correlation_id: str, idempotency_key: str,
             source: str, occurred_at: float, event_id: str | None = None) -> dict[str, Any]:
    """The common envelope of contracts/events/envelope.schema.json. The event id is derived from the
    idempotency key unless given, so a re-publish carries the same id."""
    return {
        "eventId": event_id or event_id_for(idempotency_key),
        "type": event_type,
        "version": EVENT_VERSION,
        "occurredAt": rfc3339(occurred_at),
        "correlationId": correlation_id,
        "idempotencyKey": idempotency_key,
        "source": source,
        "payload": payload,
    }


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode("utf-8")


def event_message(topic: str, key: str, event: dict[str, Any]) -> OutboxMessage:
    """An outbox message for an event: Kafka key = studentId, headers repeat the envelope's ids."""
    headers = tuple(
        (name, str(event[name])) for name in names.EVENT_HEADERS
    )
    return OutboxMessage(topic=topic, key=key, value=encode(event), headers=headers)


def purchase_confirmed(payment: Payment, occurred_at: float) -> dict[str, Any]:
    return envelope(
        event_type=EVENT_CONFIRMED,
        payload={
            "paymentId": payment.id,
            "studentId": payment.student_id,
            "courseId": payment.course_id,
            "amountCents": payment.amount_cents,
            "currency": payment.currency,
            "metadata": payment.metadata,
        },
        correlation_id=payment.id,
        idempotency_key=confirmed_key(payment.id),
        source="payment-service",
        occurred_at=occurred_at,
    )


def purchase_created(purchase: Purchase, occurred_at: float,
                     metadata: dict[str, Any] | None = None, correlation_id: str | None = None) -> dict[str, Any]:
    return envelope(
        event_type=EVENT_CREATED,
        payload={
            "purchaseId": purchase.id,
            "paymentId": purchase.payment_id,
            "studentId": purchase.student_id,
            "courseId": purchase.course_id,
            "purchaseTier": purchase.purchase_tier,
            "metadata": purchase.metadata if metadata is None else metadata,
        },
        correlation_id=purchase.payment_id if correlation_id is None else correlation_id,
        idempotency_key=created_key(purchase.id),
        source="purchase-worker",
        occurred_at=occurred_at,
    )


@dataclass(frozen=True)
class DeadLetter:
    """contracts/events/dead-letter.schema.json."""

    original_event: bytes
    original_topic: str
    partition: int
    offset: int
    reason: str
    error: str
    attempts: int
    first_failed_at: float
    dead_lettered_at: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        try:
            original: Any = json.loads(self.original_event)
        except (ValueError, UnicodeDecodeError):
            original = self.original_event.decode("utf-8", errors="replace")
        return {
            **self.extra,
            "originalEvent": original,
            "originalTopic": self.original_topic,
            "partition": self.partition,
            "offset": self.offset,
            "reason": self.reason,
            "error": self.error,
            "attempts": self.attempts,
            "firstFailedAt": rfc3339(self.first_failed_at),
            "deadLetteredAt": rfc3339(self.dead_lettered_at),
        }


class DeadLetterReason(StrEnum):
    SCHEMA_VIOLATION = "schema_violation"
    PAYMENT_NOT_SUCCEEDED = "payment_not_succeeded"
    RETRIES_EXHAUSTED = "retries_exhausted"
    INVALID_METADATA = "invalid_metadata"
