"""The scenario model: what a scenario file says, as frozen values.

The loader (`loader.py`) builds these only from files that passed the schema and the cross-step checks,
so the engine can trust them: every name a step uses is bound by an earlier step, every enum value is
known, and the defaults the schema declares are filled in. Values are deeply read-only (a `FrozenDict`
is still a `dict`, so `json.dumps` and `{**args}` work) because one Scenario is shared by every run,
report and shrink of it, and a step that mutated its own arguments would corrupt the next run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NoReturn

from kcverify.core.errors import InputError

# A location in the parsed file: keys and list indexes from the top, e.g. ("steps", 2, "confirm", "times").
Path = tuple[str | int, ...]

# What each step kind needs from the target beyond plain HTTP (a step that needs a capability the target
# lacks is reported `skipped (needs X)`, never passed).
STEP_CAPABILITIES: Mapping[str, frozenset[str]] = MappingProxyType({
    "create_payment": frozenset({"http"}),
    "confirm": frozenset({"http"}),
    "publish": frozenset({"produce_events"}),
    "run": frozenset({"control_components"}),
    # Killing a process is something many targets can do; stopping it at a named point in its code needs
    # the reference's instrumentation, hence the second capability.
    "crash": frozenset({"control_components", "crash_components"}),
    "kill": frozenset({"control_components"}),
    "stop": frozenset({"control_components"}),
    "restart": frozenset({"control_components"}),
    "fail": frozenset({"inject_faults"}),
    "read": frozenset({"http"}),
    "begin_read": frozenset({"split_reads"}),
    "finish_read": frozenset({"split_reads"}),
    "advance_clock": frozenset({"control_clock"}),
    "wait": frozenset(),
    "settle": frozenset(),
    "invalidate_cache": frozenset({"http"}),
    "replay_dlq": frozenset({"read_bus", "produce_events"}),
    "expect": frozenset(),
})

# What each state assertion (in an `expect` step, or in the `expect` of a step without a response) reads.
ASSERTION_CAPABILITIES: Mapping[str, frozenset[str]] = MappingProxyType({
    "purchases": frozenset({"read_db"}),
    "payment": frozenset({"http"}),  # GET /api/v1/payments/{id}
    "dlq": frozenset({"read_bus"}),
    "created_events": frozenset({"read_bus"}),
})

# `publish: {forged: {payment: unknown}}` and `confirm: {payment: unknown}` mean "a payment that does not
# exist", so no `as:` may bind the name.
UNBOUND_PAYMENT = "unknown"

# Steps whose `expect` is about their own HTTP response; every other step's `expect` asserts on state.
RESPONSE_STEPS = frozenset({"create_payment", "confirm", "read", "finish_read", "invalidate_cache", "replay_dlq"})


class FrozenDict(dict[str, Any]):
    """A dict that refuses every change after construction.

    A dict subclass rather than a MappingProxyType so that the values a step carries (metadata, bodies)
    serialise with `json.dumps` unchanged and compare equal to plain dicts in tests."""

    __slots__ = ()

    def _readonly(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("scenario values are read-only; copy with dict(...) to change one")

    __setitem__ = _readonly
    __delitem__ = _readonly
    __ior__ = _readonly
    clear = _readonly
    pop = _readonly
    popitem = _readonly
    setdefault = _readonly
    update = _readonly

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple[Any, ...]:
        # copy/deepcopy/pickle would otherwise rebuild through __setitem__
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self


def freeze(value: Any) -> Any:
    """Deep read-only copy of a JSON-like value: mappings become FrozenDicts, lists tuples."""
    if isinstance(value, Mapping):
        return FrozenDict({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Deep mutable copy (dicts and lists), for code that builds a request body from step arguments."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class Step:
    """One step of a scenario.

    `args` are the step's arguments with the schema's defaults filled in, without `expect` and `note`.
    For the `expect` step kind the assertions are in `expect` and `args` is empty, so the engine checks
    `step.expect` the same way after every step. `line`/`col` (1-based) locate the step's kind key;
    `number` is its 1-based position, the "step N" of messages and reports."""

    kind: str
    args: Mapping[str, Any]
    line: int
    col: int
    expect: Mapping[str, Any] | None = None
    note: str | None = None
    number: int = 0

    def capabilities_needed(self) -> frozenset[str]:
        """The target capabilities this step (with its expectations) needs to run at all."""
        needed = set(STEP_CAPABILITIES.get(self.kind, frozenset()))
        if "credential" in self.args:
            needed.add("caller_credentials")
        if self.args.get("credential") == "expired":
            needed.add("expiring_tokens")
        if self.expect is not None and self.kind not in RESPONSE_STEPS:
            for assertion in self.expect:
                needed |= ASSERTION_CAPABILITIES.get(assertion, frozenset())
        return frozenset(needed)

    @property
    def binds(self) -> str | None:
        """The name this step binds (`as:`), if any."""
        name = self.args.get("as")
        return name if isinstance(name, str) else None

    @property
    def title(self) -> str:
        """One human line for reports, e.g. `create_payment p1 for s1/c1`."""
        a = self.args
        match self.kind:
            case "create_payment":
                return f"create_payment {a['as']} for {a['student']}/{a['course']}"
            case "confirm":
                times = f" x{a['times']}" if a.get("times", 1) != 1 else ""
                if "replay" in a:
                    return f"confirm {a['payment']} replaying {a['replay']}'s callback{times}"
                how = " (unsigned)" if not a.get("signed", True) else ""
                signature = a.get("signature") or {}
                if "payment" in signature:
                    how += f" (signed for {signature['payment']})"
                if "age" in signature:
                    how += f" (signed {signature['age']} s ago)"
                return f"confirm {a['payment']} {a['status']}{times}{how}"
            case "publish":
                source = ("payment " + a["payment"] if "payment" in a
                          else "raw bytes" if "raw" in a else "forged event")
                copies = f" x{a['copies']}" if a.get("copies", 1) != 1 else ""
                return f"publish {source}{copies}"
            case "run":
                return f"run {a['component']} x{a['times']}"
            case "crash":
                return f"crash {a['component']} at {a['at']}"
            case "kill" | "stop" | "restart":
                return f"{self.kind} {a['component']}"
            case "fail":
                op = f".{a['op']}" if "op" in a else ""
                return f"fail {a['resource']}{op} x{a['times']}"
            case "read" | "begin_read":
                by = f" by {a['by']}" if a.get("by") != a["student"] else ""
                bound = f" as {a['as']}" if "as" in a else ""
                return f"{self.kind} {a['student']}{by}{bound}{_credential(a)}"
            case "finish_read":
                return f"finish_read {a['read']}"
            case "advance_clock" | "wait":
                return f"{self.kind} {a['seconds']}s"
            case "invalidate_cache":
                return f"invalidate_cache {a['student']}{_credential(a)}"
            case "expect":
                return "expect " + ", ".join(self.expect or {})
            case _:
                return self.kind


# How a step's bearer token is broken (its `credential`), as its title says it.
CREDENTIAL_TITLES: Mapping[str, str] = MappingProxyType({"none": "without a token", "forged": "with a forged token",
                                                         "expired": "with an expired token"})


def _credential(args: Mapping[str, Any]) -> str:
    credential = args.get("credential")
    return "" if credential is None else " " + CREDENTIAL_TITLES[credential]


@dataclass(frozen=True)
class Scenario:
    """One scenario file, validated.

    `line_of` maps every key and value of the file (by its path from the top) to its 1-based (line, col),
    so that errors found later (e.g. by a target that cannot honour an argument) can still point at the
    exact place in the file: use `locate()` or `error()`."""

    name: str
    title: str
    description: str | None
    covers: tuple[str, ...]
    tags: tuple[str, ...]
    requires: tuple[str, ...]
    freshness_bound: float | None
    steps: tuple[Step, ...]
    path: str
    line_of: Mapping[Path, tuple[int, int]] = field(default_factory=lambda: MappingProxyType({}),
                                                    compare=False, repr=False)

    def capabilities_needed(self) -> frozenset[str]:
        """Every capability a target needs to run this scenario whole: what its steps imply plus `requires`."""
        needed: set[str] = set(self.requires)
        for step in self.steps:
            needed |= step.capabilities_needed()
        return frozenset(needed)

    def locate(self, path: Iterable[str | int]) -> tuple[int, int]:
        """(line, col) of `path`, or of its nearest ancestor present in the file (e.g. a defaulted arg)."""
        parts: Path = tuple(path)
        while parts:
            if parts in self.line_of:
                return self.line_of[parts]
            parts = parts[:-1]
        return self.line_of.get((), (1, 1))

    def error(self, message: str, path: Iterable[str | int] = (), hint: str | None = None) -> InputError:
        """An InputError pointing at `path` in this scenario's file."""
        line, col = self.locate(path)
        return InputError(message, self.path, line, col, hint)
