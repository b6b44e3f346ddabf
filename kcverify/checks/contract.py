"""Contract (I4): every HTTP response observed validates against contracts/openapi/ (and a 422 of a create
names every field the request got wrong, P1), and every event the system produced validates against
contracts/events/ (events a scenario injected on purpose, like poison, are not the system's and are not
judged). A response that never came (the server died) is indeterminate: reported, never counted as
conforming."""

from __future__ import annotations

import json
import re

from kcverify import contracts
from kcverify.checks.base import Check
from kcverify.contracts.openapi import validate_response
from kcverify.evidence.evidence import Exchange
from kcverify.spec import names

_REQUIRED = re.compile(r"^'([^']+)' is a required property$")
CACHE_HEADERS = ("header Age", "header Cache-Status")  # S2's headers, as validate_response names them
_ITEM = re.compile(r"^\$\.purchases\[\d+\]$")  # one purchase of a learning view
# Fields that hold an id, and the messages that judge only its form as a UUID (the format, a pattern of hex
# digits, or a number where a UUID string was due); under `ids: opaque` (Conventions.uuid_ids) these are
# not judged.
ID_FIELDS = frozenset({"id", "paymentId", "purchaseId", "eventId", "correlationId", "idempotencyKey"})
_UUID_FORM = re.compile(r"is not a 'uuid'$|does not match '.*\[0-9a-f|^-?\d+ is not of type 'string'$")
# Where a canonical field sits in a canonical value: at the top (envelope, dead letter), in the payload, or
# in a dead letter's original event (a confirmed event, judged by what the confirmed topic carries).
_CONTAINERS = {(): None, ("payload",): None, ("originalEvent",): names.TOPIC_CONFIRMED,
               ("originalEvent", "payload"): names.TOPIC_CONFIRMED}


