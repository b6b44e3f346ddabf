"""A system's Kafka records <-> the canonical records the checks judge (docs/external.md, "Kafka").

A profile says, per topic, where each CANONICAL field of a record is: a JMESPath expression over
`{value, key, headers}` (value: the record's JSON value; key: its key as text; headers: name -> text).
The canonical fields are the envelope's own (`eventId`, `type`, `version`, `occurredAt`, `correlationId`,
`idempotencyKey`, `source`), the payload's (`paymentId`, `studentId`, ...: every other name), and for the
dead-letter topic the dead letter's flat fields (`originalEvent`, `originalTopic`, `partition`, `offset`,
`reason`, `error`, `attempts`, `firstFailedAt`, `deadLetteredAt`).

Reading (`TopicMap.canonical`): the canonical value is built from what the fields find (a field that finds
nothing is left out, so the contract check names what the system's records lack); a value that is not a
JSON object stays the bytes it was, which every check treats as poison (`evidence.decode` gives None).
The key becomes the canonical key (the student id) when it is what the topic's `key` template says it
should be, and stays what it was otherwise, so the records check reports the key the system really used.
Headers a field reads are renamed to the canonical field's name; every other header stays as it was.

A topic's `values` translate a field's values where the system names them otherwise (`type:
{payment.confirmed: PURCHASE_CONFIRMED}`, `reason: {PAYMENT_NOT_PAID: payment_not_succeeded}`): applied
after reading, inverted when producing; a value not listed stays as it is.

Producing (`TopicMap.system`): the inverse, for fields whose expression is a plain path (`value.a.b`,
`key`, `headers.NAME`) or a literal (a constant the system does not carry). The topic scenarios publish
to (confirmed) may use nothing else: `check_invertible` says so at profile load."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jmespath
from jmespath.parser import ParsedResult

from kcverify.contracts import asyncapi
from kcverify.spec import names
from kcverify.targets.base import BusRecord
from kcverify.targets.external.profile import Profile

# The profile's topic roles and the canonical topic each one is.
ROLES: Mapping[str, str] = {
    "confirmed": names.TOPIC_CONFIRMED,
    "created": names.TOPIC_CREATED,
    "dead_letter": names.TOPIC_DLQ,
}
# The profile's group roles, the canonical group and the canonical topic whose offsets it commits.
GROUPS: Mapping[str, tuple[str, str]] = {
    "worker": (names.WORKER_GROUP, names.TOPIC_CONFIRMED),
    "invalidator": (names.INVALIDATOR_GROUP, names.TOPIC_CREATED),
}
# Fields of the envelope itself (contracts/events/envelope.schema.json); every other field of an event
# topic is a payload field.
ENVELOPE_FIELDS = ("eventId", "type", "version", "occurredAt", "correlationId", "idempotencyKey", "source")
LETTER_FIELDS = ("originalEvent", "originalTopic", "partition", "offset", "reason", "error", "attempts",
                 "firstFailedAt", "deadLetteredAt")
ROOTS = ("value", "key", "headers")


@dataclass(frozen=True)
class Path:
    """Where a field is, when that can be written to: `root` value/key/headers and the names below it, or
    a literal (`literal` True, `constant` its value)."""

    root: str
    parts: tuple[str, ...] = ()
    literal: bool = False
    constant: Any = None


def plain_path(expression: str) -> Path | None:
    """The expression as a writable path, or None when it is anything else (a function, a filter, an index,
    `||`...): such a field can be read but not produced."""
    parsed = jmespath.compile(expression).parsed
    if parsed["type"] == "literal":
        return Path("", literal=True, constant=parsed["value"])
    parts: list[str] = []

    def walk(node: dict[str, Any]) -> bool:
        if node["type"] == "field":
            parts.append(str(node["value"]))
            return True
        if node["type"] == "subexpression":
            return all(walk(child) for child in node["children"])
        return False

    if not walk(parsed) or not parts or parts[0] not in ROOTS:
        return None
    root, rest = parts[0], tuple(parts[1:])
    if (root == "key" and rest) or (root == "headers" and len(rest) != 1) or (root == "value" and not rest):
        return None
    return Path(root, rest)


@dataclass
class TopicMap:
    """One topic of the profile: its role, the system's name, the canonical name, the fields and the key."""

    role: str
    name: str
    fields: dict[str, str] = field(default_factory=dict)
    key: str | None = None
    values: dict[str, dict[str, Any]] = field(default_factory=dict)  # field -> system value -> canonical
    _compiled: dict[str, ParsedResult] = field(default_factory=dict, repr=False)
    _paths: dict[str, Path | None] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._compiled = {f: jmespath.compile(e) for f, e in self.fields.items()}
        self._paths = {f: plain_path(e) for f, e in self.fields.items()}

    @property
    def canonical_name(self) -> str:
        return ROLES[self.role]

    # --- reading -------------------------------------------------------------------------------------

    def flat(self, value: Any, key: str | None, headers: Iterable[tuple[str, str]]) -> dict[str, Any]:
        """Every canonical field the profile's expressions find in one record (None: not found)."""
        document = {"value": value, "key": key, "headers": dict(headers)}
        found = {}
        for name, compiled in self._compiled.items():
            result = compiled.search(document)
            if result is not None:
                found[name] = _translated(self.values.get(name), result)
        return found

    def envelope(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """The canonical value of these fields: an event's envelope with its payload, or a dead letter."""
        if self.role == "dead_letter":
            return dict(flat)
        out = {name: flat[name] for name in ENVELOPE_FIELDS if name in flat}
        payload = {name: v for name, v in flat.items() if name not in ENVELOPE_FIELDS}
        if payload:
            out["payload"] = payload
        return out

    def canonical(self, record: BusRecord, *, value: Any = None) -> BusRecord:
        """The canonical record of one of this topic's records. `value`: the canonical value when the caller
        has built it already (a dead letter, whose original event is translated too)."""
        parsed = _json(record.value)
        if not isinstance(parsed, dict):
            return _renamed(record, self.canonical_name, record.value, record.key, record.headers)
        if value is None:
            value = parsed if not self.fields else self.envelope(self.flat(parsed, record.key, record.headers))
        renames = {where.parts[0]: name for name in self.fields
                   if (where := self.path(name)) is not None and where.root == "headers"}
        # a header says a field as the system names its values (`type: payment.confirmed`): translated too
        headers = tuple((name, str(_translated(self.values.get(name), v)))
                        for name, v in ((renames.get(n, n), v) for n, v in record.headers))
        return _renamed(record, self.canonical_name, _dumps(value), self.canonical_key(record.key, value), headers)

    def canonical_key(self, key: str | None, value: Mapping[str, Any]) -> str | None:
        """The canonical key (the student id) when `key` is what the profile's template says; else `key`."""
        if self.key is None:
            return key
        flat = _flatten(value)
        try:
            wanted = self.key.format_map(flat)
        except (KeyError, IndexError, ValueError):
            return key
        if wanted != key:
            return key
        message = asyncapi.messages().get(self.canonical_name)
        student = asyncapi.key_value(message, value) if message is not None else None
        if student is None and isinstance(value.get("originalEvent"), dict):
            student = _flatten(value["originalEvent"]).get("studentId")
        return str(student) if student is not None else key

    def path(self, name: str) -> Path | None:
        return self._paths.get(name)

    # --- producing -----------------------------------------------------------------------------------

    def system(self, key: str | None, value: bytes,
               headers: tuple[tuple[str, str], ...]) -> tuple[str | None, bytes, tuple[tuple[str, str], ...]]:
        """The record the system expects for a canonical one: value, key and headers. A value that is not a
        JSON object goes out as given (poison stays poison)."""
        parsed = _json(value)
        if not isinstance(parsed, dict) or not self.fields:
            return key, value, headers
        flat = _flatten(parsed)
        if key is not None:
            flat.setdefault("studentId", key)
        out: dict[str, Any] = {}
        new_key = key
        extra: list[tuple[str, str]] = []
        for name in self.fields:
            where = self.path(name)
            if where is None or where.literal or name not in flat:
                continue
            inverse = {_text(canonical): system for system, canonical in self.values.get(name, {}).items()}
            written = _translated(inverse, flat[name])
            if where.root == "key":
                new_key = _text(written)
            elif where.root == "headers":
                extra.append((where.parts[0], _text(written)))
            else:
                _set(out, where.parts, written)
        if self.key is not None:
            with contextlib.suppress(KeyError, IndexError, ValueError):
                new_key = self.key.format_map(flat)
        return new_key, _dumps(out), (*headers, *extra)


def topic_maps(profile: Profile) -> dict[str, TopicMap]:
    """role -> TopicMap of every topic the profile configures."""
    out = {}
    for role, spec in profile.section("kafka", "topics").items():
        out[role] = TopicMap(role, str(spec["name"]), dict(spec.get("fields") or {}), spec.get("key"),
                             {str(f): dict(v) for f, v in (spec.get("values") or {}).items()})
    return out


def check_invertible(profile: Profile) -> None:
    """Every field of the confirmed topic must be writable: scenarios publish canonical events there, and
    the target writes each field where the profile says it is."""
    spec = profile.section("kafka", "topics", "confirmed")
    for name, expression in (spec.get("fields") or {}).items():
        if plain_path(expression) is None:
            raise profile.error(
                f"{name}: {expression!r} cannot be written to, and scenarios publish to this topic",
                "kafka", "topics", "confirmed", "fields", name,
                hint="use a plain path (value.a.b, key, headers.\"name\") or a literal (`1`)")
    for role in ("confirmed", "created", "dead_letter"):
        template = profile.section("kafka", "topics", role).get("key")
        if isinstance(template, str):
            try:
                template.format_map(_Any())
            except (ValueError, IndexError) as exc:
                raise profile.error(f"not a key template: {exc}", "kafka", "topics", role, "key",
                                    hint="canonical fields in braces, e.g. {studentId}") from exc


class _Any(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def _flatten(value: Mapping[str, Any]) -> dict[str, Any]:
    """A canonical envelope's fields and its payload's, in one mapping (the names a template or a profile's
    fields use)."""
    flat = {k: v for k, v in value.items() if k != "payload"}
    payload = value.get("payload")
    if isinstance(payload, dict):
        flat.update(payload)
    return flat


def _translated(table: Mapping[str, Any] | None, value: Any) -> Any:
    """`value` as `table` names it (keys compared as text); unchanged when not listed."""
    if not table or isinstance(value, (dict, list)):
        return value
    return table.get(_text(value), value)


def _set(out: dict[str, Any], parts: tuple[str, ...], value: Any) -> None:
    node = out
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _json(value: bytes) -> Any:
    try:
        return json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _renamed(record: BusRecord, topic: str, value: bytes, key: str | None,
             headers: tuple[tuple[str, str], ...]) -> BusRecord:
    return BusRecord(topic, record.partition, record.offset, key, value, headers, record.timestamp)


__all__ = ["GROUPS", "ROLES", "Path", "TopicMap", "check_invertible", "plain_path", "topic_maps"]
