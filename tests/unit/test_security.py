"""Attacks on the reference's two doors, in-process (the embedded reference through its ASGI apps): the
gateway's confirmation callback (P2, P4) and the bearer-token reads (S1, S4). Each attempt is refused
with a 4xx problem and changes nothing: not the payment, not the outbox, not the purchases. The same
attempts against the real services are in tests/integration/test_security_processes.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from kcverify.reference import domain
from kcverify.reference.auth import parse_signature, sign_callback
from kcverify.reference.settings import (
    AUTH_SECRET_ENV,
    DEV_AUTH_SECRET,
    DEV_WEBHOOK_SECRET,
    WEBHOOK_SECRET_ENV,
    MissingSecret,
    Settings,
    secrets_from_environment,
)
from tests.unit.conftest import Flow, make_system

CONFIRM = json.dumps({"status": "succeeded", "providerPaymentId": "pi_sec"}).encode()
PROBLEM = "application/problem+json"


@pytest.fixture
def sec() -> Iterator[Flow]:
    f = Flow(make_system())
    yield f
    f.close()


def post_confirm(flow: Flow, payment_id: str, raw: bytes, signature: str | None) -> Any:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Signature"] = signature
    return flow.payments.post(f"/api/v1/payments/{payment_id}/confirm", content=raw, headers=headers)


def state(flow: Flow, payment_id: str) -> tuple[Any, ...]:
    """What a confirmation could change: the payment row, pending outbox rows, events, purchases."""
    payment = flow.system.payment_store.get_payment(payment_id)
    assert payment is not None
    return (payment.to_json(), len(flow.system.payment_store.pending_outbox(1000)),
            len(flow.topic(domain.TOPIC_CONFIRMED)), len(flow.system.course_store.all_purchases()))


def assert_refused(flow: Flow, payment_id: str, raw: bytes, signature: str | None, status: int = 401) -> None:
    before = state(flow, payment_id)
    response = post_confirm(flow, payment_id, raw, signature)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert state(flow, payment_id) == before
    flow.settle()  # nothing was queued either: the flow grants nothing afterwards
    assert state(flow, payment_id)[1:] == before[1:]


def legacy_body_only(secret: str, raw: bytes) -> str:
    """The old scheme: `sha256=<HMAC of the body>`, valid for every payment (what the banner printed)."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


# --- P2: forged, cross-payment, stale ----------------------------------------------------------------


def test_a_genuine_signature_for_this_payment_now_is_accepted(sec: Flow) -> None:
    payment = sec.create()
    response = post_confirm(sec, payment["id"], CONFIRM, sec.sign(payment["id"], CONFIRM))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"


@pytest.mark.parametrize("forge", [
    pytest.param(lambda f, pid: None, id="missing"),
    pytest.param(lambda f, pid: "", id="empty"),
    pytest.param(lambda f, pid: sign_callback("not-the-secret", pid, CONFIRM, f.system.clock.now()), id="wrong-key"),
    pytest.param(lambda f, pid: legacy_body_only(f.secret, CONFIRM), id="legacy-body-only"),
    pytest.param(lambda f, pid: hmac.new(f.secret.encode(), CONFIRM, hashlib.sha256).hexdigest(), id="bare-digest"),
    pytest.param(lambda f, pid: f.sign(pid, CONFIRM).replace("t=", "t=1"), id="other-t-same-v1"),
    pytest.param(lambda f, pid: f.sign(pid, b'{"status":"succeeded"}'), id="other-body"),
    pytest.param(lambda f, pid: f.sign(pid, CONFIRM) + " ", id="trailing-space"),
    pytest.param(lambda f, pid: f.sign(pid, CONFIRM).replace("v1=", "v0="), id="unknown-scheme"),
])
def test_forged_signatures_are_401_and_change_nothing(sec: Flow, forge: Any) -> None:
    payment = sec.create()
    assert_refused(sec, payment["id"], CONFIRM, forge(sec, payment["id"]))


def test_a_signature_for_another_payment_is_401(sec: Flow) -> None:
    p1, p2 = sec.create(), sec.create("s2")
    assert_refused(sec, p2["id"], CONFIRM, sec.sign(p1["id"], CONFIRM))


def test_a_confirmed_payments_callback_replayed_on_another_payment_is_401(sec: Flow) -> None:
    p1, p2 = sec.create(), sec.create("s2")
    captured = sec.sign(p1["id"], CONFIRM)
    assert post_confirm(sec, p1["id"], CONFIRM, captured).status_code == 200
    sec.settle()
    assert_refused(sec, p2["id"], CONFIRM, captured)
    assert [p["paymentId"] for p in (x.to_json() for x in sec.system.course_store.all_purchases())] == [p1["id"]]


