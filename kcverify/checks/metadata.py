"""Metadata propagation, judged hop by hop by what the rules say each hop must hold:

- payments row: what the create accepted (the checkout metadata; P1, P3);
- PURCHASE_CONFIRMED: the payments row's metadata (P3);
- purchase row: the W4 merge (spec.oracle.merge) of the payments row's metadata as stored and the
  metadata of the PURCHASE_CONFIRMED it was made from, as sent; with `metadataSource: event` (the W5
  fallback) that event's metadata; its purchaseTier is the merged sessionCount;
- PURCHASE_CREATED and the learning view: the purchase row (W4, S1);
- frontend: what the app shows for the learning view's item equals the values chosen at checkout (F1, F2):
  the target's own frontend model when it runs one (the reference's: `display`), else spec.oracle.display,
  kcverify's reading of the app's rules.

Which PURCHASE_CONFIRMED a purchase came from is not observable (a scenario may inject copies or forged
events about the same payment); the purchase row must equal the expectation for one of the events about
its payment on the topic, and a failure is reported against the first of them, the one a worker
consuming in order meets first. A failure shows the hop x field table and the first hop that is wrong."""

from __future__ import annotations

from typing import Any

from kcverify.checks.base import MISSING, Check, same, same_moment, show
from kcverify.evidence.evidence import decode, listed_purchases
from kcverify.evidence.results import Table
from kcverify.spec import names, oracle

HOPS = ("checkout", "payments row", "PURCHASE_CONFIRMED", "purchase row", "PURCHASE_CREATED",
        "learning view", "frontend")
# Which rule a value going wrong at a hop breaks.
# What a learning view's item repeats of its purchase row, by the same names (S1); its metadata and tier are
# the hops table's.
VIEW_ROW_FIELDS = ("purchaseId", "studentId", "courseId", "createdAt")
HOP_RULES = {
    "payments row": ("P3",),
    "PURCHASE_CONFIRMED": ("P3",),
    "purchase row": ("W4", "W5"),
    "PURCHASE_CREATED": ("W4",),
    "learning view": ("S1",),
    "frontend": ("F1", "F2"),
}
NOT_OBSERVED = "(not observed)"

Metadata = dict[str, Any]


