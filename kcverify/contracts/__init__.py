"""Loads the hand-written contracts in `contracts/` and compiles their validators once.

Schemas are named by their path under contracts/ without the `.schema.json` suffix, e.g.
`schemas/purchase-metadata`, `events/purchase-confirmed`. Cross-file `$ref`s are relative paths and
resolve through one in-memory registry: nothing is ever fetched from the network."""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, FormatChecker, _keywords, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from kcverify.core.resources import shipped_dir

BASE_URI = "https://kcverify.invalid/contracts/"


def contracts_dir() -> Path:
    """The repository's contracts/ in a checkout; the copy packaged as kcverify/_contracts otherwise."""
    return shipped_dir("contracts")


@dataclass(frozen=True)
class Violation:
    """One way an instance breaks a contract: where (JSON path) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


FORMAT_CHECKER = FormatChecker()
_REQUIRED_MESSAGE = re.compile(r"^'(.+)' is a required property$")


@cache
def _registry() -> Registry[Any]:
    return _load_registry(keep_dialect=True)


@cache
def fast_registry() -> Registry[Any]:
    """The same documents without their `$schema` (all are 2020-12): a validator that follows a `$ref`
    into one then stays a FastValidator, instead of switching back to the standard class it names."""
    return _load_registry(keep_dialect=False)


def _load_registry(*, keep_dialect: bool) -> Registry[Any]:
    root = contracts_dir()
    resources = []
    for path in sorted(root.rglob("*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        if not keep_dialect:
            contents.pop("$schema", None)
        uri = BASE_URI + path.relative_to(root).as_posix()
        resources.append((uri, Resource.from_contents(contents, default_specification=DRAFT202012)))
    return Registry().with_resources(resources)


def schema_uri(name: str) -> str:
    return f"{BASE_URI}{name}.schema.json"


@cache
def schema(name: str) -> dict[str, Any]:
    path = contracts_dir() / f"{name}.schema.json"
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _enum(validator: Any, enums: Any, instance: Any, schema: Any) -> Any:
    """`enum` as jsonschema judges it, with one shortcut: a string is looked up in a set of the enum's
    strings (jsonschema compares a string to each member in turn; the timezone enum has about 600, and
    every metadata object of a long run went through them). A string equals only an equal string there."""
    if isinstance(instance, str) and isinstance(enums, list):
        strings = _ENUM_STRINGS.get(id(enums))
        if strings is None or strings[0] is not enums:
            strings = _ENUM_STRINGS[id(enums)] = (enums, frozenset(e for e in enums if isinstance(e, str)))
        if instance in strings[1]:
            return
    yield from _keywords.enum(validator, enums, instance, schema)  # type: ignore[func-returns-value,misc]


_ENUM_STRINGS: dict[int, tuple[list[Any], frozenset[str]]] = {}
# The standard validator, `enum` aside (see _enum); the registry's documents name no other `$schema`.
FastValidator = validators.extend(Draft202012Validator, validators={"enum": _enum})  # type: ignore[no-untyped-call]


@cache
def validator(name: str) -> Draft202012Validator:
    return inlined_validator({"$ref": schema_uri(name)}, fast_registry())


def inlined_validator(root: dict[str, Any], registry: Registry[Any]) -> Draft202012Validator:
    """A FastValidator of `root`, its references inlined once (see `inlined`) when they can be."""
    with contextlib.suppress(NotInlinable):
        root = inlined(root, registry.resolver())
    return FastValidator(root, registry=registry, format_checker=FORMAT_CHECKER)  # type: ignore[no-any-return]


def _written_integer(checker: object, instance: object) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


# JSON Schema counts 2.0 as an integer; in a YAML file a person wrote a float there, and a step repeated
# `times: 2.0` would count with it. Files kcverify reads (scenarios, claims) want integers written as such.
_WrittenIntegerValidator = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _written_integer))


@cache
def file_validator(name: str) -> Draft202012Validator:
    """`validator(name)` for a YAML file written by a person: an integer field takes only an integer.
    The schema is given itself, not through a `$ref`: following a reference to a document that names its
    `$schema` would switch back to the standard validator class."""
    root = {key: value for key, value in schema(name).items() if key not in ("$schema", "$id")}
    uri = schema_uri(name)
    registry = _registry().with_resource(uri, Resource.from_contents(root, default_specification=DRAFT202012))
    with contextlib.suppress(NotInlinable):  # the scenario schema's references, followed once (see `inlined`)
        return _WrittenIntegerValidator(  # type: ignore[no-any-return]
            inlined(root, registry.resolver(base_uri=uri)), registry=registry, format_checker=FORMAT_CHECKER)
    return _WrittenIntegerValidator(  # type: ignore[no-any-return]
        {**root, "$id": uri}, registry=_registry(), format_checker=FORMAT_CHECKER
    )


# Validation results by (schema, repr(instance)). Validation is a pure function of the two, and the same
# bodies and events recur across the scenarios of a run and the schedules of `kcverify explore`, where
# jsonschema was a quarter of the time. repr() keeps the types JSON Schema tells apart (10, 10.0, "10",
# True). Bounded: cleared when full.
_MEMO: dict[tuple[str, str], tuple[Violation, ...]] = {}
MEMO_LIMIT = 4096
MEMO_LARGEST = 4096  # characters (or bytes) of the largest instance remembered: a fuzzer's huge ones do not recur
# libyaml's parser when PyYAML has it: the same safe constructors, several times faster on the contracts
SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def validate(name: str, instance: object) -> list[Violation]:
    """Every violation of the named schema, sorted by path; empty when the instance conforms."""
    key = (name, repr(instance))
    if len(key[1]) > MEMO_LARGEST:
        return _validate(name, instance)
    found = _MEMO.get(key)
    if found is None:
        if len(_MEMO) >= MEMO_LIMIT:
            _MEMO.clear()
        found = _MEMO[key] = tuple(_validate(name, instance))
    return list(found)


def _validate(name: str, instance: object) -> list[Violation]:
    found = []
    for error in validator(name).iter_errors(instance):
        parts = list(error.absolute_path)
        missing = _REQUIRED_MESSAGE.match(error.message) if error.validator == "required" else None
        if missing:  # name the missing field itself, so a report has one entry per field (P1)
            parts.append(missing.group(1))
        found.append(Violation(_json_path(parts), error.message))
    return sorted(found, key=lambda v: (v.path, v.message))


def is_valid(name: str, instance: object) -> bool:
    return validator(name).is_valid(instance)


def _json_path(parts: Any) -> str:
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


# Which schema every message on a topic must satisfy (AsyncAPI: contracts/events/asyncapi.yaml).
EVENT_SCHEMAS = {
    "purchase-confirmed": "events/purchase-confirmed",
    "purchase-created": "events/purchase-created",
    "purchase-confirmed.dlq": "events/dead-letter",
}


def openapi_path(service: str) -> Path:
    """`payment-service` or `student-service`."""
    return contracts_dir() / "openapi" / f"{service}.yaml"



class NotInlinable(Exception):
    """A schema `inlined` leaves to jsonschema as written (recursive, or with a base or scope of its own)."""


def inlined(root: Any, resolver: Any) -> Any:
    """`root` with each `$ref` replaced by what it points at, resolved as jsonschema would (relative to
    the document it is written in). Following a `$ref` through the registry cost a lookup and a new
    resolver on every validation, about a quarter of the validation time of a long run; the inlined schema
    judges the same: a `$ref` alone becomes its target, a `$ref` with sibling keywords becomes an `allOf`
    of the target and the siblings (2020-12 applies both to the same instance; the messages and instance
    paths of errors are those of the keywords that fail, whichever way they are reached). Raises
    NotInlinable for a recursive schema, one that sets a base or a dynamic scope (`$id`, `$anchor`,
    `$dynamic*`), or a reference into a document that names its `$schema` (jsonschema validates there with
    that dialect's class): the caller then validates with the references as written."""

    def walk(node: Any, resolver: Any, trail: tuple[int, ...]) -> Any:
        if isinstance(node, list):
            return [walk(item, resolver, trail) for item in node]
        if not isinstance(node, dict):
            return node
        if _SCOPE_KEYWORDS & node.keys():
            raise NotInlinable(f"{sorted(_SCOPE_KEYWORDS & node.keys())}")
        ref = node.get("$ref")
        if isinstance(ref, str):
            target = resolver.lookup(ref)
            contents = target.contents
            if id(contents) in trail:
                raise NotInlinable(f"{ref} refers to itself")
            if isinstance(contents, dict) and "$schema" in contents:
                raise NotInlinable(f"{ref} names its own dialect")  # jsonschema switches validator class there
            resolved = walk(contents, target.resolver, (*trail, id(contents)))
            rest = {key: walk(value, resolver, trail) for key, value in node.items() if key != "$ref"}
            return resolved if not rest else {"allOf": [resolved, rest]}
        return {key: value if key in _LITERAL_KEYWORDS
                else {name: walk(sub, resolver, trail) for name, sub in value.items()}
                if key in _NAMED_SCHEMAS and isinstance(value, dict) else walk(value, resolver, trail)
                for key, value in node.items()}

    return walk(root, resolver, ())


_SCOPE_KEYWORDS = frozenset({"$id", "$anchor", "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor"})
# Keywords whose values map names (any names, "enum" too) to schemas.
_NAMED_SCHEMAS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
# Keywords whose values are data, not schemas: nothing inside them is a reference.
_LITERAL_KEYWORDS = frozenset({"enum", "const", "default", "examples", "example"})
