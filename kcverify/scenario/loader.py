"""Scenario files → validated, frozen `Scenario`s, or one `InputError` that says exactly where and what.

Three passes, each with its own kind of message:
1. YAML → plain data, recording the 1-based line/col of every key and value. Scalars follow the YAML 1.2
   core schema, not PyYAML's YAML 1.1 default, because 1.1 silently turns checkout metadata into other
   types: `classTime: 18:30` would load as the integer 1110 and `startDate: 2026-02-02` as a date.
2. The JSON Schema `contracts/schemas/scenario.schema.json`: the one best error, rephrased for people
   and placed on the offending key (unknown field), value (wrong type or value) or mapping (missing
   field), with "did you mean" drawn from the names the schema allows.
3. Rules the schema cannot express: names bound before use and only once, reads finished once, `publish`
   with exactly one source, a crash point owned by the named component, a fault on a real operation.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from types import MappingProxyType
from typing import Any

import yaml
from jsonschema.exceptions import (  # type: ignore[import-untyped,unused-ignore]
    ValidationError,
    best_match,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from kcverify import contracts
from kcverify.core.errors import InputError
from kcverify.scenario import generate
from kcverify.scenario.model import RESPONSE_STEPS, UNBOUND_PAYMENT, Path, Scenario, Step, freeze
from kcverify.scenario.selection import Selection
from kcverify.spec import names

SCHEMA = "schemas/scenario"
SUFFIXES = (".yaml", ".yml")
DOCS = "docs/scenarios.md"

# The operations a `fail: {resource: R, op: M}` step may name, per resource: the vocabulary of fault
# injection that scenarios are written in. The reference's ports offer exactly these (a test holds the
# two together); another system's target maps them onto its own calls.
FAULT_OPERATIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "payments_db": ("all_payments", "enqueue_outbox", "find_succeeded", "get_payment", "insert_payment",
                    "mark_published", "pending_outbox", "save_status", "succeeded_confirmed_before"),
    "courses_db": ("all_purchases", "enqueue_outbox", "is_processed", "mark_processed", "mark_published",
                   "pending_outbox", "purchase_for_payment", "purchased_payments", "purchases_for_student",
                   "record_purchase"),
    "cache": ("delete", "get", "set", "set_if_version", "version"),
    "bus": ("committed", "consumer", "create_topic", "end_offsets", "publish", "read_all"),
})


# Limits on what a YAML input may ask of kcverify, checked before the work they bound (docs/scenarios.md,
# "Limits"): the largest scenario of the catalogue is a few KiB, a few hundred values, 8 levels deep; a
# generated soak scenario of 10,000 steps is about 65,000 values (tests/perf/bench_long_scenarios.py).
MAX_FILE_BYTES = 1024 * 1024  # checked before reading: /dev/zero or a 26 MB file never reach the parser
MAX_DEPTH = 64  # nesting of lists and mappings; PyYAML composes recursively, so deeper is a RecursionError
MAX_NODES = 70_000  # values in the file as written, counted while composing
MAX_VALUES = 100_000  # values once aliases are followed: a small file can expand exponentially ("billion laughs")


def port_operations(resource: str) -> tuple[str, ...]:
    """What a `fail` step's `op` may name for `resource`."""
    return FAULT_OPERATIONS[resource]


# --- public API ----------------------------------------------------------------------------------------


def load_scenario(path: str | FsPath) -> Scenario:
    """Load and validate one scenario file. Raises InputError (`file:line:col: message (hint)`)."""
    fs_path = FsPath(path)
    return _load_text(_decode(read_bounded(fs_path, "scenario"), str(path)), str(path), fs_path.stem)


def read_bounded(path: str | FsPath, kind: str) -> bytes:
    """The bytes of a YAML input, refused with one line before anything is read when it is not a regular
    file (a directory, a FIFO, /dev/zero) or larger than MAX_FILE_BYTES. Raises InputError."""
    file = str(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError("no such file", file) from None
    except OSError as error:
        raise InputError(f"cannot read the file: {error.strerror or error}", file) from error
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"is a directory, not a {kind} file", file)
    if not stat.S_ISREG(info.st_mode):
        what = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device or socket"
        raise InputError(f"is {what}, not a regular {kind} file", file)
    too_big = InputError(f"the file is larger than {MAX_FILE_BYTES // 1024} KiB, the limit for a {kind} file",
                         file, hint="split it into several files")
    if info.st_size > MAX_FILE_BYTES:
        raise too_big
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)  # the file may have grown since stat
    except OSError as error:
        raise InputError(f"cannot read the file: {error.strerror or error}", file) from error
    if len(raw) > MAX_FILE_BYTES:
        raise too_big
    return raw


