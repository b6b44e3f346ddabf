"""The verifier tells the records a scenario injected from the system's own by what it injected (the
partition and offset the broker acknowledged), never by content or by position in the topic."""

from __future__ import annotations

from pathlib import Path

from kcverify.core.status import Status
from kcverify.engine.evidence import Evidence
from kcverify.engine.runner import Runner, RunOptions
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
    target.start(seed=0, defects=frozenset())
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
    result = Runner(EmbeddedTarget(), (), RunOptions()).run_scenario(scenario)
    assert result.status == Status.PASSED, [f.message for f in result.failures]
    # The scenario is meaningful only while the copy's partition is listed before the original's.
    partitions = len(bootstrap().bus.end_offsets(TOPIC))
    assert partition_for_key("s2", partitions) < partition_for_key("s1", partitions)
