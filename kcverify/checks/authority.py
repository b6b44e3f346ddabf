"""Authority: only the payment gateway changes a payment, and only its status (P2); only the student
or an admin reads a learning view, only an admin invalidates it (S1, S4). Judged from what was sent
and what came back, so a scenario need not spell out each refusal as an expectation."""

from __future__ import annotations

import json
from typing import Any

from kcverify.checks.base import Check
from kcverify.evidence.evidence import Exchange, decode, listed_purchases
from kcverify.spec import names
from kcverify.targets.base import Snapshot

# What a gateway's callback may carry; anything else names an immutable field (courseId, amount, metadata).
CONFIRM_FIELDS = frozenset({"status", "provider", "providerPaymentId"})
# How a confirmation was signed (Exchange.signature), when P2 says it must be refused (401)
REFUSED = {"none": "without a signature", "other-payment": "signed for another payment",
           "stale": "signed outside the timestamp tolerance"}
WHAT = {**REFUSED, "replay": "replaying an earlier callback"}
# How a read or an invalidation was sent with a broken bearer token (Exchange.credential): never accepted.
BROKEN_CREDENTIAL = {"none": "without a bearer token", "forged": "with a forged bearer token (its signature "
                     "changed)", "expired": "with a bearer token that expired an hour ago"}


def _payment_state(snapshot: Snapshot, payment_id: str) -> dict[str, Any]:
    """What a confirmation could change about one payment: its row, and its PURCHASE_CONFIRMED records."""
    row = next((p for p in snapshot.payments if p.get("id") == payment_id), None) or {}
    events = 0
    for record in snapshot.topics.get(names.TOPIC_CONFIRMED, []):
        payload = (decode(record) or {}).get("payload")
        if isinstance(payload, dict) and payload.get("paymentId") == payment_id:
            events += 1
    return {**row, "purchase-confirmed events": events}


def _brief(state: dict[str, Any], keys: list[str]) -> str:
    return ", ".join(f"{k}={state.get(k)!r}" for k in keys)


