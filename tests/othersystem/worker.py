"""The enrollment worker: consumes `payments.confirmed` (group `enrollment-worker`, offsets committed by
hand after each record is handled), creates the course enrollment (no payment-id column) once per event
(`processed_events`, keyed by event id and consumer name), merges metadata payment-wins/event-fills,
invalidates the student's cached view after the commit, announces `enrollment.created`, and sends what
it cannot use to `dead-letter-queue` with the original event, offset, attempts and an error code:
INVALID_EVENT at once for an event it cannot parse, PAYMENT_NOT_PAID after 3 attempts for a payment that is
unknown or not paid, PROCESSING_FAILED after 3 attempts for a database error. One enrollment per payment:
`processed_events` also remembers the payment (`payment:{id}`), since an enrollment has no payment id."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import redis
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from psycopg.types.json import Jsonb

from tests.othersystem.common import (
    CACHE_KEY,
    CONFIRMED_TOPIC,
    CREATED_TOPIC,
    DEAD_LETTER_TOPIC,
    WORKER_GROUP,
    WORKER_NAME,
    Flaws,
)

ATTEMPTS = 3
BACKOFF = (1.0, 2.0)


class Poison(Exception):
    """An event this worker can never use."""


class NotPaid(Exception):
    """The event's payment is unknown or not paid (yet): retried, then dead-lettered."""


def merge(payment: dict[str, Any] | None, event: dict[str, Any], flaws: Flaws) -> dict[str, Any]:
    """Payment row wins where it has a value; the event fills keys the row lacks or holds null."""
    first, second = (payment or {}), event
    if "event-wins" in flaws:
        first, second = second, first
    merged = dict(second)
    merged.update({k: v for k, v in first.items() if v is not None})
    return merged


def _tier(event: dict[str, Any]) -> int:
    """The tier an event buys: its sessionCount, 1 when it has none."""
    return int(event["data"]["metadata"].get("sessionCount") or 1)


def _parse(raw: bytes | None, flaws: Flaws = frozenset()) -> dict[str, Any]:
    try:
        event = json.loads(raw or b"")
    except ValueError as exc:
        raise Poison(f"not JSON: {exc}") from exc
    data = event.get("data") if isinstance(event, dict) else None
    if not isinstance(data, dict) or event.get("eventType") != "payment.confirmed" or not event.get("eventId"):
        raise Poison("not a payment.confirmed envelope")
    for field in ("paymentId", "studentId", "courseId"):
        if not isinstance(data.get(field), str):
            raise Poison(f"data.{field} missing")
    if not isinstance(data.get("metadata"), dict):
        raise Poison("data.metadata is not an object")
    if "worker-dies-on-bad-event" in flaws:  # the tier is read before the count is validated: a ValueError escapes
        _tier(event)
    count = data["metadata"].get("sessionCount")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
        raise Poison("data.metadata.sessionCount is not a number")
    parsed: dict[str, Any] = event
    return parsed


