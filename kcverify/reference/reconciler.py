"""The reconciler (I1): a succeeded payment with no purchase after a grace period gets its
PURCHASE_CONFIRMED re-published through the payments outbox. The event id is derived from the
idempotency key, so if the original was merely slow the worker sees a duplicate and skips it.

The production system had no such thing: when its workers were down, payments succeeded, the API said
200, and nothing ever noticed that no purchase followed."""

from __future__ import annotations

from collections.abc import Callable

from kcverify.core.clock import Clock
from kcverify.core.errors import StoreUnavailable
from kcverify.reference import domain
from kcverify.reference.defects import Defects
from kcverify.reference.instrument import Tracer
from kcverify.reference.ports import Confirmation, CourseStore, PaymentStore

COMPONENT = "reconciler"
# The n-th re-publication of one orphan waits grace * 2**(n-1) after the previous one, at most
# grace * MAX_BACKOFF: a worker far behind (minutes of backlog after an outage) would otherwise receive
# a fresh copy of every orphan each grace period, and the copies grow its backlog faster than it drains.
MAX_BACKOFF = 16
# Records the worker group has yet to consume on the confirmed topic (None: unknown, the broker away).
Backlog = Callable[[], int | None]
# How late, in seconds of the clock, a confirmation may become visible after its confirmed_at (the
# confirming transaction's length): the watermark stays this far behind the scan, so a slow commit is
# still found by the next round. One later than that (a starved process, a clock stepped back) is found
# by the full scan that runs every FULL_SCAN_EVERY seconds of the clock, whatever the watermark says.
LATE_COMMIT = 10.0
FULL_SCAN_EVERY = 60.0


