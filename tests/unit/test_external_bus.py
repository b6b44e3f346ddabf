"""The external target's Kafka mapping and conventions, without a broker: a production-shaped envelope
(`{eventId, eventType, timestamp, data, _metadata}`, keyed by payment id, the idempotency key in a header,
a `dead-letter-queue` topic of `{originalEvent, originalOffset, attempts}`) translated to the canonical
records the checks judge and back, the profile errors of a mapping that cannot be written, and the
conventions a profile declares."""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from kcverify import contracts
from kcverify.core.errors import InputError
from kcverify.evidence.evidence import decode
from kcverify.spec import names
from kcverify.spec.policy import SPEC_CONVENTIONS
from kcverify.targets.base import BusRecord
from kcverify.targets.external.bus import Bus, group_offsets
from kcverify.targets.external.conventions import conventions_of
from kcverify.targets.external.envelope import plain_path, topic_maps
from kcverify.targets.external.profile import load_profile

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION = """\
profile: 1
name: production shape
http:
  services:
    api: {base_url: "http://127.0.0.1:1"}
  operations:
    create_payment: {service: api, method: POST, path: /payments}
    confirm: {service: api, method: POST, path: "/payments/{paymentId}/confirm"}
    learning_view: {service: api, method: GET, path: "/students/{studentId}/courses"}
kafka:
  bootstrap: "127.0.0.1:1"
  topics:
    confirmed:
      name: payments.confirmed
      key: "{paymentId}"
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
      name: purchases.created
      key: "{studentId}"
      fields:
        eventId: value.eventId
        type: value.eventType
        studentId: value.data.studentId
        paymentId: value.data.paymentId
    dead_letter:
      name: dead-letter-queue
      fields:
        originalEvent: value.originalEvent
        offset: value.originalOffset
        attempts: value.attempts
        reason: value.reason
  groups:
    worker: payments-worker
    invalidator: cache-invalidator
conventions:
  retry_attempts: 5
  retry_spacing: [0.5, 1, 2]
  ttl: 60
  tiers: {"8": 1, "12": 2}
  cache_status_name: edge
"""

METADATA = {"startDate": "2026-02-02", "classTime": "18:30", "classTypeId": "group", "scheduleType": "weekly",
            "sessionCount": 8}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(text)
    return path


def system_confirmation(payment: str, student: str) -> dict[str, Any]:
    return {"eventId": str(uuid.uuid4()), "eventType": names.EVENT_CONFIRMED, "timestamp": "2026-01-05T10:00:00Z",
            "data": {"paymentId": payment, "studentId": student, "courseId": "c1", "amountCents": 4900,
                     "currency": "EUR", "metadata": METADATA},
            "_metadata": {"version": 1, "correlationId": payment, "source": "payments"}}


def raw(topic: str, offset: int, value: Any, key: str | None, headers: tuple[tuple[str, str], ...] = (),
        partition: int = 0) -> BusRecord:
    data = value if isinstance(value, bytes) else json.dumps(value).encode()
    return BusRecord(topic, partition, offset, key, data, headers, 1.0)


@pytest.fixture
def profile(tmp_path: Path) -> Any:
    return load_profile(write(tmp_path, PRODUCTION), {})


def test_a_production_record_becomes_a_canonical_one_the_contract_accepts(profile: Any) -> None:
    payment, student = str(uuid.uuid4()), "x1-1-s1"
    value = system_confirmation(payment, student)
    record = raw("payments.confirmed", 7, value, payment, (("idempotency-key", names.confirmed_key(payment)),
                                                           ("trace", "abc")))
    canonical = topic_maps(profile)["confirmed"].canonical(record)
    assert canonical.topic == names.TOPIC_CONFIRMED and (canonical.partition, canonical.offset) == (0, 7)
    event = decode(canonical)
    assert event is not None
    assert contracts.validate(contracts.EVENT_SCHEMAS[names.TOPIC_CONFIRMED], event) == []
    assert event["type"] == names.EVENT_CONFIRMED and event["eventId"] == value["eventId"]
    assert event["correlationId"] == payment and event["idempotencyKey"] == names.confirmed_key(payment)
    assert event["payload"]["metadata"] == METADATA and event["payload"]["studentId"] == student
    # keyed by payment id as the profile declares: the canonical key is the student's
    assert canonical.key == student
    # the header a field reads carries the canonical name; the others stay
    assert dict(canonical.headers) == {"idempotencyKey": names.confirmed_key(payment), "trace": "abc"}


