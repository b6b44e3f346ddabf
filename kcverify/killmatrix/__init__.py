"""The kill matrix: switch on one defect of the reference at a time, replay the scenarios, and show
which checks catch it. A check that never fails proves nothing; this is the
evidence that each one can (docs/defects.md)."""

from kcverify.killmatrix.engine import TargetFactory, judge, resolve, run_baseline, run_mutants
from kcverify.killmatrix.model import (
    Baseline,
    BaselineFailed,
    Catch,
    MutantError,
    MutantResult,
    MutantsResult,
    Outcome,
)

__all__ = [
    "Baseline",
    "BaselineFailed",
    "Catch",
    "MutantError",
    "MutantResult",
    "MutantsResult",
    "Outcome",
    "TargetFactory",
    "judge",
    "resolve",
    "run_baseline",
    "run_mutants",
]
