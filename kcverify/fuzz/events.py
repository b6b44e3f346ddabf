"""The records the consumer passes of `kcverify fuzz` publish, drawn with Hypothesis from the event
contracts (contracts/events/purchase-confirmed.schema.json and the metadata it points at).

A case is drawn before the system runs, so it cannot know the id of the payment it is about: a
record meant for that payment is a `Draft` with `for_payment` set, completed by `bind` once the
payment exists (its id, student, course, idempotency key and event id, as the rules derive them).
Every other record is whole when drawn: a near-valid event (one part broken: a wrong type, a missing
or extra field, a sessionCount that is not a number or out of range, a huge or non-ASCII string, not
JSON at all) or a schema-valid event for a payment that does not exist (W3). Whether a record is
schema-valid is decided by the contract (`contracts.validate`), never by what a system does with it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from kcverify import contracts
from kcverify.core.ids import event_id_for
from kcverify.scenario import generate
from kcverify.spec import names

EVENT_SCHEMA = "events/purchase-confirmed"
STUDENT = "s1"  # the case's student: every record is keyed by it, so all share one partition, in order
COURSE = "c1"
_STUDENT_FIELD = f'"studentId":{json.dumps(STUDENT)}'  # as `_encode` writes it
AMOUNT_CENTS = 4900  # what the case's payment is created with, and what a valid event for it says
CURRENCY = "EUR"
OCCURRED_AT = "2026-01-01T00:00:00.000Z"
SOURCE = "scenario"  # what the scenario format's forged events say (a replay writes them as `forged`)
HUGE = 65_536  # characters of a huge string: big, and still within a scenario file's limits


@dataclass(frozen=True)
class Draft:
    """One record of a case. `for_payment`: a valid event for the case's payment carrying `metadata`,
    completed by `bind`; otherwise `text` is the record's value as it is sent (UTF-8)."""

    label: str  # what was done to it: "valid", "sessionCount 'ten'", "missing payload.courseId", ...
    text: str = ""
    metadata: Mapping[str, Any] | None = None
    for_payment: bool = False
    copies: int = 1  # delivered this many times in a row

    def value(self, payment_id: str, student: str) -> bytes:
        """The record as sent for the case's `payment_id` and `student` (the id the target gave the case's
        student). A whole record's `studentId` of the drawn student becomes that id too: the verifier sees
        the rows of its own students only (a target that prefixes ids reads its namespace), so a purchase a
        system wrongly made for a payment that does not exist (W3) must be one of them to be seen."""
        if self.for_payment:
            return bind(payment_id, student, dict(self.metadata or {}))
        return self.text.replace(_STUDENT_FIELD, f'"studentId":{json.dumps(student)}').encode("utf-8")


def envelope(payment_id: str, student: str, course: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A PURCHASE_CONFIRMED for `payment_id` as the contract and the rules shape it (the key formats of
    kcverify.spec.names; the event id derived from the idempotency key)."""
    key = names.confirmed_key(payment_id)
    return {
        "eventId": event_id_for(key), "type": names.EVENT_CONFIRMED, "version": names.EVENT_VERSION,
        "occurredAt": OCCURRED_AT, "correlationId": payment_id, "idempotencyKey": key, "source": SOURCE,
        "payload": {"paymentId": payment_id, "studentId": student, "courseId": course,
                    "amountCents": AMOUNT_CENTS, "currency": CURRENCY, "metadata": dict(metadata)},
    }


def bind(payment_id: str, student: str, metadata: dict[str, Any]) -> bytes:
    """The valid event for the case's payment, encoded as the scenario format's `forged` step does."""
    event = envelope(payment_id, student, COURSE, metadata)
    return json.dumps(event, separators=(",", ":"), sort_keys=True).encode("utf-8")


def schema_valid(value: bytes) -> bool:
    try:
        event = json.loads(value)
    except ValueError:
        return False
    return not contracts.validate(EVENT_SCHEMA, event)


# --- strategies -------------------------------------------------------------------------------------------

def payment_metadata() -> st.SearchStrategy[dict[str, Any]]:
    """The checkout metadata of the case's payment: complete and valid (P1), with extra keys, nulls under
    them and non-ASCII text (the metadata contract's own generator)."""
    return generate.strategy()


@st.composite
def event_metadata(draw: st.DrawFn) -> dict[str, Any]:
    """The copy an event carries: a valid document with some keys left out (the contract's `partial`),
    sometimes a huge event-only value that must reach the purchase verbatim."""
    document = draw(generate.strategy())
    keep = draw(st.lists(st.sampled_from(sorted(document)), unique=True, max_size=len(document)))
    partial = {k: document[k] for k in sorted(document) if k in keep}
    if draw(st.booleans()):
        partial["fuzzNote"] = draw(st.one_of(st.text(max_size=40), st.just("x" * HUGE)))
    return partial


def standard_metadata() -> dict[str, Any]:
    """The checkout metadata of the payment-create contract's example: what the poison cases use, so their
    draws (and their shrinking) spend nothing on metadata the properties they test do not read."""
    return dict(contracts.schema("schemas/payment-create")["examples"][0]["metadata"])


def _fake_payment(draw: st.DrawFn) -> str:
    return str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)), version=4))