class ScenarioErrors(InputError):
    """Every broken scenario file of a run, one `file:line:col: message` line each: a run reports them
    all at once, and starts nothing while any selected file is broken (never half-run)."""

    def __init__(self, errors: Sequence[InputError]) -> None:
        self.errors = tuple(errors)
        super().__init__(f"{len(self.errors)} scenario file(s) with errors")

    def render(self) -> str:
        lines = [error.render() for error in self.errors]
        if len(lines) > 1:
            lines.append(f"{len(lines)} scenario files have errors; nothing was run")
        return "\n".join(lines)


def load_document(path: str | FsPath, schema: str, kind: str) -> YamlDocument:
    """Another YAML input of kcverify (e.g. a claims file) read the way scenario files are: YAML 1.2 core
    scalars, the position of every value, and the one best JSON Schema error placed on its key or value.
    `kind` names the file in messages ("claims" -> "empty claims file"). Raises InputError."""
    file = str(path)
    doc = _parse(_decode(read_bounded(path, kind), file), file, kind)
    invalid = _schema_error(doc, schema)
    if invalid is not None:
        raise invalid
    return doc


def load_scenarios(paths: Sequence[str | FsPath], selection: Selection | None = None) -> list[Scenario]:
    """Load every scenario named by `paths`, in order; a directory contributes its *.yaml / *.yml files,
    recursively, sorted. A file named twice is loaded once. Two scenarios with one name are an error,
    since names select scenarios on the command line and key them in reports.

    With a `selection`, a file is validated only when its name and tags (read from the YAML alone) are
    selected; a file whose YAML cannot be read is selected by its file name. Every error of every
    file that is loaded is collected and raised together as ScenarioErrors."""
    errors: list[InputError] = []
    files: list[FsPath] = []
    for given in paths:
        path = FsPath(given)
        if path.is_dir():
            try:
                found = sorted(f for f in path.rglob("*") if f.suffix in SUFFIXES and f.is_file()
                               and not any(part.startswith(".") for part in f.relative_to(path).parts))
            except OSError as error:  # unreadable, or changed while listed
                errors.append(InputError(f"cannot list the directory: {error.strerror or error}", str(path)))
                continue
            if not found:
                errors.append(InputError("no scenario files (*.yaml, *.yml) in this directory", str(path)))
            files.extend(found)
        elif path.exists() or path.is_symlink():
            files.append(path)  # anything but a regular file is refused by read_bounded, with its reason
        else:
            errors.append(InputError("no such file or directory", str(given)))
    seen: set[FsPath] = set()
    scenarios: list[Scenario] = []
    by_name: dict[str, Scenario] = {}
    for file in files:
        resolved = _resolved(file)
        if resolved in seen:
            continue
        seen.add(resolved)
        if selection and not selection.matches(*_name_and_tags(file)):
            continue
        try:
            scenario = load_scenario(file)
        except InputError as error:
            errors.append(error)
            continue
        other = by_name.get(scenario.name)
        if other is not None:
            line, col = other.locate(("name",))
            errors.append(scenario.error(
                f"duplicate scenario name '{scenario.name}', also in {other.path}:{line}:{col}", ("name",),
                hint="names must be unique: set a different `name:` in one of them"))
            continue
        by_name[scenario.name] = scenario
        scenarios.append(scenario)
    if errors:
        raise errors[0] if len(errors) == 1 else ScenarioErrors(errors)
    return scenarios


def _resolved(file: FsPath) -> FsPath:
    try:
        return file.resolve()
    except (OSError, RuntimeError):  # a symlink loop: read_bounded reports it
        return file.absolute()


def _name_and_tags(file: FsPath) -> tuple[str, tuple[str, ...]]:
    """What `-k` matches, read without validating the file: `name:` (default: the file name without its
    suffix) and `tags:`. Whatever cannot be read here leaves the default: the full load reports it."""
    name = file.stem
    tags: tuple[str, ...] = ()
    try:
        data = _parse(_decode(read_bounded(file, "scenario"), str(file)), str(file)).data
    except InputError:
        return name, tags
    if isinstance(data.get("name"), str):
        name = data["name"]
    if isinstance(data.get("tags"), list):
        tags = tuple(t for t in data["tags"] if isinstance(t, str))
    return name, tags


