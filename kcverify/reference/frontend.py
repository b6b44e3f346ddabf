"""The frontend model (F1): the five values the app's learnings screen shows, extracted from one
purchase of the learning view exactly as the app's rules say, fallbacks included."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

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


def display(purchase: dict[str, Any]) -> Display:
    metadata = purchase.get("metadata")
    schedule = _get(metadata, "schedule")
    return Display(
        startDate=_first(_get(metadata, "startDate"), _get(schedule, "startDate")),
        classTime=_first(_get(metadata, "classTime"), _get(schedule, "timeSlot")),
        classTypeId=_get(metadata, "classTypeId"),
        scheduleType=_get(metadata, "scheduleType"),
        sessionCount=_first(purchase.get("purchaseTier"), _get(metadata, "sessionCount")),
    )
