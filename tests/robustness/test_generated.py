"""Generated garbage for the scenario loader: documents drawn from the scenario schema and then bent,
random bytes, and truncations of the catalogue's own files. Whatever comes in, the loader answers with a
Scenario or an InputError whose message is one `file:line:col: ...` line per file: never another exception."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kcverify import contracts
from kcverify.core.errors import InputError
from kcverify.scenario.loader import SCHEMA, load_scenario
from tests.robustness.conftest import SCENARIOS

CATALOGUE = sorted(SCENARIOS.glob("*.yaml"))
FAST = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)

# Values that have broken commands before, mixed into generated documents.
NASTY = st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e23, 1e12, 10**30, -1, 0, 2.0, "", "x" * 500,
                         None, True, [], {}, [[[[[]]]]]])


def _load(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "generated.yaml"
    path.write_bytes(data)
    try:
        load_scenario(path)
    except InputError as error:
        lines = error.render().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith(str(path)), lines[0]


def from_schema(node: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values the schema allows, for the keywords the scenario schema uses. (hypothesis-jsonschema does
    this in general but depends on Hypothesis internals that have changed.)"""
    while "$ref" in node:
        node = defs[str(node["$ref"]).removeprefix("#/$defs/")]
    if "const" in node:
        return st.just(node["const"])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if isinstance(kind, list):
        return st.one_of(*(from_schema({**node, "type": k}, defs, depth) for k in kind))
    if kind == "integer":
        return st.integers(node.get("minimum", -(10**6)), node.get("maximum", 10**6))
    if kind == "number":
        low = node.get("minimum", node.get("exclusiveMinimum", -(10**6)))
        return st.floats(low, node.get("maximum", 10**6), exclude_min="exclusiveMinimum" in node)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "string":
        if "pattern" in node:
            return st.from_regex(node["pattern"], fullmatch=True)
        return st.text(min_size=node.get("minLength", 0), max_size=min(node.get("maxLength", 20), 20))
    if kind == "array" or "items" in node:
        items = from_schema(node.get("items", {}), defs, depth + 1) if depth < 4 else st.nothing()
        return st.lists(items, min_size=node.get("minItems", 0), max_size=3)
    if kind == "object" or "properties" in node:
        props = node.get("properties", {})
        required = [k for k in node.get("required", []) if k in props]
        optional = [k for k in props if k not in required]
        if depth >= 4:
            optional = []

        @st.composite
        def build(draw: Any) -> dict[str, Any]:
            chosen = required + draw(st.lists(st.sampled_from(optional), unique=True, max_size=3)) if optional \
                else list(required)
            return {key: draw(from_schema(props[key], defs, depth + 1)) for key in chosen}

        return build()
    return st.one_of(st.integers(), st.text(max_size=5), st.booleans())


def _step_strategy() -> st.SearchStrategy[dict[str, Any]]:
    """One step of each kind as the schema describes it, one kind at a time."""
    defs = contracts.schema(SCHEMA)["$defs"]
    kinds = sorted(defs["step"]["properties"])
    return st.sampled_from(kinds).flatmap(
        lambda kind: from_schema(defs["step"]["properties"][kind], defs).map(lambda args: {kind: args}))


def _bend(data: Any, draw: Any, root: bool = False) -> Any:
    """Replace one value somewhere below the root of `data` by a nasty one."""
    if isinstance(data, dict) and data and (root or draw(st.booleans())):
        key = draw(st.sampled_from(sorted(data)))
        return {**data, key: _bend(data[key], draw)}
    if isinstance(data, list) and data and draw(st.booleans()):
        index = draw(st.integers(0, len(data) - 1))
        return [*data[:index], _bend(data[index], draw), *data[index + 1:]]
    return draw(NASTY)


@st.composite
def near_valid(draw: Any) -> Any:
    doc = {"title": "generated", "covers": ["S3"], "steps": draw(st.lists(_step_strategy(), min_size=1, max_size=4))}
    return _bend(doc, draw, root=True) if draw(st.booleans()) else doc


@FAST
@given(doc=near_valid())
def test_near_valid_documents(tmp_path_factory: pytest.TempPathFactory, doc: Any) -> None:
    text = yaml.safe_dump(doc, allow_unicode=True) if not _has_nan(doc) else _with_special_floats(doc)
    _load(tmp_path_factory.mktemp("g"), text.encode())


def _has_nan(doc: Any) -> bool:
    return "NaN" in json.dumps(doc) or "Infinity" in json.dumps(doc)


def _with_special_floats(doc: Any) -> str:
    """YAML spelling of NaN and the infinities (.nan, .inf), as a person would write them."""
    return yaml.safe_dump(doc).replace("!!float", "")


@FAST
@given(data=st.binary(max_size=2048))
def test_random_bytes(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    _load(tmp_path_factory.mktemp("b"), data)


@FAST
@given(index=st.integers(0, len(CATALOGUE) - 1), cut=st.floats(0, 1), flip=st.integers(0, 255))
def test_truncated_and_flipped_catalogue(tmp_path_factory: pytest.TempPathFactory, index: int, cut: float,
                                         flip: int) -> None:
    original = CATALOGUE[index].read_bytes()
    end = int(len(original) * cut)
    directory = tmp_path_factory.mktemp("t")
    _load(directory, original[:end])
    if end < len(original):
        _load(directory, original[:end] + bytes([flip]) + original[end + 1:])


def test_the_catalogue_itself_loads() -> None:
    """The generated cases are meaningful only if the files they start from are valid."""
    assert CATALOGUE
    for path in CATALOGUE:
        load_scenario(path)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(doc=near_valid())
# found by this test: with the bus failing, a worker could not join its group, and the settle broke (exit 3)
@example(doc={"title": "generated", "covers": ["S3"], "steps": [{"fail": {"resource": "bus"}}]})
def test_generated_scenarios_run_without_breaking(tmp_path_factory: pytest.TempPathFactory, doc: Any) -> None:
    """What the loader accepts, `kcverify run` runs to a verdict: exit 0, 1 or 2, never 3 (kcverify or the
    reference broke) and never a traceback."""
    from tests.robustness.conftest import invoke

    directory = tmp_path_factory.mktemp("r")
    path = directory / "generated.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True) if not _has_nan(doc) else _with_special_floats(doc))
    outcome = invoke("run", str(path), "--no-color")
    assert outcome.code in (0, 1, 2), outcome.output[-3000:]
    assert "Traceback" not in outcome.output, outcome.output[-3000:]
