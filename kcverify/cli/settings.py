"""The one settings model of every command: `kcverify.toml` (or `[tool.kcverify]` in pyproject.toml),
then `KCVERIFY_*` environment variables, then flags, each winning over the one before.

The contract is `contracts/schemas/settings.schema.json`: the file and the environment are validated
against it with jsonschema, so a key's type and bounds exist once. Keys at the top level are common (a
command takes one if it has the option of that name); a command's own keys live in the table named
after it (`[run]`, `[serve.embedded]`, ...). The environment follows one scheme derived from the same
schema: `KCVERIFY_` + the key's table path and name, upper-cased and joined by `_` (`KCVERIFY_SEED`,
`KCVERIFY_RUN_FAIL_FAST`, `KCVERIFY_SERVE_EMBEDDED_PAYMENT_PORT`). The merged result reaches click as
the root context's `default_map`, so a flag always has the last word and `--help` shows the value in
force. Bad input is one line per problem, `file:line: message` or `KCVERIFY_X: message`, exit 2."""

from __future__ import annotations

import copy
import difflib
import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import click
from jsonschema import Draft202012Validator, ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import extend

from kcverify.contracts import schema as contract
from kcverify.core.errors import InputError

SCHEMA = "schemas/settings"
FILE_NAME = "kcverify.toml"
PYPROJECT = "pyproject.toml"
PYPROJECT_TABLE = ("tool", "kcverify")
ENV_PREFIX = "KCVERIFY"
# Commands with a table of their own; each (sub)command below them gets common + its table as defaults.
COMMANDS = ("run", "defects", "explore", "fuzz", "bench", "chaos", "stack", "serve")
STACK_SUBCOMMANDS = ("up", "down", "status", "check")
SERVE_MODES = ("embedded", "payment", "student", "worker", "relay", "reconciler")
# A settings key whose click parameter has another name.
PARAM_NAMES = {("run", "select"): "select_", ("run", "list"): "list_", ("explore", "out"): "out_dir",
               ("chaos", "faults"): "faults_text"}
# Settings stored as a list whose option takes one comma-separated string.
COMMA_SEPARATED = frozenset({("run", "report"), ("run", "checks"), ("run", "exclude_checks"), ("defects", "report"),
                             ("fuzz", "report"), ("fuzz", "operations"), ("fuzz", "modes"),
                             ("bench", "report"), ("bench", "rate"), ("explore", "report")})
TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})

Path_ = tuple[str, ...]


class SettingsError(InputError):
    """Every problem found in the settings, one line each (the first decides file and line)."""

    def __init__(self, errors: list[InputError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.message, first.file, first.line, first.col, first.hint)

    def render(self) -> str:
        return "\n".join(InputError.render(e) for e in getattr(self, "errors", [])) or InputError.render(self)


# --- the contract -------------------------------------------------------------------------------------


def _finite_number(checker: Any, instance: object) -> bool:
    """TOML and the environment allow inf and nan; no setting does (a bound compares False with nan)."""
    is_number: bool = Draft202012Validator.TYPE_CHECKER.is_type(instance, "number")
    return is_number and math.isfinite(instance)  # type: ignore[arg-type]


_SettingsValidator = extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, type_checker=Draft202012Validator.TYPE_CHECKER.redefine("number", _finite_number))


@cache
def _validator() -> Validator:
    document = contract(SCHEMA)
    Draft202012Validator.check_schema(document)
    validator: Validator = _SettingsValidator(document)
    return validator


def leaves() -> dict[Path_, dict[str, Any]]:
    """Every settable key (table path + name) and its schema, in the schema's order."""
    out: dict[Path_, dict[str, Any]] = {}

    def walk(node: dict[str, Any], prefix: Path_) -> None:
        for name, sub in node.get("properties", {}).items():
            if sub.get("type") == "object":
                walk(sub, (*prefix, name))
            else:
                out[(*prefix, name)] = sub

    walk(contract(SCHEMA), ())
    return out


def env_name(path: Path_) -> str:
    return "_".join((ENV_PREFIX, *path)).upper().replace("-", "_")


def dotted(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


# --- the file -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingsFile:
    path: Path
    text: str
    data: dict[str, Any]  # the kcverify part: the whole kcverify.toml, or pyproject's [tool.kcverify]
    prefix: Path_  # where that part sits in the TOML document

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        """The line of the key at `path` (or of the nearest table above it that has a line)."""
        lines = key_lines(self.text)
        keys = tuple(p for p in path if isinstance(p, str)) if path else ()
        for end in range(len(keys), -1, -1):
            found = lines.get((*self.prefix, *keys[:end]))
            if found is not None:
                return found
        return None


def find_file(start: Path) -> SettingsFile | None:
    """The nearest kcverify.toml, or pyproject.toml with a [tool.kcverify] table, from `start` upwards."""
    for folder in [start, *start.parents]:
        own = folder / FILE_NAME
        if own.is_file():
            text = read_text(own)
            return SettingsFile(own, text, parse_toml(own, text), ())
        pyproject = folder / PYPROJECT
        if pyproject.is_file():
            text = read_text(pyproject)
            document = parse_toml(pyproject, text)
            table = document.get("tool", {}).get("kcverify") if isinstance(document.get("tool"), dict) else None
            if table is not None:
                if not isinstance(table, dict):
                    raise InputError("[tool.kcverify] must be a table", str(pyproject),
                                     key_lines(text).get(PYPROJECT_TABLE))
                return SettingsFile(pyproject, text, table, PYPROJECT_TABLE)
    return None


def read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", str(path)) from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})", str(path)) from exc