def test_a_key_other_than_the_declared_one_stays_what_it_was(profile: Any) -> None:
    payment = str(uuid.uuid4())
    record = raw("payments.confirmed", 0, system_confirmation(payment, "x1-1-s1"), "x1-1-s1")
    assert topic_maps(profile)["confirmed"].canonical(record).key == "x1-1-s1"  # the records check sees it
    wrong = raw("payments.confirmed", 0, system_confirmation(payment, "x1-1-s1"), "someone-else")
    assert topic_maps(profile)["confirmed"].canonical(wrong).key == "someone-else"


@pytest.mark.parametrize("value", [b"\xff\xfenot json", b"[1, 2]", b"42"])
def test_a_value_that_is_not_an_object_stays_poison(profile: Any, value: bytes) -> None:
    canonical = topic_maps(profile)["confirmed"].canonical(raw("payments.confirmed", 3, value, "k"))
    assert canonical.value == value and decode(canonical) is None and canonical.key == "k"


def test_a_canonical_event_is_written_in_the_systems_envelope_and_reads_back_the_same(profile: Any) -> None:
    confirmed = topic_maps(profile)["confirmed"]
    payment, student = str(uuid.uuid4()), "x1-1-s2"
    original = confirmed.canonical(raw("payments.confirmed", 0, system_confirmation(payment, student), payment,
                                       (("idempotency-key", names.confirmed_key(payment)),)))
    key, value, headers = confirmed.system(student, original.value, (("kcverify-injected", "step-1-copy-1"),))
    assert key == payment  # the topic's key template
    system = json.loads(value)
    assert system["data"]["paymentId"] == payment and system["_metadata"]["correlationId"] == payment
    assert system["eventType"] == names.EVENT_CONFIRMED and "payload" not in system
    assert ("idempotency-key", names.confirmed_key(payment)) in headers
    assert ("kcverify-injected", "step-1-copy-1") in headers
    back = confirmed.canonical(raw("payments.confirmed", 1, value, key, headers))
    assert json.loads(back.value) == json.loads(original.value) and back.key == student


def test_raw_bytes_go_out_as_given(profile: Any) -> None:
    confirmed = topic_maps(profile)["confirmed"]
    assert confirmed.system("x1-1-s1", b"{not json", ()) == ("x1-1-s1", b"{not json", ())


def test_a_dead_letter_names_its_original_as_the_checks_expect(profile: Any) -> None:
    bus = Bus("127.0.0.1:1", topic_maps(profile), {"worker": "payments-worker"})
    try:
        payment, student = str(uuid.uuid4()), "x1-1-s3"
        value = system_confirmation(payment, student)
        confirmed = bus.translate(raw("payments.confirmed", 4, value, payment, partition=2))
        letter = bus.translate(raw("dead-letter-queue", 0, {"originalEvent": value, "originalOffset": 4,
                                                            "attempts": 3, "reason": "retries_exhausted"}, payment))
        assert letter.topic == names.TOPIC_DLQ
        canonical = decode(letter)
        assert canonical is not None
        # what the delivery check compares: the letter carries the canonical record's value, and where it was
        assert canonical["originalEvent"] == json.loads(confirmed.value)
        assert (canonical["originalTopic"], canonical["partition"], canonical["offset"]) == \
               (names.TOPIC_CONFIRMED, 2, 4)
        assert canonical["attempts"] == 3 and canonical["reason"] == "retries_exhausted"
        # a poison original is carried as its text
        poison = bus.translate(raw("payments.confirmed", 5, b"\x00garbage", student, partition=2))
        dead = decode(bus.translate(raw("dead-letter-queue", 1, {"originalEvent": "\x00garbage",
                                                                 "originalOffset": 5, "attempts": 1}, student)))
        assert dead is not None and dead["originalEvent"] == poison.value.decode() and dead["partition"] == 2
    finally:
        bus.close()


def test_a_scenario_sees_its_own_records_and_their_dead_letters_only(profile: Any) -> None:
    bus = Bus("127.0.0.1:1", topic_maps(profile), {})
    try:
        mine, other = str(uuid.uuid4()), str(uuid.uuid4())
        for offset, (payment, student) in enumerate(((mine, "x1-2-s1"), (other, "x1-1-s1"))):
            value = system_confirmation(payment, student)
            record = bus.translate(raw("payments.confirmed", offset, value, payment))
            bus._canonical[names.TOPIC_CONFIRMED].append(record)
            letter = bus.translate(raw("dead-letter-queue", offset, {"originalEvent": value,
                                                                    "originalOffset": offset}, payment))
            bus._canonical[names.TOPIC_DLQ].append(letter)
        poison = bus.translate(raw("payments.confirmed", 2, b"not json", "x1-2-s1"))
        bus._canonical[names.TOPIC_CONFIRMED].append(poison)
        seen = bus.records("x1-2-")
        assert [r.offset for r in seen[names.TOPIC_CONFIRMED]] == [0, 2]
        assert [r.offset for r in seen[names.TOPIC_DLQ]] == [0]
    finally:
        bus.close()


