"""What only the PostgreSQL stores promise (the port suites cover the rest): an unreachable server is
StoreUnavailable, a connection the server dropped is replaced, the DDL is idempotent even when two
processes apply it at once, timestamps keep microseconds, and orders match SQLite's, ties included."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from kcverify.core.clock import MANUAL_EPOCH, ManualClock
from kcverify.core.errors import StoreUnavailable
from kcverify.reference.adapters.postgres_store import PostgresCourseStore, PostgresPaymentStore
from kcverify.reference.adapters.sqlite_store import SqliteCourseStore
from kcverify.reference.domain import OutboxMessage
from tests.adapters.conftest import Services
from tests.adapters.factories import Context, _pg_schema
from tests.adapters.test_course_store import make_purchase, record
from tests.adapters.test_payment_store import METADATA, make_payment

pytestmark = pytest.mark.integration


@pytest.fixture
def schema_dsn(services: Services, unique: str, tmp_path: Path) -> Iterator[str]:
    """A DSN on a fresh schema of this test's own (dropped afterwards)."""
    ctx = Context(clock=ManualClock(), tmp_path=tmp_path, unique=unique, service=services.address("postgres"))
    try:
        yield _pg_schema(ctx, "x")
    finally:
        for cleanup in reversed(ctx.cleanups):
            cleanup()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_server_is_store_unavailable_with_the_reason() -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="refused"):
        PostgresPaymentStore(f"postgresql://postgres@127.0.0.1:{_free_port()}/payments_db", timeout=1)
    assert time.monotonic() - started < 5


def test_a_connection_the_server_dropped_is_replaced(schema_dsn: str, unique: str) -> None:
    """A server restart kills idle pooled connections; the next call must not fail because of it."""
    name = f"kcverify-test-{unique}"
    store = PostgresPaymentStore(schema_dsn, pool_min=1, pool_max=1, application_name=name)
    try:
        store.insert_payment(make_payment())
        with psycopg.connect(schema_dsn, autocommit=True) as admin:
            killed = admin.execute("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                   " WHERE application_name = %s) AS t", (name,)).fetchone()
        assert killed == (1,)
        _until_gone(schema_dsn, name)  # as after a restart: the backend has ended, not just been told to
        assert len(store.all_payments()) == 1
    finally:
        store.close()


def _until_gone(dsn: str, application_name: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as admin:
        while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                            (application_name,)).fetchone() != (0,):
            assert time.monotonic() < deadline, "the terminated backend is still there"
            time.sleep(0.01)


def test_ddl_applied_concurrently_and_again_is_harmless(schema_dsn: str) -> None:
    """Several services start at once on an empty database: CREATE ... IF NOT EXISTS can still collide
    in the catalogue without the adapter's advisory lock."""
    stores: list[PostgresCourseStore] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_store() -> None:
        try:
            start.wait()
            stores.append(PostgresCourseStore(schema_dsn))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    try:
        assert errors == []
        stores[0].mark_processed("purchase-worker", "k")
        reopened = PostgresCourseStore(schema_dsn)  # the DDL runs again on existing tables
        assert reopened.is_processed("purchase-worker", "k")
        reopened.close()
    finally:
        for store in stores:
            store.close()


def test_timestamps_keep_microseconds(schema_dsn: str) -> None:
    """TIMESTAMPTZ holds microseconds: a float with more digits comes back rounded to them."""
    store = PostgresPaymentStore(schema_dsn)
    try:
        exact = make_payment(created_at=MANUAL_EPOCH + 0.123456)
        finer = make_payment(created_at=MANUAL_EPOCH + 0.1234567)
        store.insert_payment(exact)
        store.insert_payment(finer)
        loaded = store.get_payment(exact.id)
        assert loaded is not None and loaded.created_at == exact.created_at
        rounded = store.get_payment(finer.id)
        assert rounded is not None and abs(rounded.created_at - finer.created_at) <= 0.5e-6
    finally:
        store.close()


def test_nan_in_metadata_is_refused_before_writing(schema_dsn: str) -> None:
    store = PostgresPaymentStore(schema_dsn)
    try:
        payment = make_payment(metadata={**METADATA, "price": float("nan")})
        with pytest.raises(ValueError):
            store.insert_payment(payment)
        assert store.all_payments() == []
    finally:
        store.close()


def test_orders_and_ties_match_sqlite(schema_dsn: str) -> None:
    """Same created_at: ordered by id in byte order ("B" < "a"), as SQLite does, whatever the
    database's collation."""
    clock = ManualClock()
    postgres, sqlite = PostgresCourseStore(schema_dsn, clock=clock), SqliteCourseStore(clock=clock)
    try:
        purchases = [make_purchase(id=pid, created_at=MANUAL_EPOCH + (1 if pid == "z" else 0))
                     for pid in ("a", "B", "z", "_", "0", "é")]
        for purchase in purchases:
            assert record(postgres, purchase) and record(sqlite, purchase)
        assert postgres.all_purchases() == sqlite.all_purchases()
        assert postgres.purchases_for_student("student-1") == sqlite.purchases_for_student("student-1")
        assert [p.id for p in postgres.all_purchases()] == ["0", "B", "_", "a", "é", "z"]
    finally:
        postgres.close()
        sqlite.close()


def test_an_unset_outbox_time_comes_from_the_clock_and_helpers_show_rows(schema_dsn: str) -> None:
    clock = ManualClock()
    store = PostgresCourseStore(schema_dsn, clock=clock)
    try:
        store.enqueue_outbox(OutboxMessage("purchase-created", "s1", b"v"))
        store.mark_processed("c", "k")
        [pending] = store.pending_outbox(1)
        assert pending.created_at == clock.now()
        assert [(e.consumer, e.idempotency_key, e.processed_at) for e in store.processed_events()] == [
            ("c", "k", clock.now())]
        assert pending.id is not None
        store.mark_published([pending.id], clock.now() + 1)
        [row] = store.outbox_rows()
        assert row.published_at == clock.now() + 1
        assert dataclasses.replace(row.message, id=None) == dataclasses.replace(pending, id=None)
    finally:
        store.close()
