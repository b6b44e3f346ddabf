"""Idempotency: exactly one purchase and one PURCHASE_CREATED per succeeded payment, whatever the
duplicates, redeliveries, crashes and gateway retries; one logical event per idempotency key (same key
-> same eventId, and one key per eventId); idempotency keys in the contract's format, naming the ids in
their payload. A system whose records carry no idempotency key (its profile maps none) has those
judgements noted as not made; the counts per payment are still judged."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from kcverify.checks.base import Check
from kcverify.evidence.evidence import decode
from kcverify.spec import names


class IdempotencyCheck(Check):
    name = "idempotency"
    rules = ("P4", "W6")
    needs = frozenset({"read_db", "read_bus"})
    description = "one purchase and one PURCHASE_CREATED per payment; stable, well-formed idempotency keys"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # What the run has shown so far, kept up to date from each step's new records and changed rows, so
        # a step costs what it changed, not the whole run.
        self._purchases: dict[str, dict[str, None]] = defaultdict(dict)  # paymentId -> purchaseIds
        self._key_to_event: dict[str, str] = {}
        self._event_to_key: dict[str, str] = {}
        self._events_per_payment: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._first_seen: dict[tuple[str, str], int] = {}
        self._keys_not_carried: set[str] = set()  # topics whose records carry no idempotency key

    def after_step(self, step: int) -> None:
        self._scan(step)

    def _scan(self, step: int | None) -> None:
        touched: list[str] = []
        for change in self.evidence.row_changes("purchases"):
            if change.old is not None:
                self._purchases[change.old["paymentId"]].pop(change.old["purchaseId"], None)
            if change.new is not None:
                self._purchases[change.new["paymentId"]][change.new["purchaseId"]] = None
                touched.append(change.new["paymentId"])
        for payment_id in dict.fromkeys(touched):
            purchase_ids = list(self._purchases[payment_id])
            if len(purchase_ids) > 1:
                name = self.evidence.payment_name(payment_id)
                self.fail(f"purchases:{payment_id}", f"{name}: {len(purchase_ids)} purchases for one payment",
                          rules=("W6", "I1"), step=step, payment=name, purchases=purchase_ids)
        key_to_event = self._key_to_event
        events_per_payment = self._events_per_payment
        new_events: set[tuple[str, str]] = set()
        for topic, expected in ((names.TOPIC_CONFIRMED, names.EVENT_CONFIRMED),
                                (names.TOPIC_CREATED, names.EVENT_CREATED)):
            for record in self.evidence.new_genuine(topic):
                event = decode(record)
                if event is None or event.get("type") != expected:
                    continue
                payload: dict[str, Any] = event["payload"] if isinstance(event.get("payload"), dict) else {}
                key, event_id = event.get("idempotencyKey"), event.get("eventId")
                if not self.evidence.conventions.carries(topic, "idempotencyKey"):
                    self._keys_not_carried.add(topic)
                    key = None
                else:
                    self._key_format(step, expected, str(key), payload)
                if isinstance(key, str) and isinstance(event_id, str):
                    seen = key_to_event.setdefault(key, event_id)
                    if seen != event_id:
                        self.fail(f"key:{key}", f"idempotency key {key} was published with two event ids "
                                  f"({seen[:8]}…, {event_id[:8]}…): consumers cannot tell it is one event",
                                  rules=("W6",), step=step)
                    other = self._event_to_key.setdefault(event_id, key)
                    if other != key:  # the eventId is derived from the key (envelope.schema.json): one key each
                        self.fail(f"event:{event_id}", f"event id {event_id} was published for two idempotency "
                                  f"keys ({other}, {key}): a consumer deduplicating by event id drops the second "
                                  "event", rules=("W6",), step=step)
                if isinstance(payload.get("paymentId"), str) and isinstance(event_id, str):
                    events_per_payment[(expected, payload["paymentId"])].add(event_id)
                    self._first_seen.setdefault((expected, payload["paymentId"]), len(self._first_seen))
                    new_events.add((expected, payload["paymentId"]))
        # only what this step's records touched (a step costs what it changed), in the order first seen
        order = self._first_seen
        for event_type, payment_id in sorted(new_events, key=order.__getitem__):
            ids = events_per_payment[(event_type, payment_id)]
            if len(ids) > 1:
                name = self.evidence.payment_name(payment_id)
                rules = ("P4", "P3") if event_type == names.EVENT_CONFIRMED else ("W6",)
                self.fail(f"events:{event_type}:{payment_id}",
                          f"{name}: {len(ids)} distinct {event_type} events for one payment", rules=rules,
                          step=step, payment=name)

    def _key_format(self, step: int | None, event_type: str, key: str, payload: dict[str, Any]) -> None:
        if event_type == names.EVENT_CONFIRMED:
            expected = names.confirmed_key(str(payload.get("paymentId")))
        else:
            expected = names.created_key(str(payload.get("purchaseId")))
        if key != expected:
            self.fail(f"format:{key}", f"{event_type} idempotency key {key!r} should be {expected!r}",
                      rules=("W6",), step=step)

    def finish(self) -> None:
        self._scan(None)
        snapshot = self.evidence.last
        created: dict[str, set[str]] = defaultdict(set)
        for record in self.evidence.genuine(names.TOPIC_CREATED, snapshot):
            event = decode(record) or {}
            payload: dict[str, Any] = event["payload"] if isinstance(event.get("payload"), dict) else {}
            if isinstance(payload.get("paymentId"), str):
                created[payload["paymentId"]].add(str(event.get("eventId")))
        for purchase in snapshot.purchases:
            if not created.get(purchase["paymentId"]):
                name = self.evidence.payment_name(purchase["paymentId"])
                self.fail(f"no-created:{purchase['paymentId']}",
                          f"{name}: purchase {purchase['purchaseId'][:8]}… was never announced by PURCHASE_CREATED",
                          rules=("W6",), payment=name)
        self.notes.append(f"{len(snapshot.purchases)} purchase(s), {sum(len(v) for v in created.values())} "
                          f"PURCHASE_CREATED event(s)")
        for topic in sorted(self._keys_not_carried):
            self.notes.append(f"{topic}: idempotencyKey not carried by this system (profile maps no such field): "
                              "key format and one event per key not judged")
