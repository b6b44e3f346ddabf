"""A learning view that names no payment: each purchase is matched to its payment by purchaseId through
the system's rows, else to the newest payment of the same student and course the scenario created."""

from __future__ import annotations

import json

from kcverify.targets.base import HttpReply
from kcverify.targets.external.view_match import with_payment_ids


def _view(*purchases: dict[str, object]) -> HttpReply:
    return HttpReply(200, {}, json.dumps({"studentId": "s1", "purchases": list(purchases)}).encode())


def _ids(reply: HttpReply) -> list[object]:
    return [p.get("paymentId") for p in json.loads(reply.body)["purchases"]]


CREATED = [("p-old", "s1", "c1"), ("p-other", "s2", "c1"), ("p-new", "s1", "c1"), ("p-yoga", "s1", "c2")]


def test_by_student_and_course_the_newest_payment() -> None:
    reply = with_payment_ids(_view({"courseId": "c1"}, {"courseId": "c2"}), "s1", CREATED, {})
    assert _ids(reply) == ["p-new", "p-yoga"]


def test_the_systems_rows_decide_first() -> None:
    reply = with_payment_ids(_view({"purchaseId": "u1", "courseId": "c1"}), "s1", CREATED, {"u1": "p-old"})
    assert _ids(reply) == ["p-old"]


def test_a_purchase_of_no_payment_of_the_scenario_stays_unmatched_and_a_named_one_is_kept() -> None:
    reply = with_payment_ids(_view({"courseId": "c9"}, {"courseId": "c1", "paymentId": "given"}), "s1", CREATED, {})
    assert _ids(reply) == [None, "given"]
    other_student = with_payment_ids(_view({"courseId": "c2", "studentId": "s2"}), "s1", CREATED, {})
    assert _ids(other_student) == [None]  # s2 bought c1, not c2


def test_an_answer_that_is_not_a_view_is_passed_on() -> None:
    reply = HttpReply(200, {}, b"not json")
    assert with_payment_ids(reply, "s1", CREATED, {}) is reply