class ContractCheck(Check):
    name = "contract"
    rules = ("I4",)
    description = "every HTTP response and every produced event conforms to contracts/"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._exchanges_seen = 0
        self._records_seen: dict[str, set[tuple[int, int]]] = {}  # topic -> (partition, offset) validated
        self._not_carried: dict[str, set[str]] = {}  # canonical topic -> fields the system does not carry
        self.metrics.update(responses=0, events=0)

    def after_step(self, step: int) -> None:
        self._scan(step)

    def finish(self) -> None:
        self._scan(None)
        self.notes.append(f"{self.metrics['responses']} response(s), {self.metrics['events']} event(s) validated")
        for topic, fields in sorted(self._not_carried.items()):
            self.notes.append(f"{topic}: {', '.join(sorted(fields))} not carried by this system (profile maps no "
                              "such field): not judged")

    def _scan(self, step: int | None) -> None:
        for exchange in self.evidence.exchanges[self._exchanges_seen:]:
            self._exchanges_seen += 1
            if exchange.reply.status is None:
                continue  # indeterminate: the step's own outcome says so
            self.metrics["responses"] += 1
            violations = validate_response(exchange.service, exchange.method, exchange.path, exchange.reply.status,
                                           exchange.reply.headers, exchange.reply.body)
            if exchange.reply.status >= 400 and not self.evidence.conventions.problem_errors:
                violations = _as_plain_json_error(violations, exchange.reply.headers, exchange.reply.body)
            violations = [v for v in violations if self._answer_carries(exchange.path, v) and self._id_form_judged(v)]
            if exchange.kind == "create_payment" and exchange.reply.status == 422 \
                    and self.evidence.conventions.problem_errors:
                self._one_entry_per_field(exchange, step)
            if violations:
                shown = "; ".join(str(v) for v in violations[:4])
                self.fail(f"http:{exchange.step}:{exchange.method}:{exchange.path}:{exchange.reply.status}",
                          f"{exchange.method} {exchange.path} -> {exchange.reply.status} breaks "
                          f"{exchange.service}.yaml: {shown}", step=exchange.step or step,
                          rules=_rules_for(exchange.path, violations),
                          body=exchange.reply.body[:500].decode(errors="replace"))
        for topic, schema in contracts.EVENT_SCHEMAS.items():
            seen = self._records_seen.setdefault(topic, set())
            # the records new in the last snapshot, by identity (evidence/window.py): the list goes partition
            # by partition, so a record new on a lower partition is listed before ones already validated
            for record in self.evidence.new_genuine(topic):
                if (record.partition, record.offset) in seen:
                    continue
                seen.add((record.partition, record.offset))
                self.metrics["events"] += 1
                try:
                    event = json.loads(record.value)
                except (ValueError, UnicodeDecodeError) as exc:
                    self.fail(f"event:{topic}:{record.partition}:{record.offset}",
                              f"{topic}[{record.partition}]@{record.offset} is not JSON: {exc}", step=step)
                    continue
                violations = [v for v in contracts.validate(schema, event)
                              if self._carried(topic, v) and self._id_form_judged(v)]
                if violations:
                    shown = "; ".join(str(v) for v in violations[:4])
                    self.fail(f"event:{topic}:{record.partition}:{record.offset}",
                              f"{topic}[{record.partition}]@{record.offset} breaks {schema}: {shown}", step=step)

    def _one_entry_per_field(self, exchange: Exchange, step: int | None) -> None:
        """P1: a create refused with 422 names every field the request got wrong, each in an `errors` entry.
        The fields are the request's violations of the create contract, found here, not read from the
        answer. An entry names a field by its path in any usual form (`metadata.sessionCount`,
        `$.metadata.sessionCount`, `/metadata/sessionCount`, `#/metadata/sessionCount`), or by a path that
        ends with the field's name (a system whose request the profile reshapes names it in its own shape);
        a missing field may be named in its parent's entry, as jsonschema reports it."""
        try:
            sent, answer = json.loads(exchange.request_body), json.loads(exchange.reply.body)
        except ValueError:
            return  # a body that is not JSON is reported above, or was sent on purpose
        if not isinstance(sent, dict) or not isinstance(answer, dict):
            return
        wrong = sorted({_offending_field(v) for v in contracts.validate("schemas/payment-create", sent)})
        if not wrong:
            return  # refused for something the contract does not say (an unknown course): not judged here
        written = [e for e in answer.get("errors") or [] if isinstance(e, dict)] \
            if isinstance(answer.get("errors"), list) else []
        entries = [(str(e.get("field", "")), _field_path(str(e.get("field", ""))), str(e.get("message", "")))
                   for e in written]
        leaves = [f.rpartition(".")[2] for f in wrong]
        shared = {leaf for leaf in leaves if leaves.count(leaf) > 1}  # `startDate` at two places: say which
        unnamed = [f for f in wrong if not any(_names(path, message, f, f.rpartition(".")[2] in shared)
                                               for _, path, message in entries)]
        if unnamed:
            named = ", ".join(repr(field) for field, _, _ in entries) or "no field"
            self.fail(f"422-fields:{exchange.step}:{exchange.start_seq}", f"a create refused with 422 names "
                      f"{named} in its errors, but not {', '.join(unnamed)}, which the request got wrong too: a 422 "
                      "lists one entry per offending field", rules=("I4", "P1"), step=exchange.step or step,
                      body=exchange.reply.body[:500].decode(errors="replace"))

    def _answer_carries(self, path: str, violation: contracts.Violation) -> bool:
        """False for a required canonical field a user's system does not put in its HTTP answers at all (its
        profile maps no such field): noted, not failed, as for the bus."""
        if violation.path in CACHE_HEADERS and "/learning" in path and not self.evidence.conventions.cache_headers:
            self._not_carried.setdefault(names.HTTP_LEARNING_VIEW, set()).add(violation.path)
            return False
        missing = _REQUIRED.match(violation.message)
        if not missing:
            return True
        if "/learning" in path:
            judged = {"$": names.HTTP_LEARNING_VIEW}.get(violation.path) or \
                (names.HTTP_LEARNING_PURCHASE if _ITEM.fullmatch(violation.path) else None)
        else:
            judged = names.HTTP_PAYMENT if violation.path == "$" else None
        field = missing.group(1)
        if judged is None or self.evidence.conventions.carries(judged, field):
            return True
        self._not_carried.setdefault(judged, set()).add(field)
        return False

    def _id_form_judged(self, violation: contracts.Violation) -> bool:
        """False for a UUID-form violation of an id when the system declares its ids opaque."""
        if self.evidence.conventions.uuid_ids or not _UUID_FORM.search(violation.message):
            return True
        return violation.path.rsplit(".", 1)[-1] not in ID_FIELDS

    def _carried(self, topic: str, violation: contracts.Violation) -> bool:
        """False for a required canonical field the system does not carry at all (noted, not failed)."""
        missing = _REQUIRED.match(violation.message)
        if not missing:
            return True
        parts = tuple(p for p in violation.path.removeprefix("$").split(".") if p)
        parent, field = parts[:-1], missing.group(1)
        if not parts or parts[-1] != field or parent not in _CONTAINERS or field == "payload":
            return True
        judged = _CONTAINERS[parent] or topic
        if self.evidence.conventions.carries(judged, field):
            return True
        self._not_carried.setdefault(judged, set()).add(field)
        return False