class Reconciler:
    def __init__(self, *, payments: PaymentStore, courses: CourseStore, clock: Clock, grace: float,
                 defects: Defects, tracer: Tracer, backlog: Backlog | None = None) -> None:
        """`backlog`: how far the worker group is behind on the confirmed topic. An orphan re-published
        once is not re-published again while the group has records left to consume (or the broker cannot
        say): its copy may still be queued ahead of the worker, and another copy would only lengthen the
        queue (under `kcverify chaos`, two thirds of the worker's records were such copies). Once the
        group has consumed everything and the purchase is still missing, the copy was consumed and lost,
        and the next one goes after its backoff. The first re-publication never waits for the backlog: it
        is what heals an event that never reached the topic."""
        self._payments = payments
        self._courses = courses
        self._clock = clock
        self._grace = grace
        self._defects = defects
        self._tracer = tracer
        self._backlog = backlog
        self._republished_at: dict[str, float] = {}
        self._republished_count: dict[str, int] = {}
        # Payments seen with their purchase. A purchase row is never deleted, so one seen stays done and
        # is not looked up in courses_db again: each round costs one narrow query plus the open payments,
        # not a purchase lookup per succeeded payment ever (quadratic over a long run).
        self._purchased: set[str] = set()
        # Every succeeded payment confirmed at or before this time has its purchase: the scan asks only for
        # the ones after it, so a round reads the recent confirmations, not every payment there ever was.
        self._settled_until: float | None = None
        self._full_scan_at: float | None = None  # when the last round read every succeeded payment
        # The open payments the last run_once found, and when: a settle asks next_wakeup right after a
        # run_once that re-published nothing, with nothing run in between, so one scan serves both.
        self._last_scan: tuple[float, list[Confirmation]] | None = None

    def _unpurchased(self, before: float) -> list[Confirmation]:
        """Succeeded payments confirmed at or before `before` that have no purchase yet."""
        purchased = self._purchased
        # rows as the store gives them (an adapter may give plain (id, confirmed_at) tuples): filtered by the
        # set in one pass before anything is built or looked up
        after = self._settled_until
        if self._full_scan_at is None or not 0 <= before - self._full_scan_at < FULL_SCAN_EVERY:
            after, self._full_scan_at = None, before
        rows = self._payments.succeeded_confirmed_before(before, after=after)
        unchecked = [c for c in rows if c[0] not in purchased]
        if unchecked:  # one read for the round: a reconciler starting on a long history asks once, not per payment
            purchased.update(self._courses.purchased_payments([payment_id for payment_id, _ in unchecked]))
        open_ = [Confirmation(payment_id, float(confirmed_at)) for payment_id, confirmed_at in unchecked
                 if payment_id not in purchased]
        if self._defects.on("reconciler-skips-owned-course"):  # "the student has that course already"
            open_ = [c for c in open_ if not self._owns_course(c.payment_id)]
        # below the oldest open one (and far enough behind the scan for a late commit), all is purchased
        mark = before - LATE_COMMIT
        if open_:
            mark = min(mark, min(c.confirmed_at for c in open_) - 0.001)
        if after is None or self._settled_until is None or mark > self._settled_until:
            self._settled_until = mark  # a full scan may lower it: a late commit it found stays in view
        return open_

    def run_once(self) -> int:
        """Re-publish each orphan (a succeeded payment past the grace period with no purchase), again after
        a wait that doubles with each re-publication (MAX_BACKOFF); returns how many were re-published."""
        if self._defects.on("no-reconciler"):
            return 0
        now = self._clock.now()
        count = 0
        self._last_scan = None
        try:
            pending = self._unpurchased(now)
            self._last_scan = (now, pending)
            held: bool | None = None  # asked once per round, and only when a copy is due again
            for orphan in (p for p in pending if self._waiting_since(p) <= now - self._grace):
                last = self._republished_at.get(orphan.payment_id)
                if last is not None and (now - last < self._wait(orphan.payment_id)
                                         or self._defects.on("reconciler-republishes-once")):  # "the worker has it"
                    continue
                if last is not None:
                    held = self._held() if held is None else held
                    if held:
                        continue
                payment = self._payments.get_payment(orphan.payment_id)
                if payment is None or payment.status != domain.PaymentStatus.SUCCEEDED or payment.confirmed_at is None:
                    continue  # refunded (or gone) between the two reads
                event = domain.purchase_confirmed(payment, payment.confirmed_at)
                self._payments.enqueue_outbox(domain.event_message(domain.TOPIC_CONFIRMED, payment.student_id, event))
                self._republished_at[payment.id] = now
                self._republished_count[payment.id] = self._republished_count.get(payment.id, 0) + 1
                self._tracer.emit(COMPONENT, "republished", paymentId=payment.id, eventId=event["eventId"])
                count += 1
                self._last_scan = None  # something changed: the next question scans again
        except StoreUnavailable as exc:
            self._last_scan = None
            self._tracer.emit(COMPONENT, "reconcile_failed", error=str(exc))
        return count

    def _owns_course(self, payment_id: str) -> bool:
        """The reconciler-skips-owned-course defect's test: a purchase of the payment's course by its student."""
        payment = self._payments.get_payment(payment_id)
        return payment is not None and any(p.course_id == payment.course_id
                                           for p in self._courses.purchases_for_student(payment.student_id))

    def _waiting_since(self, orphan: Confirmation) -> float:
        """When the payment's grace started: at its confirmation (I1)."""
        if self._defects.on("reconciler-grace-from-created"):  # the table's created_at, "close enough"
            payment = self._payments.get_payment(orphan.payment_id)
            return orphan.confirmed_at if payment is None else payment.created_at
        return orphan.confirmed_at

    def _held(self) -> bool:
        """True while the worker group still has records to consume (or cannot tell): copies wait."""
        if self._backlog is None:
            return False
        behind = self._backlog()
        return behind is None or behind > 0

    def _wait(self, payment_id: str) -> float:
        """How long after its last re-publication an orphan is due again (exponential, capped)."""
        count = self._republished_count.get(payment_id, 0)
        return float(self._grace * min(MAX_BACKOFF, 2 ** max(0, count - 1)))

    def next_wakeup(self) -> float | None:
        """When the next orphan becomes due, so a manual clock can jump there (None: nothing pending)."""
        if self._defects.on("no-reconciler"):
            return None
        now, scan = self._clock.now(), self._last_scan
        self._last_scan = None
        try:
            pending = scan[1] if scan is not None and scan[0] == now else self._unpurchased(now)
        except StoreUnavailable:
            return None
        again = [p for p in pending if p.payment_id in self._republished_at]
        if again and self._held():  # no copy is due while the worker group is behind: nothing to jump to
            pending = [p for p in pending if p.payment_id not in self._republished_at]
        dues = [p.confirmed_at + self._grace if p.payment_id not in self._republished_at
                else max(p.confirmed_at + self._grace, self._republished_at[p.payment_id] + self._wait(p.payment_id))
                for p in pending]
        return min(dues) if dues else None
