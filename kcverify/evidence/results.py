"""The results of a run: frozen values that every reporter reads and nothing mutates.

A failure always carries the rule ids it refutes, a message, optional evidence as a table (for the
metadata check: hop x field), and the command that reproduces it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kcverify.core.status import Status


@dataclass(frozen=True)
class Table:
    """Evidence as rows and columns, e.g. the hops x fields diff of the metadata check."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    title: str = ""
    highlight: tuple[tuple[int, int], ...] = ()  # (row, column) cells where a value went wrong


# The two judgements that are not registered checks but part of the steps themselves (source "step").
STEP_EXPECTATION = "step expectation"  # a step's own `expect:` (status, shows, dlq, ...)
SETTLE_BOUND = "settle bound"  # a settle that hit its bound with work pending (I3)
COMPONENT_DIED = "component died"  # a component process ended by itself during the step (targets/base.py Incident)


@dataclass(frozen=True)
class Failure:
    check: str  # registered check name; for source "step": STEP_EXPECTATION, SETTLE_BOUND or COMPONENT_DIED
    rules: tuple[str, ...]  # SPEC rule ids, e.g. ("W4", "F2")
    message: str
    step: int | None = None  # 1-based index of the step after which it was seen; None: end of run
    step_title: str | None = None
    evidence: Table | None = None
    details: dict[str, Any] = field(default_factory=dict)
    source: str = "check"  # "check": a registered check; "step": the scenario's steps themselves

    @property
    def from_check(self) -> bool:
        return self.source == "check"


@dataclass(frozen=True)
class StepResult:
    index: int  # 1-based
    kind: str  # e.g. "create_payment"
    title: str  # one line, human readable: "create_payment p1 for s1/c1"
    status: Status
    duration: float  # wall seconds
    line: int | None = None  # line in the scenario file
    reason: str = ""  # why skipped / error text
    failures: tuple[Failure, ...] = ()


@dataclass(frozen=True)
class CheckResult:
    name: str
    rules: tuple[str, ...]
    status: Status
    summary: str = ""  # e.g. "staleness windows: p1 0 ms, p2 0 ms"
    failures: tuple[Failure, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScenarioResult:
    name: str
    path: str
    title: str
    covers: tuple[str, ...]
    tags: tuple[str, ...]
    status: Status
    duration: float
    seed: int
    reproduce: str  # a shell command that replays exactly this scenario
    steps: tuple[StepResult, ...] = ()
    checks: tuple[CheckResult, ...] = ()
    reason: str = ""  # for SKIPPED / ERROR

    @property
    def failures(self) -> tuple[Failure, ...]:
        found: list[Failure] = []
        for step in self.steps:
            found.extend(step.failures)
        for check in self.checks:
            found.extend(check.failures)
        return tuple(found)


@dataclass(frozen=True)
class RunResult:
    target: str
    seed: int
    started_at: float  # epoch seconds (wall clock)
    duration: float
    scenarios: tuple[ScenarioResult, ...]

    @property
    def status(self) -> Status:
        if not self.scenarios:
            return Status.ERROR
        return Status.worst([s.status for s in self.scenarios])

    def count(self, status: Status) -> int:
        return sum(1 for s in self.scenarios if s.status == status)

    @property
    def exit_code(self) -> int:
        """0 all passed; 1 a check failed; 2 nothing ran; 3 internal error (input errors never get here)."""
        if not self.scenarios or all(s.status == Status.SKIPPED for s in self.scenarios):
            return 2
        if any(s.status == Status.ERROR for s in self.scenarios):
            return 3
        if any(s.status == Status.FAILED for s in self.scenarios):
            return 1
        return 0