# --- pass 1: YAML with positions ------------------------------------------------------------------------


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema implicit types (see the module docstring): only
    true/false are booleans, only plain decimal/hex digits are integers, no timestamps, no sexagesimals,
    no merge keys. Everything else that is unquoted stays a string."""


    _depth = 0
    _nodes = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        """PyYAML's composer, counting values and nesting as it goes: the limits are met before the
        recursion or the memory they bound."""
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _TooLarge(f"the file has more than {MAX_NODES} values, the limit", mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooLarge(f"lists and mappings are nested more than {MAX_DEPTH} levels deep, the limit", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _TooLarge(Exception):
    """A limit of MAX_NODES / MAX_DEPTH met while composing, and where."""

    def __init__(self, message: str, mark: yaml.Mark) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


_Yaml12Loader.yaml_implicit_resolvers = {}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+)$"), list("-+0123456789"))
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))

_TAG = "tag:yaml.org,2002:"


@dataclass
class _Document:
    """Parsed data plus where every part of it came from. Paths are tuples of keys and list indexes."""

    data: Any
    file: str
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)  # start of each value
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)  # start of the key naming each value
    blocks: set[Path] = field(default_factory=set)  # values that are block-style lists or mappings

    def line_of(self) -> dict[Path, tuple[int, int]]:
        """Where a later message about each value should point: at the value itself, except for a block
        list or mapping, which starts on the line after its key (the key is where a person looks)."""
        return {**self.values, **{p: self.keys[p] for p in self.blocks if p in self.keys}}

    def value_at(self, path: Path) -> tuple[int, int]:
        while path not in self.values and path:
            path = path[:-1]
        return self.values.get(path, (1, 1))

    def key_at(self, path: Path) -> tuple[int, int]:
        return self.keys[path] if path in self.keys else self.value_at(path)

    def error(self, message: str, at: tuple[int, int], hint: str | None = None) -> InputError:
        return InputError(message, self.file, at[0], at[1], hint)


YamlDocument = _Document  # what load_document returns: data plus positions, for other YAML inputs


def _mark(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def _decode(raw: bytes, file: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        before = raw[:error.start]
        line_start = before.rfind(b"\n") + 1
        col = len(before[line_start:].decode("utf-8", errors="replace")) + 1
        raise InputError(f"not UTF-8 text: byte 0x{raw[error.start]:02x} cannot be decoded",
                         file, before.count(b"\n") + 1, col, "save the file as UTF-8") from error


PRECOUNT_ABOVE = 64_000  # characters: below this a file cannot hold MAX_NODES values worth counting twice


def _beyond_the_value_limit(text: str) -> tuple[int, int] | None:
    """Where a large file passes MAX_NODES values, counted on libyaml's events (C speed): refusing such a
    file no longer costs composing MAX_NODES nodes in Python first. None when the file stays within the
    limit, is small, or is not YAML the C parser reads (the composer below then says what is wrong)."""
    if len(text) < PRECOUNT_ABOVE or not getattr(yaml, "__with_libyaml__", False):
        return None
    counted = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent, yaml.AliasEvent)
    values = 0
    try:
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            if isinstance(event, counted):
                values += 1
                if values > MAX_NODES:
                    mark = event.start_mark
                    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    except yaml.YAMLError:
        return None
    return None


def _parse(text: str, file: str, kind: str = "scenario") -> _Document:
    beyond = _beyond_the_value_limit(text)
    if beyond is not None:
        raise InputError(f"the file has more than {MAX_NODES} values, the limit", file, *beyond)
    loader: _Yaml12Loader | None = None
    try:
        loader = _Yaml12Loader(text)  # the reader rejects control characters already here
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = _mark(mark) if mark is not None else (1, 1)
        problem, hint = error.problem or "", error.context
        if hint and problem.startswith("but "):  # "expected a single document ...", "but found another ..."
            problem, hint = f"{hint}, {problem}", None
        elif hint and error.context_mark is not None and error.context_mark is not mark:
            hint += f" at line {error.context_mark.line + 1}"
        if "'\\t'" in problem:
            hint = "indent with spaces: YAML does not allow tabs"
        raise InputError(f"invalid YAML: {problem or hint}", file, *where, None if not problem else hint) from error
    except _TooLarge as error:
        raise InputError(error.message, file, *_mark(error.mark)) from None
    except yaml.reader.ReaderError as error:
        before = text[:error.position]
        raise InputError(f"invalid YAML: {error.reason} (character U+{error.character:04X})", file,
                         before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1) from error
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        raise InputError(f"empty {kind} file", file, 1, 1,
                         hint=f"a scenario needs at least title, covers and steps; see {DOCS}" if kind == "scenario"
                         else None)
    doc = _Document(None, file)
    if not isinstance(root, MappingNode):
        doc.values[()] = _mark(root.start_mark)
        fields = " (title, covers, steps, ...)" if kind == "scenario" else ""
        raise doc.error(f"a {kind} file must be a mapping of fields{fields}, got "
                        f"{_describe_node(root)}", _mark(root.start_mark))
    doc.data = _Builder(loader, doc).build(root, ())
    return doc


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


def _describe_node(node: Node) -> str:
    if isinstance(node, SequenceNode):
        return "a list"
    return f"the value '{node.value}'" if node.value != "" else "nothing"


class _Builder:
    """Turns a composed node tree into plain dicts/lists/scalars, recording positions on the way."""

    def __init__(self, loader: _Yaml12Loader, doc: _Document) -> None:
        self._loader = loader
        self._doc = doc
        self._active: set[int] = set()  # nodes being built: an alias back to one of them is a cycle
        self._budget = MAX_VALUES

    def build(self, node: Node, path: Path) -> Any:
        here = _mark(node.start_mark)
        self._doc.values[path] = here
        self._budget -= 1
        if self._budget < 0:
            raise self._doc.error(f"the file expands to more than {MAX_VALUES} values when its aliases are followed, "
                                  "the limit", here, hint="every use of an alias (*name) counts its values again")
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if id(node) in self._active:
            raise self._doc.error(_prefix(path) + "an alias refers to a value that contains it", here)
        self._active.add(id(node))
        if isinstance(node, SequenceNode | MappingNode) and not node.flow_style:
            self._doc.blocks.add(path)
        try:
            if isinstance(node, SequenceNode):
                self._check_tag(node, "seq", path)
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            assert isinstance(node, MappingNode)
            self._check_tag(node, "map", path)
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    raise self._doc.error(_prefix(path) + "keys must be plain words, not lists or mappings",
                                          _mark(key_node.start_mark))
                key = str(key_node.value)
                child = (*path, key)
                if key in result:
                    first = self._doc.keys[child]
                    raise self._doc.error(_prefix(path) + f"duplicate key '{key}'", _mark(key_node.start_mark),
                                          hint=f"first at line {first[0]}")
                self._doc.keys[child] = _mark(key_node.start_mark)
                result[key] = self.build(value_node, child)
            return result
        finally:
            self._active.discard(id(node))

    def _check_tag(self, node: Node, expected: str, path: Path) -> None:
        if node.tag != _TAG + expected:
            raise self._doc.error(_prefix(path) + f"unsupported YAML tag '{_short_tag(node.tag)}'",
                                  _mark(node.start_mark))

    def _scalar(self, node: ScalarNode, path: Path) -> Any:
        constructors: dict[str, Callable[[ScalarNode], Any]] = {
            _TAG + "str": lambda n: str(n.value),
            _TAG + "null": lambda n: None,
            _TAG + "bool": self._loader.construct_yaml_bool,
            _TAG + "int": self._loader.construct_yaml_int,
            _TAG + "float": self._loader.construct_yaml_float,
        }
        construct = constructors.get(node.tag)
        if construct is None:
            raise self._doc.error(_prefix(path) + f"unsupported YAML tag '{_short_tag(node.tag)}'",
                                  _mark(node.start_mark), hint="quote the value to make it a string")
        try:
            value = construct(node)
        except (ValueError, KeyError) as error:  # e.g. `!!int abc`
            raise self._doc.error(_prefix(path) + f"'{node.value}' is not a valid {node.tag.removeprefix(_TAG)}",
                                  _mark(node.start_mark)) from error
        if isinstance(value, float) and not math.isfinite(value):
            # JSON has no NaN or infinity, so the schema cannot refuse them: NaN even passes every bound
            # (NaN < 0 and NaN > 3600 are both false), which turned `freshness_bound: .nan` into "no bound".
            raise self._doc.error(_prefix(path) + f"'{node.value}' is not a finite number", _mark(node.start_mark),
                                  hint="write a number, or quote it to make it a string")
        return value


# --- pass 2: the schema ------------------------------------------------------------------------------


def _step_kinds() -> tuple[str, ...]:
    return tuple(contracts.schema(SCHEMA)["$defs"]["step"]["properties"])


def _prefix(path: Path) -> str:
    """`step 3: ` for anything inside the third step, else nothing."""
    if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int):
        return f"step {path[1] + 1}: "
    return ""


def _relative(path: Path) -> Path:
    """The part of `path` a person thinks of: inside a step, the path within its arguments."""
    if len(path) >= 3 and path[0] == "steps":
        return path[3:]
    return path


def _dotted(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _field(path: Path) -> str:
    """How a message names the value at `path`: `'times'`, `'expect.shows[0]'`, or the step kind."""
    rel = _relative(path)
    if rel:
        return f"'{_dotted(rel)}'"
    if len(path) == 3:
        return f"'{path[2]}'"
    return "the step" if len(path) == 2 and path[0] == "steps" else "the file"


def _show(value: Any) -> str:
    """A value as the person wrote it in YAML."""
    if isinstance(value, str):
        return f"'{value}'"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def _did_you_mean(word: Any, choices: Sequence[str]) -> str | None:
    if not isinstance(word, str):
        return None
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        close = [c for c in choices if c.lower() == word.lower().replace("_", "-")
                 or c.lower() == word.lower().replace("-", "_")]
    return f"did you mean '{close[0]}'?" if close else None


_TYPE_NAMES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
               "object": "a mapping", "array": "a list", "null": "null"}

# What an enum-valued field is called in "unknown X 'y'" messages.
_ENUM_NOUNS = {"component": "component", "at": "crash point", "resource": "resource", "requires": "capability",
               "reason": "dead-letter reason", "role": "role", "cache": "cache status"}

# When several errors sit at one place, the more telling one wins: an unknown field explains a missing one.
_RANK = {"additionalProperties": 0, "maxProperties": 1, "minProperties": 2, "type": 3, "enum": 4, "pattern": 5,
         "required": 9}


def _extras(error: ValidationError) -> list[str]:
    allowed = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
    instance = error.instance if isinstance(error.instance, dict) else {}
    return [k for k in instance if k not in allowed]


def _location(error: ValidationError, doc: _Document) -> tuple[int, int]:
    path: Path = tuple(error.absolute_path)
    instance = error.instance
    if error.validator == "additionalProperties":
        extras = _extras(error)
        if extras:
            return doc.key_at((*path, extras[0]))
    if error.validator == "maxProperties" and isinstance(instance, dict) and len(instance) > 1:
        return doc.key_at((*path, list(instance)[1]))
    if error.validator == "uniqueItems" and isinstance(instance, list):
        for i, item in enumerate(instance):
            if item in instance[:i]:
                return doc.value_at((*path, i))
    return doc.value_at(path)


def _schema_error(doc: _Document, schema: str = SCHEMA) -> InputError | None:
    errors = list(contracts.file_validator(schema).iter_errors(doc.data))
    if not errors:
        return None

    def earliest_then_most_telling(error: ValidationError) -> tuple[int, int, int, int, int]:
        # Order by the value the error is about (so an unknown key and the missing key it explains, both
        # errors of one mapping, meet and the rank picks between them), then by the exact spot.
        node_line, node_col = doc.value_at(tuple(error.absolute_path))
        line, col = _location(error, doc)
        return -node_line, -node_col, -_RANK.get(str(error.validator), 6), -line, -col

    best = best_match(errors, key=earliest_then_most_telling)
    assert best is not None
    message, hint = _rephrase(best)
    return doc.error(_prefix(tuple(best.absolute_path)) + message, _location(best, doc), hint)


def _rephrase(error: ValidationError) -> tuple[str, str | None]:
    """The schema error as a person would say it, and a hint."""
    path: Path = tuple(error.absolute_path)
    value: Any = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    rule: Any = error.validator_value
    what = _field(path)
    is_step_item = len(path) == 2 and path[0] == "steps"
    is_step_args = len(path) == 3 and path[0] == "steps"
    kind = str(path[2]) if len(path) >= 3 and path[0] == "steps" else None
    last = next((p for p in reversed(path) if isinstance(p, str)), None)

    match error.validator:
        case "additionalProperties" if is_step_item and isinstance(value, dict) and len(value) > 1:
            return _several_kinds(value)
        case "maxProperties" if is_step_item and isinstance(value, dict):
            return _several_kinds(value)
        case "additionalProperties":
            extra = _extras(error)[0]
            allowed = list(schema.get("properties", {}))
            hint = _did_you_mean(extra, allowed)
            if is_step_item:
                return f"unknown step '{extra}'", hint or "steps are: " + ", ".join(allowed)
            if is_step_args:
                return f"unknown field '{extra}' in '{kind}'", hint or f"'{kind}' takes: " + ", ".join(allowed)
            if path:
                return f"unknown field '{extra}' in '{last}'", hint or f"'{last}' takes: " + ", ".join(allowed)
            return f"unknown field '{extra}'", hint or "the fields are: " + ", ".join(allowed)
        case "minProperties" if is_step_item:
            return "empty step", "a step is a mapping with one key, the step kind, e.g. `- settle: {}`"
        case "minProperties":
            return f"{what} asserts nothing", "leave it out, or say what to expect, e.g. `expect: {status: 200}`"
        case "type" if is_step_item:
            hint = "e.g. `- settle: {}`"
            if isinstance(value, str) and value in _step_kinds():
                hint = f"write `- {value}: {{}}`"
            return f"a step must be a mapping with one key, the step kind, got {_show(value)}", hint
        case "type" if is_step_args:
            return (f"'{kind}' takes a mapping of arguments, got {_show(value)}",
                    f"write `{kind}: {{}}` when it has none")
        case "type":
            expected = rule if isinstance(rule, list) else [rule]
            names = " or ".join(_TYPE_NAMES.get(str(t), str(t)) for t in expected)
            hint = None
            if isinstance(value, str) and set(schema.get("required", ())) == {"env"}:  # a secret, named
                hint = f"a secret is read from the environment: write `{{env: {value}}}`"
            return f"{what} must be {names}, got {_show(value)}", hint
        case "enum":
            choices = [str(c) for c in rule]
            noun = _ENUM_NOUNS.get(str(last))
            hint = _did_you_mean(value, choices)
            if noun:
                return f"unknown {noun} {_show(value)}", hint or "one of: " + ", ".join(choices)
            return f"{what} must be one of {', '.join(choices)}, got {_show(value)}", hint
        case "required":
            missing = next(r for r in rule if r not in value)
            if is_step_args:
                return f"'{kind}' needs '{missing}'", None
            if path:
                return f"{what} needs '{missing}'", None
            return f"missing required field '{missing}'", None
        case "pattern":
            return f"invalid {what}: {_show(value)}", schema.get("description")
        case "not" if last == "title":
            return f"{what} must be one line", None
        case "minimum":
            return f"{what} must be at least {rule}, got {_show(value)}", None
        case "exclusiveMinimum":
            return f"{what} must be greater than {rule}, got {_show(value)}", None
        case "maximum":
            return f"{what} must be at most {rule}, got {_show(value)}", None
        case "minItems":
            return f"{what} must not be empty", None
        case "minLength":
            return f"{what} must not be empty", None
        case "maxLength":
            return f"{what} is longer than {rule} characters", None
        case "uniqueItems":
            duplicate = next(v for i, v in enumerate(value) if v in value[:i])
            return f"{what} lists {_show(duplicate)} twice", None
        case _:
            return f"{what}: {error.message}", None


def _several_kinds(step: dict[str, Any]) -> tuple[str, str]:
    keys = list(step)
    message = "a step has exactly one kind, found " + ", ".join(f"'{k}'" for k in keys[:-1]) + f" and '{keys[-1]}'"
    if {"expect", "note"} & set(keys[1:]):
        return message, f"put expect: and note: inside the step's arguments, e.g. `- {keys[0]}: {{..., expect: ...}}`"
    return message, "write each step as its own list item"


# --- pass 3: rules across steps ---------------------------------------------------------------------


@dataclass
class _Binding:
    kind: str  # "payment" or "read"
    step: int  # 1-based
    line: int


def _payment_refs(kind: str, args: Mapping[str, Any]) -> Iterator[tuple[Path, Any]]:
    """Every place in a step's arguments that names a payment, as (path within args, name)."""
    if kind in ("confirm", "publish") and "payment" in args and not (
            kind == "confirm" and args["payment"] == UNBOUND_PAYMENT):
        yield ("payment",), args["payment"]
    if kind == "confirm":
        if "replay" in args:
            yield ("replay",), args["replay"]
        signature = args.get("signature")
        if isinstance(signature, dict) and "payment" in signature:
            yield ("signature", "payment"), signature["payment"]
    forged = args.get("forged")
    if kind == "publish" and isinstance(forged, dict) and forged.get("payment", UNBOUND_PAYMENT) != UNBOUND_PAYMENT:
        yield ("forged", "payment"), forged["payment"]
    if kind == "expect":
        yield from _assertion_refs(args, ())
    elif isinstance(args.get("expect"), dict):
        expect = args["expect"]
        if kind in ("read", "finish_read"):
            for i, name in enumerate(expect.get("shows", [])):
                yield ("expect", "shows", i), name
        elif kind not in RESPONSE_STEPS:
            yield from _assertion_refs(expect, ("expect",))


