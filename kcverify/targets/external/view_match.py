"""Learning views that name no payment. Many systems' views list purchases by purchase and course only
(their purchases table has no payment column); kcverify's checks say which payment a view shows. When the
profile maps no `paymentId` for the view's purchases, each purchase is matched to its payment by what it
does carry: its purchaseId through the purchases query (when that query returns the payment), else the
newest payment of the same student and course that this scenario created (a view lists active purchases,
and a repurchase deactivates the older one). A purchase that matches none is left without a paymentId:
the checks then see a purchase of no payment of the scenario, as the view really shows it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from kcverify.targets.base import HttpReply


def with_payment_ids(reply: HttpReply, student: str, created: Sequence[tuple[str, str, str]],
                     by_purchase: Mapping[str, str]) -> HttpReply:
    """`reply` (a canonical learning view answered 200) with a paymentId on each purchase that has none.
    `created`: (paymentId, studentId, courseId) of the scenario's payments, oldest first; `by_purchase`:
    purchaseId -> paymentId as the system's rows say."""
    try:
        view = json.loads(reply.body)
    except ValueError:
        return reply
    purchases = view.get("purchases") if isinstance(view, dict) else None
    if not isinstance(purchases, list):
        return reply
    changed = False
    for item in purchases:
        if not isinstance(item, dict) or item.get("paymentId") is not None:
            continue
        found = _payment_of(item, student, created, by_purchase)
        if found is not None:
            item["paymentId"] = found
            changed = True
    if not changed:
        return reply
    return replace(reply, body=json.dumps(view).encode())


def _payment_of(item: dict[str, Any], student: str, created: Sequence[tuple[str, str, str]],
                by_purchase: Mapping[str, str]) -> str | None:
    purchase = item.get("purchaseId")
    if isinstance(purchase, str) and by_purchase.get(purchase):
        return by_purchase[purchase]
    owner = item.get("studentId") or student
    course = item.get("courseId")
    matching = [payment for payment, of, on in created if of == owner and on == course]
    return matching[-1] if matching else None