_TOML_WHERE = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def parse_toml(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = _TOML_WHERE.search(message)
        if where:
            raise InputError(message[:where.start()], str(path), int(where.group(1)), int(where.group(2))) from exc
        end = message.replace(" (at end of document)", "")
        raise InputError(end + " at the end of the file", str(path), text.count("\n") + 1) from exc


_BARE = r"[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'"
_DOTTED = rf"(?:{_BARE})(?:\s*\.\s*(?:{_BARE}))*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?")
_KEY = re.compile(rf"^\s*({_DOTTED})\s*=")


def _parts(dotted_key: str) -> Path_:
    return tuple(p.strip("\"'") for p in re.findall(_BARE, dotted_key))


def key_lines(text: str) -> dict[Path_, int]:
    """Where each table header and key of a TOML text is (first occurrence), by its full path. Lines
    inside multi-line strings and arrays are not keys; close enough for pointing at a setting."""
    out: dict[Path_, int] = {}
    table: Path_ = ()
    for number, line in enumerate(text.splitlines(), start=1):
        if header := _HEADER.match(line):
            table = _parts(header.group(1))
            out.setdefault(table, number)
        elif key := _KEY.match(line):
            parts = _parts(key.group(1))
            for end in range(1, len(parts) + 1):
                out.setdefault((*table, *parts[:end]), number)
    return out


# --- messages -----------------------------------------------------------------------------------------

_TYPE_NAMES = {"integer": "an integer", "number": "a finite number", "boolean": "true or false",
               "string": "a string", "array": "a list", "object": "a table"}


def show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def describe(error: ValidationError) -> tuple[str, str | None]:
    """(message, hint) for one schema violation, in the words of the settings file."""
    kind: Any = error.validator
    expected: Any = error.validator_value
    value: Any = error.instance
    schema: Any = error.schema
    if kind == "type":
        names = [expected] if isinstance(expected, str) else list(expected)
        return f"expected {' or '.join(_TYPE_NAMES.get(n, n) for n in names)}, got {show(value)}", None
    bounds = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "more than",
              "exclusiveMaximum": "less than"}
    if kind in bounds:
        return f"must be {bounds[str(kind)]} {expected}, got {show(value)}", None
    if kind == "enum":
        choices = [str(c) for c in expected]
        close = difflib.get_close_matches(str(value), choices, n=1)
        return (f"must be one of {', '.join(choices)}, got {show(value)}",
                f"did you mean {close[0]!r}?" if close else None)
    if kind == "pattern":
        return f"{show(value)} is not of the form the setting takes: {schema.get('description', '')}", None
    if kind == "uniqueItems":
        return "lists a value twice", None
    if kind in ("minItems", "minLength"):
        return "must not be empty", None
    return error.message, None


def _unknown_keys(error: ValidationError) -> Iterator[tuple[str, str]]:
    """(key, hint) for each key an additionalProperties error refuses."""
    schema: Any = error.schema
    instance: Any = error.instance
    known = list(schema.get("properties", {}))
    elsewhere = {path[-1]: path[:-1] for path in leaves()}
    for key in instance:
        if key in known:
            continue
        if key in elsewhere:
            table = dotted(elsewhere[key])
            yield key, f"it is a setting of [{table}]" if table else "it is a common setting, at the top level"
            continue
        close = difflib.get_close_matches(key.replace("-", "_"), known, n=1)
        yield key, f"did you mean {close[0]!r}?" if close else f"known here: {', '.join(known) or 'none'}"


def file_errors(found: SettingsFile) -> list[InputError]:
    errors: list[InputError] = []
    for error in _validator().iter_errors(found.data):
        path = tuple(error.absolute_path)
        if error.validator == "additionalProperties":
            for key, advice in _unknown_keys(error):
                name = dotted((*path, key))
                errors.append(InputError(f"unknown setting {name!r}", str(found.path), found.line_of((*path, key)),
                                         hint=advice))
            continue
        message, hint = describe(error)
        errors.append(InputError(f"{dotted(path)}: {message}" if path else message, str(found.path),
                                 found.line_of(path), hint=hint))
    return sorted(errors, key=lambda e: e.line or 0)


# --- the environment ----------------------------------------------------------------------------------


def _types(leaf: dict[str, Any]) -> list[str]:
    kind = leaf.get("type", "string")
    return [kind] if isinstance(kind, str) else list(kind)