class AuthorityCheck(Check):
    name = "authority"
    rules = ("P2", "S1", "S4")
    description = ("confirmations not signed for their payment now, or changing fields, are refused, and replays "
                   "change nothing; views only for their student or an admin")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._seen = 0

    def after_step(self, step: int) -> None:
        self._scan()

    def finish(self) -> None:
        self._scan()
        self._course_unchanged()

    def _scan(self) -> None:
        for exchange in self.evidence.exchanges[self._seen:]:
            self._seen += 1
            if exchange.kind == "confirm" and exchange.signature not in (None, "fresh"):
                self._nothing_changed(exchange)
            status = exchange.reply.status
            if status is None or not 200 <= status < 300:
                continue
            where = exchange.step or None
            if exchange.kind == "confirm":
                if exchange.signature in REFUSED:
                    self.fail(f"unsigned:{exchange.start_seq}", f"a confirmation of {exchange.path} "
                              f"{REFUSED[exchange.signature]} was accepted ({status}): anyone holding an old or "
                              "another payment's callback can mark a payment succeeded", rules=("P2",), step=where)
                try:
                    body = json.loads(exchange.request_body)
                except ValueError:
                    continue
                extra = sorted(set(body) - CONFIRM_FIELDS) if isinstance(body, dict) else []
                if extra:
                    self.fail(f"immutable:{exchange.start_seq}", f"a confirmation changing {', '.join(extra)} was "
                              f"accepted ({status}); only status and provider ids may change", rules=("P2",),
                              step=where)
                continue
            if exchange.kind in ("read", "finish_read") and exchange.student is not None and status == 200:
                self._view_is_the_students(exchange)
            if exchange.credential in BROKEN_CREDENTIAL:
                read = exchange.kind == "read"
                what = "a read of the learning view" if read else "an invalidation of the cache"
                who = "that student or an admin" if read else "an admin"
                self.fail(f"credential:{exchange.start_seq}", f"{what} of {exchange.student} "
                          f"{BROKEN_CREDENTIAL[exchange.credential or '']} was accepted ({status}): only {who}, "
                          "proven by a valid token, may", rules=("S1",) if read else ("S4",), step=where)
            elif exchange.principal is not None and exchange.student is not None:
                subject, role = exchange.principal
                if role == "admin":
                    continue
                if exchange.kind == "invalidate_cache":
                    self.fail(f"invalidate:{exchange.start_seq}", f"{subject} (not an admin) invalidated the cache of "
                              f"{exchange.student} ({status})", rules=("S4",), step=where)
                elif subject != exchange.student:
                    self.fail(f"read:{exchange.start_seq}", f"{subject} read the learning view of {exchange.student} "
                              f"({status}): only that student or an admin may", rules=("S1",), step=where)

    def _view_is_the_students(self, exchange: Exchange) -> None:
        """S1: a learning view answers the purchases of the student it was asked for, and says so: its
        `studentId` and every purchase's `studentId` are that id, exactly (ids are case-sensitive). A field
        the system does not carry (its profile maps none) is not judged."""
        try:
            view = json.loads(exchange.reply.body)
        except ValueError:
            return  # the contract check reports a body that is not JSON
        if not isinstance(view, dict):
            return
        conventions, student = self.evidence.conventions, exchange.student
        where = exchange.step or None
        if conventions.carries(names.HTTP_LEARNING_VIEW, "studentId") and view.get("studentId") is not None \
                and view["studentId"] != student:
            self.fail(f"view-of:{exchange.start_seq}", f"the learning view asked for {student!r} is the view of "
                      f"{view['studentId']!r}: a student must be shown their own purchases only", rules=("S1",),
                      step=where)
        if not conventions.carries(names.HTTP_LEARNING_PURCHASE, "studentId"):
            return
        others = sorted({str(p["studentId"]) for p in listed_purchases(view)  # a null one is the contract's
                         if p.get("studentId") is not None and p["studentId"] != student})
        if others:
            self.fail(f"view-lists:{exchange.start_seq}", f"the learning view of {student!r} lists purchases of "
                      f"{', '.join(map(repr, others))}: a student must be shown their own purchases only",
                      rules=("S1",), step=where)

    def _nothing_changed(self, exchange: Exchange) -> None:
        """A confirmation the gateway did not just sign for this payment (none, another payment's, stale,
        or a replay) must leave the payment as it was: refused, or (a replay within the tolerance) a no-op.
        Judged on the payment row and its PURCHASE_CONFIRMED records before and after the step."""
        before = next((snap for step, snap in reversed(self.evidence.snapshots) if step < exchange.step), None)
        after = next((snap for step, snap in self.evidence.snapshots if step == exchange.step), None)
        if before is None or after is None:
            return
        payment_id = exchange.path.split("/")[-2]
        was, now = _payment_state(before, payment_id), _payment_state(after, payment_id)
        if was != now:
            changed = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
            self.fail(f"changed:{exchange.step}:{payment_id}", f"a confirmation of {exchange.path} "
                      f"{WHAT[exchange.signature or '']} changed {', '.join(changed)} "
                      f"({_brief(was, changed)} -> {_brief(now, changed)}): it must change nothing",
                      rules=("P2", "P4"), step=exchange.step or None)

    def _course_unchanged(self) -> None:
        """A payment pays for the course chosen at checkout (P2: immutable). That its purchase grants that
        course, to that student, is the invariants check's (W3)."""
        payments = {p["id"]: p for p in self.evidence.last.payments}
        for record in self.evidence.payments.values():
            row = payments.get(record.id)
            if row is not None and row.get("courseId") != record.course:
                self.fail(f"course:payment:{record.id}", f"{record.name}: the payment is for course "
                          f"{row.get('courseId')!r}, but {record.course!r} was bought at checkout",
                          rules=("P2",), payment=record.name)