@pytest.mark.parametrize("offset", [-301, 301, -10**6, 10**6])
def test_a_signature_outside_the_tolerance_is_401(sec: Flow, offset: int) -> None:
    payment = sec.create()
    assert_refused(sec, payment["id"], CONFIRM, sec.sign(payment["id"], CONFIRM, sec.system.clock.now() + offset))


@pytest.mark.parametrize("offset", [-300, 300])
def test_a_signature_at_the_edge_of_the_tolerance_is_accepted(sec: Flow, offset: int) -> None:
    payment = sec.create()
    at = math.floor(sec.system.clock.now()) + offset
    assert post_confirm(sec, payment["id"], CONFIRM, sec.sign(payment["id"], CONFIRM, at)).status_code == 200


def test_the_tolerance_is_a_setting() -> None:
    flow = Flow(make_system(signature_tolerance=10.0))
    try:
        p1, p2 = flow.create(), flow.create()
        now = flow.system.clock.now()
        assert_refused(flow, p1["id"], CONFIRM, flow.sign(p1["id"], CONFIRM, now - 11))
        assert post_confirm(flow, p2["id"], CONFIRM, flow.sign(p2["id"], CONFIRM, now - 9)).status_code == 200
    finally:
        flow.close()


# --- P4: a replay of the same callback ---------------------------------------------------------------


def test_a_replay_within_the_tolerance_is_an_idempotent_retry_and_later_a_401(sec: Flow) -> None:
    payment = sec.create()
    captured = sec.sign(payment["id"], CONFIRM)
    first = post_confirm(sec, payment["id"], CONFIRM, captured)
    assert first.status_code == 200
    after_first = state(sec, payment["id"])
    again = post_confirm(sec, payment["id"], CONFIRM, captured)  # the gateway's retry, or someone's replay
    assert again.status_code == 200 and again.json() == first.json()
    assert state(sec, payment["id"]) == after_first  # no second outbox row
    sec.settle()
    assert len(sec.topic(domain.TOPIC_CONFIRMED)) == 1 and len(sec.system.course_store.all_purchases()) == 1
    sec.system.clock.advance(301)  # type: ignore[attr-defined]
    assert_refused(sec, payment["id"], CONFIRM, captured)
    # the gateway's own retry signs afresh, and is the idempotent 200 of P4
    assert post_confirm(sec, payment["id"], CONFIRM, sec.sign(payment["id"], CONFIRM)).status_code == 200


def test_a_replayed_earlier_callback_cannot_move_a_payment_back(sec: Flow) -> None:
    payment = sec.create()
    captured = sec.sign(payment["id"], CONFIRM)
    assert post_confirm(sec, payment["id"], CONFIRM, captured).status_code == 200
    refund = json.dumps({"status": "refunded"}).encode()
    assert post_confirm(sec, payment["id"], refund, sec.sign(payment["id"], refund)).status_code == 200
    sec.settle()
    assert_refused(sec, payment["id"], CONFIRM, captured, status=409)
    assert sec.system.payment_store.get_payment(payment["id"]).status == "refunded"  # type: ignore[union-attr]


def test_the_defect_lets_a_replay_on_another_payment_through() -> None:
    """The attacks above can fail: with `signature-not-bound` a captured callback confirms another
    payment (whose course the worker then grants) and an old signature is accepted."""
    flow = Flow(make_system(defects=frozenset({"signature-not-bound"})))
    try:
        p1, p2, p3 = flow.create(), flow.create("s2"), flow.create("s3")
        captured = flow.sign(p1["id"], CONFIRM)
        assert post_confirm(flow, p1["id"], CONFIRM, captured).status_code == 200
        assert post_confirm(flow, p2["id"], CONFIRM, captured).status_code == 200
        stale = flow.sign(p3["id"], CONFIRM, flow.system.clock.now() - 3600)
        assert post_confirm(flow, p3["id"], CONFIRM, stale).status_code == 200
    finally:
        flow.close()


def test_the_signature_header_grammar() -> None:
    assert parse_signature("t=1767603600,v1=" + "a" * 64) is not None
    assert parse_signature("t=1767603600,v1=" + "A" * 64) is not None
    for bad in (None, "", "t=,v1=" + "a" * 64, "v1=" + "a" * 64 + ",t=1", "t=1,v1=" + "a" * 63,
                "t=1,v1=" + "a" * 64 + "\n", "t=-1,v1=" + "a" * 64, "t=\u0661\u0662,v1=" + "a" * 64,
                "sha256=" + "a" * 64):
        assert parse_signature(bad) is None, bad


