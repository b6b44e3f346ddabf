"""A user's system is judged by what its profile says it carries: a canonical envelope field or header
the system does not carry at all (its profile maps no such field) is noted, not failed; one it does carry
that is missing or wrong still fails. The spec's conventions (the reference) carry everything."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache
from pathlib import Path

import pytest

from kcverify.checks.contract import ContractCheck
from kcverify.checks.idempotency import IdempotencyCheck
from kcverify.checks.records import RecordsCheck
from kcverify.evidence.evidence import Evidence, Exchange
from kcverify.spec import names
from kcverify.spec.policy import SPEC_CONVENTIONS, Conventions
from kcverify.targets.base import BusRecord, HttpReply, Snapshot, TargetInfo
from kcverify.targets.external.conventions import conventions_of
from kcverify.targets.external.profile import load_profile
from tests.unit.test_injected_records import _reference_confirmations

ROOT = Path(__file__).resolve().parents[2]
TOPIC = names.TOPIC_CONFIRMED
# What a system like tests/othersystem carries: no correlationId, idempotencyKey, occurredAt, version,
# source, and no headers.
LEAN = replace(SPEC_CONVENTIONS,
               carried_fields=((TOPIC, frozenset({"eventId", "type", "paymentId", "studentId", "courseId",
                                                  "amountCents", "currency", "metadata"})),),
               carried_headers=((TOPIC, frozenset()),))


@cache
def _genuine() -> BusRecord:
    return _reference_confirmations()[0]


def _without(*fields: str, payload: tuple[str, ...] = (), headers: bool = True) -> BusRecord:
    record = _genuine()
    event = json.loads(record.value)
    for name in fields:
        event.pop(name)
    for name in payload:
        event["payload"].pop(name)
    return replace(record, value=json.dumps(event).encode(), headers=record.headers if headers else ())


def _run(check_class: type, record: BusRecord, conventions: Conventions) -> tuple[list[str], list[str]]:
    evidence = Evidence(TargetInfo("t", frozenset(), None), None, conventions=conventions)
    evidence.snapshots.append((1, Snapshot(at=0.0, topics={TOPIC: [record]})))
    check = check_class(evidence)
    check.after_step(1)
    check.finish()
    return [f.message for f in check.failures], check.notes


def test_the_spec_conventions_carry_everything_and_a_profile_narrows_one_topic() -> None:
    assert SPEC_CONVENTIONS.carries(TOPIC, "correlationId") and SPEC_CONVENTIONS.carries_header(TOPIC, "eventId")
    assert not LEAN.carries(TOPIC, "correlationId") and LEAN.carries(TOPIC, "paymentId")
    assert not LEAN.carries_header(TOPIC, "eventId")
    assert LEAN.carries(names.TOPIC_CREATED, "correlationId")  # a topic not listed: everything


def test_an_undeclared_field_missing_is_noted_not_failed() -> None:
    record = _without("correlationId", "occurredAt")
    failures, notes = _run(ContractCheck, record, LEAN)
    assert failures == []
    assert any(f"{TOPIC}: correlationId, occurredAt not carried by this system (profile maps no such field)" in n
               for n in notes), notes


def test_the_same_record_fails_under_the_spec() -> None:
    failures, _ = _run(ContractCheck, _without("correlationId", "occurredAt"), SPEC_CONVENTIONS)
    assert len(failures) == 1 and "'correlationId' is a required property" in failures[0]
    assert "'occurredAt' is a required property" in failures[0]


def test_a_declared_field_missing_still_fails() -> None:
    failures, notes = _run(ContractCheck, _without("correlationId", payload=("amountCents",)), LEAN)
    assert len(failures) == 1 and "$.payload.amountCents: 'amountCents' is a required property" in failures[0]
    assert "correlationId" not in failures[0]
    assert any("correlationId not carried" in n for n in notes), notes


def test_headers_not_carried_are_noted_and_carried_ones_still_required() -> None:
    record = _without(headers=False)
    failures, notes = _run(RecordsCheck, record, LEAN)
    assert failures == []
    assert any("header(s) correlationId, eventId, idempotencyKey, type not carried by this system" in n
               for n in notes), notes
    some = replace(LEAN, carried_headers=((TOPIC, frozenset({"eventId"})),))
    failures, _ = _run(RecordsCheck, record, some)
    assert len(failures) == 1 and "required header(s) eventId missing" in failures[0], failures
    failures, _ = _run(RecordsCheck, record, SPEC_CONVENTIONS)
    assert len(failures) == 1 and "eventId, type, correlationId, idempotencyKey missing" in failures[0], failures


def test_idempotency_keys_not_carried_are_said_not_judged() -> None:
    record = _without("idempotencyKey")
    failures, notes = _run(IdempotencyCheck, record, LEAN)
    assert failures == []
    assert any(f"{TOPIC}: idempotencyKey not carried by this system" in n for n in notes), notes
    failures, _ = _run(IdempotencyCheck, record, SPEC_CONVENTIONS)
    assert any("idempotency key 'None' should be" in f for f in failures), failures


@pytest.mark.parametrize(("profile", "carried"), [
    ("profiles/examples/production-shaped.yaml", False),
    ("profiles/reference.yaml", True),
])
def test_a_profiles_fields_and_headers_are_what_it_carries(profile: str, carried: bool) -> None:
    environ = {k: "x" for k in ("OTHERSYS_DSN", "OTHERSYS_JWT_SECRET", "OTHERSYS_WEBHOOK_SECRET",
                                "KCVERIFY_WEBHOOK_SECRET", "KCVERIFY_AUTH_SECRET")}
    conventions = conventions_of(load_profile(ROOT / profile, environ=environ))
    for topic in (names.TOPIC_CONFIRMED, names.TOPIC_CREATED):
        assert conventions.carries(topic, "paymentId") and conventions.carries(topic, "eventId")
        assert conventions.carries(topic, "correlationId") is carried
        assert all(conventions.carries_header(topic, h) is carried for h in names.EVENT_HEADERS)
    assert conventions.carries(names.TOPIC_DLQ, "reason")


def test_a_topics_values_translate_both_ways_and_leave_others_as_they_are() -> None:
    from kcverify.targets.external.envelope import TopicMap

    topic = TopicMap("confirmed", "payments.confirmed",
                     {"eventId": "value.eventId", "type": "value.eventType", "paymentId": "value.data.paymentId"},
                     None, {"type": {"payment.confirmed": names.EVENT_CONFIRMED}})
    assert topic.flat({"eventId": "e1", "eventType": "payment.confirmed", "data": {"paymentId": "p"}}, None, ()) \
        == {"eventId": "e1", "type": names.EVENT_CONFIRMED, "paymentId": "p"}
    assert topic.flat({"eventType": "other"}, None, ())["type"] == "other"
    canonical = {"eventId": "e1", "type": names.EVENT_CONFIRMED, "payload": {"paymentId": "p"}}
    _, value, _ = topic.system(None, json.dumps(canonical).encode(), ())
    assert json.loads(value) == {"eventId": "e1", "eventType": "payment.confirmed", "data": {"paymentId": "p"}}


def _view_exchange(purchase: dict[str, object]) -> Exchange:
    body = {"studentId": "s1", "generatedAt": "2026-01-01T00:00:00Z", "purchases": [purchase]}
    reply = HttpReply(200, {"content-type": "application/json", "age": "0",
                            "cache-status": "student-service; fwd=miss"}, json.dumps(body).encode())
    return Exchange(1, "read", "student-service", "GET", "/api/v1/students/s1/learning", b"", 0.0, 0.1, reply, "s1")


def _judge_answer(exchange: Exchange, conventions: Conventions) -> tuple[list[str], list[str]]:
    evidence = Evidence(TargetInfo("t", frozenset(), None), None, conventions=conventions)
    evidence.exchanges.append(exchange)
    evidence.snapshots.append((1, Snapshot(at=0.0)))
    check = ContractCheck(evidence)
    check.after_step(1)
    check.finish()
    return [f.message for f in check.failures], check.notes


def test_a_field_a_systems_http_answers_do_not_carry_is_noted_and_a_carried_one_still_fails() -> None:
    purchase = {"purchaseId": "00000000-0000-4000-8000-000000000001", "studentId": "s1", "courseId": "c1",
                "purchaseTier": 10, "isActive": True,
                "metadata": {"startDate": "2026-01-05", "classTime": "18:00", "classTypeId": "t1",
                             "scheduleType": "weekly", "sessionCount": 10},
                "createdAt": "2026-01-01T00:00:00Z"}  # no paymentId, no metadataSource
    lean = replace(SPEC_CONVENTIONS, carried_fields=(
        (names.HTTP_LEARNING_PURCHASE, frozenset(purchase)),
        (names.HTTP_LEARNING_VIEW, frozenset({"studentId", "generatedAt", "purchases"}))))
    failures, notes = _judge_answer(_view_exchange(purchase), lean)
    assert failures == [], failures
    assert any(f"{names.HTTP_LEARNING_PURCHASE}: metadataSource, paymentId not carried" in n for n in notes), notes
    # the spec's conventions (the reference) carry both: their absence is a contract failure
    failures, _ = _judge_answer(_view_exchange(purchase), SPEC_CONVENTIONS)
    assert any("'paymentId' is a required property" in f for f in failures), failures
    # a field the profile does map must be there
    failures, _ = _judge_answer(_view_exchange({k: v for k, v in purchase.items() if k != "courseId"}), lean)
    assert any("'courseId' is a required property" in f for f in failures), failures


def test_a_profile_that_reshapes_answers_carries_exactly_what_it_maps() -> None:
    environ = {k: "x" for k in ("OTHERSYS_DSN", "OTHERSYS_JWT_SECRET", "OTHERSYS_WEBHOOK_SECRET")}
    profile = load_profile(ROOT / "profiles/examples/production-shaped.yaml", environ=environ)
    conventions = conventions_of(profile)
    mapped = set(profile.operation("create_payment")["fields"])  # type: ignore[index]
    assert all(conventions.carries(names.HTTP_PAYMENT, f) for f in mapped)
    assert not conventions.carries(names.HTTP_PAYMENT, "refundedAt")  # mapped by no operation
    assert conventions.carries(names.HTTP_LEARNING_PURCHASE, "paymentId")
    # the reference's profile passes payments on as they come: canonical, everything carried
    reference = conventions_of(load_profile(ROOT / "profiles/reference.yaml", environ={
        k: "x" for k in ("KCVERIFY_WEBHOOK_SECRET", "KCVERIFY_AUTH_SECRET")}))
    assert reference.carries(names.HTTP_PAYMENT, "refundedAt")
    assert reference.carries(names.HTTP_LEARNING_VIEW, "generatedAt")


def test_cache_headers_a_profile_says_its_answers_lack_are_noted_not_failed() -> None:
    purchase = {"purchaseId": "00000000-0000-4000-8000-000000000001", "studentId": "s1", "courseId": "c1",
                "paymentId": "00000000-0000-4000-8000-000000000002", "purchaseTier": 10, "isActive": True,
                "metadataSource": "payment", "createdAt": "2026-01-01T00:00:00Z",
                "metadata": {"startDate": "2026-01-05", "classTime": "18:00", "classTypeId": "t1",
                             "scheduleType": "weekly", "sessionCount": 10}}
    exchange = _view_exchange(purchase)
    bare = replace(exchange, reply=replace(exchange.reply, headers={"content-type": "application/json"}))
    failures, _ = _judge_answer(bare, SPEC_CONVENTIONS)
    assert any("header Age: required response header is missing" in f for f in failures), failures
    failures, notes = _judge_answer(bare, replace(SPEC_CONVENTIONS, cache_headers=False))
    assert failures == [], failures
    assert any("header Age, header Cache-Status not carried" in n for n in notes), notes
