"""The spec's oracle (kcverify.spec.oracle) against the reference's own implementations of the W4 merge
and the F1 display, on generated metadata: nulls, extra keys, nested objects, unicode, numbers as
strings, booleans, empty strings, schedule objects. The two are written independently, so agreement on
thousands of inputs is evidence for both, and a planted difference in the reference must be found."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from kcverify.reference import domain, frontend
from kcverify.spec import names, oracle

# Deterministic (derandomize: the same examples on every run, so CI is stable), and many of them.
PROPERTY = settings(max_examples=2000, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Cheap strategies on purpose: 2000 examples must stay a few seconds on a loaded CI machine.
unicode_text = st.text(alphabet="aZ0 _-:é漢字🙂\u00a0", max_size=4)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-2, max_value=2),  # 0 and small numbers: the falsy edge
    st.integers(min_value=-(2**53), max_value=2**53),
    st.sampled_from([0.0, -0.0, 0.5, 10.0, 1e300]),  # floats (JSON has no NaN or infinity)
    st.just(""),
    unicode_text,
    st.integers(min_value=0, max_value=300).map(str),  # numbers as strings: "10"
    st.sampled_from(["2026-02-02", "18:30", "weekly", "group-small", "0", "false", "null"]),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=2),
    st.dictionaries(unicode_text, scalars, max_size=2),  # nested objects, empty ones included
)
KNOWN_KEYS = (*names.REQUIRED_METADATA, "timezone", "classTypeTitle", "schedule", "promo", "note")
keys = st.one_of(st.sampled_from(KNOWN_KEYS), unicode_text)
schedules = st.one_of(
    st.fixed_dictionaries({}, optional={"startDate": values, "timeSlot": values, "mode": values}),
    values,  # not an object at all: null, a string, a list, ...
)


@st.composite
def metadata(draw: st.DrawFn) -> dict[str, Any]:
    md = draw(st.dictionaries(keys, values, max_size=6))
    if draw(st.booleans()):
        md["schedule"] = draw(schedules)
    return md


@st.composite
def view_items(draw: st.DrawFn) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if draw(st.booleans()):
        item["purchaseTier"] = draw(values)
    choice = draw(st.integers(0, 5))
    if choice == 0:
        item["metadata"] = None
    elif choice > 1:  # 1: absent
        item["metadata"] = draw(metadata())
    return item


def strict(value: Any) -> str:
    """JSON text: 1, 1.0, True and "1" all differ, as they do on the wire."""
    return json.dumps(value, sort_keys=True)


def _agree(payment: dict[str, Any], event: dict[str, Any], item: dict[str, Any]) -> None:
    # The reference's functions are looked up at call time, so a test can plant a difference.
    assert strict(domain.merge_metadata(dict(payment), dict(event))) == strict(oracle.merge(payment, event))
    assert strict(frontend.display(item).to_json()) == strict(oracle.display(item))


agree_with_the_reference = PROPERTY(given(payment=metadata(), event=metadata(), item=view_items())(_agree))
# The same property for the planted differences: the same examples, stopping at the first disagreement
# (no shrinking: only whether one is found matters there).
finds_a_difference = settings(PROPERTY, phases=(Phase.explicit, Phase.generate))(
    given(payment=metadata(), event=metadata(), item=view_items())(_agree))


def test_the_oracle_and_the_reference_agree_on_generated_metadata() -> None:
    agree_with_the_reference()


def _null_overrides(payment: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    return {**event, **payment}  # a null in the payment wipes the event's value


def _event_wins(payment: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    return {**payment, **{k: v for k, v in event.items() if v is not None}}


def _loses_event_only_keys(payment: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if v is not None else event.get(k)) for k, v in payment.items()}


def _drops_extra_keys(payment: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    merged = oracle.merge(payment, event)
    return {k: v for k, v in merged.items() if k in (*names.REQUIRED_METADATA, "schedule")}


@pytest.mark.parametrize("planted", [_null_overrides, _event_wins, _loses_event_only_keys, _drops_extra_keys])
def test_a_planted_difference_in_the_reference_merge_is_found(
        monkeypatch: pytest.MonkeyPatch, planted: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]) -> None:
    monkeypatch.setattr(domain, "merge_metadata", planted)
    with pytest.raises(AssertionError):
        finds_a_difference()


REFERENCE_DISPLAY = frontend.display


def _nullish_session_count(item: dict[str, Any]) -> frontend.Display:
    """`purchaseTier ?? metadata.sessionCount` instead of the app's `||`: differs on 0, "" and false."""
    shown = REFERENCE_DISPLAY(item)
    tier = item.get("purchaseTier")
    md = item.get("metadata")
    fallback = md.get("sessionCount") if isinstance(md, dict) else None
    return frontend.Display(shown.startDate, shown.classTime, shown.classTypeId, shown.scheduleType,
                            tier if tier is not None else fallback)


