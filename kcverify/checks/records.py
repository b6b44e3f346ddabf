"""Records: the Kafka side of every event the system produced, which no value schema sees.

- I4: each record's key is the field of its value the contract names (contracts/events/asyncapi.yaml:
  the message's `x-key-field` beside its `bindings.kafka.key` schema), and it carries every header the
  contract requires, each equal to the envelope field of the same name; an event's correlationId is the
  paymentId it descends from.
- P3: a PURCHASE_CONFIRMED's payload carries its payment's student, course, amount and currency, and
  only a payment that succeeded is announced (its row is not initiated, failed or cancelled when the
  record is first seen).
- P3/P4: one PURCHASE_CONFIRMED record per payment. A gateway retry of a confirmation must not enqueue a
  second one. Only a fault that at-least-once delivery legitimately repeats allows more (a relay crash
  or kill between publish and mark, a failed store or broker call, a component taken down so that the
  reconciler re-publishes, a dead-letter replay, the manual clock moved past the reconciler's grace in
  all, a real-time wait); then every
  further record must be the same event as the first: same key, event id, type, idempotency key,
  correlationId, payload and required headers (a fresh occurredAt or a tracing header may differ).
Records the scenario injected (its `publish` steps) are not the system's and are not judged, nor are the
system's relays of them (a dead-letter replay of an injected record: its bytes, with no headers or with the
injection's header). A user's
system judged by its profile is held to the required headers it carries (`Conventions.carries_header`):
one it does not carry at all is noted, not failed."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from jsonschema import Draft202012Validator

from kcverify.checks.base import Check
from kcverify.contracts import asyncapi
from kcverify.evidence.evidence import decode
from kcverify.spec.names import EVENT_CONFIRMED, EVENT_CREATED, TOPIC_CONFIRMED, TOPIC_CREATED
from kcverify.spec.policy import RECONCILE_GRACE
from kcverify.targets.base import BusRecord

# Topics whose events carry the paymentId they descend from as their correlationId.
CORRELATED = (TOPIC_CONFIRMED, TOPIC_CREATED)
# Components whose being down can make the flow publish a confirmation again (the relay re-publishes what
# it published before it died; the reconciler re-publishes a payment whose purchase is late).
REPUBLISHING_COMPONENTS = ("payment-relay", "purchase-worker", "reconciler")
# What a PURCHASE_CONFIRMED's payload repeats of its payments row (P3), by the same names.
PAID_FIELDS = ("studentId", "courseId", "amountCents", "currency")
# Statuses of a payment that never succeeded (succeeded -> refunded is the only way out of succeeded).
NEVER_PAID = ("initiated", "failed", "cancelled")
# Resources whose failure can repeat a publish (a failed mark, a late purchase, a produce that timed out).
MISSING_FIELD = object()  # a field an event does not have
REPUBLISHING_RESOURCES = ("payments_db", "courses_db", "bus")


class RecordsCheck(Check):
    name = "records"
    rules = ("I4", "P3", "P4", "I1")
    needs = frozenset({"read_bus"})
    description = "record keys and headers as the AsyncAPI contract says; one PURCHASE_CONFIRMED per payment"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.metrics.update(records=0)
        self._injected_values: set[tuple[str, bytes]] = set()
        self._where_injected: set[tuple[str, int, int]] = set()
        self._injected_seen = 0
        self._not_carried: dict[str, set[str]] = {}  # canonical topic -> required headers not carried
        self._rows_of: object = None
        self._rows: dict[str, dict[str, Any]] = {}

    def after_step(self, step: int) -> None:
        self._shape(step)

    def finish(self) -> None:
        self._shape(None)
        self._per_payment()
        self.notes.append(f"{self.metrics['records']} record(s): keys and headers judged against asyncapi.yaml")
        for topic, headers in sorted(self._not_carried.items()):
            self.notes.append(f"{topic}: header(s) {', '.join(sorted(headers))} not carried by this system "
                              "(profile declares no such header): not judged")

    # --- key and headers ---------------------------------------------------------------------------

    def _shape(self, step: int | None) -> None:
        # Only the records new in the last snapshot: a record's key and headers never change, so each is
        # judged once, at the first step that shows it.
        injected_now = self.evidence.injected  # only grows: add what the last step injected
        self._where_injected.update((r.topic, r.partition, r.offset) for r in injected_now[self._injected_seen:])
        self._injected_seen = len(injected_now)
        where_injected = self._where_injected
        for topic in self.evidence.last.topics:
            self._injected_values.update((topic, record.value) for record in self.evidence.new_records(topic)
                                         if (topic, record.partition, record.offset) in where_injected)
        records = self.metrics["records"]
        for topic, message in asyncapi.messages().items():
            for record in self.evidence.new_genuine(topic):
                if self._relays_injection(topic, record):
                    continue
                records += 1
                event = decode(record)
                where = f"{topic}[{record.partition}]@{record.offset}"
                if message.key_schema and not _key_validator(topic, message.key_schema).is_valid(record.key):
                    self.fail(f"key-schema:{topic}:{record.partition}:{record.offset}", f"{where}: key "
                              f"{record.key!r} breaks the key schema of {message.name or topic} in asyncapi.yaml",
                              rules=("I4",), step=step)
                if event is None:
                    continue  # the contract check reports a value that is not a JSON object
                if message.key_field is not None:
                    wanted = asyncapi.key_value(message, event)
                    if record.key != wanted:
                        self.fail(f"key:{topic}:{record.partition}:{record.offset}", f"{where}: keyed "
                                  f"{record.key!r}, but asyncapi.yaml keys {message.name or topic} by "
                                  f"{'.'.join(message.key_field)} = {wanted!r} (per-student order is lost)",
                                  rules=("I4",), step=step, **self._about(event))
                required = tuple(h for h in message.required_headers
                                 if self.evidence.conventions.carries_header(topic, h))
                if len(required) < len(message.required_headers):
                    self._not_carried.setdefault(topic, set()).update(set(message.required_headers) - set(required))
                self._headers(step, where, record, event, required)
                if topic in CORRELATED:
                    self._correlated(step, where, event)
                if topic == TOPIC_CONFIRMED:
                    self._as_paid(step, where, event)
        self.metrics["records"] = records

    def _relays_injection(self, topic: str, record: BusRecord) -> bool:
        """The scenario's own bytes relayed by a system that drops headers (a dead-letter replay of an
        injected record, headers lost). One that keeps the injection's header is no genuine record at all
        (Evidence.genuine); a genuine record that an injected verbatim copy repeats carries its own headers."""
        return (topic, record.value) in self._injected_values and not record.headers

    def _headers(self, step: int | None, where: str, record: BusRecord, event: dict[str, Any],
                 required: tuple[str, ...]) -> None:
        values: dict[str, list[str]] = defaultdict(list)
        for name, value in record.headers:
            values[name].append(value)
        missing = [name for name in required if name not in values]
        if missing:
            self.fail(f"headers:{where}", f"{where}: required header(s) {', '.join(missing)} missing "
                      f"(asyncapi.yaml requires {', '.join(required)})", rules=("I4",), step=step,
                      **self._about(event))
        for name in required:
            if name in values and event.get(name) is not None and values[name] != [str(event[name])]:
                self.fail(f"header:{where}:{name}", f"{where}: header {name} is {values[name]!r}, but the envelope's "
                          f"{name} is {event[name]!r}", rules=("I4",), step=step, **self._about(event))

    def _correlated(self, step: int | None, where: str, event: dict[str, Any]) -> None:
        """The envelope's correlationId is the paymentId the event descends from (envelope.schema.json: "checked
        by code"), so a payment's trail can be followed through both topics. Not judged when absent."""
        payload = event.get("payload")
        payment = payload.get("paymentId") if isinstance(payload, dict) else None
        correlation = event.get("correlationId")
        if not isinstance(payment, str) or correlation is None:
            return
        # PURCHASE_CREATED's equals it; PURCHASE_CONFIRMED's embeds it (its schema's own words)
        if correlation != payment if event.get("type") == EVENT_CREATED else payment not in str(correlation):
            self.fail(f"correlation:{where}", f"{where}: correlationId {correlation!r} is not the paymentId "
                      f"{payment!r} the event descends from (envelope.schema.json)", rules=("I4",), step=step,
                      **self._about(event))

    def _as_paid(self, step: int | None, where: str, event: dict[str, Any]) -> None:
        """P3: a PURCHASE_CONFIRMED tells what was paid: its payload's student, course, amount and currency
        are those of its payments row (the metadata is the metadata check's). A payload field the system
        does not carry, or a payment the snapshot does not show, is not judged."""
        payload = event.get("payload")
        if not isinstance(payload, dict) or not isinstance(payload.get("paymentId"), str):
            return
        row = self._payments().get(payload["paymentId"])
        if row is None:
            return
        if row.get("status") in NEVER_PAID:
            name = self.evidence.payment_name(payload["paymentId"])
            self.fail(f"unpaid:{where}", f"{where}: a PURCHASE_CONFIRMED of {name}, whose payment is "
                      f"{row.get('status')}: only a payment that succeeded is announced", rules=("P3",),
                      step=step, **self._about(event))
        differ = [f"{field} {payload[field]!r} (the payment's is {row.get(field)!r})" for field in PAID_FIELDS
                  if field in payload and field in row and not _paid_equal(field, payload[field], row[field])
                  and self.evidence.conventions.carries(TOPIC_CONFIRMED, field)]
        if differ:
            name = self.evidence.payment_name(payload["paymentId"])
            self.fail(f"paid:{where}", f"{where}: the PURCHASE_CONFIRMED of {name} says {', '.join(differ)}: the "
                      "event must carry what was paid", rules=("P3",), step=step, **self._about(event))

    def _payments(self) -> dict[str, dict[str, Any]]:
        """The payments rows of the last snapshot, by id (built once per snapshot)."""
        last = self.evidence.last
        if self._rows_of is not last:
            self._rows_of, self._rows = last, {str(p.get("id")): p for p in last.payments}
        return self._rows

    def _about(self, event: dict[str, Any]) -> dict[str, Any]:
        payload = event.get("payload")
        payment = payload.get("paymentId") if isinstance(payload, dict) else None
        return {"payment": self.evidence.payment_name(payment)} if isinstance(payment, str) else {}

    # --- records per payment -----------------------------------------------------------------------

    def _per_payment(self) -> None:
        per_payment: dict[str, list[BusRecord]] = defaultdict(list)
        for record in self.evidence.genuine(TOPIC_CONFIRMED):
            if self._relays_injection(TOPIC_CONFIRMED, record):
                continue  # not the payment's confirmation: a replay of what the scenario made up
            event = decode(record)
            payload = (event or {}).get("payload")
            if (event or {}).get("type") == EVENT_CONFIRMED and isinstance(payload, dict) \
                    and isinstance(payload.get("paymentId"), str):
                per_payment[payload["paymentId"]].append(record)
        for payment_id, records in per_payment.items():
            if len(records) < 2:
                continue
            allowance = self._repeating_faults(self._first_confirmed(payment_id))
            name = self.evidence.payment_name(payment_id)
            if not allowance:
                retried = self._confirmed_more_than_once(payment_id)
                why = (" (the gateway's retried confirmation enqueued another)" if retried else
                       " (a confirmation published again: lost by its consumer and re-published, enqueued twice, or "
                       "re-published by a reconciler before its grace)")
                self.fail(f"count:{payment_id}", f"{name}: {len(records)} PURCHASE_CONFIRMED records for one payment"
                          f"{why}; without a fault that repeats a publish there must be exactly one",
                          rules=("P4", "P3") if retried else ("P3", "P4", "I1"), payment=name)
                continue
            first = records[0]
            for record in records[1:]:
                differ = _event_differences(first, record)
                if differ:
                    self.fail(f"republish:{payment_id}:{record.partition}:{record.offset}",
                              f"{name}: {TOPIC_CONFIRMED}[{record.partition}]@{record.offset} repeats the payment's "
                              f"confirmation but differs from the first record in its {', '.join(differ)}; a "
                              f"re-publish after {allowance[0]} must be the same event (same key, event id, "
                              "idempotency key, payload and required headers)", rules=("P3", "P4"),
                              payment=name)

    def _repeating_faults(self, confirmed_at_step: int = 0) -> list[str]:
        """The steps of the run after which a confirmation may legitimately be published again. Moving the
        manual clock (`advance_clock`, or `wait` on a target whose clock is manual) after the payment was
        confirmed (`confirmed_at_step`) counts once the moves add up to the reconciler's grace (I1: only a payment still
        without its purchase after the grace is re-published): a reconciler that re-publishes sooner races
        the worker and puts a second record on the topic for nothing."""
        found = []
        advanced = 0.0
        manual_clock = "control_clock" in self.evidence.target.capabilities  # a `wait` moves that clock
        for step, (kind, args) in sorted(self.evidence.step_actions.items()):
            component = str(args.get("component", ""))
            if kind == "crash" and (component in REPUBLISHING_COMPONENTS
                                    or str(args.get("at", "")).startswith(REPUBLISHING_COMPONENTS)):
                found.append(f"step {step} (crash {args.get('at', component)})")
            elif kind in ("kill", "stop") and component in REPUBLISHING_COMPONENTS:
                found.append(f"step {step} ({kind} {component})")
            elif kind == "fail" and args.get("resource") in REPUBLISHING_RESOURCES:
                found.append(f"step {step} (fail {args.get('resource')})")
            elif kind == "advance_clock" or (kind == "wait" and manual_clock):
                if step > confirmed_at_step:
                    advanced += float(args.get("seconds", 0) or 0)
                    if advanced >= RECONCILE_GRACE:
                        found.append(f"step {step} ({kind}, {advanced:g} s in all)")
            elif kind in ("replay_dlq", "wait"):  # a real-time wait: the system's reconciler may be configured
                found.append(f"step {step} ({kind})")  # with a shorter grace than the rules' (the stack's: 5 s)
        return found

    def _first_confirmed(self, payment_id: str) -> int:
        """The step of the payment's first confirmation that was accepted, or may have been (one whose answer
        never came may have committed); 0 when none was seen."""
        path = f"/api/v1/payments/{payment_id}/confirm"
        return min((e.step for e in self.evidence.exchanges
                    if e.path == path and (e.reply.status is None or 200 <= e.reply.status < 300)), default=0)

    def _confirmed_more_than_once(self, payment_id: str) -> bool:
        path = f"/api/v1/payments/{payment_id}/confirm"
        accepted = [e for e in self.evidence.exchanges
                    if e.path == path and e.reply.status is not None and 200 <= e.reply.status < 300]
        return len(accepted) > 1