class Worker:
    def __init__(self, dsn: str, bootstrap: str, redis_url: str, flaws: Flaws) -> None:
        self.dsn, self.flaws = dsn, flaws
        self.cache = redis.Redis.from_url(redis_url)
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": WORKER_GROUP,
                                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        self.assigned = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="enrollment-worker", daemon=True)

    def start(self) -> None:
        self.consumer.subscribe([CONFIRMED_TOPIC], on_assign=lambda c, parts: self.assigned.set())
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(15)
        if self.thread.is_alive():  # still polling: closing its clients under it crashes librdkafka
            return
        self.consumer.close()
        producer = self.__dict__.pop("producer", None)  # destroyed here, not by a later collection elsewhere
        if producer is not None:
            producer.flush(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self.consumer.poll(0.1)
            if msg is None or msg.error():
                continue
            if not self._handle(msg):  # poison-blocks: not handled, so read again, forever
                self.consumer.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))
                time.sleep(0.2)
                continue
            self.consumer.commit(message=msg, asynchronous=False)

    def _handle(self, msg: Message) -> bool:
        """Handle one record; False when it must be read again (never, unless poison-blocks)."""
        first_failed = datetime.now(UTC)
        try:
            event = _parse(msg.value(), self.flaws)
        except Poison as exc:
            if "poison-blocks" in self.flaws:
                return False
            self._dead_letter(msg, "INVALID_EVENT", str(exc), 1, first_failed)
            return True
        for attempt in range(1, ATTEMPTS + 1):
            try:
                self._enroll(event)
                return True
            except (psycopg.Error, NotPaid) as exc:
                if attempt == ATTEMPTS:
                    code = "PAYMENT_NOT_PAID" if isinstance(exc, NotPaid) else "PROCESSING_FAILED"
                    self._dead_letter(msg, code, f"{type(exc).__name__}: {exc}", attempt, first_failed)
                    return True
                time.sleep(BACKOFF[attempt - 1])
        return True

    def _enroll(self, event: dict[str, Any]) -> None:
        data = event["data"]
        with psycopg.connect(self.dsn) as conn:
            if "no-idempotency-guard" not in self.flaws:
                seen = conn.execute("SELECT 1 FROM processed_events WHERE event_id = ANY(%s) AND consumer=%s",
                                    ([event["eventId"], f"payment:{data['paymentId']}"], WORKER_NAME)).fetchone()
                if seen:
                    return
            if "dedupe-by-course" in self.flaws and conn.execute(
                    "SELECT 1 FROM learning.course_enrollments WHERE student_ref=%s AND course_ref=%s AND active",
                    (data["studentId"], data["courseId"])).fetchone():
                return
            row = conn.execute("SELECT meta FROM billing.payments WHERE payment_id::text=%s AND state='succeeded'",
                               (data["paymentId"],)).fetchone()
            if row is None:
                raise NotPaid(f"payment {data['paymentId']} is not paid")
            meta = merge(row[0] if row else None, data["metadata"], self.flaws)
            if "stringified-session-count" in self.flaws:
                meta["sessionCount"] = str(meta.get("sessionCount"))
            enrollment = str(uuid.uuid4())
            enrolled_at = conn.execute(
                "INSERT INTO learning.course_enrollments (enrollment_id, student_ref, course_ref, tier, meta, "
                "meta_origin) VALUES (%s,%s,%s,%s,%s,%s) RETURNING enrolled_at",
                (enrollment, data["studentId"], data["courseId"], int(meta.get("sessionCount") or 1), Jsonb(meta),
                 "payment" if row else "event")).fetchone()
            for seen_key in (event["eventId"], f"payment:{data['paymentId']}"):
                conn.execute("INSERT INTO processed_events (event_id, consumer) VALUES (%s,%s) ON CONFLICT DO NOTHING",
                             (seen_key, WORKER_NAME))
        # committed: only now may the next read load the view again
        if "stale-cache" not in self.flaws:
            self.cache.delete(CACHE_KEY.format(studentId=data["studentId"]))
        created = {"eventId": str(uuid.uuid4()), "eventType": "enrollment.created",
                   "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                   "data": {"enrollmentId": enrollment, "paymentId": data["paymentId"], "studentId": data["studentId"],
                            "courseId": data["courseId"], "metadata": meta,
                            "enrolledAt": enrolled_at[0].isoformat() if enrolled_at else None},
                   "_metadata": {"source": WORKER_NAME, "causationId": event["eventId"]}}
        self.producer.produce(CREATED_TOPIC, key=data["studentId"], value=json.dumps(created).encode())
        self.producer.flush(10)

    def _dead_letter(self, msg: Message, code: str, reason: str, attempts: int, first_failed: datetime) -> None:
        raw = msg.value() or b""
        record = {"originalEvent": raw.decode("utf-8", "replace"), "originalTopic": msg.topic(),
                  "originalPartition": msg.partition(), "originalOffset": msg.offset(), "attempts": attempts,
                  "errorCode": code, "reason": reason, "firstFailedAt": first_failed.isoformat(),
                  "failedAt": datetime.now(UTC).isoformat()}
        self.producer.produce(DEAD_LETTER_TOPIC, key=msg.key(), value=json.dumps(record).encode())
        self.producer.flush(10)
