"""A profile: the YAML file that maps a user's running system onto kcverify's model (docs/external.md).

Read like every YAML input of kcverify (kcverify.scenario.loader.load_document): YAML 1.2 scalars, the
position of every value, the JSON Schema contracts/schemas/profile.schema.json with `file:line:col`
errors and "did you mean". Then what a schema cannot say: an operation names a declared service, a
query a declared connection, every JMESPath expression compiles, a connection string has a known
scheme. Values that may come from the environment (`{env: NAME}`) are resolved only when the target is
built, and a missing variable is an error placed on the value that names it. Secrets have no other
form: a profile never holds one."""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any
from urllib.parse import urlsplit

import jmespath
from jmespath.exceptions import JMESPathError

from kcverify.core.errors import InputError
from kcverify.scenario.loader import YamlDocument, load_document

SCHEMA = "schemas/profile"
OPERATIONS = ("create_payment", "confirm", "read_payment", "learning_view", "invalidate_cache")
DSN_SCHEMES = ("postgresql://", "postgres://", "sqlite:")


@dataclass(frozen=True)
class Profile:
    """A validated profile: its data, where each value came from, and the file's name for messages."""

    doc: YamlDocument
    environ: Mapping[str, str]

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.doc.data
        return data

    @property
    def file(self) -> str:
        return self.doc.file

    @property
    def name(self) -> str:
        return str(self.data["name"])

    def section(self, *path: str) -> dict[str, Any]:
        """The mapping at `path` ({} when the profile does not configure it)."""
        node: Any = self.data
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        return node if isinstance(node, dict) else {}

    def operation(self, name: str) -> dict[str, Any] | None:
        op = self.section("http", "operations").get(name)
        return op if isinstance(op, dict) else None

    def error(self, message: str, *path: str | int, hint: str | None = None) -> InputError:
        """An InputError placed on the value at `path`."""
        return self.doc.error(message, self.doc.value_at(tuple(path)), hint)

    def resolve(self, value: Any, *path: str | int) -> str:
        """A plain value, or `{env: NAME[, default]}` read now; a missing variable is an error on the value."""
        if isinstance(value, str):
            return value
        name = str(value["env"])
        found = self.environ.get(name)
        if found is not None and found != "":
            return found
        if "default" in value:
            return str(value["default"])
        where = ".".join(str(p) for p in path)
        raise self.error(f"environment variable {name} is not set ({where} reads it)", *path)

    def secret(self, *path: str) -> str:
        node: Any = self.data
        for key in path:
            node = node[key]
        return self.resolve(node, *path)

    @property
    def capabilities(self) -> frozenset[str]:
        """What the external target can do with this profile, from what it configures (and what the target
        implements: control commands give control_components when every scenario component has the
        commands a step needs, control.missing))."""
        caps = {"http"}
        queries = self.section("databases", "queries")
        if "payments" in queries and "purchases" in queries:
            caps.add("read_db")
        kafka, topics = self.section("kafka"), self.section("kafka", "topics")
        if "bootstrap" in kafka and all(topics.get(role, {}).get("fields") for role in ("confirmed", "created")) \
                and self.section("kafka", "groups").get("worker"):
            caps.add("read_bus")
        if "bootstrap" in kafka and "confirmed" in topics:
            caps.add("produce_events")
        if self.section("control", "components"):
            from kcverify.targets.external.control import missing

            if not missing(self):
                caps.add("control_components")
        if self.section("control").get("faults"):
            caps.add("inject_faults")
        if self.section("cache").get("key"):
            caps.add("read_cache")
        tokens = self.section("auth", "tokens")
        caller_ops = (self.operation("learning_view"), self.operation("invalidate_cache"))
        if "student" in tokens and all(op is None or op.get("auth", "caller") == "caller" for op in caller_ops):
            caps.add("caller_credentials")  # the step's own bearer token (or none) is what the system receives
        if tokens and all(spec.get("kind") == "jwt" and "{exp}" in json.dumps(spec.get("claims"))
                          for spec in tokens.values()):
            caps.add("expiring_tokens")  # every token is a JWT whose claims carry the expiry kcverify sets
        return frozenset(caps)