def _paid_equal(field: str, said: Any, stored: Any) -> bool:
    """An event's paid field against the row's: ids as text (a database may give a number the event writes
    as a string, or the other way round), amounts as numbers, anything else exactly."""
    if field in ("studentId", "courseId"):
        return str(said) == str(stored)
    return bool(said == stored)


_KEY_VALIDATORS: dict[str, tuple[dict[str, Any], Draft202012Validator]] = {}


def _key_validator(topic: str, schema: dict[str, Any]) -> Draft202012Validator:
    """The validator of a topic's key schema, built once per schema (the schema object asyncapi.py keeps),
    not once per record."""
    known = _KEY_VALIDATORS.get(topic)
    if known is None or known[0] is not schema:
        known = _KEY_VALIDATORS[topic] = (schema, Draft202012Validator(schema))
    return known[1]


# What makes a re-published PURCHASE_CONFIRMED the same event: the envelope's identity and payload, and the
# headers the contract requires. Anything else may differ between two publishes of it (a fresh occurredAt,
# a tracing header such as traceparent, the order of headers).
SAME_EVENT_FIELDS = ("eventId", "type", "idempotencyKey", "correlationId", "payload")


def _event_differences(first: BusRecord, record: BusRecord) -> list[str]:
    """What a re-publish changed of the event the first record is, by name ([] when it is the same event)."""
    differ = [] if first.key == record.key else ["key"]
    a, b = decode(first), decode(record)
    if a is None or b is None:
        return differ + ([] if first.value == record.value else ["value"])
    differ += [name for name in SAME_EVENT_FIELDS if a.get(name, MISSING_FIELD) != b.get(name, MISSING_FIELD)]
    required = asyncapi.messages()[TOPIC_CONFIRMED].required_headers
    for header in required:
        if sorted(v for k, v in first.headers if k == header) != sorted(v for k, v in record.headers if k == header):
            differ.append(f"header {header}")
    return differ
