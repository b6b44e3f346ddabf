"""Ordering per student (P3, W1): the reason the Kafka key is studentId. All of a student's events share a
partition, the relay publishes outbox rows in commit order and the worker handles a partition in offset
order, so a student's purchases are created in the order their payments were confirmed. Judged from
what anyone can observe, per student:

1. confirmations → records: the order in which the payment service accepted the student's
   confirmations (the HTTP exchanges, in the run's one order of operations) against the order of each
   payment's first PURCHASE_CONFIRMED record on the topic (P3);
2. records → purchases: that record order against the order of each payment's first PURCHASE_CREATED
   record (the course outbox publishes purchases in the order they committed) and against the
   purchases' createdAt where those differ (W1);
3. one partition: a student's PURCHASE_CONFIRMED records all on one partition, or there is no order.

Each payment is placed by its first record, so a later re-publish of the same event (a relay's retry
after a crash, the reconciler after its grace, a duplicate) does not move it: the original comes first
and is handled first. A transient failure that is retried in place blocks its partition and reorders
nothing. Exempt, because the rules let them be handled after events that followed them: a payment
whose event was dead-lettered (it is handled when replayed, W8) and a payment the scenario itself
published a record for (its own copy may be handled first)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from kcverify.checks.base import Check
from kcverify.contracts import dead_letters
from kcverify.core.clock import parse_rfc3339
from kcverify.evidence.evidence import decode
from kcverify.spec import names
from kcverify.targets.base import BusRecord

Place = tuple[int, int]  # (partition, offset) of a payment's first record


class OrderingCheck(Check):
    name = "ordering"
    rules = ("P3", "W1")
    needs = frozenset({"read_db", "read_bus"})
    description = "a student's confirmations, records and purchases keep one order (the key is studentId)"

    def finish(self) -> None:
        snapshot = self.evidence.last
        student_of = {p["id"]: p["studentId"] for p in snapshot.payments}
        exempt = self._exempt()
        confirmed = _first_places(self.evidence.genuine(names.TOPIC_CONFIRMED), names.EVENT_CONFIRMED)
        created = _first_places(self.evidence.genuine(names.TOPIC_CREATED), names.EVENT_CREATED)
        created_at = {p["paymentId"]: parse_rfc3339(p["createdAt"]) for p in snapshot.purchases}
        accepted = self._accepted_order()
        students: dict[str, list[str]] = defaultdict(list)
        for payment_id in confirmed:
            if payment_id in student_of and payment_id not in exempt:
                students[student_of[payment_id]].append(payment_id)
        judged = 0
        for student, payments in students.items():
            partitions = sorted({confirmed[p][0] for p in payments})
            if len(partitions) > 1:
                self.fail(f"partitions:{student}", f"{self._who(payments)}: their PURCHASE_CONFIRMED records are "
                          f"spread over partitions {partitions}, so nothing keeps them in order (the key must be "
                          "studentId)", rules=("W1", "I4"))
                continue
            by_record = sorted(payments, key=lambda p: confirmed[p])
            judged += len(by_record) > 1
            self._compare(student, sorted((p for p in payments if p in accepted), key=lambda p: accepted[p]),
                          by_record, confirmed, "the order their confirmations were accepted",
                          "their PURCHASE_CONFIRMED records", rules=("P3",))
            handled = [p for p in payments if p in created]
            if len({created[p][0] for p in handled}) == 1:  # else the records check reports the key
                self._compare(student, by_record, sorted(handled, key=lambda p: created[p]), created,
                              "their PURCHASE_CONFIRMED records", "their purchases (PURCHASE_CREATED records)",
                              rules=("W1",))
            self._created_at(student, [p for p in by_record if p in created_at], created_at, confirmed)
        self.metrics["students_judged"] = judged
        self.notes.append(f"{judged} student(s) with several confirmations judged for order"
                          + (f"; {len(exempt)} payment(s) exempt (dead-lettered or injected)" if exempt else ""))

    # --- the comparisons ---------------------------------------------------------------------------------

    def _compare(self, student: str, expected: list[str], actual: list[str], places: dict[str, Place],
                 expected_what: str, actual_what: str, *, rules: tuple[str, ...]) -> None:
        """`actual` (payments in the order observed at `places`) must keep the relative order of `expected`."""
        pair = _first_inversion(expected, actual)
        if pair is None:
            return
        first, second = pair
        name = self.evidence.payment_name
        where = ", ".join(f"{name(p)} at [{places[p][0]}]@{places[p][1]}" for p in (second, first))
        self.fail(f"order:{rules[0]}:{student}:{first}:{second}",
                  f"{self._who([first, second])}: {name(first)} comes before {name(second)} in {expected_what}, "
                  f"but after it in {actual_what} ({where}): per-student order is lost", rules=rules,
                  payments=[name(first), name(second)])

    def _created_at(self, student: str, by_record: list[str], created_at: dict[str, float],
                    confirmed: dict[str, Place]) -> None:
        for i, earlier in enumerate(by_record):
            for later in by_record[i + 1:]:
                if created_at[later] < created_at[earlier]:
                    self.fail(f"created-at:{student}:{earlier}:{later}",
                              f"{self._who([earlier, later])}: {self.evidence.payment_name(later)}'s purchase was "
                              f"created {created_at[earlier] - created_at[later]:.3f} s before "
                              f"{self.evidence.payment_name(earlier)}'s, whose PURCHASE_CONFIRMED comes first "
                              f"([{confirmed[earlier][0]}]@{confirmed[earlier][1]} before @{confirmed[later][1]})",
                              rules=("W1",))
                    return

    # --- what is observed --------------------------------------------------------------------------------

    def _accepted_order(self) -> dict[str, int]:
        """paymentId -> where in the run's order of operations its first accepted confirmation started.
        A payment with a confirmation that got no answer is left out: it may have committed then or later."""
        order: dict[str, int] = {}
        unknown: set[str] = set()
        for exchange in self.evidence.exchanges:
            parts = exchange.path.rstrip("/").split("/")
            if exchange.method != "POST" or len(parts) < 2 or parts[-1] != "confirm":
                continue
            if exchange.indeterminate:
                unknown.add(parts[-2])
                continue
            try:
                body = exchange.reply.json() if exchange.reply.status == 200 else None
            except ValueError:
                continue
            if isinstance(body, dict) and body.get("status") == "succeeded":
                order.setdefault(parts[-2], exchange.start_seq)
        return {payment: seq for payment, seq in order.items() if payment not in unknown}

    def _exempt(self) -> set[str]:
        """Payments the rules let be handled out of order: dead-lettered ones (handled when replayed) and
        those the scenario published a record of its own for."""
        exempt: set[str] = set()
        for record in self.evidence.last.topics.get(names.TOPIC_DLQ, []):
            payment_id = _payment_id(dead_letters.original_event(decode(record)) or {})
            if payment_id:
                exempt.add(payment_id)
        injected = {(r.partition, r.offset) for r in self.evidence.injected if r.topic == names.TOPIC_CONFIRMED}
        for record in self.evidence.last.topics.get(names.TOPIC_CONFIRMED, []):
            if (record.partition, record.offset) in injected:
                payment_id = _payment_id(decode(record) or {})
                if payment_id:
                    exempt.add(payment_id)
        return exempt

    def _who(self, payments: Sequence[str]) -> str:
        students = {self.evidence.payments[n].student for n in self.evidence.payments
                    if self.evidence.payments[n].id in payments}
        return f"student {', '.join(sorted(students))}" if students else "a student"


def _payment_id(event: dict[str, Any]) -> str | None:
    payload = event.get("payload")
    payment_id = payload.get("paymentId") if isinstance(payload, dict) else None
    return payment_id if isinstance(payment_id, str) else None


def _first_places(records: list[BusRecord], event_type: str) -> dict[str, Place]:
    """paymentId -> (partition, offset) of its first record of `event_type`."""
    places: dict[str, Place] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        event = decode(record) or {}
        payment_id = _payment_id(event)
        if event.get("type") == event_type and payment_id is not None:
            place = (record.partition, record.offset)
            if payment_id not in places or place < places[payment_id]:
                places[payment_id] = place
    return places


def _first_inversion(expected: list[str], actual: list[str]) -> tuple[str, str] | None:
    """The first pair (a, b) with a before b in `expected` but b before a in `actual` (common items only)."""
    common = set(expected) & set(actual)
    rank = {p: i for i, p in enumerate(p for p in actual if p in common)}
    ordered = [p for p in expected if p in common]
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            if rank[b] < rank[a]:
                return a, b
    return None
