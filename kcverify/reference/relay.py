"""The outbox relay: publishes a database's outbox rows and then marks them published (P3, W6).

At least once by construction: a crash after publishing and before marking re-publishes the same rows
(same event ids) on the next run, and the consumers' idempotency absorbs the duplicate."""

from __future__ import annotations

import json
import time
import uuid

from kcverify.core.clock import Clock
from kcverify.core.errors import BusUnavailable, StoreUnavailable
from kcverify.reference import domain
from kcverify.reference.defects import Defects
from kcverify.reference.instrument import CrashPoints, Tracer
from kcverify.reference.ports import Bus, OutboxStore

# What the slowdown `relay-sleeps-before-publish` costs each batch of the payment relay, in seconds.
SLEEP_BEFORE_PUBLISH = 0.25


class OutboxRelay:
    def __init__(self, *, name: str, store: OutboxStore, bus: Bus, clock: Clock, crash: CrashPoints,
                 tracer: Tracer, defects: Defects, batch: int = 100, retry_after: float = 1.0) -> None:
        self.name = name
        self._defects = defects
        self._store = store
        self._bus = bus
        self._clock = clock
        self._crash = crash
        self._tracer = tracer
        self._batch = batch
        self._retry_after = retry_after
        self._retry_at: float | None = None  # set while rows are stuck behind a failure

    def next_wakeup(self) -> float | None:
        return self._retry_at

    def run_once(self) -> int:
        """Publish one batch; returns how many rows were published (0 when idle or unavailable)."""
        if self._retry_at is not None and self._clock.now() < self._retry_at:
            return 0
        self._retry_at = None
        try:
            rows = self._store.pending_outbox(self._batch)
        except StoreUnavailable as exc:
            self._tracer.emit(self.name, "outbox_read_failed", error=str(exc))
            self._retry_at = self._clock.now() + self._retry_after
            return 0
        if rows and self.name == "payment-relay" and self._defects.on("relay-sleeps-before-publish"):
            time.sleep(SLEEP_BEFORE_PUBLISH)  # real time: a slowdown is only seen on a real-time target
        if self._defects.on("relay-newest-first"):  # "ORDER BY created_at DESC": the freshest rows first
            rows = sorted(rows, key=lambda row: row.id or 0, reverse=True)
        published: list[int] = []
        for row in rows:
            try:
                value, headers = row.value, row.headers
                if self._defects.on("relay-fresh-event-id"):
                    value, headers = _fresh_event_id(value, headers)
                delivered = self._bus.publish(row.topic, row.key, value, headers)
            except BusUnavailable as exc:
                self._tracer.emit(self.name, "publish_failed", outboxId=row.id, error=str(exc))
                self._retry_at = self._clock.now() + self._retry_after
                if self._defects.on("relay-skips-refused-row"):  # "one bad row must not hold up the batch"
                    continue
                break
            assert row.id is not None
            published.append(row.id)
            self._tracer.emit(self.name, "published", outboxId=row.id, topic=delivered.topic,
                              partition=delivered.partition, offset=delivered.offset)
        if not published:
            return 0
        if self._defects.on("relay-marks-whole-batch"):  # "the batch went out": every row fetched is marked
            published = [row.id for row in rows if row.id is not None]
        self._crash.hit(f"{self.name}.after_publish")
        try:
            self._store.mark_published(published, self._clock.now())
        except StoreUnavailable as exc:  # rows stay pending and are published again: at least once
            self._tracer.emit(self.name, "mark_failed", error=str(exc))
            self._retry_at = self._clock.now() + self._retry_after
        return len(published)


def _fresh_event_id(value: bytes, headers: tuple[tuple[str, str], ...]) -> tuple[bytes, tuple[tuple[str, str], ...]]:
    """The defect: "every Kafka message gets its own id", so a re-publish no longer is the same event."""
    event = json.loads(value)
    event["eventId"] = str(uuid.uuid4())
    return domain.encode(event), tuple((k, event["eventId"] if k == "eventId" else v) for k, v in headers)
