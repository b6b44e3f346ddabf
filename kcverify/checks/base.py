"""The check protocol and registry. A check sees the evidence grow step by step (`after_step`) and
then whole (`finish`); each distinct problem is reported once, at the first step it was seen."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from kcverify.core.clock import parse_rfc3339
from kcverify.core.status import Status
from kcverify.evidence.evidence import Evidence
from kcverify.evidence.results import CheckResult, Failure, Table

REGISTRY: dict[str, type[Check]] = {}


class Check:
    name: ClassVar[str]
    rules: ClassVar[tuple[str, ...]]
    needs: ClassVar[frozenset[str]] = frozenset()  # target capabilities without which it cannot judge
    description: ClassVar[str] = ""

    def __init__(self, evidence: Evidence) -> None:
        self.evidence = evidence
        self._failures: dict[str, Failure] = {}
        self.metrics: dict[str, Any] = {}
        self.notes: list[str] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            REGISTRY[cls.name] = cls

    def after_step(self, step: int) -> None:
        """Judge what the evidence shows after step `step` (1-based)."""

    def finish(self) -> None:
        """Judge the whole run, after the final settle."""

    def fail(self, key: str, message: str, *, rules: tuple[str, ...] | None = None, step: int | None = None,
             evidence: Table | None = None, **details: Any) -> None:
        if key in self._failures:
            return
        self._failures[key] = Failure(
            check=self.name, rules=rules or self.rules, message=message, step=step,
            step_title=self.evidence.step_title(step), evidence=evidence, details=details)

    @property
    def failures(self) -> tuple[Failure, ...]:
        return tuple(self._failures.values())

    def summary(self) -> str:
        return "; ".join(self.notes)

    def result(self) -> CheckResult:
        status = Status.FAILED if self._failures else Status.PASSED
        return CheckResult(self.name, self.rules, status, self.summary(), self.failures, dict(self.metrics))


def show(value: Any) -> str:
    """A value as a diff shows it: JSON, so 10 and "10" look different; '—' when absent. Text as it is
    (`Köln`, not `K\\u00f6ln`): the reader compares characters, not escapes."""
    import json

    if value is _MISSING:
        return "—"
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Any = _Missing()
MISSING: Any = _MISSING


def same(a: Any, b: Any) -> bool:
    """Equality that respects JSON types: 10 != "10", 1 != True, 10 != 10.0 is NOT distinguished
    (JSON has one number type) but int vs string is."""
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is not type(b):
        return False
    return bool(a == b)


TIME_SLACK = 0.0015  # a store may keep microseconds where an answer was rounded to milliseconds
_FRACTION = re.compile(r"T\d\d:\d\d:\d\d\.(\d+)")


def same_moment(a: str, b: str) -> bool:
    """Whether two RFC 3339 times name the same moment, to the precision each is written with: one written
    to the second is the same moment as one written to the microsecond when they are less than a second
    apart. False when either is not such a time."""
    try:
        return abs(parse_rfc3339(a) - parse_rfc3339(b)) <= max(TIME_SLACK, _unit(a), _unit(b))
    except ValueError:
        return False


def _unit(text: str) -> float:
    """The precision an RFC 3339 time is written with: 1 s without a fraction, 0.001 s with three digits."""
    fraction = _FRACTION.search(text)
    return 1.0 if fraction is None else 10.0 ** -len(fraction.group(1))
