"""The external target's Kafka and cache against a real broker and a real Redis (the local stack): records
a system writes in its own envelope (`{eventId, eventType, timestamp, data, _metadata}`, keyed by payment
id, the idempotency key in a header) are read back through `snapshot()` as canonical records of the
scenario's namespace, with the end offsets and a group's committed offsets under the canonical names; a
canonical event published through the target lands in the system's shape, as a plain consumer reads it;
`profile check` probes the bootstrap, each topic (a missing one named, exit 2), each group and the cache."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kcverify import contracts, stack
from kcverify.core.admin_calls import collector_paused
from kcverify.evidence.evidence import decode
from kcverify.spec import names
from kcverify.targets.external import ExternalTarget
from kcverify.targets.external.probe import FAILED, OK, probe
from kcverify.targets.external.profile import load_profile
from tests.e2e.test_serve import kcverify_command
from tests.unit.test_external_control import answering_service

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
METADATA = {"startDate": "2026-05-04", "classTime": "19:15", "classTypeId": "group-small", "scheduleType": "weekly",
            "sessionCount": 12}

PROFILE = """\
profile: 1
name: production shape
http:
  services:
    api: {{base_url: "{api}"}}
  operations:
    create_payment: {{service: api, method: POST, path: /payments}}
    confirm: {{service: api, method: POST, path: "/payments/{{paymentId}}/confirm"}}
    learning_view: {{service: api, method: GET, path: "/students/{{studentId}}/courses"}}
kafka:
  bootstrap: "{bootstrap}"
  topics:
    confirmed:
      name: {confirmed}
      key: "{{paymentId}}"
      fields:
        eventId: value.eventId
        type: value.eventType
        occurredAt: value.timestamp
        version: value._metadata.version
        correlationId: value._metadata.correlationId
        source: value._metadata.source
        idempotencyKey: headers."idempotency-key"
        paymentId: value.data.paymentId
        studentId: value.data.studentId
        courseId: value.data.courseId
        amountCents: value.data.amountCents
        currency: value.data.currency
        metadata: value.data.metadata
    created:
      name: {created}
      fields:
        eventId: value.eventId
        type: value.eventType
        studentId: value.data.studentId
    dead_letter:
      name: {dlq}
      fields:
        originalEvent: value.originalEvent
        offset: value.originalOffset
        attempts: value.attempts
        reason: value.reason
  groups:
    worker: {group}
cache:
  url: "{redis}"
  key: "learning:{{studentId}}"
"""


@pytest.fixture(scope="module")
def settings(stack_dir: Path) -> dict[str, Any]:
    """The session's shared stack (tests/integration/conftest.py)."""
    return stack.load_settings(stack_dir)