class MetadataCheck(Check):
    name = "metadata"
    rules = ("P3", "W4", "W5", "S1", "F1", "F2")
    needs = frozenset({"read_db", "read_bus"})
    description = "every hop holds the metadata the rules say it must (W4 merge, F1 display), types included"

    def finish(self) -> None:
        snapshot = self.evidence.last
        payments = {p["id"]: p for p in snapshot.payments}
        purchases = {p["paymentId"]: p for p in snapshot.purchases}
        confirmed = _by_payment(self.evidence.genuine(names.TOPIC_CONFIRMED))
        created = _by_payment(self.evidence.genuine(names.TOPIC_CREATED))
        # Every event about a payment, injected ones included, in topic order: the candidates a purchase
        # may have been made from.
        sent = _all_by_payment(snapshot.topics.get(names.TOPIC_CONFIRMED, []))
        checked = 0
        for record in self.evidence.payments.values():
            purchase = purchases.get(record.id)
            if purchase is None:
                continue  # no purchase: the invariants check reports it (I1)
            checked += 1
            view_item, shown = self._latest_view_item(record.student, record.id)
            row = _metadata((payments.get(record.id) or {}).get("metadata"))
            actual: dict[str, Metadata | None] = {
                "checkout": record.checkout,
                "payments row": row,
                "PURCHASE_CONFIRMED": confirmed.get(record.id),
                "purchase row": _metadata(purchase.get("metadata")),
                "PURCHASE_CREATED": created.get(record.id),
                "learning view": _metadata(view_item.get("metadata")) if view_item else None,
                "frontend": shown,
            }
            stored = row if row is not None else record.checkout
            merged = _expected_purchase(stored, sent.get(record.id, []), purchase)
            observed_purchase = actual["purchase row"]
            expected: dict[str, Metadata] = {
                "checkout": record.checkout,
                "payments row": record.checkout,
                "PURCHASE_CONFIRMED": stored,
                "purchase row": merged,
                "PURCHASE_CREATED": observed_purchase if observed_purchase is not None else merged,
                "learning view": observed_purchase if observed_purchase is not None else merged,
                "frontend": {f: record.checkout.get(f) for f in names.DISPLAY_FIELDS},
            }
            if view_item is not None:
                self._view_item_is_row(record.name, view_item, purchase)
            tier = self.evidence.conventions.tier(oracle.purchase_tier(merged))  # a profile may map the tiers
            self._compare(record.name, actual, expected, purchase.get("purchaseTier", MISSING), tier,
                          record.checkout if record.generated else None)
        self.notes.append(f"{checked} purchase(s) traced through {len(HOPS)} hops")

    def _view_item_is_row(self, name: str, item: dict[str, Any], purchase: dict[str, Any]) -> None:
        """S1: the view lists each purchase as it is stored: its id, student, course, tier and createdAt
        are the purchase row's (a time to the precision it is written with). A field the system's view
        does not carry (its profile maps none) is not judged."""
        differ = []
        for field in VIEW_ROW_FIELDS:
            if item.get(field) is None or field not in purchase \
                    or not self.evidence.conventions.carries(names.HTTP_LEARNING_PURCHASE, field):
                continue
            shown, stored = item[field], purchase[field]
            if field == "createdAt" and isinstance(shown, str) and isinstance(stored, str):
                if not same_moment(shown, stored):
                    differ.append(f"{field} {shown!r} (the row's is {stored!r})")
            elif not same(shown, stored):
                differ.append(f"{field} {show(shown)} (the row's is {show(stored)})")
        if differ:
            self.fail(f"{name}:view-item", f"{name}: the learning view shows {', '.join(differ)}: a view lists "
                      "each purchase as it is stored", rules=("S1",), payment=name)

    def _latest_view_item(self, student: str, payment_id: str) -> tuple[dict[str, Any] | None, Metadata | None]:
        """The payment's item in the student's last view that lists it, and the five values the student
        saw for it: what the target's own frontend model showed (observed at the read), else the app's
        rules applied by kcverify (F1)."""
        for exchange in reversed(self.evidence.exchanges):
            if exchange.student != student or exchange.reply.status != 200 or exchange.service != "student-service":
                continue
            try:
                view = exchange.reply.json()
            except ValueError:
                continue
            for item in listed_purchases(view):
                if item.get("paymentId") == payment_id:
                    shown = exchange.shown.get(payment_id) if exchange.shown is not None else None
                    return item, shown if shown is not None else oracle.display(item)
        return None, None

    def _compare(self, name: str, actual: dict[str, Metadata | None], expected: dict[str, Metadata],
                 tier: Any, expected_tier: Any, generated: Metadata | None = None) -> None:
        seen = {k for values in (*actual.values(), *expected.values()) if values for k in values}
        fields = list(names.DISPLAY_FIELDS) + sorted(seen - set(names.DISPLAY_FIELDS))
        highlight: list[tuple[int, int]] = []
        first_bad: tuple[str, str, Any, Any] | None = None
        for r, hop in enumerate(HOPS):
            values, wanted = actual[hop], expected[hop]
            if values is None:
                continue
            for c, field_name in enumerate(fields, start=1):
                if hop == "frontend" and field_name not in names.DISPLAY_FIELDS:
                    continue
                have, want = values.get(field_name, MISSING), wanted.get(field_name, MISSING)
                if not same(have, want) and not (have is MISSING and want is MISSING):
                    highlight.append((r, c))
                    if first_bad is None:
                        first_bad = (hop, field_name, want, have)
        # The purchase row's purchaseTier is a value of the purchase row hop: a wrong tier there is the
        # first bad value unless an earlier hop already went wrong (the frontend shows it downstream).
        if not same(tier, expected_tier) and (
                first_bad is None or HOPS.index(first_bad[0]) > HOPS.index("purchase row")):
            first_bad = ("purchase row", "purchaseTier", expected_tier, tier)
        if first_bad is None:
            return
        rows = [_table_row(hop, actual[hop], fields) for hop in HOPS]  # the evidence table, only for a failure
        hop, field_name, want, have = first_bad
        verb = "is missing" if have is MISSING else f"is {show(have)}"
        chosen_field = "sessionCount" if field_name == "purchaseTier" else field_name  # the tier is the count
        chosen = (actual["checkout"] or {}).get(chosen_field, MISSING)
        # A generated document is reproduced by the seed; the message still shows it whole.
        drawn = f"; the checkout metadata was generated: {show(generated)}" if generated is not None else ""
        self.fail(
            f"{name}:{hop}:{field_name}",
            f"{name}: at hop '{hop}' {field_name} {verb}, the rules require {show(want)} "
            f"(chosen at checkout: {chosen_field} {show(chosen)}){drawn}",
            rules=HOP_RULES.get(hop, self.rules),
            evidence=Table(("hop", *fields), tuple(rows), title=f"metadata of {name}", highlight=tuple(highlight)),
            payment=name, hop=hop, field=field_name, expected=want if want is not MISSING else None,
        )


def _table_row(hop: str, values: Metadata | None, fields: list[str]) -> tuple[str, ...]:
    """One hop's row of the evidence table: each field's value as a diff shows it."""
    if values is None:
        return (hop, *(NOT_OBSERVED for _ in fields))
    return (hop, *("" if hop == "frontend" and field_name not in names.DISPLAY_FIELDS
                   else show(values.get(field_name, MISSING)) for field_name in fields))


def _expected_purchase(stored: Metadata, events: list[Metadata], purchase: dict[str, Any]) -> Metadata:
    """The purchase row's metadata as the rules make it from the payments row and one of the events about
    the payment: the W4 merge, or with metadataSource `event` (W5) the event's metadata verbatim. The
    expectation the row matches if any, else the one for the first event."""
    fallback = purchase.get("metadataSource") == names.SOURCE_EVENT
    candidates = [event if fallback else oracle.merge(stored, event) for event in events] or [stored]
    observed = purchase.get("metadata")
    return next((c for c in candidates if same(c, observed)), candidates[0])


def _metadata(value: Any) -> Metadata | None:
    return value if isinstance(value, dict) else None


def _all_by_payment(records: list[Any]) -> dict[str, list[Metadata]]:
    """paymentId -> the payload metadata of every event about it, in topic order."""
    out: dict[str, list[Metadata]] = {}
    for record in records:
        payload = (decode(record) or {}).get("payload")
        if isinstance(payload, dict) and isinstance(payload.get("paymentId"), str):
            metadata = payload.get("metadata")
            out.setdefault(payload["paymentId"], []).append(metadata if isinstance(metadata, dict) else {})
    return out


def _by_payment(records: list[Any]) -> dict[str, Metadata]:
    """paymentId -> the payload metadata of the first event about it."""
    return {payment: events[0] for payment, events in _all_by_payment(records).items()}
