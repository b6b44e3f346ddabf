"""The record of the last `kcverify run` (`.kcverify/last-run.json` under the working directory, beside
the local stack's `.kcverify/stack`), so `kcverify run --last-failed` can re-run only what failed.

Like pytest's cache, the record is merged, not replaced: a run updates the scenarios it ran and keeps what
it knows of the others, so `--last-failed` after a `-k` run still remembers the failures it did not touch.
A scenario is known by its file (resolved) and name."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kcverify.core.status import Status
from kcverify.evidence.results import RunResult
from kcverify.scenario.model import Scenario

STATE_DIR = Path(".kcverify")
FILE_NAME = "last-run.json"
FORMAT = 1
FAILING = (Status.FAILED.value, Status.ERROR.value)


def record_path(base: Path | None = None) -> Path:
    return (base or Path.cwd()) / STATE_DIR / FILE_NAME


def _key(path: str, name: str) -> str:
    return f"{Path(path).resolve()}::{name}"


def load(path: Path) -> dict[str, str] | None:
    """scenario key -> status of the last run that ran it; None when there is no usable record."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("scenarios"), dict):
        return None
    return {str(k): str(v) for k, v in data["scenarios"].items()}


def save(result: RunResult, path: Path) -> None:
    """Merges this run's statuses into the record (written whole, then renamed: never half a file).
    OSError passes to the caller, who decides how loud to be."""
    statuses = load(path) or {}
    for scenario in result.scenarios:
        statuses[_key(scenario.path, scenario.name)] = scenario.status.value
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".last-run-", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump({"format": FORMAT, "target": result.target, "seed": result.seed, "scenarios": statuses}, out,
                  indent=1, sort_keys=True)
    os.replace(temporary, path)


def last_failed(scenarios: Sequence[Scenario], path: Path) -> tuple[list[Scenario], str]:
    """The scenarios that failed or errored when last run, and a note to show. As pytest's --lf: with no
    record, or no failure among these scenarios, every scenario runs (the note says why)."""
    statuses = load(path)
    if statuses is None:
        return list(scenarios), f"no record of a previous run ({path}): running all {len(scenarios)} scenarios"
    failed = [s for s in scenarios if statuses.get(_key(s.path, s.name)) in FAILING]
    if not failed:
        return list(scenarios), f"no failure in the last run: running all {len(scenarios)} scenarios"
    return failed, f"re-running the {len(failed)} of {len(scenarios)} scenarios that failed last time"