def _assertion_refs(assertions: Mapping[str, Any], base: Path) -> Iterator[tuple[Path, Any]]:
    for assertion in ("purchases", "payment", "created_events"):
        target = assertions.get(assertion)
        if isinstance(target, dict) and "payment" in target:
            yield (*base, assertion, "payment"), target["payment"]


def _check_semantics(doc: _Document) -> None:
    steps: list[dict[str, Any]] = doc.data["steps"]
    declared: dict[str, _Binding] = {}  # every `as:` in the file, for "bound later at step N"
    for i, item in enumerate(steps):
        kind, args = next(iter(item.items()))
        if "as" in args and args["as"] not in declared:
            declared[args["as"]] = _Binding("payment" if kind == "create_payment" else "read", i + 1,
                                            doc.value_at(("steps", i, kind, "as"))[0])
    bound: dict[str, _Binding] = {}
    finished: dict[str, int] = {}
    for i, item in enumerate(steps):
        kind, args = next(iter(item.items()))
        base: Path = ("steps", i, kind)
        problem = _step_problem(kind, args, bound, declared, finished)
        if problem is not None:
            message, where, hint = problem
            raise doc.error(f"step {i + 1}: {message}", doc.value_at((*base, *where)), hint)
        if kind == "finish_read":
            finished[args["read"]] = i + 1
        if "as" in args:
            bound[args["as"]] = _Binding("payment" if kind == "create_payment" else "read", i + 1,
                                         doc.value_at((*base, "as"))[0])


