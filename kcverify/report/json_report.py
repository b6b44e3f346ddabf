"""The JSON reporter: the whole RunResult, for machines (dashboards, diffs between runs, other tools).

The shape is a contract: contracts/schemas/report.schema.json. Dataclasses become objects with the
same field names, enums their values, tuples arrays; derived values a consumer would otherwise
recompute (run status, exit code, counts, scenario failures in one list) are added. `details` and
`metrics` are free-form in the results model, so anything JSON cannot carry there is turned into a
string instead of breaking the report (a NaN would make the file invalid JSON for strict parsers)."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime
from enum import Enum
from pathlib import PurePath
from typing import Any

from kcverify.core.status import Status
from kcverify.evidence.results import RunResult
from kcverify.report import claims
from kcverify.report.claims import Claims
from kcverify.report.common import FileReporter

REPORT_VERSION = 1
SCHEMA_NAME = "schemas/report"  # for kcverify.contracts.validate


def to_jsonable(value: object) -> Any:
    """Plain JSON values from the results model (and whatever checks put in details/metrics)."""
    if isinstance(value, Enum):  # first: Status is also a str
        return to_jsonable(value.value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(to_jsonable(k)): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((to_jsonable(v) for v in value), key=repr)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, PurePath):
        return value.as_posix()
    return str(value)


def report(run: RunResult, given: Claims | None = None) -> dict[str, Any]:
    """The report document; with a claims file, a `claims` member holding each claim's judgement."""
    document: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "tool": "kcverify",
        "status": run.status.value,
        "exit_code": run.exit_code,
        "counts": {status.value: run.count(status) for status in Status},
        "started_at_iso": datetime.fromtimestamp(run.started_at, tz=UTC).isoformat(),
    }
    document.update(to_jsonable(run))
    for scenario, rendered in zip(run.scenarios, document["scenarios"], strict=True):
        rendered["failures"] = to_jsonable(scenario.failures)
    if given is not None:
        document["claims"] = claims.to_json(given, claims.judge(run, given))
    return document


class JsonReporter(FileReporter):
    """Writes `path` on RunFinished."""

    def text(self, run: RunResult) -> str:
        return json.dumps(report(run, self.claims), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
