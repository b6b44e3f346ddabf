"""The attacks of tests/unit/test_security.py against the real services: the reference as separate
processes on PostgreSQL, Kafka and Redis (the processes target), which hands each process this run's
own generated secrets through KCVERIFY_WEBHOOK_SECRET / KCVERIFY_AUTH_SECRET. Forged, cross-payment,
stale and replayed confirmations and expired or cross-student tokens are refused with a 4xx and change
nothing (payment row, PURCHASE_CONFIRMED records, purchases); a signature made with the published
development key is refused, one made with the environment's secret accepted; no process prints a
secret; a non-development start without the variables refuses, naming them.

Runs on the session's shared stack (tests/integration/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kcverify.reference import domain
from kcverify.reference.auth import issue_token, sign_callback
from kcverify.reference.settings import AUTH_SECRET_ENV, DEV_AUTH_SECRET, DEV_WEBHOOK_SECRET, WEBHOOK_SECRET_ENV
from kcverify.targets.base import HttpReply
from kcverify.targets.processes import ProcessesTarget
from tests.integration.test_processes_target import METADATA

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

CONFIRM = json.dumps({"status": "succeeded", "providerPaymentId": "pi_sec"}).encode()
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def target(stack_dir: Path) -> Iterator[ProcessesTarget]:
    with ProcessesTarget.from_state(stack_dir) as target:
        target.start(seed=0)
        yield target


def create(target: ProcessesTarget, student: str) -> str:
    body = json.dumps({"studentId": target.student_id(student), "courseId": "c-sec", "amountCents": 4900,
                       "currency": "EUR", "metadata": METADATA}).encode()
    created = target.http("payment-service", "POST", "/api/v1/payments", body=body, headers=JSON)
    assert created.status == 201, created.body
    payment_id: str = created.json()["id"]
    return payment_id


def confirm(target: ProcessesTarget, payment_id: str, signature: str | None, raw: bytes = CONFIRM) -> HttpReply:
    headers = dict(JSON) if signature is None else {**JSON, "X-Signature": signature}
    return target.http("payment-service", "POST", f"/api/v1/payments/{payment_id}/confirm", body=raw, headers=headers)


def state(target: ProcessesTarget, payment_id: str) -> tuple[Any, ...]:
    snapshot = target.snapshot()
    row = next(p for p in snapshot.payments if p["id"] == payment_id)
    events = [r for r in snapshot.topics.get(domain.TOPIC_CONFIRMED, []) if payment_id.encode() in r.value]
    purchases = [p for p in snapshot.purchases if p["paymentId"] == payment_id]
    return row, len(events), len(purchases)


def refused(target: ProcessesTarget, payment_id: str, signature: str | None, status: int = 401) -> None:
    before = state(target, payment_id)
    reply = confirm(target, payment_id, signature)
    assert reply.status == status, (reply.status, reply.body)
    assert reply.headers.get("content-type", "").startswith("application/problem+json")
    assert target.settle(None), target.last_settle_pending
    assert state(target, payment_id) == before


def secrets_of(target: ProcessesTarget) -> tuple[str, str]:
    env = target.process("payment").env
    return env[WEBHOOK_SECRET_ENV], env[AUTH_SECRET_ENV]


def test_the_processes_use_the_environments_secrets_not_the_development_keys(target: ProcessesTarget) -> None:
    webhook, auth = secrets_of(target)
    assert webhook not in (DEV_WEBHOOK_SECRET, "") and auth not in (DEV_AUTH_SECRET, "")
    payment_id = create(target, "dev-key")
    refused(target, payment_id, sign_callback(DEV_WEBHOOK_SECRET, payment_id, CONFIRM, time.time()))
    student = target.student_id("dev-key")
    dev_token = issue_token(DEV_AUTH_SECRET, student, now=time.time())
    assert target.http("student-service", "GET", f"/api/v1/students/{student}/learning",
                       headers={"Authorization": f"Bearer {dev_token}"}).status == 401
    assert confirm(target, payment_id, sign_callback(webhook, payment_id, CONFIRM, time.time())).status == 200
    for process in (target.process(name) for name in ("payment", "student", "worker", "payment-relay")):
        logged = process.log_file.read_text(errors="replace") + process.trace_file.read_text(errors="replace")
        assert webhook not in logged and auth not in logged, process.spec.name


def test_forged_cross_payment_stale_and_replayed_confirmations_change_nothing(target: ProcessesTarget) -> None:
    p1, p2 = create(target, "a1"), create(target, "a2")
    captured = target.sign(p1, CONFIRM)
    assert confirm(target, p1, captured).status == 200
    assert target.settle(None), target.last_settle_pending
    refused(target, p2, None)
    refused(target, p2, sign_callback("not-the-secret", p2, CONFIRM, time.time()))
    refused(target, p2, captured)  # p1's callback replayed on p2
    refused(target, p2, target.sign(p1, CONFIRM))  # a fresh signature made for p1
    refused(target, p2, target.sign(p2, CONFIRM, time.time() - 600))  # stale
    refused(target, p2, target.sign(p2, CONFIRM, time.time() + 600))  # from the future
    # the same callback again within the tolerance: the gateway's retry, a no-op (P4)
    before = state(target, p1)
    again = confirm(target, p1, captured)
    assert again.status == 200 and again.json()["status"] == "succeeded"
    assert target.settle(None), target.last_settle_pending
    assert state(target, p1) == before and before[1:] == (1, 1)
    assert confirm(target, p2, target.sign(p2, CONFIRM)).status == 200  # and p2's own callback works


def test_expired_forged_and_cross_student_tokens_are_refused(target: ProcessesTarget) -> None:
    p1 = create(target, "t1")
    assert confirm(target, p1, target.sign(p1, CONFIRM)).status == 200
    assert target.settle(None), target.last_settle_pending
    _, auth = secrets_of(target)
    student, other = target.student_id("t1"), target.student_id("t2")
    path = f"/api/v1/students/{student}/learning"

    def read(token: str) -> HttpReply:
        return target.http("student-service", "GET", path, headers={"Authorization": f"Bearer {token}"})

    assert read(target.token(student, "student")).status == 200
    expired = issue_token(auth, student, now=time.time() - 7200, ttl=3600)
    assert read(expired).status == 401
    assert read(issue_token("not-the-secret-" + "x" * 32, student, now=time.time())).status == 401
    assert read(target.token(other, "student")).status == 403
    for token, status in ((target.token(student, "student"), 403), (expired, 401)):
        reply = target.http("student-service", "DELETE", f"{path}/cache", headers={"Authorization": f"Bearer {token}"})
        assert reply.status == status, reply.body
        assert reply.headers.get("content-type", "").startswith("application/problem+json")
    view = read(target.token(student, "student")).json()
    assert [p["paymentId"] for p in view["purchases"]] == [p1]


def test_a_component_without_secrets_refuses_to_start_and_names_them(stack_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in (WEBHOOK_SECRET_ENV, AUTH_SECRET_ENV)}
    command = [sys.executable, "-c", "from kcverify.cli.main import main; main()", "serve", "payment",
               "--state-dir", str(stack_dir), "--port", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert WEBHOOK_SECRET_ENV in result.stderr and AUTH_SECRET_ENV in result.stderr
    assert "Traceback" not in result.stderr
    only_auth = {**env, WEBHOOK_SECRET_ENV: "w" * 40}
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=only_auth)
    assert result.returncode == 2 and AUTH_SECRET_ENV in result.stderr and WEBHOOK_SECRET_ENV not in result.stderr
    assert "w" * 40 not in result.stdout + result.stderr