_Problem = tuple[str, Path, str | None]  # message, where (within the step's arguments), hint


def _step_problem(kind: str, args: Mapping[str, Any], bound: Mapping[str, _Binding],
                  declared: Mapping[str, _Binding], finished: Mapping[str, int]) -> _Problem | None:
    """The first cross-step rule this step breaks, given what earlier steps bound, or None."""
    for where, name in _payment_refs(kind, args):
        problem = _ref_problem(name, "payment", bound, declared)
        if problem is not None:
            return problem[0], where, problem[1]
    if kind == "finish_read":
        name = args["read"]
        problem = _ref_problem(name, "read", bound, declared)
        if problem is not None:
            return problem[0], ("read",), problem[1]
        if name in finished:
            return f"read '{name}' was already finished at step {finished[name]}", ("read",), None
    if kind == "create_payment" and "generate" in args:
        if "metadata" in args:
            return ("'metadata' gives the document, 'generate' draws one: use one of them", ("generate",),
                    "to pin a value of a generated document, use metadata_patch")
        why = generate.Options.from_args(args["generate"]).problem()
        if why is not None:
            return f"generate: {why}", ("generate",), None
    if kind == "publish":
        sources = [s for s in ("payment", "raw", "forged") if s in args]
        if len(sources) != 1:
            found = "none" if not sources else " and ".join(f"'{s}'" for s in sources)
            return f"'publish' needs exactly one of 'payment', 'raw', 'forged', found {found}", (), None
    if kind == "confirm":
        if "replay" in args:
            clash = [k for k in ("status", "body", "signed", "signature") if k in args]
            if clash:
                return (f"'replay' resends an earlier callback exactly; it cannot be combined with '{clash[0]}'",
                        (clash[0],), None)
        elif "signature" in args and args.get("signed") is False:
            return "'signature' says how to sign; 'signed: false' sends no signature", ("signature",), None
    if kind == "crash" and "component" in args:
        owner = names.crash_point_owner(args["at"])
        if args["component"] != owner:
            return (f"crash point '{args['at']}' is in '{owner}', not '{args['component']}'", ("component",),
                    f"leave out component, or write `component: {owner}`")
    if kind == "fail" and "op" in args:
        operations = port_operations(args["resource"])
        if args["op"] not in operations:
            return (f"'{args['resource']}' has no operation '{args['op']}'", ("op",),
                    _did_you_mean(args["op"], operations) or "operations: " + ", ".join(operations))
    if kind == "expect" and not set(args) - {"note"}:
        return "'expect' asserts nothing", (), "name at least one of purchases, dlq, payment, created_events"
    if "as" in args:
        name = args["as"]
        if name == UNBOUND_PAYMENT:
            return (f"'{UNBOUND_PAYMENT}' is reserved", ("as",),
                    "`confirm: {payment: unknown}` and `publish: {forged: {payment: unknown}}` mean a payment "
                    "that does not exist")
        if name in bound:
            first = bound[name]
            return (f"name '{name}' is already bound at step {first.step} (line {first.line})", ("as",),
                    "each `as:` needs a new name")
    return None


