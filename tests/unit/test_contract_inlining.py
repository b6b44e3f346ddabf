"""Validators with their `$ref`s inlined once (kcverify.contracts.inlined) judge exactly as the ones that
follow each `$ref` through the registry: the same errors (instance path, message, keyword) for every
event schema and every documented response body, on valid instances and on broken ones."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from kcverify import contracts
from kcverify.contracts import FORMAT_CHECKER, FastValidator, NotInlinable, inlined
from kcverify.contracts import openapi as oa

# Instances around the shapes of the contracts: wrong types, missing and extra fields, bad formats.
_JUNK: list[Any] = [None, 1, -1, 2.5, "", "x", "2020-01-01", "not-a-uuid", True, [], {}, {"a": 1}, "Europe/Paris",
                    "Mars/Olympus", {"type": "about:blank", "title": "t", "status": 400}, {"items": [1, None]},
                    {"studentId": "s1", "purchases": [{"courseId": 1}], "eventId": "x", "metadata": {"timezone": 3}}]


def _errors(validator: Any, instance: Any) -> list[tuple[str, str, str]]:
    return sorted((json.dumps(list(e.absolute_path)), e.message, str(e.validator))
                  for e in validator.iter_errors(instance))


def _response_pointers() -> list[tuple[str, str]]:
    found = []
    for service in oa.SERVICES:
        for template, item in oa.document(service)["paths"].items():
            for method, operation in item.items():
                if not isinstance(operation, dict):
                    continue
                for code, response in (operation.get("responses") or {}).items():
                    pointer = f"/paths/{oa._escape(template)}/{method}/responses/{code}"
                    if "$ref" in response:
                        pointer = response["$ref"][1:]
                    for media in (oa._resolve(response, service).get("content") or {}):
                        found.append((service, f"{pointer}/content/{oa._escape(media)}/schema"))
    return found


@pytest.mark.parametrize("name", sorted(contracts.EVENT_SCHEMAS.values()))
def test_event_validators_judge_as_the_referencing_ones(name: str) -> None:
    registry = contracts.fast_registry()
    written = FastValidator({"$ref": contracts.schema_uri(name)}, registry=registry, format_checker=FORMAT_CHECKER)
    assert "$ref" not in json.dumps(contracts.validator(name).schema)  # inlined, not the fallback
    for instance in _JUNK:
        assert _errors(contracts.validator(name), instance) == _errors(written, instance)


@pytest.mark.parametrize(("service", "pointer"), _response_pointers())
def test_response_validators_judge_as_the_referencing_ones(service: str, pointer: str) -> None:
    written = FastValidator({"$ref": f"{oa._uri(service)}#{pointer}"}, registry=oa._registry_with_documents(),
                            format_checker=FORMAT_CHECKER)
    inlined_one = oa._validator(service, pointer)
    assert "$ref" not in json.dumps(inlined_one.schema)
    for instance in _JUNK:
        assert _errors(inlined_one, instance) == _errors(written, instance)


def _registry(**documents: Any) -> Registry[Any]:
    return Registry().with_resources(
        (f"https://example.invalid/{name}", Resource.from_contents(body, default_specification=DRAFT202012))
        for name, body in documents.items())


def test_a_ref_with_siblings_keeps_both() -> None:
    registry = _registry(a={"type": "object", "required": ["x"]})
    schema = inlined({"$ref": "https://example.invalid/a", "properties": {"x": {"type": "integer"}}},
                     registry.resolver())
    validator = FastValidator(schema, registry=registry)
    assert [e.message for e in validator.iter_errors({})] == ["'x' is a required property"]
    assert [e.message for e in validator.iter_errors({"x": "1"})] == ["'1' is not of type 'integer'"]


def test_a_property_named_like_a_keyword_is_still_a_schema() -> None:
    registry = _registry(a={"type": "string"})
    schema = inlined({"properties": {"enum": {"$ref": "https://example.invalid/a"}}}, registry.resolver())
    assert schema == {"properties": {"enum": {"type": "string"}}}


def test_a_recursive_schema_is_left_as_written() -> None:
    registry = _registry(tree={"type": "object", "properties": {"child": {"$ref": "https://example.invalid/tree"}}})
    with pytest.raises(NotInlinable):
        inlined({"$ref": "https://example.invalid/tree"}, registry.resolver())
    validator = contracts.inlined_validator({"$ref": "https://example.invalid/tree"}, registry)
    assert [e.message for e in validator.iter_errors({"child": {"child": 1}})] == ["1 is not of type 'object'"]


def _written(name: str) -> Any:
    """The file validator as it was before inlining: the schema given itself, its references followed."""
    root = {key: value for key, value in contracts.schema(name).items() if key != "$schema"}
    root["$id"] = contracts.schema_uri(name)
    return type(contracts.file_validator(name))(root, registry=contracts._registry(),
                                                 format_checker=FORMAT_CHECKER)


def _broken(instance: Any) -> list[Any]:
    """The instance, then a copy with each value in turn replaced by each junk value (first 400)."""
    found: list[Any] = [instance]

    def walk(node: Any, replace: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in list(items):
            for junk in _JUNK[:6]:
                node[key] = junk
                found.append(json.loads(json.dumps(replace)))
            node[key] = value
            walk(value, replace)

    copy = json.loads(json.dumps(instance))
    walk(copy, copy)
    return found[:400]


@pytest.mark.parametrize("path", sorted((contracts.contracts_dir().parent / "scenarios").glob("*.yaml"))[:12],
                         ids=lambda p: p.stem)
def test_the_scenario_file_validator_judges_as_before(path: Any) -> None:
    written = _written("schemas/scenario")
    for instance in _broken(yaml.safe_load(path.read_text())):
        assert _errors(contracts.file_validator("schemas/scenario"), instance) == _errors(written, instance)
