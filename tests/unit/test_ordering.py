"""Per-student order (P3, W1): the embedded worker group has several members that split the partitions,
the ordering check judges a run by its records and rows alone, and it exempts exactly the reorders the
rules allow (a dead-lettered event). Also: the configuration defects are wrong settings as deployed,
and a run with them is still judged by the spec's numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kcverify.checks import select
from kcverify.checks.ordering import OrderingCheck
from kcverify.core.clock import rfc3339
from kcverify.engine.runner import Runner
from kcverify.evidence.evidence import Evidence, Exchange, PaymentRecord
from kcverify.reference.bootstrap import deployed_settings
from kcverify.reference.settings import Settings
from kcverify.scenario.loader import load_scenario
from kcverify.spec import names, policy
from kcverify.targets.base import BusRecord, HttpReply, Snapshot, TargetInfo
from kcverify.targets.embedded import EmbeddedTarget
from tests.unit.conftest import Flow

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


# --- the worker group on the embedded system ------------------------------------------------------------

def test_the_embedded_worker_group_has_several_members_that_split_the_partitions(flow: Flow) -> None:
    assert len(flow.system.workers) == Settings().workers >= 2
    students = [f"s{i}" for i in range(8)]
    for student in students:
        flow.buy(student)
    flow.settle()
    members = flow.system.bus.inner.members(names.WORKER_GROUP)  # type: ignore[attr-defined]
    assignments = [set(a) for a in members.values()]
    assert len(assignments) == len(flow.system.workers)
    assert all(assignments) and not set.intersection(*assignments)
    assert len(flow.system.course_store.all_purchases()) == len(students)


def test_a_crash_point_kills_one_member_and_the_others_take_over_its_partitions(flow: Flow) -> None:
    flow.buy("s1")
    flow.system.crash_points.arm("worker.after_poll")
    flow.settle()
    assert flow.system.crashed == [("purchase-worker", "worker.after_poll")]
    assert len(flow.system.workers_down) == 1  # one member died; the other handled the redelivered event
    assert len(flow.system.course_store.all_purchases()) == 1
    flow.system.restart("purchase-worker")
    assert not flow.system.workers_down and "purchase-worker" not in flow.system.down


def test_stopping_the_worker_stops_every_member(flow: Flow) -> None:
    flow.system.stop("purchase-worker")
    flow.buy("s1")
    flow.settle()
    assert flow.system.course_store.all_purchases() == []
    flow.system.restart("purchase-worker")
    flow.settle()
    assert len(flow.system.course_store.all_purchases()) == 1


# --- the check on hand-made evidence -----------------------------------------------------------------------

def _record(topic: str, event_type: str, offset: int, payment: str, partition: int = 1) -> BusRecord:
    event = {"type": event_type, "eventId": f"e-{topic}-{offset}", "payload": {"paymentId": payment,
                                                                              "studentId": "amy"}}
    return BusRecord(topic, partition, offset, "amy", json.dumps(event).encode(), (), 0.0)


def _evidence(confirmed: list[str], created: list[str], *, dead_lettered: str | None = None,
              confirmed_partitions: list[int] | None = None) -> Evidence:
    evidence = Evidence(TargetInfo("test", frozenset(), None), None)
    payments = sorted(set(confirmed))
    for seq, payment in enumerate(payments, start=1):
        evidence.payments[payment] = PaymentRecord(payment, payment, "amy", "c1", {}, 1)
        reply = HttpReply(200, {}, json.dumps({"id": payment, "status": "succeeded"}).encode())
        evidence.exchanges.append(Exchange(seq, "confirm", "payment-service", "POST",
                                           f"/api/v1/payments/{payment}/confirm", b"", 0.0, 0.0, reply,
                                           start_seq=seq))
    partitions = confirmed_partitions or [1] * len(confirmed)
    topics = {
        names.TOPIC_CONFIRMED: [_record(names.TOPIC_CONFIRMED, names.EVENT_CONFIRMED, i, p, partitions[i])
                                for i, p in enumerate(confirmed)],
        names.TOPIC_CREATED: [_record(names.TOPIC_CREATED, names.EVENT_CREATED, i, p) for i, p in enumerate(created)],
    }
    if dead_lettered:
        event = json.loads(_record(names.TOPIC_CONFIRMED, names.EVENT_CONFIRMED, 0, dead_lettered).value)
        letter = {"originalEvent": event, "originalTopic": names.TOPIC_CONFIRMED, "partition": 1, "offset": 0}
        topics[names.TOPIC_DLQ] = [BusRecord(names.TOPIC_DLQ, 0, 0, "amy", json.dumps(letter).encode(), (), 0.0)]
    snapshot = Snapshot(at=0.0, topics=topics,
                        payments=[{"id": p, "studentId": "amy", "status": "succeeded"} for p in payments],
                        purchases=[{"paymentId": p, "createdAt": rfc3339(0.0)} for p in created])
    evidence.snapshots.append((1, snapshot))
    return evidence


def _judge(evidence: Evidence) -> list[Any]:
    check = OrderingCheck(evidence)
    check.finish()
    return list(check.failures)


def test_in_order_passes() -> None:
    assert _judge(_evidence(["p1", "p2", "p3"], ["p1", "p2", "p3"])) == []


def test_a_re_publish_later_in_the_partition_does_not_move_the_payment() -> None:
    assert _judge(_evidence(["p1", "p2", "p1", "p3"], ["p1", "p2", "p3"])) == []


def test_purchases_created_out_of_record_order_fail_w1() -> None:
    [failure] = _judge(_evidence(["p1", "p2", "p3"], ["p2", "p1", "p3"]))
    assert failure.rules == ("W1",)
    assert "p1 comes before p2" in failure.message


def test_records_out_of_confirmation_order_fail_p3() -> None:
    failures = _judge(_evidence(["p2", "p1"], ["p2", "p1"]))
    assert [f.rules for f in failures] == [("P3",)]


def test_a_dead_lettered_event_may_be_handled_after_later_ones() -> None:
    assert _judge(_evidence(["p1", "p2", "p1"], ["p2", "p1"], dead_lettered="p1")) == []
    assert _judge(_evidence(["p1", "p2", "p3"], ["p3", "p2"], dead_lettered="p1"))  # only p1 is exempt


def test_one_students_records_on_several_partitions_fail() -> None:
    [failure] = _judge(_evidence(["p1", "p2"], ["p1", "p2"], confirmed_partitions=[0, 1]))
    assert "partitions [0, 1]" in failure.message


# --- configuration defects -----------------------------------------------------------------------------------

def test_configuration_defects_are_the_settings_as_deployed() -> None:
    assert deployed_settings(Settings()) == Settings()
    assert deployed_settings(Settings(defects=frozenset({"worker-two-attempts"}))).retry_attempts == 2
    assert deployed_settings(Settings(defects=frozenset({"retry-backoff-subsecond"}))).retry_backoff == (0.5, 1.0)


def test_a_misconfigured_reference_is_still_judged_by_the_spec_numbers() -> None:
    target = EmbeddedTarget(defects={"worker-two-attempts"})
    scenario = load_scenario(SCENARIOS / "persistent-failure-dlq-replay.yaml")
    [result] = Runner(target, checks=select()).run([scenario]).scenarios
    w7 = [f for f in result.failures if f.check == "delivery" and "W7" in f.rules]
    assert w7 and f"requires {policy.RETRY_ATTEMPTS}" in w7[0].message
