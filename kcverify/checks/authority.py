"""Authority: only the payment gateway changes a payment, and only its status (P2); only the student
or an admin reads a learning view, only an admin invalidates it (S1, S4). Judged from what was sent
and what came back, so a scenario need not spell out each refusal as an expectation."""

from __future__ import annotations

import json

from kcverify.checks.base import Check

# What a gateway's callback may carry; anything else names an immutable field (courseId, amount, metadata).
CONFIRM_FIELDS = frozenset({"status", "provider", "providerPaymentId"})


class AuthorityCheck(Check):
    name = "authority"
    rules = ("P2", "S1", "S4")
    description = "unsigned or field-changing confirmations are refused; views only for their student or an admin"

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
            status = exchange.reply.status
            if status is None or not 200 <= status < 300:
                continue
            where = exchange.step or None
            if exchange.kind == "confirm":
                if exchange.signed is False:
                    self.fail(f"unsigned:{exchange.start_seq}", f"an unsigned confirmation of {exchange.path} was "
                              f"accepted ({status}): anyone can mark a payment succeeded", rules=("P2",), step=where)
                try:
                    body = json.loads(exchange.request_body)
                except ValueError:
                    continue
                extra = sorted(set(body) - CONFIRM_FIELDS) if isinstance(body, dict) else []
                if extra:
                    self.fail(f"immutable:{exchange.start_seq}", f"a confirmation changing {', '.join(extra)} was "
                              f"accepted ({status}); only status and provider ids may change", rules=("P2",),
                              step=where)
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

    def _course_unchanged(self) -> None:
        """A payment pays for the course chosen at checkout, and its purchase grants exactly that course."""
        payments = {p["id"]: p for p in self.evidence.last.payments}
        purchases = {p["paymentId"]: p for p in self.evidence.last.purchases}
        for record in self.evidence.payments.values():
            for what, row in (("payment", payments.get(record.id)), ("purchase", purchases.get(record.id))):
                if row is not None and row.get("courseId") != record.course:
                    self.fail(f"course:{what}:{record.id}", f"{record.name}: the {what} is for course "
                              f"{row.get('courseId')!r}, but {record.course!r} was bought at checkout",
                              rules=("P2",), payment=record.name)
