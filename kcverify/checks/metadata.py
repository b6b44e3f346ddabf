"""Metadata propagation: field by field, the values chosen at checkout must arrive unchanged, with
their types, at every hop: payments row -> PURCHASE_CONFIRMED -> purchase row -> PURCHASE_CREATED ->
learning view -> frontend model. A failure shows the hop x field table and the first hop where a value
changed or vanished."""

from __future__ import annotations

from typing import Any

from kcverify.checks.base import MISSING, Check, same, show
from kcverify.evidence.evidence import decode
from kcverify.evidence.results import Table
from kcverify.reference import domain
from kcverify.reference.frontend import DISPLAY_FIELDS, display

HOPS = ("checkout", "payments row", "PURCHASE_CONFIRMED", "purchase row", "PURCHASE_CREATED",
        "learning view", "frontend")
# Which rule a value going wrong at a hop breaks.
HOP_RULES = {
    "payments row": ("P3",),
    "PURCHASE_CONFIRMED": ("P3",),
    "purchase row": ("W4", "W5"),
    "PURCHASE_CREATED": ("W4",),
    "learning view": ("S1",),
    "frontend": ("F1", "F2"),
}


class MetadataCheck(Check):
    name = "metadata"
    rules = ("P3", "W4", "W5", "S1", "F1", "F2")
    needs = frozenset({"read_db", "read_bus"})
    description = "checkout metadata reaches every hop unchanged, types included"

    def finish(self) -> None:
        snapshot = self.evidence.last
        payments = {p["id"]: p for p in snapshot.payments}
        purchases = {p["paymentId"]: p for p in snapshot.purchases}
        confirmed = _by_payment(self.evidence.genuine(domain.TOPIC_CONFIRMED))
        created = _by_payment(self.evidence.genuine(domain.TOPIC_CREATED))
        checked = 0
        for record in self.evidence.payments.values():
            purchase = purchases.get(record.id)
            if purchase is None:
                continue  # no purchase: the invariants check reports it (I1)
            checked += 1
            view_item = self._latest_view_item(record.student, record.id)
            hops: dict[str, dict[str, Any] | None] = {
                "checkout": record.checkout,
                "payments row": (payments.get(record.id) or {}).get("metadata"),
                "PURCHASE_CONFIRMED": confirmed.get(record.id),
                "purchase row": purchase.get("metadata"),
                "PURCHASE_CREATED": created.get(record.id),
                "learning view": view_item.get("metadata") if view_item else None,
                "frontend": display(view_item).to_json() if view_item else None,
            }
            self._compare(record.name, record.checkout, hops, purchase)
        self.notes.append(f"{checked} purchase(s) traced through {len(HOPS)} hops")

    def _latest_view_item(self, student: str, payment_id: str) -> dict[str, Any] | None:
        for exchange in reversed(self.evidence.exchanges):
            if exchange.student != student or exchange.reply.status != 200 or exchange.service != "student-service":
                continue
            try:
                view = exchange.reply.json()
            except ValueError:
                continue
            for item in view.get("purchases", []) if isinstance(view, dict) else []:
                if isinstance(item, dict) and item.get("paymentId") == payment_id:
                    return item
        return None

    def _compare(self, name: str, checkout: dict[str, Any], hops: dict[str, dict[str, Any] | None],
                 purchase: dict[str, Any]) -> None:
        fields = list(DISPLAY_FIELDS) + sorted(k for k in checkout if k not in DISPLAY_FIELDS)
        rows: list[tuple[str, ...]] = []
        highlight: list[tuple[int, int]] = []
        first_bad: tuple[str, str, Any, Any] | None = None
        for r, hop in enumerate(HOPS):
            values = hops[hop]
            row = [hop]
            for c, field_name in enumerate(fields, start=1):
                if values is None:
                    row.append("(not observed)")
                    continue
                if hop == "frontend" and field_name not in DISPLAY_FIELDS:
                    row.append("")
                    continue
                actual = values.get(field_name, MISSING)
                expected = checkout.get(field_name, MISSING)
                row.append(show(actual))
                if not same(actual, expected) and not (actual is MISSING and expected is MISSING):
                    highlight.append((r, c))
                    if first_bad is None:
                        first_bad = (hop, field_name, expected, actual)
            rows.append(tuple(row))
        tier = purchase.get("purchaseTier")
        if first_bad is None and not same(tier, checkout.get("sessionCount")):
            first_bad = ("purchase row", "purchaseTier", checkout.get("sessionCount"), tier)
        if first_bad is None:
            return
        hop, field_name, expected, actual = first_bad
        verb = "vanished" if actual is MISSING else f"became {show(actual)}"
        self.fail(
            f"{name}:{hop}:{field_name}",
            f"{name}: {field_name} chosen at checkout as {show(expected)} {verb} at hop '{hop}'",
            rules=HOP_RULES.get(hop, self.rules),
            evidence=Table(("hop", *fields), tuple(rows), title=f"metadata of {name}", highlight=tuple(highlight)),
            payment=name, hop=hop, field=field_name,
        )


def _by_payment(records: list[Any]) -> dict[str, dict[str, Any]]:
    """paymentId -> the payload metadata of the first event about it."""
    out: dict[str, dict[str, Any]] = {}
    for record in records:
        event = decode(record)
        payload = (event or {}).get("payload")
        if isinstance(payload, dict) and isinstance(payload.get("paymentId"), str):
            metadata = payload.get("metadata")
            out.setdefault(payload["paymentId"], metadata if isinstance(metadata, dict) else {})
    return out
