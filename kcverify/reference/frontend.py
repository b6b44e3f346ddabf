"""The frontend model (F1): the five values the app's learnings screen shows, extracted from one
purchase of the learning view exactly as the app's rules say, fallbacks included.

The embedded and processes targets show a learning view's purchases through it (`display`), so what the
student sees is the model's answer, judged by the metadata check against the values chosen at checkout
(F2) and against kcverify's own reading of the rules (F1)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from kcverify.reference.defects import NONE, Defects
from kcverify.spec.names import DISPLAY_FIELDS as DISPLAY_FIELDS


@dataclass(frozen=True)
class Display:
    startDate: str | None
    classTime: str | None
    classTypeId: str | None
    scheduleType: str | None
    sessionCount: Any

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _js_truthy(value: Any) -> bool:
    """The app is JavaScript: objects and arrays are truthy even when empty; false, 0, "", null and
    NaN are not."""
    if isinstance(value, dict | list):
        return True
    if isinstance(value, float) and math.isnan(value):
        return False
    return bool(value)


def _first(*values: Any) -> Any:
    """JavaScript's `a || b`: the first truthy value (the app's fallbacks are written that way)."""
    for value in values:
        if _js_truthy(value):
            return value
    return values[-1] if values else None


def _get(obj: Any, key: str) -> Any:
    """JavaScript's `obj?.key`: undefined (None) on anything that is not an object."""
    return obj.get(key) if isinstance(obj, dict) else None


def display(purchase: dict[str, Any], defects: Defects = NONE) -> Display:
    metadata = purchase.get("metadata")
    schedule = _get(metadata, "schedule")
    if defects.on("frontend-schedule-first"):  # "the schedule is where the class times live"
        start_date = _first(_get(schedule, "startDate"), _get(metadata, "startDate"))
        class_time = _first(_get(schedule, "timeSlot"), _get(metadata, "classTime"))
    else:
        start_date = _first(_get(metadata, "startDate"), _get(schedule, "startDate"))
        class_time = _first(_get(metadata, "classTime"), _get(schedule, "timeSlot"))
    return Display(
        startDate=start_date,
        classTime=class_time,
        classTypeId=_get(metadata, "classTypeId"),
        scheduleType=_get(metadata, "scheduleType"),
        sessionCount=_first(purchase.get("purchaseTier"), _get(metadata, "sessionCount")),
    )
