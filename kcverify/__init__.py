"""kcverify: a reference event-driven purchase flow and a verifier that replaces ticks with evidence.

The public API (docs/api.md) is the names of `__all__`: run scenarios against a target and read the
result, without deep imports. They are imported on first use (PEP 562), so `import kcverify` and
`kcverify --help` stay cheap and no layer below pays for the verifier: `kcverify.run(...)` loads it."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from kcverify.api import build_target, example_scenarios, load_scenarios, run
    from kcverify.core.errors import InputError, KcverifyError, TargetUnreachable
    from kcverify.core.extras import MissingExtra
    from kcverify.core.status import Status
    from kcverify.evidence.results import CheckResult, Failure, RunResult, ScenarioResult, StepResult
    from kcverify.scenario.model import Scenario
    from kcverify.targets.base import Target
    from kcverify.targets.registry import TargetOptions

# public name -> the module that defines it
_WHERE = {
    "run": "kcverify.api", "load_scenarios": "kcverify.api", "build_target": "kcverify.api",
    "example_scenarios": "kcverify.api",
    "RunResult": "kcverify.evidence.results", "ScenarioResult": "kcverify.evidence.results",
    "StepResult": "kcverify.evidence.results", "CheckResult": "kcverify.evidence.results",
    "Failure": "kcverify.evidence.results", "Status": "kcverify.core.status", "Scenario": "kcverify.scenario.model",
    "Target": "kcverify.targets.base", "TargetOptions": "kcverify.targets.registry",
    "KcverifyError": "kcverify.core.errors", "InputError": "kcverify.core.errors",
    "TargetUnreachable": "kcverify.core.errors", "MissingExtra": "kcverify.core.extras",
}

__all__ = [
    "CheckResult",
    "Failure",
    "InputError",
    "KcverifyError",
    "MissingExtra",
    "RunResult",
    "Scenario",
    "ScenarioResult",
    "Status",
    "StepResult",
    "Target",
    "TargetOptions",
    "TargetUnreachable",
    "__version__",
    "build_target",
    "example_scenarios",
    "load_scenarios",
    "run",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