def _class_time_from_schedule_start(item: dict[str, Any]) -> frontend.Display:
    shown = REFERENCE_DISPLAY(item)
    md = item.get("metadata")
    schedule = md.get("schedule") if isinstance(md, dict) else None
    if isinstance(md, dict) and not md.get("classTime") and isinstance(schedule, dict):
        return frontend.Display(shown.startDate, schedule.get("startDate"), shown.classTypeId, shown.scheduleType,
                                shown.sessionCount)
    return shown


@pytest.mark.parametrize("planted", [_nullish_session_count, _class_time_from_schedule_start])
def test_a_planted_difference_in_the_reference_display_is_found(
        monkeypatch: pytest.MonkeyPatch, planted: Callable[[dict[str, Any]], frontend.Display]) -> None:
    monkeypatch.setattr(frontend, "display", planted)
    with pytest.raises(AssertionError):
        finds_a_difference()


# --- the oracle read against the rule text, case by case -------------------------------------------------


@pytest.mark.parametrize(("payment", "event", "merged"), [
    ({"a": 1}, {"a": 2}, {"a": 1}),  # the payment's non-null value wins
    ({"a": None}, {"a": 2}, {"a": 2}),  # a null in the payment does not win
    ({"a": None}, {"a": None}, {"a": None}),
    ({"a": None}, {}, {"a": None}),  # null, nothing better: kept, null (nothing dropped)
    ({}, {"promo": "X"}, {"promo": "X"}),  # keys only the event has are kept
    ({"s": {"x": 1}}, {"s": {"x": 2, "y": 3}}, {"s": {"x": 1}}),  # shallow: an object is one value
    ({"a": 0, "b": "", "c": False}, {"a": 1, "b": "x", "c": True}, {"a": 0, "b": "", "c": False}),  # falsy, not null
])
def test_merge_follows_w4(payment: dict[str, Any], event: dict[str, Any], merged: dict[str, Any]) -> None:
    assert strict(oracle.merge(payment, event)) == strict(merged)


@pytest.mark.parametrize(("item", "field", "shown"), [
    ({"metadata": {"startDate": "2026-01-01", "schedule": {"startDate": "2027-01-01"}}}, "startDate", "2026-01-01"),
    ({"metadata": {"schedule": {"startDate": "2027-01-01"}}}, "startDate", "2027-01-01"),
    ({"metadata": {"startDate": "", "schedule": {"startDate": "2027-01-01"}}}, "startDate", "2027-01-01"),
    ({"metadata": {"classTime": None, "schedule": {"timeSlot": "09:00"}}}, "classTime", "09:00"),
    ({"metadata": {"classTime": {}, "schedule": {"timeSlot": "09:00"}}}, "classTime", {}),  # {} is truthy in JS
    ({"metadata": {"classTime": "", "schedule": "weekly"}}, "classTime", None),  # not an object: no timeSlot
    ({"purchaseTier": 0, "metadata": {"sessionCount": 10}}, "sessionCount", 10),  # 0 || 10
    ({"purchaseTier": 12, "metadata": {"sessionCount": 10}}, "sessionCount", 12),
    ({"purchaseTier": None, "metadata": {"sessionCount": 0}}, "sessionCount", 0),  # the fallback, whatever it is
    ({}, "classTypeId", None),
])
def test_display_follows_f1(item: dict[str, Any], field: str, shown: Any) -> None:
    assert list(oracle.display(item)) == list(names.DISPLAY_FIELDS)
    assert strict(oracle.display(item)[field]) == strict(shown)


def test_the_property_runs_at_least_2000_deterministic_examples() -> None:
    assert PROPERTY.max_examples >= 2000 and PROPERTY.derandomize