def _ref_problem(name: str, expected: str, bound: Mapping[str, _Binding],
                 declared: Mapping[str, _Binding]) -> tuple[str, str | None] | None:
    """Why `name` cannot be used here as a `expected` ("payment" or "read"), or None when it can."""
    binding = bound.get(name)
    if binding is not None:
        if binding.kind != expected:
            return f"'{name}' is a {binding.kind} (step {binding.step}), not a {expected}", None
        return None
    later = declared.get(name)
    if later is not None and later.kind == expected:
        return (f"{expected} '{name}' is used before it is bound",
                f"`as: {name}` is at step {later.step} (line {later.line})")
    if name == UNBOUND_PAYMENT and expected == "payment":
        return (f"'{UNBOUND_PAYMENT}' is a payment that does not exist: it can be confirmed "
                "(`confirm: {payment: unknown}`) or named by a forged event, not used here", None)
    candidates = [n for n, b in bound.items() if b.kind == expected]
    how = ("`create_payment: {as: " + name + "}`" if expected == "payment"
           else "`begin_read: {student: s1, as: " + name + "}`")
    return (f"unknown {expected} '{name}': no earlier step binds it",
            _did_you_mean(name, candidates) or f"bind it first with {how}")


# --- building the model ---------------------------------------------------------------------------------


