"""Engine events. The engine never prints: it emits these, and reporters (console, JUnit, JSON,
Markdown, HTML) are handlers that subscribe to them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kcverify.evidence.results import CheckResult, RunResult, ScenarioResult, StepResult


@dataclass(frozen=True)
class RunStarted:
    target: str
    seed: int
    total: int  # scenarios selected


@dataclass(frozen=True)
class ScenarioStarted:
    name: str
    path: str
    index: int  # 1-based
    total: int


@dataclass(frozen=True)
class StepFinished:
    scenario: str
    step: StepResult


@dataclass(frozen=True)
class CheckFinished:
    scenario: str
    check: CheckResult


@dataclass(frozen=True)
class ScenarioFinished:
    result: ScenarioResult


@dataclass(frozen=True)
class RunFinished:
    result: RunResult


Event = RunStarted | ScenarioStarted | StepFinished | CheckFinished | ScenarioFinished | RunFinished


class Handler(Protocol):
    def handle(self, event: Event) -> None: ...
