"""The reconciler (I1): a succeeded payment with no purchase after a grace period gets its
PURCHASE_CONFIRMED re-published through the payments outbox. The event id is derived from the
idempotency key, so if the original was merely slow the worker sees a duplicate and skips it.

The production system had no such thing: when its workers were down, payments succeeded, the API said
200, and nothing ever noticed that no purchase followed."""

from __future__ import annotations

from kcverify.core.clock import Clock
from kcverify.core.errors import StoreUnavailable
from kcverify.reference import domain
from kcverify.reference.defects import Defects
from kcverify.reference.instrument import Tracer
from kcverify.reference.ports import CourseStore, PaymentStore

COMPONENT = "reconciler"


class Reconciler:
    def __init__(self, *, payments: PaymentStore, courses: CourseStore, clock: Clock, grace: float,
                 defects: Defects, tracer: Tracer) -> None:
        self._payments = payments
        self._courses = courses
        self._clock = clock
        self._grace = grace
        self._defects = defects
        self._tracer = tracer
        self._republished_at: dict[str, float] = {}

    def _orphans(self) -> list[domain.Payment]:
        """Succeeded payments past the grace period that have no purchase yet."""
        candidates = self._payments.succeeded_confirmed_before(self._clock.now() - self._grace)
        return [p for p in candidates if self._courses.purchase_for_payment(p.id) is None]

    def run_once(self) -> int:
        """Re-publish each orphan at most once per grace period; returns how many were re-published."""
        if self._defects.on("no-reconciler"):
            return 0
        now = self._clock.now()
        count = 0
        try:
            for payment in self._orphans():
                last = self._republished_at.get(payment.id)
                if last is not None and now - last < self._grace:
                    continue
                assert payment.confirmed_at is not None
                event = domain.purchase_confirmed(payment, payment.confirmed_at)
                self._payments.enqueue_outbox(domain.event_message(domain.TOPIC_CONFIRMED, payment.student_id, event))
                self._republished_at[payment.id] = now
                self._tracer.emit(COMPONENT, "republished", paymentId=payment.id, eventId=event["eventId"])
                count += 1
        except StoreUnavailable as exc:
            self._tracer.emit(COMPONENT, "reconcile_failed", error=str(exc))
        return count

    def next_wakeup(self) -> float | None:
        """When the next orphan becomes due, so a manual clock can jump there (None: nothing pending)."""
        if self._defects.on("no-reconciler"):
            return None
        try:
            pending = [p for p in self._payments.all_payments()
                       if p.status == domain.PaymentStatus.SUCCEEDED and p.confirmed_at is not None
                       and self._courses.purchase_for_payment(p.id) is None]
        except StoreUnavailable:
            return None
        dues = []
        for p in pending:
            assert p.confirmed_at is not None
            last = self._republished_at.get(p.id)
            dues.append(max(p.confirmed_at, last or p.confirmed_at) + self._grace)
        return min(dues) if dues else None
