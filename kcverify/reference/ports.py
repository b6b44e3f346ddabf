"""The ports of the reference: what the components need from storage, the broker and the cache.

Each port has an embedded adapter (SQLite, an in-process log, a dict with TTLs) and a real one
(PostgreSQL, Kafka, Redis); one conformance suite per port in tests/adapters/ runs on both, so the
embedded twin behaves like the real thing wherever the flow depends on it. All methods that touch
storage may raise `StoreUnavailable` (transient); the cache raises `CacheUnavailable`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from kcverify.reference.domain import OutboxMessage, Payment, Purchase


class OutboxStore(Protocol):
    """The outbox half of a database: rows written in the same transaction as a state change."""

    def pending_outbox(self, limit: int) -> list[OutboxMessage]:
        """Unpublished rows, oldest first (by id)."""
        ...

    def mark_published(self, ids: Sequence[int], at: float) -> None: ...

    def enqueue_outbox(self, message: OutboxMessage) -> None:
        """Insert an outbox row in a transaction of its own (a reconciler re-publishing)."""
        ...


class Confirmation(NamedTuple):
    """A succeeded payment as the reconciler first needs it: which one, and since when."""

    payment_id: str
    confirmed_at: float


class PaymentStore(OutboxStore, Protocol):
    """payments_db: owned by the payment service; read by the worker (W3) and the reconciler (I1)."""

    def insert_payment(self, payment: Payment) -> None: ...

    def get_payment(self, payment_id: str) -> Payment | None: ...

    def save_status(self, payment: Payment, outbox: OutboxMessage | None) -> None:
        """P3: in ONE transaction, write the payment's status, provider ids and confirmedAt, and (when
        given) insert the outbox row. The row must exist."""
        ...

    def find_succeeded(self, payment_id: str, student_id: str) -> Payment | None:
        """W3: the payment WHERE id = ? AND student_id = ? AND status = 'succeeded', else None."""
        ...

    def succeeded_confirmed_before(self, before: float, after: float | None = None) -> list[tuple[str, float]]:
        """Id and confirmation time of each succeeded payment confirmed at or before `before` (and after
        `after`, when given: the reconciler's watermark), oldest first (the reconciler's candidates). Only
        the two columns: the reconciler asks on every settle round, so decoding every succeeded payment
        each time would make a long run quadratic. Plain `(id, confirmed_at)` tuples (a Confirmation is
        one, with names)."""
        ...

    def all_payments(self) -> list[Payment]: ...


class CourseStore(OutboxStore, Protocol):
    """courses_db: purchases, processed events (idempotency tracking) and its own outbox."""

    def record_purchase(self, purchase: Purchase, consumer: str, idempotency_key: str,
                        outbox: OutboxMessage | None, *, track: bool = True) -> bool:
        """W6: in ONE transaction, unless (consumer, idempotency_key) is already processed: insert the
        purchase (UNIQUE payment_id), the processed_events row and the outbox row. Returns False, with
        nothing written, when the key was processed already or a purchase for the payment exists
        (a concurrent consumer won the race: the unique violation is checked, not re-raised).
        `track=False` skips the processed_events row and its check (used only by named defects)."""
        ...

    def is_processed(self, consumer: str, idempotency_key: str) -> bool: ...

    def mark_processed(self, consumer: str, idempotency_key: str) -> None:
        """Insert the tracking row alone (idempotent): for consumers whose effect is not in this DB."""
        ...

    def purchases_for_student(self, student_id: str) -> list[Purchase]:
        """Active purchases of one student, oldest first."""
        ...

    def purchase_for_payment(self, payment_id: str) -> Purchase | None: ...

    def purchased_payments(self, payment_ids: Sequence[str]) -> set[str]:
        """Those of `payment_ids` that have a purchase (active or not): the reconciler's question about
        every open confirmation of a round, in one read instead of one per payment."""
        ...

    def all_purchases(self) -> list[Purchase]: ...


@dataclass(frozen=True)
class Message:
    """A record read from the bus."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    headers: tuple[tuple[str, str], ...]
    timestamp: float


@dataclass(frozen=True)
class Delivered:
    topic: str
    partition: int
    offset: int


class Consumer(Protocol):
    """One member of a consumer group. Offsets are committed explicitly, never automatically (W1)."""

    def poll(self, timeout: float = 0.0) -> Message | None: ...

    def commit(self, message: Message) -> None:
        """Commit `message.offset + 1` for its partition: everything up to it is handled."""
        ...

    def close(self) -> None:
        """Leave the group cleanly; uncommitted messages are redelivered to the next member."""
        ...


class Bus(Protocol):
    """A partitioned log with Kafka's semantics: per-key ordering (partition by key), consumer groups,
    committed offsets, redelivery of uncommitted messages, `earliest`/`latest` reset."""

    def create_topic(self, name: str, partitions: int) -> None:
        """Idempotent."""
        ...

    def publish(self, topic: str, key: str | None, value: bytes,
                headers: Sequence[tuple[str, str]] = ()) -> Delivered:
        """Synchronously acknowledged publish; raises BusUnavailable when it cannot be delivered."""
        ...

    def consumer(self, group: str, topics: Sequence[str], *, reset: str = "earliest") -> Consumer: ...

    def read_all(self, topic: str) -> list[Message]:
        """Every record of a topic, partition by partition (for evidence and DLQ replay)."""
        ...

    def end_offsets(self, topic: str) -> dict[int, int]:
        """partition -> offset of the next record to be written (evidence: nothing left unconsumed)."""
        ...

    def committed(self, group: str, topic: str) -> dict[int, int | None]:
        """partition -> the group's committed offset (None: never committed)."""
        ...


@dataclass(frozen=True)
class CacheEntry:
    value: bytes
    stored_at: float


class Cache(Protocol):
    """The learning-view cache. Every key has a version that `delete` bumps, so a reader that loaded
    rows before an invalidation cannot store them after it (S3's stale-set race)."""

    def get(self, key: str) -> CacheEntry | None: ...

    def version(self, key: str) -> int:
        """The key's current version; read it BEFORE loading from the database."""
        ...

    def set_if_version(self, key: str, value: bytes, ttl: float, version: int, now: float) -> bool:
        """Atomically store the value only if the key's version is still `version`."""
        ...

    def set(self, key: str, value: bytes, ttl: float, now: float) -> None:
        """Unconditional store (what a naive cache-aside does)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the value and bump the version."""
        ...
