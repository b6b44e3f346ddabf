"""Purchase worker rules W1-W8 on the embedded system."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from kcverify.reference import domain
from tests.unit.conftest import METADATA, Flow


def _trace(flow: Flow, event: str) -> list[dict[str, Any]]:
    return [r for r in flow.system.tracer.records if r["event"] == event]  # type: ignore[attr-defined]


def _dlq(flow: Flow) -> list[dict[str, Any]]:
    return flow.topic(domain.TOPIC_DLQ)


def test_w1_events_published_before_the_workers_first_start_are_consumed(flow: Flow) -> None:
    flow.system.stop("purchase-worker")
    ids = [flow.buy(student=f"s{i}") for i in range(3)]
    flow.settle()
    assert flow.system.course_store.all_purchases() == []
    flow.system.restart("purchase-worker")
    flow.settle()
    assert {p.payment_id for p in flow.system.course_store.all_purchases()} == set(ids)


def test_w1_crash_after_db_commit_before_offset_commit_redelivers_without_duplicate(flow: Flow) -> None:
    payment_id = flow.buy()
    flow.system.crash_points.arm("worker.after_commit")
    flow.settle()  # the worker dies right after its transaction
    assert flow.system.crashed == [("purchase-worker", "worker.after_commit")]
    flow.system.restart("purchase-worker")
    flow.settle()
    assert len(_trace(flow, "duplicate_skipped")) == 1
    assert [p.payment_id for p in flow.system.course_store.all_purchases()] == [payment_id]
    assert len(flow.topic(domain.TOPIC_CREATED)) == 1


def test_w1_crash_before_handling_redelivers_and_the_event_is_not_lost(flow: Flow) -> None:
    payment_id = flow.buy()
    flow.system.crash_points.arm("worker.after_poll")
    flow.settle()
    flow.system.restart("purchase-worker")
    flow.settle()
    assert [p.payment_id for p in flow.system.course_store.all_purchases()] == [payment_id]


def test_w2_poison_goes_to_dlq_at_once_and_the_partition_moves_on(flow: Flow) -> None:
    flow.publish_confirmed(b"{not json", key="s1")
    flow.publish_confirmed({"type": "PURCHASE_CONFIRMED", "payload": {}}, key="s1")
    payment_id = flow.buy(student="s1")
    flow.settle()
    letters = _dlq(flow)
    assert [(d["reason"], d["attempts"]) for d in letters] == [("schema_violation", 1)] * 2
    assert letters[0]["originalEvent"] == "{not json"
    assert [p.payment_id for p in flow.system.course_store.all_purchases()] == [payment_id]


def _forged(payment_id: str, student: str = "s1") -> dict[str, Any]:
    return domain.envelope(
        event_type=domain.EVENT_CONFIRMED,
        payload={"paymentId": payment_id, "studentId": student, "courseId": "c1", "amountCents": 1,
                 "currency": "EUR", "metadata": METADATA},
        correlation_id=payment_id, idempotency_key=domain.confirmed_key(payment_id), source="attacker",
        occurred_at=0.0)


def _bad_session_count_event() -> dict[str, Any]:
    key = "payment:00000000-0000-4000-8000-000000000000:PURCHASE_CONFIRMED"
    return {"eventId": "00000000-0000-5000-8000-000000000000", "type": "PURCHASE_CONFIRMED", "version": 1,
            "occurredAt": "2026-01-01T00:00:00.000Z", "correlationId": "00000000-0000-4000-8000-000000000000",
            "idempotencyKey": key, "source": "test",
            "payload": {"paymentId": "00000000-0000-4000-8000-000000000000", "studentId": "s1", "courseId": "c1",
                        "amountCents": 4900, "currency": "EUR", "metadata": {"sessionCount": "ten"}}}


def test_w2_a_non_numeric_session_count_is_dead_lettered_and_the_worker_goes_on(flow: Flow) -> None:
    flow.publish_confirmed(_bad_session_count_event(), key="s1")
    payment_id = flow.buy(student="s1")
    flow.settle()
    assert [(d["reason"], d["attempts"]) for d in _dlq(flow)] == [("schema_violation", 1)]
    assert [p.payment_id for p in flow.system.course_store.all_purchases()] == [payment_id]
    assert "purchase-worker" not in flow.system.down


def test_i2_a_worker_that_dies_after_the_dead_letter_sends_no_second_one(flow: Flow) -> None:
    """Killed between publishing a dead letter and committing the record's offset, the worker gets the
    record again when it comes back: it is not dead-lettered a second time (chaos found this)."""
    flow.publish_confirmed(_bad_session_count_event(), key="s1")
    flow.system.crash_points.arm("worker.after_dead_letter")
    flow.settle()
    assert flow.system.crashed == [("purchase-worker", "worker.after_dead_letter")]
    flow.system.restart("purchase-worker")
    flow.settle()
    assert [(d["reason"], d["attempts"]) for d in _dlq(flow)] == [("schema_violation", 1)]
    assert len(_trace(flow, "dead_letter_already_sent")) == 1


def test_defect_worker_dies_on_bad_session_count_stops_the_worker_with_the_event_uncommitted(make_flow: Any) -> None:
    flow = make_flow(defects=frozenset({"worker-dies-on-bad-session-count"}))
    flow.publish_confirmed(_bad_session_count_event(), key="s1")
    flow.buy(student="s1")
    flow.settle()  # every member of the group that takes the partition over dies on the same record
    died = len(flow.system.crashed)
    assert died >= 1 and set(flow.system.crashed) == {("purchase-worker", "worker.after_poll")}
    assert _dlq(flow) == [] and flow.system.course_store.all_purchases() == []
    flow.system.restart("purchase-worker")
    flow.settle()  # the same record again: it dies again, nothing behind it is handled
    assert len(flow.system.crashed) > died and flow.system.course_store.all_purchases() == []


def test_w3_i2_forged_event_for_an_unpaid_payment_grants_nothing(flow: Flow) -> None:
    unpaid = flow.create()
    flow.publish_confirmed(_forged(unpaid["id"]))
    flow.settle()
    assert flow.system.course_store.all_purchases() == []
    [letter] = _dlq(flow)
    assert (letter["reason"], letter["attempts"]) == ("payment_not_succeeded", 3)


def test_w3_event_naming_another_student_grants_nothing(flow: Flow) -> None:
    payment_id = flow.buy(student="s1")
    flow.settle()
    flow.publish_confirmed(_forged(payment_id, student="intruder") | {"idempotencyKey": "payment:"
                           + "0" * 8 + "-0000-4000-8000-" + "0" * 12 + ":PURCHASE_CONFIRMED"}, key="intruder")
    flow.settle()
    assert [p.student_id for p in flow.system.course_store.all_purchases()] == ["s1"]


def test_w4_payment_metadata_wins_over_a_divergent_event(flow: Flow) -> None:
    payment = flow.create()
    flow.confirm(payment["id"])
    flow.system.stop("payment-relay")  # the real event is replaced by a divergent one
    divergent = domain.purchase_confirmed(
        domain.Payment(payment["id"], "s1", "c1", 4900, "EUR", domain.PaymentStatus.SUCCEEDED, "test", None,
                       {**METADATA, "classTime": "16:00", "sessionCount": 30, "promo": "SPRING"}, 0.0, 0.0), 0.0)
    flow.publish_confirmed(divergent)
    flow.settle()
    [purchase] = flow.system.course_store.all_purchases()
    assert purchase.metadata == {**METADATA, "promo": "SPRING"}
    assert purchase.purchase_tier == 10 and purchase.metadata_source == "payment"
    [created] = flow.topic(domain.TOPIC_CREATED)
    assert created["payload"]["metadata"] == purchase.metadata  # the MERGED metadata


def test_w5_payments_db_down_falls_back_to_complete_event_metadata(flow: Flow) -> None:
    payment_id = flow.buy()
    flow.system.step("payment-relay")
    flow.system.faults.fail_next("payments_db", 3, op="find_succeeded")
    flow.settle()
    [purchase] = flow.system.course_store.all_purchases()
    assert purchase.payment_id == payment_id
    assert purchase.metadata_source == "event" and purchase.metadata == METADATA
    assert len(_trace(flow, "fallback_to_event_metadata")) == 1


def test_w5_incomplete_event_metadata_with_payments_db_down_is_dead_lettered(flow: Flow) -> None:
    payment = flow.create()
    flow.confirm(payment["id"])
    flow.system.stop("payment-relay")
    event = json.loads(flow.system.payment_store.pending_outbox(1)[0].value)
    del event["payload"]["metadata"]["sessionCount"]
    flow.publish_confirmed(event)
    flow.system.faults.fail_next("payments_db", 3, op="find_succeeded")
    flow.settle()
    assert flow.system.course_store.all_purchases() == []
    [letter] = _dlq(flow)
    assert (letter["reason"], letter["attempts"]) == ("retries_exhausted", 3)


def test_w6_triple_delivery_gives_one_purchase_and_one_created_event(flow: Flow) -> None:
    flow.buy()
    flow.system.step("payment-relay")
    event = flow.topic(domain.TOPIC_CONFIRMED)[0]
    flow.publish_confirmed(event)
    flow.publish_confirmed(event)
    flow.settle()
    assert len(flow.system.course_store.all_purchases()) == 1
    assert len(flow.topic(domain.TOPIC_CREATED)) == 1
    assert len(_trace(flow, "duplicate_skipped")) == 2


def test_w6_repurchase_of_the_same_course_with_a_second_payment_is_a_second_purchase(flow: Flow) -> None:
    first, second = flow.buy(), flow.buy()
    flow.settle()
    assert {p.payment_id for p in flow.system.course_store.all_purchases()} == {first, second}


def test_w7_transient_failures_retry_with_backoff_then_succeed_on_attempt_3(flow: Flow) -> None:
    flow.buy()
    flow.system.step("payment-relay")
    flow.system.faults.fail_next("courses_db", 2, op="record_purchase")
    flow.settle()
    attempts = _trace(flow, "attempt")
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(attempts)]
    assert gaps == [1.0, 2.0]
    assert len(flow.system.course_store.all_purchases()) == 1


def _dead_lettered(flow: Flow) -> str:
    """A bought payment whose event the worker dead-lettered after 3 failed writes (no reconciler to heal it)."""
    payment_id = flow.buy()
    flow.system.step("payment-relay")
    flow.system.faults.fail_next("courses_db", 3, op="record_purchase")
    flow.system.stop("reconciler")
    flow.settle()
    return payment_id


def test_w7_persistent_failure_dead_letters_after_3_attempts_and_w8_replay_yields_one(flow: Flow) -> None:
    payment_id = _dead_lettered(flow)
    [letter] = _dlq(flow)
    assert (letter["reason"], letter["attempts"]) == ("retries_exhausted", 3)
    assert letter["originalTopic"] == domain.TOPIC_CONFIRMED
    assert flow.system.course_store.all_purchases() == []
    assert flow.system.dlq_replayer.replay_all() == 1
    assert flow.system.dlq_replayer.replay_all() == 0
    flow.settle()
    assert [p.payment_id for p in flow.system.course_store.all_purchases()] == [payment_id]


def test_w8_a_replay_the_broker_refuses_leaves_the_letter_for_the_next_replay(flow: Flow) -> None:
    payment_id = _dead_lettered(flow)
    assert len(_dlq(flow)) == 1
    flow.system.faults.fail_next("bus", 1, op="publish")
    assert flow.system.dlq_replayer.replay_all() == 0  # refused: counted as not replayed, not an error
    assert len(_trace(flow, "replay_failed")) == 1
    assert flow.system.dlq_replayer.replay_all() == 1
    flow.settle()
    assert [p.payment_id for p in flow.system.course_store.all_purchases()] == [payment_id]


def test_i1_reconciler_republishes_a_succeeded_payment_without_purchase(flow: Flow) -> None:
    payment_id = flow.buy()
    flow.system.step("payment-relay")
    flow.system.faults.fail_next("courses_db", 3, op="record_purchase")
    flow.settle()  # dead-lettered, then the reconciler's grace passes and it re-publishes
    assert [p.payment_id for p in flow.system.course_store.all_purchases()] == [payment_id]
    assert len(_trace(flow, "republished")) == 1


def test_i1_without_a_worker_settle_does_not_spin_the_clock(flow: Flow) -> None:
    flow.system.stop("purchase-worker")
    flow.buy()
    result = flow.system.settle()
    assert result.quiet and result.advanced == 0.0
    assert flow.system.course_store.all_purchases() == []


def test_i1_the_reconciler_looks_up_only_payments_it_has_not_seen_purchased(flow: Flow) -> None:
    """A settle per purchase over a long run must not look up every purchase ever made on every round: a
    payment seen with its purchase is not looked up in courses_db again (purchases are never deleted)."""
    lookups: list[str] = []
    courses = flow.system.reconciler._courses
    real = courses.purchased_payments

    def counted(payment_ids: list[str]) -> Any:
        lookups.extend(payment_ids)
        return real(payment_ids)

    courses.purchased_payments = counted  # type: ignore[method-assign]
    bought = []
    for _ in range(12):
        bought.append(flow.buy())
        flow.settle()
    per_payment = {payment_id: lookups.count(payment_id) for payment_id in bought}
    assert set(per_payment) == set(bought) and all(n >= 1 for n in per_payment.values())
    assert max(per_payment.values()) <= 2  # until seen purchased, then never again
    before = len(lookups)
    flow.settle()
    flow.settle()
    assert len(lookups) == before  # nothing open: later settles look nothing up


def test_i1_the_reconciler_still_republishes_a_payment_found_without_purchase_later(flow: Flow) -> None:
    flow.system.stop("purchase-worker")
    payment_id = flow.buy()
    flow.settle()  # open: no purchase yet; the reconciler does not wait for a worker that is down
    flow.system.restart("purchase-worker")
    flow.system.faults.fail_next("courses_db", 3, op="record_purchase")
    flow.settle()
    assert [p.payment_id for p in flow.system.course_store.all_purchases()] == [payment_id]
    assert len(_trace(flow, "republished")) == 1  # the reconciler's re-publish made it, not the first event


def test_i1_the_reconciler_backs_off_per_orphan_so_a_lagging_worker_is_not_flooded(flow: Flow) -> None:
    """A worker minutes behind (after an outage) must not get a fresh copy of every orphan each grace
    period: the copies would grow its backlog faster than it drains (seen under `kcverify chaos`). The
    n-th re-publication of one orphan waits grace * 2**(n-1), capped at MAX_BACKOFF graces."""
    from kcverify.reference.reconciler import MAX_BACKOFF

    flow.system.stop("purchase-worker")
    flow.buy()
    flow.system.step("payment-relay")
    reconciler, clock = flow.system.reconciler, flow.system.clock
    reconciler._backlog = lambda: 0  # the worker group consumed every copy, and still no purchase: copies go on
    grace = reconciler._grace
    times = []
    for _ in range(int(grace * 80 / 0.5)):  # 80 graces in half-second rounds
        clock.advance(0.5)  # type: ignore[attr-defined]
        if reconciler.run_once():
            times.append(clock.now())
    gaps = [round((b - a) / grace, 1) for a, b in itertools.pairwise(times)]
    assert gaps[:5] == [1.0, 2.0, 4.0, 8.0, 16.0] and set(gaps[5:]) <= {float(MAX_BACKOFF)}
    assert len(times) <= 10  # every grace would have been 80


@pytest.mark.parametrize("unknown", [False, True])
def test_i1_no_second_copy_while_the_worker_group_is_behind(flow: Flow, unknown: bool) -> None:
    """While the worker group has records left on the confirmed topic, the orphan's copy may still be queued
    ahead of the worker: one copy, not one per backoff step (nor while the broker cannot say). Once the
    group has caught up, the purchase is there and no copy is needed."""
    flow.system.stop("purchase-worker")
    payment_id = flow.buy()
    flow.system.step("payment-relay")
    reconciler, clock = flow.system.reconciler, flow.system.clock
    if unknown:
        reconciler._backlog = lambda: None
    grace = reconciler._grace
    copies = 0
    for _ in range(int(grace * 80 / 0.5)):  # 80 graces: with a worker group that drains, 10 copies
        clock.advance(0.5)  # type: ignore[attr-defined]
        copies += reconciler.run_once()
    assert copies == 1 and len(_trace(flow, "republished")) == 1
    flow.system.restart("purchase-worker")
    flow.settle()
    assert [p.payment_id for p in flow.system.course_store.all_purchases()] == [payment_id]
    assert len(_trace(flow, "republished")) == 1


def test_i1_a_confirmation_committed_after_the_watermark_passed_it_is_found_by_the_full_scan(make_flow: Any) -> None:
    """The reconciler reads only confirmations after its watermark (LATE_COMMIT behind the scan). One that
    becomes visible later than that, with an older confirmed_at (a starved process, a clock stepped
    back), is still re-published: by the full scan every FULL_SCAN_EVERY seconds."""
    from kcverify.reference import domain
    from kcverify.reference.reconciler import FULL_SCAN_EVERY, LATE_COMMIT

    flow = make_flow(reconcile_grace=5.0)
    system = flow.system
    flow.buy()
    flow.settle()
    system.reconciler.run_once()  # watermark and full scan set now
    clock = system.clock
    late = domain.Payment(id="late-1", student_id="s9", course_id="c1", amount_cents=4900, currency="EUR",
                          status=domain.PaymentStatus.SUCCEEDED, provider="stripe", provider_payment_id="pi_late",
                          metadata={}, created_at=clock.now() - 3 * LATE_COMMIT,
                          confirmed_at=clock.now() - 2 * LATE_COMMIT)
    system.payment_store.insert_payment(late)  # committed now, confirmed long before: no event was ever sent
    clock.advance(system.settings.reconcile_grace + 1)
    assert system.reconciler.run_once() == 0, "below the watermark: not seen before the full scan"
    clock.advance(FULL_SCAN_EVERY)
    assert system.reconciler.run_once() == 1
    assert system.reconciler.run_once() == 0  # re-published once, then its backoff


def test_w1_a_batch_of_events_is_committed_once_after_the_last_is_handled(flow: Flow) -> None:
    ids = [flow.buy(student="s1", course=f"c{i}") for i in range(3)]  # one key: one partition, in order
    flow.settle()
    assert {p.payment_id for p in flow.system.course_store.all_purchases()} == set(ids)
    committed = _trace(flow, "offset_committed")
    recorded = _trace(flow, "purchase_recorded")
    assert len(recorded) == 3
    assert [c["offset"] for c in committed] == [2]  # one commit covers the three, after the third
    assert flow.system.tracer.records.index(committed[0]) > flow.system.tracer.records.index(recorded[-1])  # type: ignore[attr-defined]