def _resolve(node: Any) -> dict[str, Any]:
    """Follow a local `$ref` of the scenario schema."""
    while isinstance(node, dict) and "$ref" in node and str(node["$ref"]).startswith("#/$defs/"):
        target: dict[str, Any] = contracts.schema(SCHEMA)["$defs"][node["$ref"].removeprefix("#/$defs/")]
        node = target
    return node if isinstance(node, dict) else {}


def _with_defaults(value: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`value` with the `default`s its schema declares filled in, recursively into known sub-mappings."""
    result = dict(value)
    for key, prop in schema.get("properties", {}).items():
        if key not in result and "default" in prop:
            result[key] = prop["default"]
        elif isinstance(result.get(key), dict) and key not in ("expect", "metadata", "metadata_patch", "body"):
            result[key] = _with_defaults(result[key], _resolve(prop))
    return result


def _step(doc: _Document, index: int, item: dict[str, Any]) -> Step:
    kind, given = next(iter(item.items()))
    step_schema = contracts.schema(SCHEMA)["$defs"]["step"]["properties"][kind]
    args = _with_defaults(given, _resolve(step_schema))
    if kind in ("read", "begin_read"):
        args.setdefault("by", args["student"])
        args.setdefault("role", "admin" if args["by"] == "admin" else "student")
    if kind == "crash":
        args.setdefault("component", names.crash_point_owner(args["at"]))
    note = args.pop("note", None)
    expect = args.pop("expect", None)
    if kind == "expect":
        expect, args = args, {}
    line, col = doc.key_at(("steps", index, kind))
    return Step(kind=kind, args=freeze(args), line=line, col=col,
                expect=freeze(expect) if expect is not None else None, note=note, number=index + 1)


def _load_text(text: str, file: str, stem: str) -> Scenario:
    doc = _parse(text, file)
    error = _schema_error(doc)
    if error is not None:
        raise error
    _check_semantics(doc)
    data: dict[str, Any] = doc.data
    name = data.get("name", stem)
    if "name" not in data and not re.fullmatch(r"[a-z0-9][a-z0-9-]*", stem):
        raise doc.error(f"the file name '{stem}' is not a valid scenario name", (1, 1),
                        "add a `name:` (lower-case letters, digits and -) or rename the file")
    bound = data.get("freshness_bound")
    return Scenario(
        name=name,
        title=data["title"],
        description=data.get("description"),
        covers=tuple(data["covers"]),
        tags=tuple(data.get("tags", ())),
        requires=tuple(data.get("requires", ())),
        freshness_bound=float(bound) if bound is not None else None,
        steps=tuple(_step(doc, i, item) for i, item in enumerate(data["steps"])),
        path=file,
        line_of=MappingProxyType(doc.line_of()),
    )
