"""Frontend model F1 (the app's extraction rules) and F2 (end to end, checkout -> screen)."""

from __future__ import annotations

from kcverify.reference.frontend import display
from tests.unit.conftest import METADATA, Flow


def test_f1_reads_metadata_and_purchase_tier() -> None:
    shown = display({"purchaseTier": 20, "metadata": {**METADATA, "sessionCount": 10}})
    assert shown.to_json() == {"startDate": "2026-02-02", "classTime": "18:30", "classTypeId": "group-small",
                               "scheduleType": "weekly", "sessionCount": 20}


def test_f1_falls_back_to_schedule_and_metadata_session_count() -> None:
    shown = display({"purchaseTier": None, "metadata": {
        "classTypeId": "x", "scheduleType": "custom", "sessionCount": 8,
        "schedule": {"startDate": "2026-03-01", "timeSlot": "07:15"}}})
    assert (shown.startDate, shown.classTime, shown.sessionCount) == ("2026-03-01", "07:15", 8)


def test_f1_keeps_whatever_type_the_api_sent() -> None:
    assert display({"metadata": {"sessionCount": "10"}}).sessionCount == "10"


def test_f2_the_student_sees_the_values_chosen_at_checkout(flow: Flow) -> None:
    flow.buy(metadata=METADATA)
    flow.settle()
    [item] = flow.learning("s1").json()["purchases"]
    assert display(item).to_json() == {k: METADATA[k] for k in
                                       ("startDate", "classTime", "classTypeId", "scheduleType", "sessionCount")}
