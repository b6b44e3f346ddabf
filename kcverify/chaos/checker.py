"""The chaos checker: a pure function of a run's history and its final observed state.

It never asks a system and never imports one: what it knows of the rules comes from the spec layer (the
W4 merge and F1 display of kcverify/spec/oracle.py, the topic and group names, the freshness bound).
Operations whose outcome is unknown are judged by the final state alone: a confirm that timed out counts
as paid exactly when the payment row says `succeeded`, never by a guess.

Anomaly classes (each a list of affected ids with a detail):
- `lost`: a payment succeeded (its row after recovery, or a confirm answered `succeeded` whose row does
  not say so) without its purchase;
- `duplicate`: more than one purchase row for one payment, more than one purchase id announced for one
  payment on the purchase-created topic (a redelivered record of the same purchase is at-least-once, not a
  duplicate), or a learning view listing one twice;
- `unpaid`: a purchase whose payment is not succeeded (a failed payment, a forged or poison event);
- `metadata`: a purchase's metadata or tier is not the W4 merge of the payment's and the event's, or its
  learning view shows other values than F1 computes from them;
- `poison`: a poison event on the confirmed topic not dead-lettered exactly once (or acknowledged by the
  broker yet absent from the topic);
- `stale`: a learning view read after recovery that does not list exactly the student's purchases;
- `offsets`: a consumer group's committed offset short of the topic's end after recovery.
Informative (never an anomaly): the staleness windows observed while the faults ran."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kcverify.spec import names, oracle, policy

CLASSES: dict[str, str] = {
    "lost": "succeeded payment without its purchase after recovery",
    "duplicate": "more than one purchase for one payment",
    "unpaid": "purchase without a succeeded payment",
    "metadata": "purchase metadata or displayed values differ from the W4 merge / F1 display",
    "poison": "poison event not dead-lettered exactly once",
    "stale": "learning view stale after recovery",
    "offsets": "consumer group offsets not at the end after recovery",
}
GROUPS = {names.WORKER_GROUP: names.TOPIC_CONFIRMED, names.INVALIDATOR_GROUP: names.TOPIC_CREATED}


@dataclass
class Verdict:
    anomalies: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {c: [] for c in CLASSES})
    counts: dict[str, Any] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)
    staleness: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(self.anomalies.values())

    def add(self, cls: str, ident: str, detail: str) -> None:
        self.anomalies[cls].append({"id": ident, "detail": detail})

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "anomalies": self.anomalies,
                "anomalyCounts": {c: len(v) for c, v in self.anomalies.items()},
                "counts": self.counts, "faults": self.faults, "staleness": self.staleness}


def _records(final: Mapping[str, Any], topic: str) -> list[dict[str, Any]]:
    return list((final.get("topics") or {}).get(topic) or [])


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def check(history: Iterable[Mapping[str, Any]], final: Mapping[str, Any]) -> Verdict:
    """Judge one run. Deterministic: the same inputs give the same verdict."""
    lines = list(history)
    ops = [line for line in lines if line.get("type") == "op"]
    verdict = Verdict()
    verdict.faults = [dict(f) for f in lines if f.get("type") == "fault"]
    payments = {str(p["id"]): p for p in final.get("payments") or []}
    purchases: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in final.get("purchases") or []:
        purchases[str(row["paymentId"])].append(row)
    succeeded = {pid for pid, p in payments.items() if p.get("status") == "succeeded"}

    # lost: by the rows; plus every confirm the service acknowledged as succeeded
    acknowledged = {str(op["payment"]) for op in ops if op.get("f") in ("confirm", "confirm-dup")
                    and op.get("outcome") == "ok" and (op.get("value") or {}).get("status") == "succeeded"}
    for pid in sorted(succeeded | acknowledged):
        if pid not in succeeded:
            verdict.add("lost", pid, "confirm answered succeeded, the payment row does not say so")
        elif not purchases.get(pid):
            verdict.add("lost", pid, "payment succeeded, no purchase after recovery")

    for pid, rows in sorted(purchases.items()):
        if len(rows) > 1:
            verdict.add("duplicate", pid, f"{len(rows)} purchase rows: {', '.join(str(r.get('id')) for r in rows)}")
        if pid not in succeeded:
            status = (payments.get(pid) or {}).get("status", "no such payment")
            verdict.add("unpaid", pid, f"purchase {rows[0].get('id')} for a payment that is {status}")

    announced: dict[str, set[str]] = defaultdict(set)
    for record in _records(final, names.TOPIC_CREATED):
        event = _json(record.get("value"))
        payload = event.get("payload") if isinstance(event, dict) else None
        if isinstance(payload, dict):
            announced[str(payload.get("paymentId"))].add(str(payload.get("purchaseId")))
    for pid, purchase_ids in sorted(announced.items()):
        if len(purchase_ids) > 1:
            verdict.add("duplicate", pid, f"{len(purchase_ids)} purchases announced on {names.TOPIC_CREATED}: "
                                          f"{', '.join(sorted(purchase_ids))}")

    _metadata(verdict, payments, purchases, final)
    _poison(verdict, ops, final)
    _views(verdict, purchases, final)
    _offsets(verdict, final)
    verdict.staleness = _staleness(ops, verdict.faults)
    outcomes = Counter(f"{op.get('f')}:{op.get('outcome')}" for op in ops)
    verdict.counts = {"operations": len(ops), "outcomes": dict(sorted(outcomes.items())),
                      "payments": len(payments), "succeeded": len(succeeded),
                      "purchases": sum(len(r) for r in purchases.values()),
                      "deadLetters": len(_records(final, names.TOPIC_DLQ)), "faults": len(verdict.faults)}
    return verdict


def _event_metadata(final: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """paymentId -> the metadata its (first valid) confirmed event carried."""
    out: dict[str, dict[str, Any]] = {}
    for record in _records(final, names.TOPIC_CONFIRMED):
        event = _json(record.get("value"))
        payload = event.get("payload") if isinstance(event, dict) else None
        if isinstance(payload, dict) and isinstance(payload.get("metadata"), dict):
            out.setdefault(str(payload.get("paymentId")), payload["metadata"])
    return out


def _metadata(verdict: Verdict, payments: Mapping[str, Any], purchases: Mapping[str, list[Mapping[str, Any]]],
              final: Mapping[str, Any]) -> None:
    events = _event_metadata(final)
    expected: dict[str, tuple[dict[str, Any], Any]] = {}
    for pid, rows in sorted(purchases.items()):
        payment = payments.get(pid)
        if payment is None:
            continue
        merged = oracle.merge(payment.get("metadata") or {}, events.get(pid, payment.get("metadata") or {}))
        tier = oracle.purchase_tier(merged)
        expected[pid] = (merged, tier)
        for row in rows:
            if row.get("metadata") != merged:
                verdict.add("metadata", pid, f"purchase metadata {row.get('metadata')} != merge {merged}")
            elif row.get("purchaseTier") != tier:
                verdict.add("metadata", pid, f"purchaseTier {row.get('purchaseTier')!r} != sessionCount {tier!r}")
    for student, view in sorted((final.get("views") or {}).items()):
        for item in view.get("purchases") or []:
            pid = str(item.get("paymentId"))
            if pid not in expected:
                continue
            merged, tier = expected[pid]
            want = oracle.display({"metadata": merged, "purchaseTier": tier})
            shown = oracle.display(item)
            if shown != want:
                verdict.add("metadata", pid, f"the learning view of {student} shows {shown}, F1 gives {want}")


def _poison(verdict: Verdict, ops: list[Mapping[str, Any]], final: Mapping[str, Any]) -> None:
    on_topic: Counter[str] = Counter()
    for record in _records(final, names.TOPIC_CONFIRMED):
        for name, value in record.get("headers") or []:
            if name == "eventId":
                on_topic[str(value)] += 1
    lettered: Counter[str] = Counter()
    for record in _records(final, names.TOPIC_DLQ):
        letter = _json(record.get("value"))
        original = _json(letter.get("originalEvent")) if isinstance(letter, dict) else None
        event_id = original.get("eventId") if isinstance(original, dict) else None
        if event_id is None:
            event_id = next((v for n, v in record.get("headers") or [] if n == "eventId"), None)
        if event_id is not None:
            lettered[str(event_id)] += 1
    for op in ops:
        if op.get("f") != "poison":
            continue
        event_id = str(op.get("event"))
        if on_topic[event_id] == 0:
            if op.get("outcome") == "ok":
                verdict.add("poison", event_id, "the broker acknowledged it, the confirmed topic lacks it")
            continue  # unknown or failed and never on the topic: nothing to dead-letter
        if lettered[event_id] != 1:
            verdict.add("poison", event_id, f"on the confirmed topic, dead-lettered {lettered[event_id]} time(s)")


def _views(verdict: Verdict, purchases: Mapping[str, list[Mapping[str, Any]]], final: Mapping[str, Any]) -> None:
    by_student: dict[str, set[str]] = defaultdict(set)
    for pid, rows in purchases.items():
        for row in rows:
            by_student[str(row.get("studentId"))].add(pid)
    views = final.get("views") or {}
    for student in sorted(set(by_student) | set(views)):
        view = views.get(student)
        if view is None:
            verdict.add("stale", student, "no learning view was read after recovery")
            continue
        if view.get("status") != 200:
            verdict.add("stale", student, f"the learning view answered {view.get('status')}")
            continue
        shown = Counter(str(i.get("paymentId")) for i in view.get("purchases") or [])
        twice = sorted(p for p, n in shown.items() if n > 1)
        for pid in twice:
            verdict.add("duplicate", pid, f"listed {shown[pid]} times in the learning view of {student}")
        missing, extra = sorted(by_student[student] - set(shown)), sorted(set(shown) - by_student[student])
        if missing or extra:
            verdict.add("stale", student, f"after recovery the view lacks {missing} and shows {extra} beyond the rows")


def _offsets(verdict: Verdict, final: Mapping[str, Any]) -> None:
    ends = final.get("endOffsets") or {}
    committed = final.get("committed") or {}
    for group, topic in GROUPS.items():
        done = committed.get(names.group_topic(group, topic)) or committed.get(f"{group}/{topic}") or {}
        for partition, end in sorted((ends.get(topic) or {}).items()):
            at = done.get(partition, done.get(str(partition)))
            if (at or 0) < int(end):
                verdict.add("offsets", f"{group}/{topic}[{partition}]", f"committed {at}, end {end}")


def windows(ops: Iterable[Mapping[str, Any]]) -> list[tuple[float, str, float]]:
    """The staleness windows: for each payment confirmed `succeeded`, from the confirm's completion to the
    first read of its student's view after it that showed it. (seconds, payment id, confirmed at), the
    longest first; payments never seen shown have no window."""
    ops = list(ops)
    confirmed: dict[str, tuple[str, float]] = {}
    for op in ops:
        if op.get("f") == "confirm" and op.get("outcome") == "ok" \
                and (op.get("value") or {}).get("status") == "succeeded":
            confirmed[str(op["payment"])] = (str(op.get("student")), float(op["complete"]))
    reads: dict[str, list[tuple[float, set[str]]]] = defaultdict(list)
    for op in ops:
        if op.get("f") == "read" and op.get("outcome") == "ok":
            reads[str(op.get("student"))].append((float(op["invoke"]), set(op.get("value", {}).get("shown", []))))
    for seen in reads.values():
        seen.sort(key=lambda r: r[0])
    out: list[tuple[float, str, float]] = []
    for pid, (student, at) in confirmed.items():
        first = next((t for t, shown in reads.get(student, []) if t >= at and pid in shown), None)
        if first is not None:
            out.append((first - at, pid, at))
    out.sort(reverse=True)
    return out


def _staleness(ops: list[Mapping[str, Any]], faults: list[dict[str, Any]]) -> dict[str, Any]:
    """The staleness windows (`windows`) summarised; those beyond the freshness bound are listed with the
    faults that overlapped them. Informative only."""
    found = windows(ops)
    bound = policy.FRESHNESS_BOUND_REAL
    beyond: list[dict[str, Any]] = []
    for window, pid, at in found:
        if window <= bound or len(beyond) >= 20:
            continue
        during = sorted({str(f.get("kind")) for f in faults
                         if float(f.get("start", 0)) <= at + window and float(f.get("end", 0)) >= at})
        beyond.append({"payment": pid, "seconds": round(window, 3), "faults": during})
    values = [w for w, _, _ in found]
    return {"bound": bound, "measured": len(values), "beyondBound": sum(1 for v in values if v > bound),
            "maxSeconds": round(max(values), 3) if values else None,
            "p99Seconds": round(sorted(values)[int(0.99 * (len(values) - 1))], 3) if values else None,
            "worst": beyond}