@pytest.fixture
def system(settings: dict[str, Any], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Fresh topics named as a production system names them, and a profile describing them."""
    suffix = uuid.uuid4().hex[:8]
    topics = {"confirmed": f"payments.confirmed-{suffix}", "created": f"purchases.created-{suffix}",
              "dlq": f"dead-letter-queue-{suffix}"}
    admin = AdminClient({"bootstrap.servers": settings["kafka_bootstrap"]})
    with collector_paused():
        futures = admin.create_topics([NewTopic(topics["confirmed"], num_partitions=2, replication_factor=1),
                                       NewTopic(topics["created"], num_partitions=1, replication_factor=1),
                                       NewTopic(topics["dlq"], num_partitions=1, replication_factor=1)])
        for future in futures.values():
            future.result(30)
    deadline = time.monotonic() + 30
    while True:  # made: wait until every partition has a leader, as a running system's topics have
        listed = admin.list_topics(timeout=10).topics
        if all(t in listed and listed[t].partitions and all(p.leader >= 0 for p in listed[t].partitions.values())
               for t in topics.values()):
            break
        assert time.monotonic() < deadline, "topics made but not ready in 30 s"
        time.sleep(0.2)
    group = f"payments-worker-{suffix}"
    path = tmp_path / "profile.yaml"
    path.write_text(PROFILE.format(bootstrap=settings["kafka_bootstrap"], redis=settings["redis_url"], group=group,
                                   api=answering_service(), **topics))
    yield {"path": path, "group": group, "bootstrap": settings["kafka_bootstrap"],
           "redis": settings["redis_url"], **topics}
    with collector_paused():
        for future in admin.delete_topics(list(topics.values())).values():
            future.result(30)


def confirmation(payment: str, student: str) -> dict[str, Any]:
    return {"eventId": str(uuid.uuid4()), "eventType": names.EVENT_CONFIRMED, "timestamp": "2026-01-05T10:00:00Z",
            "data": {"paymentId": payment, "studentId": student, "courseId": "c1", "amountCents": 4900,
                     "currency": "EUR", "metadata": METADATA},
            "_metadata": {"version": 1, "correlationId": payment, "source": "payments"}}


def produce(bootstrap: str, topic: str, key: str, value: bytes, headers: tuple[tuple[str, str], ...] = (),
            partition: int = 0) -> int:
    producer = Producer({"bootstrap.servers": bootstrap})
    landed: list[int] = []
    producer.produce(topic, value, key, partition=partition, headers=list(headers),
                     on_delivery=lambda err, msg: landed.append(msg.offset()))
    producer.flush(10)
    return landed[0]


def test_system_records_are_read_as_canonical_ones_and_published_ones_land_in_the_systems_shape(
        system: dict[str, Any]) -> None:
    target = ExternalTarget(load_profile(system["path"], {}))
    try:
        assert {"read_bus", "produce_events"} <= target.info.capabilities
        target.start(seed=0)
        bootstrap = system["bootstrap"]
        mine, other = str(uuid.uuid4()), str(uuid.uuid4())
        student = target.student_id("s1")
        value = confirmation(mine, student)
        offset = produce(bootstrap, system["confirmed"], mine, json.dumps(value).encode(),
                         (("idempotency-key", names.confirmed_key(mine)),), partition=1)
        produce(bootstrap, system["confirmed"], other, json.dumps(confirmation(other, "someone-else")).encode(),
                (("idempotency-key", names.confirmed_key(other)),), partition=1)
        poison = produce(bootstrap, system["confirmed"], student, b"{not json", partition=0)
        produce(bootstrap, system["dlq"], mine, json.dumps({"originalEvent": value, "originalOffset": offset,
                                                            "attempts": 3, "reason": "retries_exhausted"}).encode())
        # the system's worker committed past our record on partition 1
        worker = Consumer({"bootstrap.servers": bootstrap, "group.id": system["group"], "enable.auto.commit": False})
        worker.commit(offsets=[TopicPartition(system["confirmed"], 1, offset + 1)], asynchronous=False)
        worker.close()

        snapshot = target.snapshot()
        confirmed = snapshot.topics[names.TOPIC_CONFIRMED]
        assert [(r.partition, r.offset) for r in confirmed] == [(0, poison), (1, offset)]  # not the other's
        record = confirmed[1]
        event = decode(record)
        assert event is not None and record.key == student
        assert contracts.validate(contracts.EVENT_SCHEMAS[names.TOPIC_CONFIRMED], event) == []
        assert event["payload"]["paymentId"] == mine and event["idempotencyKey"] == names.confirmed_key(mine)
        assert ("idempotencyKey", names.confirmed_key(mine)) in record.headers
        assert decode(confirmed[0]) is None and confirmed[0].value == b"{not json"
        [letter] = snapshot.topics[names.TOPIC_DLQ]
        carried = decode(letter)
        assert carried is not None and carried["originalEvent"] == event
        assert (carried["originalTopic"], carried["partition"], carried["offset"]) == \
               (names.TOPIC_CONFIRMED, 1, offset)
        assert snapshot.end_offsets[names.TOPIC_CONFIRMED] == {0: poison + 1, 1: offset + 2}
        worker_key = names.group_topic(names.WORKER_GROUP, names.TOPIC_CONFIRMED)
        assert snapshot.committed[worker_key] == {0: None, 1: offset + 1}

        # a canonical event published through the target
        forged = json.loads(record.value)
        forged["payload"]["courseId"] = "c2"
        forged["eventId"] = str(uuid.uuid4())
        produced = target.publish(names.TOPIC_CONFIRMED, student, json.dumps(forged).encode(),
                                  (("kcverify-injected", "step-1-copy-1"),))
        assert produced.topic == names.TOPIC_CONFIRMED
        reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"plain-{uuid.uuid4().hex}",
                           "enable.auto.commit": False})
        reader.assign([TopicPartition(system["confirmed"], produced.partition, produced.offset)])
        deadline = time.monotonic() + 20
        message = None
        while message is None and time.monotonic() < deadline:
            message = reader.poll(0.5)
        reader.close()
        assert message is not None and message.error() is None
        written = json.loads(message.value())
        assert message.key() == mine.encode()  # the confirmed topic's key template: the payment id
        assert written["data"]["courseId"] == "c2" and written["eventType"] == names.EVENT_CONFIRMED
        assert written["_metadata"] == {"version": 1, "correlationId": mine, "source": "payments"}
        headers = dict((k, v.decode()) for k, v in message.headers())
        assert headers == {"kcverify-injected": "step-1-copy-1", "idempotency-key": names.confirmed_key(mine)}
        # and the next snapshot shows it, canonical again
        again = target.snapshot().topics[names.TOPIC_CONFIRMED]
        injected = next(r for r in again if (r.partition, r.offset) == (produced.partition, produced.offset))
        assert decode(injected) == forged and injected.key == student
    finally:
        target.close()


def test_the_cache_key_of_a_student_is_observed(system: dict[str, Any]) -> None:
    target = ExternalTarget(load_profile(system["path"], {}))
    client = redis.Redis.from_url(system["redis"])
    try:
        target.start(seed=0)
        student = target.student_id("s1")
        assert not target.cache_entry(student).present
        client.set(f"learning:{student}", b"{}", ex=120)
        entry = target.cache_entry(student)
        assert entry.present and entry.ttl is not None and 100 < entry.ttl <= 120
        client.persist(f"learning:{student}")
        forever = target.cache_entry(student)
        assert forever.present and forever.ttl is None  # no expiry: what the freshness check fails (S2)
    finally:
        client.close()
        target.close()


def test_profile_check_probes_kafka_and_the_cache_and_names_a_missing_topic(system: dict[str, Any],
                                                                            tmp_path: Path) -> None:
    results = {r.item: r for r in probe(load_profile(system["path"], {}))}
    assert results["kafka bootstrap"].outcome == OK
    assert results[f"topic confirmed ({system['confirmed']})"].outcome == OK
    assert "2 partition(s)" in results[f"topic confirmed ({system['confirmed']})"].detail
    assert results[f"group worker ({system['group']})"].outcome == OK
    assert results["cache"].outcome == OK and "PING" in results["cache"].detail

    missing = tmp_path / "missing.yaml"
    missing.write_text(system["path"].read_text().replace(f"name: {system['created']}", "name: purchases.made"))
    outcome = {r.item: r for r in probe(load_profile(missing, {}))}["topic created (purchases.made)"]
    assert outcome.outcome == FAILED and "'purchases.made' does not exist" in outcome.detail
    result = subprocess.run([kcverify_command(), "profile", "check", str(missing), "--no-color", "--scenarios",
                             str(ROOT / "scenarios")], capture_output=True, text=True, timeout=120, cwd=ROOT,
                            env={**os.environ, "COLUMNS": "400"})
    assert result.returncode == 2, result.stdout + result.stderr
    # the table has every row (the HTTP services of this profile do not run: the first failure is theirs)
    row = next(line for line in result.stdout.splitlines() if "topic created (purchases.made)" in line)
    assert "failed" in row and "'purchases.made' does not exist" in row
    assert "Traceback" not in result.stderr + result.stdout
    assert "scenario(s) can run with this profile" in result.stdout and "control_components" in result.stdout