_NON_NUMERIC = st.one_of(st.sampled_from(["ten", "", "10 sessions", "NaN", "1e3", "0x10", "½"]),
                         st.text(min_size=0, max_size=12).filter(lambda s: not _numeric(s)))


def _numeric(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


_OTHER_TYPES: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(-2**63, 2**63), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(),
                                                                                max_size=2))

_ENVELOPE_FIELDS = ("eventId", "type", "version", "occurredAt", "correlationId", "idempotencyKey", "source",
                    "payload")
_PAYLOAD_FIELDS = ("paymentId", "studentId", "courseId", "amountCents", "currency", "metadata")


def _path_get(event: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    *parents, leaf = path.split(".")
    node = event
    for part in parents:
        node = node[part]
    return node, leaf


@st.composite
def _broken(draw: st.DrawFn) -> tuple[str, Any]:
    """A near-valid event: a valid one for a payment that does not exist, with one part broken."""
    metadata = standard_metadata()
    event = envelope(_fake_payment(draw), STUDENT, COURSE, metadata)
    how = draw(st.sampled_from(("session-non-numeric", "session-numeric-string", "session-out-of-range",
                                "session-not-integer", "wrong-type", "missing", "extra", "wrong-event-type",
                                "bad-key", "huge", "unicode", "not-an-object")))
    md = event["payload"]["metadata"]
    if how == "session-non-numeric":
        md["sessionCount"] = draw(_NON_NUMERIC)
        return f"sessionCount {md['sessionCount']!r}", event
    if how == "session-numeric-string":
        md["sessionCount"] = str(draw(st.integers(1, 200)))
        return f"sessionCount {md['sessionCount']!r}", event
    if how == "session-out-of-range":
        md["sessionCount"] = draw(st.one_of(st.integers(max_value=0), st.integers(min_value=201)))
        return f"sessionCount {md['sessionCount']!r}", event
    if how == "session-not-integer":
        md["sessionCount"] = draw(st.one_of(st.floats(allow_nan=False, allow_infinity=False).filter(
            lambda f: not f.is_integer()), st.booleans(), st.none(), st.lists(st.integers(1, 200), max_size=2)))
        return f"sessionCount {md['sessionCount']!r}", event
    if how in ("wrong-type", "missing"):
        path = draw(st.sampled_from([*_ENVELOPE_FIELDS, *(f"payload.{f}" for f in _PAYLOAD_FIELDS)]))
        node, leaf = _path_get(event, path)
        if how == "missing":
            del node[leaf]
            return f"missing {path}", event
        wrong = draw(_OTHER_TYPES.filter(lambda v: type(v) is not type(node[leaf])))
        node[leaf] = wrong
        return f"{path} {type(wrong).__name__}", event
    if how == "extra":
        where = draw(st.sampled_from(("", "payload.")))
        name = draw(st.text(min_size=1, max_size=12).filter(lambda n: n not in event and n not in event["payload"]))
        (event["payload"] if where else event)[name] = draw(_OTHER_TYPES)
        return f"extra {where}{name}", event
    if how == "wrong-event-type":
        event["type"] = draw(st.sampled_from(["PURCHASE_CREATED", "purchase_confirmed", "PURCHASE_CONFIRMED "]))
        return f"type {event['type']!r}", event
    if how == "bad-key":
        event["idempotencyKey"] = draw(st.sampled_from([event["payload"]["paymentId"], "payment::PURCHASE_CONFIRMED",
                                                        names.confirmed_key("not-a-uuid")]))
        return f"idempotencyKey {event['idempotencyKey']!r}", event
    if how == "huge":
        path = draw(st.sampled_from(["payload.courseId", "payload.studentId", "source", "payload.currency"]))
        node, leaf = _path_get(event, path)
        node[leaf] = "a" * draw(st.sampled_from([65, 4_096, HUGE]))
        return f"{path} of {len(node[leaf]):,} characters", event
    if how == "unicode":
        path = draw(st.sampled_from(["payload.courseId", "payload.studentId", "payload.currency"]))
        node, leaf = _path_get(event, path)
        node[leaf] = draw(st.text(st.characters(min_codepoint=0x80, exclude_categories=["Cs"]), min_size=1,
                                  max_size=8))
        return f"{path} {node[leaf]!r}", event
    return "not an object", draw(st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.text(max_size=8),
                                           st.none()))


