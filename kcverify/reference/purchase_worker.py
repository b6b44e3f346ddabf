"""The purchase worker: PURCHASE_CONFIRMED -> one purchase and one PURCHASE_CREATED (W1-W8).

Step-driven: `poll_once()` does one unit of work and returns what it did, so the embedded target and
the deterministic explorer can interleave it with everything else; the real-stack process calls it
in a loop. An event is in flight until it is processed or dead-lettered; only then is its offset
committed (W1). While it waits for a retry (W7) the worker polls nothing else, which keeps the
partition's order, and a crash in that window simply redelivers it."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from kcverify import contracts
from kcverify.core.clock import Clock
from kcverify.core.errors import BusUnavailable, StoreUnavailable
from kcverify.core.ids import IdSource
from kcverify.reference import domain
from kcverify.reference.defects import Defects
from kcverify.reference.domain import DeadLetter, DeadLetterReason, Payment, PaymentStatus, Purchase
from kcverify.reference.instrument import CrashPoints, Tracer
from kcverify.reference.membership import GroupMember
from kcverify.reference.ports import Bus, Consumer, CourseStore, Message, PaymentStore
from kcverify.reference.settings import Settings

COMPONENT = "purchase-worker"

# The header in which the `retry-at-topic-end` defect counts the attempts an event has had.
_ATTEMPT_HEADER = "x-attempt"
# The processed_events consumer under which the worker notes each record it dead-lettered (by topic,
# partition and offset), so a worker that dies between the letter and its offset commit does not send a
# second letter when the record comes round again (I2: dead-lettered exactly once).
DEAD_LETTERS = f"{domain.WORKER_GROUP}.dead-letters"

# The constant the production fallback silently substituted for a student's class time.
_DEFAULTED_CLASS_TIME = "16:00"
# The tier-from-package-table defect's lookup: the session packages the shop sold at launch.
_PACKAGE_TIERS = {10: 10, 20: 20, 30: 30}


class Step(StrEnum):
    IDLE = "idle"  # nothing to consume
    WAITING = "waiting"  # an event waits for its next retry
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    RETRY = "retry"
    DEAD_LETTERED = "dead_lettered"


@dataclass
class _InFlight:
    message: Message
    event: dict[str, Any] | None = None
    attempts: int = 0
    first_failed_at: float | None = None
    next_at: float = 0.0
    last_error: str = ""
    letter: _Outcome | None = None  # handled to a dead letter the broker did not take: only it is retried


@dataclass(frozen=True)
class _Outcome:
    step: Step
    reason: str = ""
    error: str = ""


class PurchaseWorker:
    def __init__(self, *, payments: PaymentStore, courses: CourseStore, bus: Bus, clock: Clock,
                 ids: IdSource, settings: Settings, defects: Defects, crash: CrashPoints,
                 tracer: Tracer) -> None:
        self._payments = payments
        self._courses = courses
        self._bus = bus
        self._clock = clock
        self._ids = ids
        self._settings = settings
        self._defects = defects
        self._crash = crash
        self._tracer = tracer
        reset = "latest" if defects.on("latest-offset-reset") else "earliest"
        self._member = GroupMember(bus, domain.WORKER_GROUP, [domain.TOPIC_CONFIRMED], reset,
                                   on_commit=self._committed)
        self._inflight: _InFlight | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def consumer(self) -> Consumer:
        return self._member.consumer

    def start(self) -> None:
        self._member.start()

    def close(self) -> None:
        """Graceful stop (SIGTERM): the current event is finished by the caller's loop first."""
        self._member.close()

    def abandon(self) -> None:
        """After a crash: drop everything in memory; uncommitted offsets are redelivered."""
        self._inflight = None
        self._member.abandon()

    def forget(self) -> None:
        """The first half of a crash, for a group crashing together (`GroupMember.forget`)."""
        self._member.forget()

    def next_wakeup(self) -> float | None:
        return self._inflight.next_at if self._inflight else None

    # --- the step ------------------------------------------------------------------------------

    def poll_once(self, timeout: float = 0.0) -> Step:
        inflight = self._inflight
        if inflight is None:
            try:
                message = self._member.poll(timeout)  # commits the handled records before it waits
            except BusUnavailable as exc:  # joining or polling failed (the broker away): try again at a later step
                self._tracer.emit(COMPONENT, "poll_failed", error=str(exc))
                return Step.IDLE
            if message is None:
                return Step.IDLE
            if self._defects.on("commit-offset-before-handling"):
                self.consumer.commit(message)  # the defect: a crash from here on loses the event
            self._crash.hit("worker.after_poll")
            inflight = self._inflight = _InFlight(message)
            if self._defects.on("retry-at-topic-end"):
                inflight.attempts = next((int(v) for k, v in message.headers if k == _ATTEMPT_HEADER), 0)
        elif self._clock.now() < inflight.next_at:
            return Step.WAITING
        return self._attempt(inflight)

    def _attempt(self, inflight: _InFlight) -> Step:
        msg = inflight.message
        if inflight.letter is not None:  # the handling is over (W7: no 4th attempt); publish the letter again
            outcome = inflight.letter
        else:
            inflight.attempts += 1
            self._tracer.emit(COMPONENT, "attempt", attempt=inflight.attempts, topic=msg.topic,
                              partition=msg.partition, offset=msg.offset,
                              eventId=(inflight.event or {}).get("eventId"))
            outcome = self._handle(inflight)
        if outcome.step == Step.RETRY and self._defects.on("retry-at-topic-end") \
                and outcome.reason != DeadLetterReason.SCHEMA_VIOLATION:
            return self._retry_at_topic_end(inflight)
        if outcome.step == Step.RETRY:
            now = self._clock.now()
            inflight.first_failed_at = now if self._defects.on("letter-first-failed-at-last-try") \
                else inflight.first_failed_at or now  # "when it failed": each failure stamps it again
            inflight.last_error = outcome.error
            inflight.next_at = now + self._settings.backoff(inflight.attempts)
            self._tracer.emit(COMPONENT, "retry_scheduled", attempt=inflight.attempts, offset=msg.offset,
                              partition=msg.partition, reason=outcome.reason, error=outcome.error,
                              nextAt=inflight.next_at)
            if self._defects.on("worker-commits-while-retrying"):  # "so the broker does not redeliver it"
                self._member.handled(msg, "waiting")
            self._member.flush()  # nothing else is polled while this event waits: commit what was handled
            return Step.RETRY
        if outcome.step == Step.DEAD_LETTERED and not self._dead_letter(inflight, outcome) \
                and not self._defects.on("commit-despite-dead-letter-failure"):
            self._member.flush()
            return Step.RETRY
        if outcome.step in (Step.PROCESSED, Step.DUPLICATE):
            self._crash.hit("worker.after_commit")
        self._inflight = None
        # Committed with the rest of its batch, at the next poll that finds nothing fetched (membership.py).
        self._member.handled(msg, str(outcome.step))
        return outcome.step

    def _committed(self, msg: Message, outcome: str, error: BusUnavailable | None) -> None:
        if error is not None:  # e.g. lost the partition in a rebalance: its new owner gets the message
            # again and the idempotency guard (W6) absorbs the duplicate
            self._tracer.emit(COMPONENT, "commit_failed", partition=msg.partition, offset=msg.offset, error=str(error))
        else:
            self._tracer.emit(COMPONENT, "offset_committed", partition=msg.partition, offset=msg.offset,
                              outcome=outcome)

    def _retry_at_topic_end(self, inflight: _InFlight) -> Step:
        """The defect: "never block the partition on a slow dependency". The event goes back to the end of
        its topic with its attempt count in a header, and its offset is committed, so the events behind
        it, the same student's included, are handled before it comes round again."""
        msg = inflight.message
        headers = tuple((k, v) for k, v in msg.headers if k != _ATTEMPT_HEADER)
        try:
            self._bus.publish(msg.topic, msg.key, msg.value, (*headers, (_ATTEMPT_HEADER, str(inflight.attempts))))
        except BusUnavailable:
            inflight.next_at = self._clock.now() + self._settings.backoff(inflight.attempts)
            return Step.RETRY
        self._inflight = None
        self._member.handled(msg, "requeued")  # a refused commit: the next owner gets the original again
        self._tracer.emit(COMPONENT, "requeued", partition=msg.partition, offset=msg.offset, attempt=inflight.attempts)
        return Step.RETRY

    def _final(self, inflight: _InFlight) -> bool:
        attempts = 1 if self._defects.on("no-retries") else self._settings.retry_attempts
        return inflight.attempts >= attempts

    def _retry_or(self, inflight: _InFlight, reason: str, error: str) -> _Outcome:
        if self._final(inflight):
            return _Outcome(Step.DEAD_LETTERED, reason, error)
        return _Outcome(Step.RETRY, reason, error)

    def _handle(self, inflight: _InFlight) -> _Outcome:
        if inflight.event is None:
            if self._defects.on("worker-dies-on-bad-session-count"):
                self._eager_tier(inflight.message.value)
            event, problem = _decode(inflight.message.value)
            if event is None:
                if self._defects.on("poison-blocks-partition"):
                    return _Outcome(Step.RETRY, DeadLetterReason.SCHEMA_VIOLATION, problem)
                return _Outcome(Step.DEAD_LETTERED, DeadLetterReason.SCHEMA_VIOLATION, problem)  # W2
            inflight.event = event
        event = inflight.event
        key = event["idempotencyKey"]
        tracked = not self._defects.on("no-idempotency-guard")
        try:
            if tracked and self._courses.is_processed(domain.WORKER_GROUP, key):
                self._tracer.emit(COMPONENT, "duplicate_skipped", eventId=event["eventId"], idempotencyKey=key)
                return _Outcome(Step.DUPLICATE)
        except StoreUnavailable as exc:
            return self._retry_or(inflight, DeadLetterReason.RETRIES_EXHAUSTED, str(exc))

        payload = event["payload"]
        source = "payment"
        course_id = payload["courseId"]  # W5's fallback has nothing else; a payment read below overrides it
        try:
            payment = self._find_succeeded(payload["paymentId"], payload["studentId"])
        except StoreUnavailable as exc:
            eager = self._defects.on("fallback-at-first-failure")  # "a complete event needs no waiting"
            if not self._final(inflight) and not (eager and self._fallback_metadata(payload["metadata"], str(exc))):
                return _Outcome(Step.RETRY, "payments_db_unavailable", str(exc))
            fallback = self._fallback_metadata(payload["metadata"], str(exc))
            if fallback is None:
                return _Outcome(Step.DEAD_LETTERED, DeadLetterReason.RETRIES_EXHAUSTED,
                                f"payments_db unreadable and event metadata incomplete: {exc}")
            merged, source = fallback, "payment" if self._defects.on("fallback-source-not-marked") else "event"
        else:
            if payment is None:  # W3: forged, unpaid or foreign payment: never grant a course
                return self._retry_or(inflight, DeadLetterReason.PAYMENT_NOT_SUCCEEDED,
                                      f"no succeeded payment {payload['paymentId']} "
                                      f"for student {payload['studentId']}")
            if not self._defects.on("purchase-course-from-event"):
                course_id = payment.course_id  # W3: the course that was paid for, not the one the event names
            if self._defects.on("event-wins-merge"):
                merged = domain.merge_metadata(payload["metadata"], payment.metadata)
            elif self._defects.on("merge-null-overrides-event"):  # "the payment row wins": every key of it
                merged = {**payload["metadata"], **payment.metadata}
            elif self._defects.on("merge-drops-falsy-payment-values"):  # `if value:` where `is not None` was meant
                merged = {**payload["metadata"], **{key: value for key, value in payment.metadata.items() if value}}
            elif self._defects.on("merge-nested-event-wins"):  # a "deep merge": nested objects field by field
                merged = domain.merge_metadata(payment.metadata, payload["metadata"])
                for key, value in payload["metadata"].items():
                    if isinstance(value, dict) and isinstance(merged.get(key), dict):
                        merged[key] = {**merged[key], **value}
            elif self._defects.on("merge-drops-event-only-keys"):  # the row's keys, gaps filled from the event
                merged = {key: value if value is not None else payload["metadata"].get(key)
                          for key, value in payment.metadata.items()}
            else:
                merged = domain.merge_metadata(payment.metadata, payload["metadata"])  # W4

        violations = contracts.validate("schemas/purchase-metadata", merged)
        if violations:
            return _Outcome(Step.DEAD_LETTERED, DeadLetterReason.INVALID_METADATA,
                            "; ".join(str(v) for v in violations))
        return self._record(inflight, event, merged, source, course_id)

    def _find_succeeded(self, payment_id: str, student_id: str) -> Payment | None:
        """W3: the payment of this id, this student and status succeeded."""
        if self._defects.on("worker-ignores-event-student"):  # "the payment id is unique anyway"
            stored = self._payments.find_succeeded(payment_id, student_id)
            if stored is None:  # then by id alone
                by_id = self._payments.get_payment(payment_id)
                stored = by_id if by_id is not None and by_id.status == PaymentStatus.SUCCEEDED else None
            return stored
        stored = self._payments.find_succeeded(payment_id, student_id)
        if stored is None and self._defects.on("worker-accepts-refunded"):  # "it was paid at some point"
            by_id = self._payments.get_payment(payment_id)
            if by_id is not None and by_id.student_id == student_id and by_id.status == PaymentStatus.REFUNDED:
                stored = by_id
        return stored

    def _eager_tier(self, raw: bytes) -> None:
        """The defect: the tier is read from the raw event before it is validated, and the error a
        non-numeric sessionCount raises is caught by nobody: the worker dies with the event uncommitted."""
        try:
            session_count = json.loads(raw)["payload"]["metadata"]["sessionCount"]
        except (ValueError, UnicodeDecodeError, KeyError, TypeError):
            return  # nothing to read eagerly: the validation below takes over
        if session_count is None:
            return
        try:
            int(session_count)
        except (ValueError, TypeError, OverflowError):
            self._tracer.emit(COMPONENT, "unhandled_error", error=f"int({session_count!r})", level="error")
            self._crash.die("worker.after_poll")

    def _tier(self, session_count: Any) -> int:
        """The purchase's tier is its sessionCount (W4)."""
        if self._defects.on("tier-from-package-table"):  # the packages sold at launch; anything else is "basic"
            return _PACKAGE_TIERS.get(int(session_count), _PACKAGE_TIERS[10])
        return int(session_count)

    def _fallback_metadata(self, event_md: dict[str, Any], error: str) -> dict[str, Any] | None:
        """W5: the event's metadata, if complete; never silently dropped or defaulted fields."""
        metadata = dict(event_md)
        if self._defects.on("fallback-keeps-schema-keys-only"):  # "copy the fields the purchase needs"
            known = contracts.schema("schemas/purchase-metadata").get("properties", {})
            metadata = {key: value for key, value in metadata.items() if key in known}
        if self._defects.on("fallback-drops-fields"):
            metadata["classTime"] = _DEFAULTED_CLASS_TIME
        if self._defects.on("default-tier-30"):
            metadata.setdefault("sessionCount", 30)
        if contracts.validate("schemas/purchase-metadata", metadata):
            return None
        self._tracer.emit(COMPONENT, "fallback_to_event_metadata", level="warning", error=error)
        return metadata

    def _record(self, inflight: _InFlight, event: dict[str, Any], merged: dict[str, Any],
                source: str, course_id: str) -> _Outcome:
        payload = event["payload"]
        stored_md = dict(merged)
        if self._defects.on("string-session-count"):
            stored_md["sessionCount"] = str(merged["sessionCount"])
        purchase = Purchase(
            id=self._ids.uuid(),
            payment_id=payload["paymentId"],
            student_id=payload["studentId"],
            course_id=course_id,
            purchase_tier=self._tier(merged["sessionCount"]),
            metadata=stored_md,
            metadata_source=source,
            is_active=True,
            created_at=self._clock.now() + (3600 if self._defects.on("purchase-time-local-as-utc") else 0),
        )
        created_md = payload["metadata"] if self._defects.on("created-event-unmerged-metadata") else None
        outbox = domain.event_message(
            domain.TOPIC_CREATED, purchase.student_id,
            domain.purchase_created(purchase, purchase.created_at, created_md,
                                    purchase.id if self._defects.on("created-correlated-by-purchase") else None),
        )
        key = event["idempotencyKey"]
        try:
            if self._defects.on("unique-per-student-course") and any(
                p.course_id == purchase.course_id for p in self._courses.purchases_for_student(purchase.student_id)
            ):
                self._courses.mark_processed(domain.WORKER_GROUP, key)
                return _Outcome(Step.DUPLICATE)
            if self._defects.on("marker-outside-transaction"):
                self._courses.mark_processed(domain.WORKER_GROUP, key)
                self._crash.hit("worker.after_marker")
                created = self._courses.record_purchase(purchase, domain.WORKER_GROUP, key, outbox, track=False)
            elif self._defects.on("no-idempotency-guard"):
                created = self._courses.record_purchase(purchase, domain.WORKER_GROUP, key, outbox, track=False)
                if not created:  # "recovery" re-emits PURCHASE_CREATED with a fresh id every redelivery
                    again = replace(purchase, id=self._ids.uuid())
                    self._courses.enqueue_outbox(domain.event_message(
                        domain.TOPIC_CREATED, again.student_id, domain.purchase_created(again, again.created_at)))
            elif self._defects.on("created-outbox-separate-transaction"):  # "the announcement is best effort"
                created = self._courses.record_purchase(purchase, domain.WORKER_GROUP, key, None)
                if created:
                    self._courses.enqueue_outbox(outbox)
            else:
                created = self._courses.record_purchase(purchase, domain.WORKER_GROUP, key, outbox)  # W6
        except StoreUnavailable as exc:
            return self._retry_or(inflight, DeadLetterReason.RETRIES_EXHAUSTED, str(exc))
        if not created:
            self._tracer.emit(COMPONENT, "duplicate_skipped", eventId=event["eventId"], idempotencyKey=key)
            return _Outcome(Step.DUPLICATE)
        self._tracer.emit(COMPONENT, "purchase_recorded", purchaseId=purchase.id, paymentId=purchase.payment_id,
                          eventId=event["eventId"], metadataSource=source, attempt=inflight.attempts)
        return _Outcome(Step.PROCESSED)

    def _dead_letter(self, inflight: _InFlight, outcome: _Outcome) -> bool:
        """Publish the dead letter; False (and a retry later) when the broker cannot take it."""
        msg = inflight.message
        now = self._clock.now()
        original = msg.value
        if self._defects.on("dead-letter-from-parsed-event"):
            original = json.dumps(inflight.event).encode()
        letter = DeadLetter(
            original_event=original,
            original_topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            reason=outcome.reason,
            error=outcome.error,
            attempts=inflight.attempts,
            first_failed_at=inflight.first_failed_at or now,
            dead_lettered_at=now,
        )
        sent_as = f"{msg.topic}:{msg.offset}" if self._defects.on("dead-letter-marker-ignores-partition") \
            else f"{msg.topic}:{msg.partition}:{msg.offset}"  # which record was dead-lettered: all three name it
        try:
            if self._courses.is_processed(DEAD_LETTERS, sent_as):  # by a worker that died before its commit
                self._tracer.emit(COMPONENT, "dead_letter_already_sent", partition=msg.partition, offset=msg.offset)
                return True
        except StoreUnavailable:
            pass  # cannot tell: a second letter is better than none
        try:
            self._bus.publish(domain.TOPIC_DLQ, msg.key, domain.encode(letter.to_json()), msg.headers)
        except BusUnavailable as exc:
            inflight.next_at = now + self._settings.backoff(inflight.attempts)
            inflight.letter = outcome  # the handling did not fail again; only the dead letter waits
            self._tracer.emit(COMPONENT, "dead_letter_failed", error=str(exc))
            return False
        with contextlib.suppress(StoreUnavailable):  # noted at once: the window for a second letter is this call
            self._courses.mark_processed(DEAD_LETTERS, sent_as)
        self._tracer.emit(COMPONENT, "dead_lettered", reason=outcome.reason, attempts=inflight.attempts,
                          partition=msg.partition, offset=msg.offset,
                          eventId=(inflight.event or {}).get("eventId"))
        self._crash.hit("worker.after_dead_letter")
        return True


def _decode(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """W2: bytes -> a PURCHASE_CONFIRMED that satisfies its schema, or the reason it does not."""
    try:
        event = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"not JSON: {exc}"
    violations = contracts.validate("events/purchase-confirmed", event)
    if violations:
        return None, "; ".join(str(v) for v in violations[:5])
    assert isinstance(event, dict)
    return event, ""
