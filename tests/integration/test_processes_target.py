"""`kcverify run --target processes`: every scenario of scenarios/ replayed against the reference running as
separate processes on real PostgreSQL, Kafka and Redis, with the same checks as on the embedded target.

Runs on the session's shared stack (tests/integration/conftest.py). At most two scenarios may be
skipped, each with the capability it needs, and never one about freshness, idempotency or crashes.
Also: a worker stopped with SIGTERM while it handles an event finishes that event, commits its offset
and exits 0; a payment service that dies at a crash point inside a request gives no answer and is back
for the next one."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from kcverify.checks import select
from kcverify.core.status import Status
from kcverify.engine.runner import Runner, RunOptions
from kcverify.reference import domain
from kcverify.scenario.loader import load_scenarios
from kcverify.targets.processes import ProcessesTarget

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
NEVER_SKIPPED_TAGS = {"freshness", "idempotency", "crash"}
METADATA = {"startDate": "2026-05-04", "classTime": "19:15", "classTypeId": "group-small", "scheduleType": "weekly",
            "sessionCount": 12}


@pytest.fixture(scope="module")
def state_dir(stack_dir: Path) -> Path:
    """The session's shared stack (tests/integration/conftest.py)."""
    return stack_dir


@pytest.fixture
def target(state_dir: Path) -> Iterator[ProcessesTarget]:
    with ProcessesTarget.from_state(state_dir) as target:
        yield target


def test_every_scenario_passes_on_the_stack(target: ProcessesTarget) -> None:
    scenarios = load_scenarios([SCENARIOS])
    started = time.monotonic()
    target.start(seed=0)  # the component processes, timed apart from the run
    processes_up = time.monotonic() - started
    run = Runner(target, options=RunOptions(target_name="processes"), checks=select()).run(scenarios)
    print(f"\ncomponent processes up: {processes_up:.1f} s; {len(scenarios)} scenarios on the stack: "
          f"{run.duration:.1f} s")

    by_name = {s.name: s for s in scenarios}
    problems = [f"{r.name}: {r.status.value} {r.reason}".strip() + "".join(
        f"\n    {f.check} {','.join(f.rules)} step {f.step}: {f.message}" for c in r.checks for f in c.failures)
        + "".join(f"\n    step {s.index} {s.title}: {f.message}" for s in r.steps for f in s.failures)
        for r in run.scenarios if r.status not in (Status.PASSED, Status.SKIPPED)]
    assert not problems, "\n".join(problems)

    skipped = [r for r in run.scenarios if r.status == Status.SKIPPED]
    # the one capability the target lacks is the manual clock: exactly the scenarios that move it are skipped
    clocked = {s.name for s in scenarios if "control_clock" in s.capabilities_needed()}
    assert {r.name for r in skipped} == clocked, ([r.name for r in skipped], sorted(clocked))
    for result in skipped:
        assert result.reason.startswith("needs "), (result.name, result.reason)
        assert not NEVER_SKIPPED_TAGS & set(by_name[result.name].tags), (result.name, result.reason)
        print(f"skipped on the stack: {result.name} ({result.reason})")

    windows: dict[str, float] = {}
    for result in run.scenarios:
        for check in result.checks:
            if check.name == "freshness" and check.status == Status.PASSED:
                assert "bound: 1000 ms" in check.summary, check.summary
                windows.update({f"{result.name}/{k}": v for k, v in check.metrics.get("windows_ms", {}).items()})
    assert windows, "the freshness check measured no staleness window"
    assert all(isinstance(ms, float | int) and ms >= 0 for ms in windows.values()), windows
    print(f"freshness windows: {len(windows)} measured, {min(windows.values()):.0f}-{max(windows.values()):.0f} ms")


def test_worker_sigterm_mid_event_finishes_it_commits_and_exits_0(target: ProcessesTarget) -> None:
    target.start(seed=0)
    student = target.student_id("s1")
    payment_id = _buy(target, student)
    target.step_component("payment-relay", 1)  # PURCHASE_CONFIRMED is on the topic; the worker is held
    assert target.process("worker-2").terminate() == 0  # the other member leaves: this one owns every partition
    worker = target.process("worker")
    dsn = target.stack_settings["courses_dsn"]
    with psycopg.connect(dsn) as blocker, psycopg.connect(dsn, autocommit=True) as observer:
        # The worker's INSERT of the purchase will wait on this lock: SIGTERM lands mid-event, for sure.
        blocker.execute("LOCK TABLE student_course_purchases IN SHARE MODE")
        worker.control("POST", "/resume", {})
        _wait(lambda: observer.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query ILIKE '%student_course_purchases%' AND pid <> pg_backend_pid()").fetchone() != (0,),
            "the worker to block inside its purchase transaction")
        assert worker.popen is not None
        worker.popen.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):  # it does not leave while the event is open
            worker.popen.wait(0.5)
        blocker.rollback()  # releases the lock
        assert worker.popen.wait(30) == 0
    snapshot = target.snapshot()
    assert [p["paymentId"] for p in snapshot.purchases] == [payment_id]
    record = next(r for r in snapshot.topics[domain.TOPIC_CONFIRMED] if payment_id.encode() in r.value)
    committed = snapshot.committed[f"{domain.WORKER_GROUP}/{domain.TOPIC_CONFIRMED}"][record.partition]
    assert committed is not None and committed > record.offset
    events = [t["event"] for t in snapshot.traces if t["component"] == "purchase-worker"]
    last_stop = len(events) - 1 - events[::-1].index("stopped")  # this worker's (worker-2 stopped first)
    assert events.index("offset_committed") < last_stop, events
    target.restart("purchase-worker")
    assert target.settle(None), target.last_settle_pending


def test_payment_service_crash_inside_confirm_answers_nothing_and_comes_back(target: ProcessesTarget) -> None:
    target.start(seed=0)
    student = target.student_id("s1")
    target.arm_crash("payment.after_commit")
    payment_id = _buy(target, student, expect_confirm=None)
    assert target.process("payment").exit_status() == 137  # os._exit at the point, as SIGKILL would
    snapshot = target.snapshot()
    assert [p["status"] for p in snapshot.payments] == ["succeeded"]  # committed before the crash
    again = target.http("payment-service", "GET", f"/api/v1/payments/{payment_id}")
    assert again.status == 200 and again.json()["status"] == "succeeded"
    assert target.settle(None), target.last_settle_pending
    assert [p["paymentId"] for p in target.snapshot().purchases] == [payment_id]


def _buy(target: ProcessesTarget, student: str, expect_confirm: int | None = 200) -> str:
    import json

    body = json.dumps({"studentId": student, "courseId": "c1", "amountCents": 4900, "currency": "EUR",
                       "metadata": METADATA}).encode()
    created = target.http("payment-service", "POST", "/api/v1/payments", body=body,
                          headers={"Content-Type": "application/json"})
    assert created.status == 201, created.body
    payment_id: str = created.json()["id"]
    confirm = json.dumps({"status": "succeeded", "providerPaymentId": "pi_1"}).encode()
    reply = target.http("payment-service", "POST", f"/api/v1/payments/{payment_id}/confirm", body=confirm,
                        headers={"Content-Type": "application/json", "X-Signature": target.sign(payment_id, confirm)})
    assert reply.status == expect_confirm, (reply.status, reply.error, reply.body)
    return payment_id


def _wait(condition: object, what: str, timeout: float = 20.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