@st.composite
def near_valid(draw: st.DrawFn) -> Draft:
    """A record the contract refuses (W2), or a valid event for a payment that does not exist (W3)."""
    kind = draw(st.sampled_from(("broken", "broken", "broken", "not-json", "unknown-payment")))
    if kind == "not-json":
        text = draw(st.one_of(st.sampled_from(['{"type": "PURCHASE_CONFIRMED", "payload": ', "{not json", ""]),
                              st.text(max_size=40).filter(lambda t: not _parses(t))))
        return Draft("not JSON", text=text, copies=draw(st.integers(1, 2)))
    if kind == "unknown-payment":
        course = draw(st.sampled_from([COURSE, "unknown-course"]))
        event = envelope(_fake_payment(draw), STUDENT, course, standard_metadata())
        return Draft(f"unknown payment (course {course})", text=_encode(event, draw(st.booleans())),
                     copies=draw(st.integers(1, 2)))
    label, event = draw(_broken())
    return Draft(label, text=_encode(event, draw(st.booleans())), copies=draw(st.integers(1, 2)))


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _encode(event: Any, ascii_only: bool) -> str:
    return json.dumps(event, separators=(",", ":"), sort_keys=True, ensure_ascii=ascii_only)


@st.composite
def valid_for_payment(draw: st.DrawFn, metadata: st.SearchStrategy[dict[str, Any]] | None = None) -> Draft:
    chosen = draw(metadata if metadata is not None else event_metadata())
    return Draft("valid", metadata=chosen, for_payment=True, copies=draw(st.integers(1, 3)))


@dataclass(frozen=True)
class EventCase:
    """The case's payment (created and confirmed through the API first) and the records published after
    its confirmation, in order, before the system relays the payment's own event."""

    payment_metadata: Mapping[str, Any]
    drafts: tuple[Draft, ...]


def valid_cases() -> st.SearchStrategy[EventCase]:
    """Valid events for the succeeded payment: duplicated, in any order, with their own metadata."""
    return st.builds(EventCase, payment_metadata(), st.lists(valid_for_payment(), min_size=1, max_size=3).map(tuple))


def poison_cases() -> st.SearchStrategy[EventCase]:
    """Near-valid records, some followed or preceded by a valid event for the payment (the standard
    metadata throughout: these properties are about where records end, not about the merge)."""
    standard = st.just(standard_metadata())
    drafts = st.lists(st.one_of(near_valid(), near_valid(), near_valid(), valid_for_payment(standard)), min_size=1,
                      max_size=4).filter(lambda ds: any(not d.for_payment for d in ds))
    return st.builds(EventCase, standard, drafts.map(tuple))
