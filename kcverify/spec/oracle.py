"""The rules' computations, written from the rule text alone (docs/spec-rules.md, W4 and F1): what
the merged metadata of a purchase and the five values the student sees must be. The verifier judges
every system by these; the reference has its own implementation, and a property test holds the two
to each other, so a defect in either shows up as a disagreement.

Nothing here may come from a system under test: no imports beyond the spec layer."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def merge(payment: Mapping[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
    """W4: "for each key the payment's value wins when present and non-null; keys only the event has
    are kept." Read key by key over the union of both key sets:

    - the payment has the key with a non-null value: the payment's value;
    - otherwise, the event has the key: the event's value, verbatim (whether the payment lacks the key
      or holds null for it: a null payment value does not win, so the event's value stands);
    - otherwise (null in the payment, absent from the event): the key stays, null. The payment is the
      source of truth and nothing is dropped (W5: fields are never silently dropped or defaulted).

    The merge is shallow: the rule speaks of keys, so a nested object (e.g. `schedule`) is one value
    and is taken whole from one side."""
    merged: dict[str, Any] = {}
    for key in (*payment.keys(), *(k for k in event if k not in payment)):
        if payment.get(key) is not None:
            merged[key] = payment[key]
        elif key in event:
            merged[key] = event[key]
        else:
            merged[key] = None
    return merged


def truthy(value: Any) -> bool:
    """JavaScript truthiness. F1 transcribes the app's screen (learnings.tsx), whose fallbacks are
    written `a || b`; so "a, else b" takes b whenever a is falsy in JavaScript: absent, null, false, 0,
    "" (and NaN). Every object and array is truthy there, empty ones included, unlike in Python.
    Consequence, on purpose: a sessionCount of 0 or a startDate of "" falls back, as in the app."""
    if value is None or value is False:
        return False
    if isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        return value != 0 and not (isinstance(value, float) and math.isnan(value))
    if isinstance(value, str):
        return value != ""
    return True


def _else(first: Any, fallback: Any) -> Any:
    """`first || fallback`: the first when truthy, else the fallback, whatever it is (null included)."""
    return first if truthy(first) else fallback


def _field(obj: Any, key: str) -> Any:
    """`obj?.key`: a field of an object; absent (None) for anything that is not an object."""
    return obj.get(key) if isinstance(obj, Mapping) else None


def display(item: Mapping[str, Any]) -> dict[str, Any]:
    """F1: the five values the frontend shows for one purchase of the learning view.

    startDate = metadata.startDate else metadata.schedule.startDate; classTime = metadata.classTime
    else metadata.schedule.timeSlot; classTypeId and scheduleType from metadata; sessionCount =
    purchaseTier else metadata.sessionCount. "else" is the app's `||` (see `truthy`). A value absent
    at both places is None."""
    metadata = item.get("metadata")
    schedule = _field(metadata, "schedule")
    return {
        "startDate": _else(_field(metadata, "startDate"), _field(schedule, "startDate")),
        "classTime": _else(_field(metadata, "classTime"), _field(schedule, "timeSlot")),
        "classTypeId": _field(metadata, "classTypeId"),
        "scheduleType": _field(metadata, "scheduleType"),
        "sessionCount": _else(item.get("purchaseTier"), _field(metadata, "sessionCount")),
    }


def purchase_tier(merged: Mapping[str, Any]) -> Any:
    """A purchase's purchaseTier is its merged sessionCount (the data model of the rules)."""
    return merged.get("sessionCount")