def load_profile(path: str | FsPath, environ: Mapping[str, str] | None = None) -> Profile:
    """The validated profile at `path`, or InputError (`file:line:col: message`, exit 2)."""
    doc = load_document(path, SCHEMA, "profile")
    profile = Profile(doc, os.environ if environ is None else environ)
    _check(profile)
    return profile


def did_you_mean(word: str, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.5)
    listing = f"{what}: {', '.join(known) or 'none'}"
    return f"did you mean {close[0]!r}? {listing}" if close else listing


def _check(profile: Profile) -> None:
    services = sorted(profile.section("http", "services"))
    for name, spec in profile.section("http", "services").items():
        if isinstance(spec.get("base_url"), str):  # one read from the environment is checked when resolved
            check_base_url(profile, spec["base_url"], name)
    for name, op in profile.section("http", "operations").items():
        if op["service"] not in services:
            raise profile.error(f"unknown service {op['service']!r}", "http", "operations", name, "service",
                                hint=did_you_mean(op["service"], services, "services"))
    for index, call in enumerate(profile.section("preconditions").get("http", [])):
        if call["service"] not in services:
            raise profile.error(f"unknown service {call['service']!r}", "preconditions", "http", index, "service",
                                hint=did_you_mean(call["service"], services, "services"))
    connections = sorted(profile.section("databases", "connections"))
    for path, query in _queries(profile):
        if query["database"] not in connections:
            raise profile.error(f"unknown database {query['database']!r}", *path, "database",
                                hint=did_you_mean(query["database"], connections, "databases.connections"))
    for name, conn in profile.section("databases", "connections").items():
        dsn = conn["dsn"]
        if isinstance(dsn, str) and not dsn.startswith(DSN_SCHEMES):
            raise profile.error(f"unsupported connection string {dsn.split(':')[0]!r}", "databases", "connections",
                                name, "dsn", hint="postgresql://... or sqlite:///path")
    from kcverify.targets.external.control import check_components

    check_components(profile)
    for path, expression in _expressions(profile):
        try:
            jmespath.compile(expression)
        except JMESPathError as exc:
            reason = str(exc).splitlines()[0].removeprefix("Invalid jmespath expression: ").rstrip(": ")
            raise profile.error(f"not a JMESPath expression: {expression!r} ({reason})", *path) from exc
    _check_bus_and_conventions(profile)


def check_base_url(profile: Profile, url: str, service: str) -> None:
    """An http(s) URL with a host: a typo here otherwise surfaces as every request of a run unanswered."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise profile.error(f"base_url {url!r} is not an http(s) URL with a host", "http", "services", service,
                            "base_url", hint="e.g. http://127.0.0.1:8080")


def _check_bus_and_conventions(profile: Profile) -> None:
    """Kafka fields that must be writable, key templates, declared conventions (envelope.py, conventions.py)."""
    from kcverify.targets.external.conventions import conventions_of
    from kcverify.targets.external.envelope import check_invertible
    from kcverify.targets.external.vocabulary import check_vocabulary

    check_invertible(profile)
    check_vocabulary(profile)
    conventions_of(profile)


def _queries(profile: Profile) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    for name, query in profile.section("databases", "queries").items():
        yield ("databases", "queries", name), query
    pre = profile.section("preconditions")
    for kind in ("sql", "cleanup"):
        for index, query in enumerate(pre.get(kind, [])):
            yield ("preconditions", kind, index), query


def _expressions(profile: Profile) -> Iterator[tuple[tuple[str | int, ...], str]]:
    for name, op in profile.section("http", "operations").items():
        for key in ("payment", "purchases"):
            if key in op:
                yield ("http", "operations", name, key), op[key]
        for key in ("fields", "view_fields"):
            for field, expression in (op.get(key) or {}).items():
                if expression is not None:  # a view field the system does not carry
                    yield ("http", "operations", name, key, field), expression
    for topic, spec in profile.section("kafka", "topics").items():
        for field, expression in (spec.get("fields") or {}).items():
            yield ("kafka", "topics", topic, "fields", field), expression
