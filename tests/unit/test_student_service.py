"""Student service rules S1-S5 and the freshness of the cached learning view."""

from __future__ import annotations

from kcverify.reference import domain
from tests.unit.conftest import METADATA, Flow


def test_s1_learning_view_lists_active_purchases_with_merged_metadata(flow: Flow) -> None:
    payment_id = flow.buy()
    flow.settle()
    response = flow.learning("s1")
    assert response.status_code == 200
    [item] = response.json()["purchases"]
    assert item["paymentId"] == payment_id and item["purchaseTier"] == 10 and item["metadata"] == METADATA


def test_s1_another_student_gets_403_no_token_401_admin_200(flow: Flow) -> None:
    flow.buy()
    flow.settle()
    assert flow.learning("s1", as_="s2").status_code == 403
    assert flow.students.get("/api/v1/students/s1/learning").status_code == 401
    bad = flow.students.get("/api/v1/students/s1/learning", headers={"Authorization": "Bearer x.y.z"})
    assert bad.status_code == 401
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert flow.learning("s1", as_="ops", role="admin").status_code == 200


def test_s2_second_read_is_a_cache_hit_with_age(flow: Flow) -> None:
    first = flow.learning("s1")
    flow.system.clock.advance(7)  # type: ignore[attr-defined]
    second = flow.learning("s1")
    assert first.headers["cache-status"] == "student-service; fwd=miss; stored"
    assert second.headers["cache-status"] == "student-service; hit"
    assert (first.headers["age"], second.headers["age"]) == ("0", "7")


def test_s2_ttl_expiry_reloads(flow: Flow) -> None:
    flow.learning("s1")
    flow.system.clock.advance(300)  # type: ignore[attr-defined]
    assert flow.learning("s1").headers["cache-status"].startswith("student-service; fwd=miss")


def test_s2_errors_are_never_cached(flow: Flow) -> None:
    flow.buy()
    flow.settle()
    flow.system.faults.fail_next("courses_db", 1, op="purchases_for_student")
    failed = flow.learning("s1")
    assert failed.status_code == 503
    assert failed.headers["content-type"].startswith("application/problem+json")
    assert len(flow.learning("s1").json()["purchases"]) == 1


def test_s3_a_read_between_confirmation_and_purchase_does_not_leave_a_stale_view(flow: Flow) -> None:
    flow.buy()
    assert flow.learning("s1").json()["purchases"] == []  # the seed's gap: caches the old list
    flow.settle()
    assert len(flow.learning("s1").json()["purchases"]) == 1


def test_s3_stale_set_race_a_read_that_loaded_old_rows_does_not_store_them(flow: Flow) -> None:
    flow.buy()
    flow.system.step("payment-relay")
    pending = flow.system.student_service.begin_read("s1")  # loads: no purchase yet
    flow.settle()  # purchase commits, PURCHASE_CREATED invalidates
    late = flow.system.student_service.finish_read(pending)
    assert late.headers["Cache-Status"] == "student-service; fwd=miss"  # not stored
    assert len(flow.learning("s1").json()["purchases"]) == 1


def test_s4_admin_invalidation_is_immediate_and_students_may_not(flow: Flow) -> None:
    flow.learning("s1")
    admin = flow.token("ops", "admin")
    student = flow.token("s1")
    url = "/api/v1/students/s1/learning/cache"
    assert flow.students.delete(url, headers={"Authorization": f"Bearer {student}"}).status_code == 403
    assert flow.students.delete(url, headers={"Authorization": f"Bearer {admin}"}).status_code == 204
    assert flow.learning("s1").headers["cache-status"].startswith("student-service; fwd=miss")


def test_s5_cache_down_reads_fall_back_to_the_database(flow: Flow) -> None:
    flow.buy()
    flow.settle()
    flow.system.faults.fail_next("cache", 10)
    response = flow.learning("s1")
    assert response.status_code == 200 and len(response.json()["purchases"]) == 1
    assert response.headers["cache-status"] == "student-service; fwd=miss"


def test_malformed_student_id_is_400(flow: Flow) -> None:
    response = flow.learning("bad id!")
    assert response.status_code == 400


def test_invalidator_skips_a_malformed_created_event_and_keeps_going(flow: Flow) -> None:
    bus = flow.system.bus
    getattr(bus, "inner", bus).publish(domain.TOPIC_CREATED, "s1", b"garbage")
    flow.buy()
    flow.settle()
    assert len(flow.learning("s1").json()["purchases"]) == 1
