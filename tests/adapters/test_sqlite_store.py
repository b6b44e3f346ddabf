"""What only the SQLite stores promise (the port suites cover the rest): transient SQLite failures are
StoreUnavailable, files reopen with their data, and the two dialects' DDL stay twins."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from kcverify.core.errors import StoreUnavailable
from kcverify.reference.adapters.sqlite_store import (
    COURSES_DB,
    PAYMENTS_DB,
    SqliteCourseStore,
    SqlitePaymentStore,
    ddl,
)
from kcverify.reference.domain import OutboxMessage
from tests.adapters.test_payment_store import make_payment


def test_a_locked_database_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "payments.sqlite3"
    store = SqlitePaymentStore(str(path), timeout=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable, match="locked"):
            store.insert_payment(make_payment())
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.insert_payment(make_payment())  # transient: works once the lock is gone
    assert len(store.all_payments()) == 1
    store.close()


def test_a_database_that_cannot_be_opened_is_store_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable):
        SqliteCourseStore(str(tmp_path / "missing-dir" / "courses.sqlite3"))


def test_a_file_database_reopens_with_its_rows(tmp_path: Path) -> None:
    path = str(tmp_path / "courses.sqlite3")
    store = SqliteCourseStore(path)
    store.mark_processed("purchase-worker", "k")
    store.enqueue_outbox(OutboxMessage("purchase-created", "s1", b"v", created_at=1.5))
    store.close()
    reopened = SqliteCourseStore(path)  # the DDL runs again: idempotent
    assert reopened.is_processed("purchase-worker", "k")
    assert [m.created_at for m in reopened.pending_outbox(10)] == [1.5]
    reopened.close()


def test_in_memory_databases_are_private() -> None:
    first, second = SqlitePaymentStore(), SqlitePaymentStore()
    first.insert_payment(make_payment())
    assert second.all_payments() == []


def test_a_reset_store_is_empty_and_keeps_noting_changes() -> None:
    """The explorer empties its stores between schedules: what follows must see a new store, and the
    snapshot's change tracking (TEMP triggers) must still note every row written after the reset."""
    from kcverify.core.clock import ManualClock

    store = SqlitePaymentStore()
    assert store.changed_payments() == ([], [])  # starts the tracking
    store.insert_payment(make_payment(id="p-before"))
    store.enqueue_outbox(OutboxMessage("payments.events", "k", b"v"))
    first_id = store.pending_outbox(1)[0].id
    clock = ManualClock()
    clock.advance(5)
    store.reset(clock)
    assert store.all_payments() == [] and store.pending_outbox(10) == []
    assert store.changed_payments() == ([], [])  # the reset itself is not a change
    store.insert_payment(make_payment(id="p-after"))
    assert [p.id for p in store.changed_payments()[0]] == ["p-after"]
    store.enqueue_outbox(OutboxMessage("payments.events", "k", b"v"))
    again = store.pending_outbox(1)[0]
    assert (again.id, again.created_at) == (first_id, clock.now())  # ids start over; the new clock stamps


def test_answers_kept_between_writes_follow_every_write() -> None:
    """The in-memory stores answer the outbox, the count and the reconciler's scan again while no row was
    written: every write, and a rolled-back one, must make the next answer a fresh read."""
    from tests.adapters.test_payment_store import confirm

    store = SqlitePaymentStore()
    assert store.pending_outbox(10) == [] and store.count_payments() == 0
    payment = make_payment()
    store.insert_payment(payment)
    assert store.count_payments() == 1 and store.succeeded_confirmed_before(1e12) == []
    store.save_status(confirm(payment, at=5.0), OutboxMessage("payments.events", "k", b"v"))
    assert [m.value for m in store.pending_outbox(10)] == [b"v"]
    assert store.succeeded_confirmed_before(1e12) == [(payment.id, 5.0)]
    store.mark_published([store.pending_outbox(1)[0].id], at=6.0)
    assert store.pending_outbox(10) == []
    with pytest.raises(ValueError):  # a constraint broken inside a transaction: rolled back
        store.insert_payment(payment)
    assert store.count_payments() == 1 and store.pending_outbox(10) == []
    store.pending_outbox(10).append(OutboxMessage("t", "k", b"x"))  # a caller's list is its own
    assert store.pending_outbox(10) == []


