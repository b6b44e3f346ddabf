"""The results of a kill-matrix run: frozen values that the console, JSON and Markdown reporters read.

Each run is the reference with one named defect switched on (kcverify.reference.defects). Its verdict is
three-valued on purpose: KILLED (a scenario FAILED, so some check saw the defect), SURVIVED (every
scenario passed: no check can see it) and ERROR (no scenario failed but some broke: the verifier or
the target crashed, so whether the checks would have seen the defect is unknown). Counting an error
as a kill would let a crashing verifier pass for a sharp one."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from kcverify.core.errors import KcverifyError
from kcverify.evidence.results import SETTLE_BOUND, STEP_EXPECTATION, RunResult

# Judgements that are not registered checks but still fail scenarios (Failure.source "step"): a step's
# own `expect:` and a `settle` that never became quiet (kcverify.engine.steps). They lead the columns.
STEP_CHECKS = (STEP_EXPECTATION, SETTLE_BOUND)


class Outcome(StrEnum):
    KILLED = "killed"
    SURVIVED = "survived"
    ERROR = "error"


@dataclass(frozen=True)
class Catch:
    """One (scenario, check) pair that failed with the defect on, and the rule ids its failures cite."""

    scenario: str
    check: str
    rules: tuple[str, ...]


@dataclass(frozen=True)
class MutantError:
    """A scenario that ended in ERROR with the defect on: the verdict of that scenario is unknown."""

    scenario: str
    reason: str


@dataclass(frozen=True)
class MutantResult:
    name: str
    rule: str  # the SPEC rule the defect breaks
    description: str
    killed: bool
    caught_by: tuple[Catch, ...]  # in scenario order, then in the order the failures were reported
    duration: float  # wall seconds of this defect's run
    errors: tuple[MutantError, ...] = ()
    scenarios_run: int = 0
    reproduce: str = ""  # replays the first scenario that caught it, or the whole suite for a survivor

    @property
    def outcome(self) -> Outcome:
        if self.killed:
            return Outcome.KILLED
        return Outcome.ERROR if self.errors else Outcome.SURVIVED

    @property
    def first(self) -> Catch | None:
        return self.caught_by[0] if self.caught_by else None

    def scenarios_by_check(self) -> dict[str, tuple[str, ...]]:
        """check -> the scenarios in which that check failed: one row of the kill matrix."""
        out: dict[str, list[str]] = {}
        for catch in self.caught_by:
            names = out.setdefault(catch.check, [])
            if catch.scenario not in names:
                names.append(catch.scenario)
        return {check: tuple(names) for check, names in out.items()}

    @property
    def cites_rule(self) -> bool:
        """Whether some failure names the rule the defect breaks. A kill through another rule still
        counts (the behaviour was caught), but says the check that owns the rule did not see it."""
        return any(self.rule in catch.rules for catch in self.caught_by)


@dataclass(frozen=True)
class Baseline:
    """The run without any defect, summarised: it passed, or there would be no MutantsResult."""

    duration: float
    passed: tuple[str, ...]
    skipped: tuple[str, ...]  # scenarios the target cannot run; left out of every defect run


@dataclass(frozen=True)
class MutantsResult:
    target: str
    seed: int
    jobs: int
    started_at: float  # epoch seconds
    duration: float  # wall seconds, baseline included
    baseline: Baseline
    mutants: tuple[MutantResult, ...]  # in catalogue order, whatever order they finished in
    check_names: tuple[str, ...] = ()  # the registered checks, for the matrix's columns

    @property
    def killed(self) -> tuple[MutantResult, ...]:
        return tuple(m for m in self.mutants if m.outcome is Outcome.KILLED)

    @property
    def survivors(self) -> tuple[MutantResult, ...]:
        return tuple(m for m in self.mutants if m.outcome is Outcome.SURVIVED)

    @property
    def errored(self) -> tuple[MutantResult, ...]:
        """Defects whose verdict is unknown (no failure, some scenario broke)."""
        return tuple(m for m in self.mutants if m.outcome is Outcome.ERROR)

    @property
    def score(self) -> float:
        """Killed / total, 0..1. Errored defects count as not killed."""
        return len(self.killed) / len(self.mutants) if self.mutants else 0.0

    @property
    def columns(self) -> tuple[str, ...]:
        """The matrix's check columns: step checks, registered checks, then any other name seen."""
        names = list(dict.fromkeys((*STEP_CHECKS, *self.check_names)))
        for mutant in self.mutants:
            for catch in mutant.caught_by:
                if catch.check not in names:
                    names.append(catch.check)
        return tuple(names)

    @property
    def exit_code(self) -> int:
        """0 every defect killed; 1 a survivor (a definite finding: the checks are blind to a defect);
        3 no survivor but a scenario broke under some mutant (the verifier or target is broken, so a
        100 % score would be unearned). Bad input (2) never reaches a MutantsResult."""
        if self.survivors:
            return 1
        if any(m.errors for m in self.mutants):
            return 3
        return 0 if self.mutants else 2


EXIT_MEANING = {
    0: "every defect was caught by at least one scenario",
    1: "a defect survived: no scenario catches it",
    2: "bad input: nothing was measured",
    3: "a scenario broke with a defect on: kcverify or the target failed, the score is not trustworthy",
}


def percent(score: float) -> str:
    """'100%', '95%', '66.7%': whole numbers when exact, one decimal otherwise."""
    value = score * 100
    return f"{value:.0f}%" if abs(value - round(value)) < 1e-9 else f"{value:.1f}%"


class BaselineFailed(KcverifyError):
    """The reference fails without any defect. Scoring defects against it would mean nothing: a
    scenario that already fails 'kills' every defect. Exit 2: the input (suite + target) is unfit."""

    exit_code = 2

    def __init__(self, run: RunResult, message: str = "the reference fails without any defect: fix that first") -> None:
        self.run = run
        super().__init__(message)
