"""Validates an observed HTTP exchange against the OpenAPI 3.1 documents in contracts/openapi/:
the status must be documented for the operation, the media type must match, the body must satisfy
the response schema, and documented required headers must be present. OpenAPI 3.1 schemas are JSON
Schema 2020-12, so the documents join the same reference registry as the event schemas."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Resource
from referencing.jsonschema import DRAFT202012

from kcverify.contracts import (
    BASE_URI,
    MEMO_LARGEST,
    MEMO_LIMIT,
    SAFE_LOADER,
    Violation,
    _json_path,
    contracts_dir,
    fast_registry,
    inlined_validator,
)

SERVICES = ("payment-service", "student-service")


@dataclass(frozen=True)
class Operation:
    service: str
    method: str
    template: str
    pattern: re.Pattern[str]
    pointer: str  # JSON pointer of the operation object in the document


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


@cache
def document(service: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load((contracts_dir() / "openapi" / f"{service}.yaml").read_text(),
                                       Loader=SAFE_LOADER)
    return loaded


def _uri(service: str) -> str:
    return f"{BASE_URI}openapi/{service}.yaml"


@cache
def _registry_with_documents() -> Any:
    registry = fast_registry()
    for service in SERVICES:
        registry = registry.with_resource(
            _uri(service), Resource.from_contents(document(service), default_specification=DRAFT202012))
    return registry


@cache
def operations(service: str) -> tuple[Operation, ...]:
    found = []
    for template, item in document(service).get("paths", {}).items():
        regex = "^" + re.sub(r"\{[^}]+\}", "[^/]+", re.escape(template).replace("\\{", "{").replace("\\}", "}")) + "$"
        for method in item:
            if method in ("get", "post", "put", "patch", "delete"):
                found.append(Operation(service, method.upper(), template, re.compile(regex),
                                       f"/paths/{_escape(template)}/{method}"))
    # literal paths before templated ones, so /learning/cache never matches a {param}
    return tuple(sorted(found, key=lambda op: op.template.count("{")))


def find_operation(service: str, method: str, path: str) -> Operation | None:
    """The operation that answers `method path` (query string ignored), or None. Memoized: the same few
    paths recur in every scenario and explored schedule, and the scan tries every operation's pattern."""
    path = path.split("?")[0]
    key = (service, method.upper(), path)
    if key in _OPERATION_MEMO:
        return _OPERATION_MEMO[key]
    if len(_OPERATION_MEMO) >= MEMO_LIMIT:
        _OPERATION_MEMO.clear()
    found = _OPERATION_MEMO[key] = _scan_operations(service, key[1], path)
    return found


_OPERATION_MEMO: dict[tuple[str, str, str], Operation | None] = {}


def _scan_operations(service: str, method: str, path: str) -> Operation | None:
    for op in operations(service):
        if op.method == method and op.pattern.match(path):
            return op
    return None


def _resolve(node: Any, service: str) -> Any:
    """Follow in-document $refs of response and header objects (#/components/...)."""
    while isinstance(node, dict) and "$ref" in node and str(node["$ref"]).startswith("#/"):
        target: Any = document(service)
        for part in node["$ref"][2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _get(doc: dict[str, Any], pointer: str) -> Any:
    node: Any = doc
    for part in pointer.strip("/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def validate_response(service: str, method: str, path: str, status: int, headers: dict[str, str],
                      body: bytes) -> list[Violation]:
    """Every way the response breaks the contract; empty when it conforms. Memoized by the whole
    exchange: the answer is a pure function of its arguments, and explored schedules repeat the same
    exchanges (seeded ids, a manual clock) thousands of times."""
    if len(body) > MEMO_LARGEST:
        return _validate_response(service, method, path, status, headers, body)
    key = (service, method, path, status, tuple(headers.items()), body)
    known = _RESPONSE_MEMO.get(key)
    if known is None:
        if len(_RESPONSE_MEMO) >= MEMO_LIMIT:
            _RESPONSE_MEMO.clear()
        known = _RESPONSE_MEMO[key] = tuple(_validate_response(service, method, path, status, headers, body))
    return list(known)


_RESPONSE_MEMO: dict[tuple[str, str, str, int, tuple[tuple[str, str], ...], bytes], tuple[Violation, ...]] = {}


def _validate_response(service: str, method: str, path: str, status: int, headers: dict[str, str],
                       body: bytes) -> list[Violation]:
    op = find_operation(service, method, path)
    if op is None:
        return [Violation("$", f"{method} {path} is not an operation of {service}")]
    responses = _get(document(service), op.pointer).get("responses", {})
    key = str(status) if str(status) in responses else f"{str(status)[0]}XX"
    if key not in responses:
        key = "default"
    if key not in responses:
        return [Violation("$", f"status {status} is not documented for {op.method} {op.template}")]
    response = _resolve(responses[key], service)
    found: list[Violation] = []
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, header in (response.get("headers") or {}).items():
        header = _resolve(header, service)
        if header.get("required") and name.lower() not in lowered:
            found.append(Violation(f"header {name}", "required response header is missing"))
    content = response.get("content") or {}
    if not content:
        return found
    media_type = lowered.get("content-type", "").split(";")[0].strip()
    if media_type not in content:
        return [*found, Violation("content-type", f"{media_type or '(none)'} is not one of {sorted(content)}")]
    schema_pointer = f"{op.pointer}/responses/{_escape(key)}"
    if "$ref" in responses[key]:
        schema_pointer = responses[key]["$ref"][1:]
    schema_pointer += f"/content/{_escape(media_type)}/schema"
    try:
        instance = json.loads(body)
    except ValueError as exc:
        return [*found, Violation("$", f"body is not JSON: {exc}")]
    memo_key = (service, schema_pointer, body)
    violations = _BODY_MEMO.get(memo_key)
    if violations is None:
        if len(_BODY_MEMO) >= MEMO_LIMIT:
            _BODY_MEMO.clear()
        violations = _BODY_MEMO[memo_key] = tuple(_validate_schema(service, schema_pointer, instance))
    return found + list(violations)


# Schema results by (service, schema, body bytes): a pure function of the three, and the same bodies
# recur across scenarios and explored schedules (see contracts.validate). Bounded: cleared when full.
_BODY_MEMO: dict[tuple[str, str, bytes], tuple[Violation, ...]] = {}


def _validate_schema(service: str, pointer: str, instance: Any) -> list[Violation]:
    validator = _validator(service, pointer)
    return sorted((Violation(_json_path(e.absolute_path), e.message) for e in validator.iter_errors(instance)),
                  key=lambda v: (v.path, v.message))


@cache
def _validator(service: str, pointer: str) -> Draft202012Validator:
    return inlined_validator({"$ref": f"{_uri(service)}#{pointer}"}, _registry_with_documents())