def test_a_reset_after_no_write_leaves_the_store_empty_and_tracked() -> None:
    from kcverify.core.clock import ManualClock

    store = SqlitePaymentStore()
    assert store.changed_payments() == ([], [])
    store.insert_payment(make_payment(id="p-1"))
    store.reset(ManualClock())
    store.reset(ManualClock())  # nothing written since the last: nothing to empty
    assert store.all_payments() == [] and store.changed_payments() == ([], [])
    store.insert_payment(make_payment(id="p-2"))
    assert [p.id for p in store.changed_payments()[0]] == ["p-2"]


def test_a_fault_armed_after_a_wrapped_method_was_called_still_fires() -> None:
    """The fault wrapper keeps each method's caller after its first use: a rule armed later must reach it."""
    from kcverify.reference.instrument import Faults, with_faults

    faults = Faults()
    store = with_faults(SqlitePaymentStore(), "payments_db", faults)
    assert store.count_payments() == 0
    faults.fail_next("payments_db", 1, op="count_payments")
    with pytest.raises(StoreUnavailable, match="injected fault"):
        store.count_payments()
    assert store.count_payments() == 0 and faults.injected["payments_db.count_payments"] == 1
    faults.fail_next("payments_db", 1)
    faults.clear()
    assert store.count_payments() == 0


def test_only_an_in_memory_store_can_be_reset(tmp_path: Path) -> None:
    from kcverify.core.clock import ManualClock

    with pytest.raises(ValueError, match="in-memory"):
        SqlitePaymentStore(str(tmp_path / "p.db")).reset(ManualClock())


def test_an_unset_outbox_time_comes_from_the_clock() -> None:
    from kcverify.core.clock import ManualClock

    clock = ManualClock()
    store = SqliteCourseStore(clock=clock)
    store.enqueue_outbox(OutboxMessage("purchase-created", "s1", b"v"))
    store.mark_processed("c", "k")
    assert [m.created_at for m in store.pending_outbox(1)] == [clock.now()]
    assert [e.processed_at for e in store.processed_events()] == [clock.now()]


# Constraints one dialect needs and the other gets from a type: BOOLEAN in PostgreSQL, and the
# primary key's name (SQLite does not name it).
DIALECT_ONLY = {"purchases_is_active_bool", "processed_events_pkey"}


def _shape(sql: str) -> dict[str, set[str]]:
    sql = re.sub(r"--[^\n]*", "", sql)
    return {
        "tables": set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", sql)),
        "indexes": set(re.findall(r"CREATE (?:UNIQUE )?INDEX IF NOT EXISTS (\w+)", sql)),
        "constraints": set(re.findall(r"CONSTRAINT (\w+)", sql)) - DIALECT_ONLY,
        "columns": set(re.findall(r"^\s+([a-z_]+)\s+[A-Z]", sql, re.MULTILINE)) - {"CONSTRAINT"},
    }


@pytest.mark.parametrize("database", [PAYMENTS_DB, COURSES_DB])
def test_sqlite_and_postgres_ddl_declare_the_same_schema(database: str) -> None:
    sqlite_shape, postgres_shape = _shape(ddl("sqlite", database)), _shape(ddl("postgres", database))
    assert sqlite_shape == postgres_shape
    assert sqlite_shape["tables"] and sqlite_shape["columns"]


@pytest.mark.parametrize("database", [PAYMENTS_DB, COURSES_DB])
def test_postgres_ddl_is_idempotent_statement_by_statement(database: str) -> None:
    statements = [s.strip() for s in re.sub(r"--[^\n]*", "", ddl("postgres", database)).split(";")]
    for statement in filter(None, statements):
        assert re.match(r"CREATE (TABLE|INDEX|UNIQUE INDEX) IF NOT EXISTS ", statement), statement


def test_ddl_of_an_unknown_database_is_refused() -> None:
    with pytest.raises(ValueError):
        ddl("mysql", PAYMENTS_DB)