# --- S1/S4: tokens -----------------------------------------------------------------------------------


def read(flow: Flow, student: str, token: str) -> Any:
    return flow.students.get(f"/api/v1/students/{student}/learning", headers={"Authorization": f"Bearer {token}"})


def assert_problem(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["status"] == status


def test_issued_tokens_carry_an_expiry_and_expired_ones_are_401(sec: Flow) -> None:
    sec.buy("s1")
    sec.settle()
    token = sec.token("s1")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == sec.system.settings.token_ttl
    assert read(sec, "s1", token).status_code == 200
    sec.system.clock.advance(sec.system.settings.token_ttl)  # type: ignore[attr-defined]
    assert_problem(read(sec, "s1", token), 401)
    assert read(sec, "s1", sec.token("s1")).status_code == 200  # a fresh token works again


@pytest.mark.parametrize("claims", [
    pytest.param({"sub": "s1", "role": "student"}, id="no-exp"),
    pytest.param({"sub": "s1", "role": "student", "exp": "never"}, id="exp-not-a-number"),
    pytest.param({"sub": "s1", "role": "root", "exp": 4102444800}, id="unknown-role"),
    pytest.param({"role": "admin", "exp": 4102444800}, id="no-subject"),
])
def test_tokens_without_valid_claims_are_401(sec: Flow, claims: dict[str, Any]) -> None:
    token = jwt.encode(claims, sec.system.settings.auth_secret, algorithm="HS256")
    assert_problem(read(sec, "s1", token), 401)


def test_forged_tokens_are_401(sec: Flow) -> None:
    now = sec.system.clock.now()
    claims = {"sub": "admin", "role": "admin", "exp": int(now) + 60}
    for token in (jwt.encode(claims, "not-the-secret-" + "x" * 32, algorithm="HS256"),
                  jwt.encode(claims, None, algorithm="none"),
                  sec.token("s1")[:-4] + "AAAA"):
        assert_problem(read(sec, "s1", token), 401)
        response = sec.students.delete("/api/v1/students/s1/learning/cache",
                                       headers={"Authorization": f"Bearer {token}"})
        assert_problem(response, 401)


def test_cross_student_reads_and_student_invalidations_are_403(sec: Flow) -> None:
    sec.buy("s1")
    sec.settle()
    assert_problem(read(sec, "s1", sec.token("s2")), 403)
    response = sec.students.delete("/api/v1/students/s1/learning/cache",
                                   headers={"Authorization": f"Bearer {sec.token('s1')}"})
    assert_problem(response, 403)
    assert read(sec, "s1", sec.token("ops", "admin")).status_code == 200


# --- secrets -----------------------------------------------------------------------------------------


def test_secrets_come_from_the_environment() -> None:
    env = {WEBHOOK_SECRET_ENV: "w" * 40, AUTH_SECRET_ENV: "a" * 40}
    for dev in (False, True):
        settings = secrets_from_environment(Settings(), dev=dev, environ=env)
        assert (settings.webhook_secret, settings.auth_secret) == ("w" * 40, "a" * 40)
        assert not settings.development_keys


@pytest.mark.parametrize(("env", "named"), [
    ({}, [WEBHOOK_SECRET_ENV, AUTH_SECRET_ENV]),
    ({WEBHOOK_SECRET_ENV: "w" * 40}, [AUTH_SECRET_ENV]),
    ({AUTH_SECRET_ENV: "a" * 40}, [WEBHOOK_SECRET_ENV]),
    ({WEBHOOK_SECRET_ENV: DEV_WEBHOOK_SECRET, AUTH_SECRET_ENV: "a" * 40}, [WEBHOOK_SECRET_ENV]),
])
def test_a_non_development_start_without_secrets_is_refused_naming_them(env: dict[str, str],
                                                                         named: list[str]) -> None:
    with pytest.raises(MissingSecret) as refused:
        secrets_from_environment(Settings(), dev=False, environ=env)
    for variable in named:
        assert variable in str(refused.value)
    assert DEV_WEBHOOK_SECRET not in str(refused.value) and DEV_AUTH_SECRET not in str(refused.value)


def test_development_mode_uses_the_development_keys_and_says_so() -> None:
    settings = secrets_from_environment(Settings(), dev=True, environ={})
    assert (settings.webhook_secret, settings.auth_secret) == (DEV_WEBHOOK_SECRET, DEV_AUTH_SECRET)
    assert settings.development_keys