def test_a_field_that_cannot_be_written_is_refused_where_it_is(tmp_path: Path) -> None:
    path = write(tmp_path, PRODUCTION.replace("paymentId: value.data.paymentId\n        studentId",
                                              "paymentId: value.data.paymentId || key\n        studentId"))
    with pytest.raises(InputError) as raised:
        load_profile(path, {})
    text = raised.value.render()
    assert text.startswith(f"{path}:24:20: ")
    assert "paymentId" in text and "cannot be written" in text


def test_a_field_only_read_may_be_any_expression(tmp_path: Path) -> None:
    path = write(tmp_path, PRODUCTION.replace("paymentId: value.data.paymentId\n    dead_letter",
                                              "paymentId: value.data.paymentId || key\n    dead_letter"))
    assert "read_bus" in load_profile(path, {}).capabilities


def test_plain_paths() -> None:
    assert plain_path('headers."idempotency-key"') is not None
    assert plain_path("value.a.b") is not None and plain_path("key") is not None
    assert plain_path("`1`") is not None
    for expression in ("value.a[0]", "length(value)", "key.a", "headers", "value", "other.a", "value.a || key"):
        assert plain_path(expression) is None, expression


def test_conventions_come_from_the_profile(profile: Any) -> None:
    conventions = conventions_of(profile)
    assert conventions.retry_attempts == 5 and conventions.retry_backoff == (0.5, 1.0, 2.0)
    assert conventions.backoff(3) == 2.0 and conventions.backoff(9) == 2.0
    assert conventions.cache_ttl == 60.0 and conventions.cache_status_name == "edge"
    assert conventions.tier(12) == 2 and conventions.tier(8) == 1 and conventions.tier(4) == 4


def test_without_conventions_the_rules_apply(tmp_path: Path) -> None:
    text = PRODUCTION[:PRODUCTION.index("conventions:")]
    conventions = conventions_of(load_profile(write(tmp_path, text), {}))
    # the rules' numbers; only what the records carry comes from the kafka section (test_carried_fields.py)
    assert dataclasses.replace(conventions, carried_fields=(), carried_headers=()) == SPEC_CONVENTIONS
    confirmed, created = names.TOPIC_CONFIRMED, names.TOPIC_CREATED
    assert conventions.carries(confirmed, "correlationId") and not conventions.carries(created, "correlationId")
    assert conventions.carries_header(confirmed, "idempotencyKey")  # a field read from a header
    assert not conventions.carries_header(confirmed, "eventId")


def test_a_tier_for_a_non_number_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError) as raised:
        load_profile(write(tmp_path, PRODUCTION.replace('"12": 2', '"twelve": 2')), {})
    assert raised.value.line == PRODUCTION.splitlines().index('  tiers: {"8": 1, "12": 2}') + 1
    assert "twelve" in raised.value.render()


def test_capabilities_follow_the_kafka_section(tmp_path: Path) -> None:
    assert {"read_bus", "produce_events"} <= load_profile(write(tmp_path, PRODUCTION), {}).capabilities
    no_worker = PRODUCTION.replace("    worker: payments-worker\n", "")
    caps = load_profile(write(tmp_path, no_worker), {}).capabilities
    assert "read_bus" not in caps and "produce_events" in caps


