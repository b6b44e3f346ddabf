"""Outcome of a step, a check, a scenario or a run. An indeterminate operation is never PASSED."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"  # a check failed: the system under test is wrong
    SKIPPED = "skipped"  # not run, always with a reason (e.g. "needs inject_faults")
    ERROR = "error"  # kcverify or the target broke; the verdict is unknown

    @staticmethod
    def worst(statuses: list[Status]) -> Status:
        order = [Status.ERROR, Status.FAILED, Status.PASSED, Status.SKIPPED]
        for status in order:
            if status in statuses:
                return status
        return Status.SKIPPED