def parse_env(name: str, raw: str, leaf: dict[str, Any]) -> object:
    """An environment value as the type its key has in the schema; an InputError naming the variable."""
    types = _types(leaf)
    text = raw.strip()
    if "array" in types:
        items = [item.strip() for item in text.split(",") if item.strip()]
        if "number" in _types(leaf.get("items", {})):  # e.g. KCVERIFY_BENCH_RATE=50,100
            return [parse_env(name, item, leaf["items"]) for item in items]
        return items
    if "string" in types:
        return raw
    if "integer" in types:
        try:
            return int(text)
        except ValueError:
            raise InputError(f"expected an integer, got {raw!r}", name) from None
    if "number" in types:
        try:
            return float(text)
        except ValueError:
            raise InputError(f"expected a number, got {raw!r}", name) from None
    if "boolean" in types:
        if text.lower() in TRUE | FALSE:
            return text.lower() in TRUE
        raise InputError(f"expected true or false (1/0, yes/no), got {raw!r}", name)
    return raw


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings the `KCVERIFY_*` variables set, as a nested document, validated. Empty means unset."""
    document: dict[str, Any] = {}
    names: dict[Path_, str] = {}
    errors: list[InputError] = []
    for path, leaf in leaves().items():
        name = env_name(path)
        raw = environ.get(name)
        if raw is None or raw.strip() == "":
            continue
        try:
            value = parse_env(name, raw, leaf)
        except InputError as exc:
            errors.append(exc)
            continue
        names[path] = name
        node = document
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    if not errors:
        for error in _validator().iter_errors(document):
            path = tuple(p for p in error.absolute_path if isinstance(p, str))
            name = next((n for p, n in names.items() if path[:len(p)] == p), ENV_PREFIX)
            text, tip = describe(error)
            errors.append(InputError(text, name, hint=tip))
    if errors:
        raise SettingsError(errors)
    return document


# --- merged, for click --------------------------------------------------------------------------------


def _merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    out = dict(low)
    for key, value in high.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load(start: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings in force: the file's, overridden key by key by the environment's. SettingsError or
    InputError (exit 2) for anything the contract refuses."""
    found = find_file(start)
    document: dict[str, Any] = {}
    if found is not None:
        errors = file_errors(found)
        if errors:
            raise SettingsError(errors)
        document = anchored(found.data, found.path.parent, start)
    return _merge(document, from_environment(environ))


def _is_path(leaf: dict[str, Any]) -> bool:
    return leaf.get("format") == "path" or leaf.get("items", {}).get("format") == "path"


def anchored(data: dict[str, Any], folder: Path, start: Path) -> dict[str, Any]:
    """The file's relative paths made relative to the file's folder (as written when that is the
    working directory), so `kcverify run` from a subfolder finds the same scenarios and folders."""
    if folder.absolute() == start.absolute():
        return data
    out = copy.deepcopy(data)
    for path, leaf in leaves().items():
        node = out
        for part in path[:-1]:
            node = node.get(part, {})
        if not _is_path(leaf) or path[-1] not in node:
            continue
        value = node[path[-1]]
        node[path[-1]] = [str(folder / v) for v in value] if isinstance(value, list) else str(folder / value)
    return out


def _for_click(command: str, values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            continue
        if (command, key) in COMMA_SEPARATED and isinstance(value, list):
            value = ",".join(str(v) for v in value)
        out[PARAM_NAMES.get((command, key), key)] = value
    return out


def default_map(settings: dict[str, Any]) -> dict[str, Any]:
    """click's nested default_map: command -> (subcommand ->) parameter -> value."""
    common = {k: v for k, v in settings.items() if k not in COMMANDS}
    out: dict[str, Any] = {}
    for command in ("run", "defects", "explore", "fuzz", "bench", "chaos"):
        out[command] = _for_click(command, {**common, **settings.get(command, {})})
    stack = _for_click("stack", {**common, **settings.get("stack", {})})
    out["stack"] = {sub: dict(stack) for sub in STACK_SUBCOMMANDS}
    serve = settings.get("serve", {})
    shared = {k: v for k, v in serve.items() if k not in SERVE_MODES}
    out["serve"] = {mode: _for_click("serve", {**common, **shared, **serve.get(mode, {})}) for mode in SERVE_MODES}
    return out


# --- the same bounds on the command line --------------------------------------------------------------


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses nan and inf (a bound compares False with nan, so nan passes it)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


def bounded(*path: str) -> click.ParamType[Any]:
    """The click type of the numeric setting at `path`, with the schema's bounds: the flag and the file
    accept the same numbers."""
    leaf = leaves()[path]
    low, high = leaf.get("minimum", leaf.get("exclusiveMinimum")), leaf.get("maximum", leaf.get("exclusiveMaximum"))
    if "integer" in _types(leaf):
        return click.IntRange(low, high, min_open="exclusiveMinimum" in leaf, max_open="exclusiveMaximum" in leaf)
    return FiniteFloatRange(low, high, min_open="exclusiveMinimum" in leaf, max_open="exclusiveMaximum" in leaf)
