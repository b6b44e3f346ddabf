"""The verifier tells the records a scenario injected from the system's own by what it injected (the
partition and offset the broker acknowledged), never by content or by position in the topic."""

from __future__ import annotations

from pathlib import Path

from kcverify.checks import select
from kcverify.core.status import Status
from kcverify.engine.runner import Runner, RunOptions
from kcverify.evidence.evidence import Evidence
from kcverify.reference import domain
from kcverify.reference.adapters.embedded_bus import partition_for_key
from kcverify.reference.bootstrap import bootstrap
from kcverify.scenario.loader import load_scenario
from kcverify.targets.base import INJECTED_HEADER, BusRecord, RecordId, Snapshot, TargetInfo
from kcverify.targets.embedded import EmbeddedTarget

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
TOPIC = domain.TOPIC_CONFIRMED


def _record(partition: int, offset: int, value: bytes, at: float, headers: tuple[tuple[str, str], ...] = (),
            topic: str = TOPIC) -> BusRecord:
    return BusRecord(topic, partition, offset, "k", value, headers, at)


def _evidence(records: dict[str, list[BusRecord]], injected: list[RecordId]) -> Evidence:
    evidence = Evidence(TargetInfo("t", frozenset(), None), None, injected=injected)
    evidence.snapshots.append((1, Snapshot(at=0.0, topics=records)))
    return evidence


def test_a_copy_on_a_lower_partition_is_the_injected_one_not_the_original() -> None:
    original = _record(1, 0, b"event", at=0.0)
    copy = _record(0, 0, b"event", at=2.0, headers=((INJECTED_HEADER, "step-3-copy-1"),))
    evidence = _evidence({TOPIC: [copy, original]}, [RecordId(TOPIC, 0, 0)])  # partition by partition
    assert evidence.genuine(TOPIC) == [original]


def test_only_the_identities_injected_on_that_topic_are_left_out() -> None:
    records = [_record(0, n, b"same", at=float(n)) for n in range(4)]
    evidence = _evidence({TOPIC: records}, [RecordId(TOPIC, 0, 1), RecordId(TOPIC, 0, 3), RecordId("other", 0, 0)])
    assert [r.offset for r in evidence.genuine(TOPIC)] == [0, 2]


def test_a_dead_letter_of_an_injected_record_is_the_systems_own() -> None:
    """The worker copies headers into the dead letter, so the header alone would hide it from the checks."""
    headers = ((INJECTED_HEADER, "step-2-copy-1"),)
    letter = _record(0, 0, b"{}", at=1.0, headers=headers, topic=domain.TOPIC_DLQ)
    evidence = _evidence({TOPIC: [_record(0, 0, b"poison", 0.0, headers)], domain.TOPIC_DLQ: [letter]},
                         [RecordId(TOPIC, 0, 0)])
    assert evidence.genuine(TOPIC) == []
    assert evidence.genuine(domain.TOPIC_DLQ) == [letter]


def test_publish_marks_every_copy_and_keeps_where_it_landed() -> None:
    target = EmbeddedTarget()
    target.start(seed=0)
    try:
        first = target.publish(TOPIC, "s2", b"x", ((INJECTED_HEADER, "a"),))
        second = target.publish(TOPIC, "s2", b"x", ((INJECTED_HEADER, "b"),))
        records = {(r.partition, r.offset): r for r in target.snapshot().topics[TOPIC]}
    finally:
        target.stop()
    assert (first.topic, first.partition) == (second.topic, second.partition) and second.offset == first.offset + 1
    assert records[(first.partition, first.offset)].headers == ((INJECTED_HEADER, "a"),)
    assert records[(second.partition, second.offset)].headers == ((INJECTED_HEADER, "b"),)


def test_the_regression_scenario_passes_on_the_reference_and_its_copy_is_on_a_lower_partition() -> None:
    scenario = load_scenario(SCENARIOS / "injected-copy-lower-partition.yaml")
    result = Runner(EmbeddedTarget(), (), RunOptions(), checks=select()).run_scenario(scenario)
    assert result.status == Status.PASSED, [f.message for f in result.failures]
    # The scenario is meaningful only while the copy's partition is listed before the original's.
    partitions = len(bootstrap().bus.end_offsets(TOPIC))
    assert partition_for_key("s2", partitions) < partition_for_key("s1", partitions)


def test_the_contract_check_validates_a_record_new_on_a_lower_partition() -> None:
    """Records are listed partition by partition: one new on partition 0 comes before those already
    validated on partition 1, and must be validated all the same (not skipped by an index)."""
    from kcverify.checks.contract import ContractCheck

    valid = [r for r in _reference_confirmations() if r.partition > 0]
    assert valid, "the reference put no confirmation on a partition above 0"
    evidence = _evidence({TOPIC: valid[:1]}, [])
    check = ContractCheck(evidence)
    check.after_step(1)
    assert not check.failures and check.metrics["events"] == 1
    evidence.snapshots.append((2, Snapshot(at=1.0, topics={TOPIC: [_record(0, 0, b"{not json", 1.0), valid[0]]})))
    check.after_step(2)
    assert check.metrics["events"] == 2
    [failure] = check.failures
    assert failure.step == 2 and f"{TOPIC}[0]@0 is not JSON" in failure.message


def _reference_confirmations() -> list[BusRecord]:
    """Genuine PURCHASE_CONFIRMED records of the reference, for students on several partitions."""
    target = EmbeddedTarget()
    target.start(seed=0)
    try:
        for n in range(1, 4):
            _confirm(target, f"s{n}")
        target.settle(None)
        return target.snapshot().topics[TOPIC]
    finally:
        target.stop()


def _confirm(target: EmbeddedTarget, student: str) -> None:
    import json

    body = {"studentId": student, "courseId": "c1", "amountCents": 4900, "currency": "EUR",
            "metadata": {"startDate": "2026-02-02", "classTime": "18:30", "classTypeId": "group-small",
                         "scheduleType": "weekly", "sessionCount": 10, "timezone": "Europe/Berlin",
                         "classTypeTitle": "Small group"}}
    created = target.http("payment-service", "POST", "/api/v1/payments", body=json.dumps(body).encode(),
                          headers={"Content-Type": "application/json"})
    payment_id = created.json()["id"]
    raw = json.dumps({"status": "succeeded", "providerPaymentId": f"pi_{student}"}).encode()
    reply = target.http("payment-service", "POST", f"/api/v1/payments/{payment_id}/confirm", body=raw,
                        headers={"Content-Type": "application/json", "X-Signature": target.sign(payment_id, raw)})
    assert reply.status == 200
