"""The canonical names a profile may use, and the check that it uses only those. A misspelt name is
worse than a syntax error: `evntId:` under a topic's fields makes eventId "not carried" (its checks
quietly not judged), `{payment_id}` in a path fails only when a scenario sends it, `:prefx` in a query
only when it runs. So every field name, template placeholder and query parameter is checked when the
profile loads, with `file:line:col` and a "did you mean" (exit 2)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from kcverify import contracts
from kcverify.spec import names
from kcverify.targets.external.envelope import ENVELOPE_FIELDS, LETTER_FIELDS
from kcverify.targets.external.profile import Profile, did_you_mean
from kcverify.targets.external.templates import placeholders

_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")
PAYMENT_OPERATIONS = ("create_payment", "confirm", "read_payment")
VIEW_FIELDS = ("studentId", "generatedAt")
PATH_FIELDS = ("paymentId", "studentId")
QUERY_PARAMETERS = {"payments": ("prefix",), "purchases": ("prefix",), "processed_events": ("prefix",)}
PRECONDITION_PARAMETERS = {"sql": ("prefix", "student_id", "course_id"), "cleanup": ("prefix",)}
PRECONDITION_FIELDS = ("prefix", "studentId", "courseId")
# The canonical values a topic's `values` may translate to, by (topic role, field).
CANONICAL_VALUES = {
    ("confirmed", "type"): (names.EVENT_CONFIRMED,),
    ("created", "type"): (names.EVENT_CREATED,),
    ("dead_letter", "reason"): (names.DLQ_SCHEMA_VIOLATION, names.DLQ_PAYMENT_NOT_SUCCEEDED,
                                names.DLQ_RETRIES_EXHAUSTED, names.DLQ_INVALID_METADATA),
}


def _properties(schema: str, *path: str) -> tuple[str, ...]:
    node: Any = contracts.schema(schema)
    for part in path:
        node = node[part]
    return tuple(node.get("properties", {}))


def _payload(schema: str) -> tuple[str, ...]:
    return (*ENVELOPE_FIELDS, *_properties(schema, "properties", "payload"))


def check_vocabulary(profile: Profile) -> None:
    """InputError (via `profile.error`) at the first name the profile uses that kcverify does not know."""
    payment = _properties("schemas/payment")
    purchase = _properties("schemas/learning-view", "$defs", "purchase")
    for name, op in profile.section("http", "operations").items():
        where = ("http", "operations", name)
        if name in PAYMENT_OPERATIONS:
            _names(profile, op.get("fields") or {}, payment, "payment fields", *where, "fields")
        elif name == "learning_view":
            _names(profile, op.get("fields") or {}, purchase, "learning-view purchase fields", *where, "fields")
            _names(profile, op.get("view_fields") or {}, VIEW_FIELDS, "view fields", *where, "view_fields")
        _placeholders(profile, placeholders(op["path"]), PATH_FIELDS, *where, "path")
        if "body" in op:
            request = {"create_payment": _properties("schemas/payment-create"),
                       "confirm": _properties("schemas/payment-confirm")}.get(name, ())
            _placeholders(profile, placeholders(op["body"]), (*request, *PATH_FIELDS), *where, "body")
    topics = {"confirmed": _payload("events/purchase-confirmed"), "created": _payload("events/purchase-created"),
              "dead_letter": LETTER_FIELDS}
    for role, spec in profile.section("kafka", "topics").items():
        known = topics.get(role, ())
        _names(profile, spec.get("fields") or {}, known, f"canonical fields of the {role} topic",
               "kafka", "topics", role, "fields")
        for field, translation in (spec.get("values") or {}).items():
            allowed = CANONICAL_VALUES.get((role, str(field)), ())
            for system_value, canonical in (translation or {}).items() if allowed else ():
                if canonical not in allowed:
                    raise profile.error(f"{canonical!r} is not a canonical {field} of the {role} topic",
                                        "kafka", "topics", role, "values", field, system_value,
                                        hint=did_you_mean(str(canonical), list(allowed), f"{field} values"))
        if isinstance(spec.get("key"), str):  # a dead letter is keyed like the event it carries
            keyed_by = (*known, *topics["confirmed"]) if role == "dead_letter" else known
            _placeholders(profile, placeholders(spec["key"]), keyed_by, "kafka", "topics", role, "key")
    if isinstance(profile.section("cache").get("key"), str):
        _placeholders(profile, placeholders(profile.section("cache")["key"]), ("studentId",), "cache", "key")
    for name, query in profile.section("databases", "queries").items():
        _parameters(profile, query["sql"], QUERY_PARAMETERS.get(name, ("prefix",)), "databases", "queries", name,
                    "sql")
    pre = profile.section("preconditions")
    for kind, allowed in PRECONDITION_PARAMETERS.items():
        for index, statement in enumerate(pre.get(kind, [])):
            _parameters(profile, statement["sql"], allowed, "preconditions", kind, index, "sql")
    for index, call in enumerate(pre.get("http", [])):
        for part in ("path", "body"):
            if part in call:
                _placeholders(profile, placeholders(call[part]), PRECONDITION_FIELDS, "preconditions", "http", index,
                              part)


def _names(profile: Profile, mapping: dict[str, Any], known: Iterable[str], what: str, *path: str | int) -> None:
    known = tuple(known)
    for name in mapping:
        if name not in known:
            raise profile.error(f"{name!r} is not one of the {what}", *path, name,
                                hint=did_you_mean(name, list(known), what))


def _placeholders(profile: Profile, used: set[str], known: Iterable[str], *path: str | int) -> None:
    known = tuple(known)
    for name in sorted(used):
        if name not in known:
            raise profile.error(f"unknown placeholder {{{name}}}", *path,
                                hint=did_you_mean(name, list(known), "placeholders"))


def _parameters(profile: Profile, sql: str, known: Iterable[str], *path: str | int) -> None:
    known = tuple(known)
    for name in sorted(set(_PARAM.findall(sql))):
        if name not in known:
            raise profile.error(f"unknown query parameter :{name}", *path,
                                hint=did_you_mean(name, list(known), "parameters"))