def test_committed_offsets_are_keyed_by_the_canonical_group_and_topic(profile: Any,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    bus = Bus("127.0.0.1:1", topic_maps(profile), {"worker": "payments-worker", "invalidator": "cache-invalidator"})
    asked: list[tuple[str, str]] = []

    def committed(group: str, topic: str) -> dict[int, int | None]:
        asked.append((group, topic))
        return {0: 3}

    monkeypatch.setattr(bus, "committed", committed)
    try:
        offsets = group_offsets(bus)
    finally:
        bus.close()
    assert asked == [("payments-worker", "payments.confirmed"), ("cache-invalidator", "purchases.created")]
    assert offsets == {names.group_topic(names.WORKER_GROUP, names.TOPIC_CONFIRMED): {0: 3},
                       names.group_topic(names.INVALIDATOR_GROUP, names.TOPIC_CREATED): {0: 3}}


def test_the_reference_profile_maps_every_field_of_its_canonical_envelope() -> None:
    profile = load_profile(ROOT / "profiles" / "reference.yaml", {})
    fields = set(topic_maps(profile)["confirmed"].fields)
    assert fields >= {"eventId", "type", "version", "occurredAt", "correlationId", "idempotencyKey", "source",
                      "paymentId", "studentId", "courseId", "amountCents", "currency", "metadata"}


def test_declared_tiers_are_what_the_metadata_check_judges_the_purchase_row_by() -> None:
    from kcverify.checks import select
    from kcverify.core.status import Status
    from kcverify.engine.runner import Runner, RunOptions
    from kcverify.scenario.loader import load_scenarios
    from kcverify.spec.policy import Conventions
    from kcverify.targets.embedded import EmbeddedTarget

    scenario = load_scenarios([ROOT / "scenarios" / "happy-path.yaml"])
    passed = Runner(EmbeddedTarget(), checks=select(["metadata"])).run(scenario)
    assert passed.status == Status.PASSED
    # the reference stores purchaseTier = sessionCount; a profile declaring other tiers judges that wrong
    tiers = tuple((count, count + 100) for count in range(1, 201))
    failed = Runner(EmbeddedTarget(), options=RunOptions(conventions=Conventions(tiers=tiers)),
                    checks=select(["metadata"])).run(scenario)
    assert failed.status == Status.FAILED
    messages = [f.message for s in failed.scenarios for c in s.checks for f in c.failures]
    assert any("purchaseTier" in m for m in messages), messages


def test_the_target_carries_the_profiles_conventions_for_the_runner(profile: Any) -> None:
    from kcverify.targets.external import ExternalTarget

    target = ExternalTarget(profile)
    try:
        assert target.conventions == conventions_of(profile) and target.conventions.retry_attempts == 5
    finally:
        target.close()


def test_a_dead_letter_of_an_injected_record_is_the_scenarios_whatever_student_it_names(profile: Any) -> None:
    """A record kcverify published may name a foreign student (an event fuzzing case): its dead letter is
    still the scenario's, found by the partition and offset it names, and carries the record as read."""
    bus = Bus("127.0.0.1:1", topic_maps(profile), {})
    try:
        confirmed = topic_maps(profile)["confirmed"]
        payment = str(uuid.uuid4())
        event = json.loads(confirmed.canonical(raw("payments.confirmed", 0, system_confirmation(payment, "x"),
                                                   payment)).value)
        event["payload"]["studentId"] = "elsewhere-s9"
        event["payload"]["metadata"] = {**METADATA, "sessionCount": "ten"}
        published = json.dumps(event).encode()
        key, value, headers = confirmed.system("x1-2-s1", published, ())
        bus.injected.add((names.TOPIC_CONFIRMED, 0, 3))  # as publish() records where it landed
        read = bus.translate(raw("payments.confirmed", 3, value, key, headers))
        bus._canonical[names.TOPIC_CONFIRMED].append(read)
        letter = bus.translate(raw("dead-letter-queue", 0, {"originalEvent": value.decode(), "originalOffset": 3,
                                                            "attempts": 1}, key))
        bus._canonical[names.TOPIC_DLQ].append(letter)
        canonical = decode(letter)
        assert canonical is not None and canonical["originalEvent"] == json.loads(read.value)
        assert [r.offset for r in bus.records("x1-2-")[names.TOPIC_DLQ]] == [0]
    finally:
        bus.close()


def test_a_header_naming_a_value_the_system_words_otherwise_is_translated_too(tmp_path: Path) -> None:
    """`values` translates a field wherever it is read: a `type` header that repeats the system's own event
    name (`payment.confirmed`) is the canonical type once translated, like the value's field."""
    text = PRODUCTION.replace(
        "      fields:\n        eventId: value.eventId\n        type: value.eventType\n        occurredAt",
        "      values:\n        type: {payment.confirmed: PURCHASE_CONFIRMED}\n"
        "      fields:\n        eventId: value.eventId\n        type: value.eventType\n        occurredAt", 1)
    confirmed = topic_maps(load_profile(write(tmp_path, text), {}))["confirmed"]
    payment, student = str(uuid.uuid4()), "x1-1-s1"
    value = {**system_confirmation(payment, student), "eventType": "payment.confirmed"}
    canonical = confirmed.canonical(raw("payments.confirmed", 0, value, payment, (("type", "payment.confirmed"),)))
    event = decode(canonical)
    assert event is not None and event["type"] == names.EVENT_CONFIRMED
    assert dict(canonical.headers)["type"] == names.EVENT_CONFIRMED