def _field_path(name: str) -> str:
    """A field as a dotted path (`metadata.sessionCount`), from the forms services write it in: `$.a.b`,
    `/a/b`, `#/a/b`, `a[0].b`."""
    name = re.sub(r"\[(\d+)\]", r".\1", name.strip().removeprefix("#").removeprefix("$")).replace("/", ".")
    return name.strip(".")


def _names(path: str, message: str, field: str, ambiguous: bool = False) -> bool:
    """Whether an errors entry (its field as a dotted path, its message) names the offending `field`: the
    same path, or one that ends with it or with the field's own name (a system's own shape of the request),
    or its parent's path with a message naming it (a missing property, as jsonschema reports it). When
    another offending field has the same name (`ambiguous`: `startDate` and `schedule.startDate`), the
    name alone names neither: the entry must give the path, or the end of it from a parent on."""
    parent, _, leaf = field.rpartition(".")
    if path == field or path.endswith("." + field):
        return True
    if ambiguous:
        return "." in path and field.endswith("." + path)
    if path.rpartition(".")[2] == leaf:
        return True
    if leaf not in message:
        return False
    return not parent or path == parent or path.endswith("." + parent)  # a top-level one: any entry saying so


def _offending_field(violation: contracts.Violation) -> str:
    """The field a violation of the create contract is about: a missing property is its own field."""
    missing = _REQUIRED.match(violation.message)
    path = _field_path(violation.path)
    return ".".join(p for p in (path, missing.group(1) if missing else "") if p) or "(body)"


def _as_plain_json_error(violations: list[contracts.Violation], headers: dict[str, str],
                         body: bytes) -> list[contracts.Violation]:
    """An error answer judged by `errors: json`: its status must still be one the contract documents for the
    route (a 500 where a 400 is due, an HTML page, never pass), and its body must be a JSON object with a JSON
    media type; the RFC 9457 problem fields are not asked for."""
    kept = [v for v in violations if v.path.startswith("header ") or "is not documented" in v.message
            or "is not an operation" in v.message]
    if any("is not documented" in v.message or "is not an operation" in v.message for v in kept):
        return kept
    media_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "").split(";")[0].strip()
    if media_type != "application/json" and not media_type.endswith("+json"):
        return [*kept, contracts.Violation("content-type", f"{media_type or '(none)'} is not a JSON media type")]
    try:
        instance = json.loads(body)
    except ValueError as exc:
        return [*kept, contracts.Violation("$", f"body is not JSON: {exc}")]
    if not isinstance(instance, dict):
        return [*kept, contracts.Violation("$", f"the error body is {type(instance).__name__}, not a JSON object")]
    return kept


def _rules_for(path: str, violations: list[contracts.Violation]) -> tuple[str, ...]:
    cache = ("S2",) if any(v.path in CACHE_HEADERS for v in violations) else ()
    if "/learning" in path:
        return ("I4", "S1", *cache)
    if path.endswith("/confirm"):
        return ("I4", "P2", "P4")
    return ("I4", "P1")
