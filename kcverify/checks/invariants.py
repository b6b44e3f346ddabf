"""Whole-run invariants after the final settle: I1 every succeeded payment has exactly one purchase;
I2 no purchase exists without a succeeded payment, and each is for its payment's student and course (W3:
an event naming a paid payment with another student or course grants nothing); I3 every event on
purchase-confirmed was consumed and its offset committed (nothing skipped, nothing stuck behind poison)."""

from __future__ import annotations

from collections import Counter

from kcverify.checks.base import Check
from kcverify.spec import names


class InvariantsCheck(Check):
    name = "invariants"
    rules = ("I1", "I2", "I3")
    needs = frozenset({"read_db"})
    description = "I1 one purchase per succeeded payment; I2 no purchase without one; I3 nothing left unconsumed"

    def finish(self) -> None:
        snapshot = self.evidence.last
        payments = {p["id"]: p for p in snapshot.payments}
        purchases = Counter(p["paymentId"] for p in snapshot.purchases)
        succeeded = [p for p in snapshot.payments if p["status"] == "succeeded"]
        for payment in succeeded:
            count = purchases.get(payment["id"], 0)
            if count != 1:
                name = self.evidence.payment_name(payment["id"])
                self.fail(f"I1:{payment['id']}", f"{name}: succeeded payment has {count} purchases after the final "
                          "settle (expected exactly 1)", rules=("I1",), payment=name)
        for purchase in snapshot.purchases:
            paid = payments.get(purchase["paymentId"])
            if paid is None or paid["status"] not in ("succeeded", "refunded"):
                status = "no payment" if paid is None else f"a {paid['status']} payment"
                name = self.evidence.payment_name(purchase["paymentId"])
                self.fail(f"I2:{purchase['purchaseId']}", f"purchase {str(purchase['purchaseId'])[:8]}… of "
                          f"{purchase['studentId']} exists for {status} ({name})", rules=("I2", "W3"))
                continue
            for field in ("studentId", "courseId"):  # W3: it grants what was paid for, to whoever paid
                if purchase.get(field) != paid.get(field):
                    name = self.evidence.payment_name(purchase["paymentId"])
                    self.fail(f"I2:{field}:{purchase['purchaseId']}", f"purchase {str(purchase['purchaseId'])[:8]}… "
                              f"({name}) has {field} {purchase.get(field)!r}, but its payment's is "
                              f"{paid.get(field)!r}: a purchase grants the paid course to the student who paid",
                              rules=("I2", "W3"), payment=name)
        self._offsets()
        final = self.evidence.settles[-1] if self.evidence.settles else None
        if final is not None and not final.quiet:
            self.fail("I3:not-quiet", "the flow never became quiet: after the final settle work was still pending "
                      "(an endless retry or a blocked partition)", rules=("I3", "W2"))
        self.notes.append(f"{len(succeeded)} succeeded payment(s), {len(snapshot.purchases)} purchase(s)")

    def _offsets(self) -> None:
        snapshot = self.evidence.last
        if "read_bus" not in self.evidence.target.capabilities:
            return
        if "purchase-worker" in snapshot.down:
            self.notes.append("I3 offsets not judged: the worker was left down by the scenario")
            return
        if not self.evidence.settles or not self.evidence.settles[-1].quiet:
            return  # reported as not quiet
        ends = snapshot.end_offsets.get(names.TOPIC_CONFIRMED, {})
        committed = snapshot.committed.get(names.group_topic(names.WORKER_GROUP, names.TOPIC_CONFIRMED), {})
        for partition, end in sorted(ends.items()):
            done = committed.get(partition) or 0
            if done < end:
                self.fail(f"I3:{partition}", f"purchase-confirmed[{partition}]: {end - done} event(s) after offset "
                          f"{done} were never handled and committed by {names.WORKER_GROUP}",
                          rules=("I3", "W1", "W2"), partition=partition)
