"""The frontend model (F1): the five values the app's learnings screen shows, extracted from one
purchase of the learning view exactly as the app's rules say, fallbacks included."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

DISPLAY_FIELDS = ("startDate", "classTime", "classTypeId", "scheduleType", "sessionCount")


@dataclass(frozen=True)
class Display:
    startDate: str | None
    classTime: str | None
    classTypeId: str | None
    scheduleType: str | None
    sessionCount: Any

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _first(*values: Any) -> Any:
    """JavaScript's `a || b`: the first truthy value (the app's fallbacks are written that way)."""
    for value in values:
        if value:
            return value
    return values[-1] if values else None


def display(purchase: dict[str, Any]) -> Display:
    metadata = purchase.get("metadata") or {}
    schedule = metadata.get("schedule") or {}
    return Display(
        startDate=_first(metadata.get("startDate"), schedule.get("startDate")),
        classTime=_first(metadata.get("classTime"), schedule.get("timeSlot")),
        classTypeId=metadata.get("classTypeId"),
        scheduleType=metadata.get("scheduleType"),
        sessionCount=_first(purchase.get("purchaseTier"), metadata.get("sessionCount")),
    )
