"""The embedded stores: payments_db and courses_db on SQLite (`SqlitePaymentStore`, `SqliteCourseStore`).

The schema is `contracts/db/sqlite/<database>.sql`, executed on open (idempotent); `ddl()` (in sql.py,
shared with the PostgreSQL stores) loads any of the four DDL files, so no DDL lives in Python. Every
port method is one transaction on one connection guarded by a lock: the embedded system is
single-threaded, but the HTTP app may call from a worker thread. Writes use BEGIN IMMEDIATE, so the
check-then-insert of `record_purchase` cannot interleave with another writer, even another process on
the same file.

Errors: a transient SQLite failure (busy/locked, cannot open, I/O) is `StoreUnavailable`; a broken
constraint that is not an expected race is `ConstraintViolation` (a ValueError: bad data or a bug,
never retried); `save_status` on a payment never inserted is `RowNotFound`."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, suppress
from functools import cache
from typing import Any

from kcverify.core.clock import Clock, SystemClock
from kcverify.core.errors import StoreUnavailable
from kcverify.reference.adapters.sql import (
    COURSES_DB,
    PAYMENTS_DB,
    ConstraintViolation,
    OutboxRow,
    ProcessedEvent,
    RowNotFound,
    ddl,
)
from kcverify.reference.domain import OutboxMessage, Payment, PaymentStatus, Purchase

# The shared names (now in sql.py) stay importable from here, as before.
__all__ = ["COURSES_DB", "PAYMENTS_DB", "ConstraintViolation", "OutboxRow", "ProcessedEvent", "RowNotFound",
           "SqliteCourseStore", "SqlitePaymentStore", "ddl"]

# SQLite result codes (extended names start with these) that mean "try again later", not "bad SQL".
_TRANSIENT_CODES = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_FULL",
                    "SQLITE_PROTOCOL", "SQLITE_NOMEM", "SQLITE_READONLY")
_TRANSIENT_TEXT = ("database is locked", "database table is locked", "unable to open", "disk i/o error",
                   "database or disk is full", "readonly database")


def _is_transient(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", None) or ""
    if name.startswith(_TRANSIENT_CODES):
        return True
    text = str(exc).lower()
    return any(fragment in text for fragment in _TRANSIENT_TEXT)


@cache
def _schema_image(database: str) -> bytes:
    """An empty in-memory database with the schema, as bytes. A fresh in-memory store loads this image
    instead of running the DDL: the explorer starts a new system for every schedule, and parsing and
    running the DDL twice per system cost more than some schedules' steps."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn.executescript(ddl("sqlite", database))
        return conn.serialize()
    finally:
        conn.close()


class _Database:
    """One SQLite connection, its lock, and transactions on it."""

    def __init__(self, path: str | None, database: str, timeout: float) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            # isolation_level=None: the module issues no implicit BEGIN/COMMIT; transactions are ours.
            conn = sqlite3.connect(":memory:" if path is None else path, timeout=timeout,
                                   isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            if path is not None:
                # readers in other processes (evidence, the verifier) do not block the writer
                conn.execute("PRAGMA journal_mode = WAL")
                conn.executescript(ddl("sqlite", database))
            else:
                conn.deserialize(_schema_image(database))
        except sqlite3.OperationalError as exc:
            if _is_transient(exc):
                raise StoreUnavailable(f"{database}: cannot open {path or ':memory:'}: {exc}") from exc
            raise
        self._conn = conn
        self._name = database
        self._outbox_hooks: list[Callable[[], None]] = []
        self.outbox_written = False  # set by an outbox INSERT; the hooks run when its transaction commits
        self._changes_taken: dict[str, int] = {}  # table -> the connection's total_changes at its last take
        self._logs: set[str] = set()  # the TEMP change logs of track_changes
        self._emptied: list[str] | None = None  # what `reset` runs to empty main (read at the first reset)
        self._emptied_at = -1  # the connection's total_changes when `reset` last emptied it
        self._reading = _Reading(self._lock, conn)
        self._writing, self._beginning = _Transaction(self, write=True), _Transaction(self, write=False)
        self._answers: dict[str, tuple[tuple[Any, ...], int, Any]] = {}  # see `unchanged`

    def transaction(self, *, write: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        """BEGIN (IMMEDIATE for writes) ... COMMIT; ROLLBACK on any exception, SimulatedCrash included
        (a crashed process's transaction never commits)."""
        if not write and self.path is None:
            # A private in-memory database has no other connection, and the lock keeps this one's other
            # users out: a read sees one state without BEGIN/COMMIT, which cost more than it.
            return self._reading
        return self._writing if write else self._beginning

    def unchanged(self, question: str, args: tuple[Any, ...], answer: Callable[[], Any]) -> Any:
        """`answer()`, or what it returned the last time `question` was asked with the same `args` when no
        row of this database has been written since (its connection's `total_changes` is the same). One
        answer is kept per question (a question asked with ever new arguments, as the reconciler's time
        bound, keeps only its last). Only a private in-memory database is known to have no other writer;
        a file's answer is always read anew. The answer must be immutable: callers share it."""
        if self.path is not None:
            return answer()
        now = self._conn.total_changes
        known = self._answers.get(question)
        if known is not None and known[0] == args and known[1] == now:
            return known[2]
        value = answer()
        self._answers[question] = (args, now, value)
        return value

    def on_outbox_commit(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call `wake` after every commit of a transaction that wrote an outbox row (in this process: the
        store is in memory or a file of this process's). Returns the function that stops it."""
        with self._lock:
            self._outbox_hooks.append(wake)

        def stop() -> None:
            with self._lock:
                if wake in self._outbox_hooks:
                    self._outbox_hooks.remove(wake)
        return stop

    def _rollback(self) -> None:
        # the original failure matters more than one of ROLLBACK; SQLite drops the tx anyway
        self.outbox_written = False
        if self._conn.in_transaction:
            with suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def _unavailable(self, exc: sqlite3.OperationalError) -> Exception:
        if _is_transient(exc):
            return StoreUnavailable(f"{self._name}: {exc}")
        return exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def reset(self) -> None:
        """Back to empty tables, as if just opened, keeping the connection and its change tracking
        (TEMP objects live outside the main database: the triggers stay, the logs are emptied). Only for a
        private in-memory database: cheaper than a new connection and its TEMP triggers, for the explorer,
        which starts a system per schedule."""
        if self.path is not None:
            raise ValueError(f"{self._name}: only an in-memory store can be reset")
        with self._lock:
            # Rows deleted, not a schema image deserialized: TEMP triggers on main's tables do not survive
            # main's schema being replaced under them. Emptied tables (sequences too) behave as new ones.
            conn = self._conn
            if self._emptied is None:  # the main schema of a private in-memory store never changes: read once
                tables = [row[0] for row in conn.execute(
                    "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
                if conn.execute("SELECT 1 FROM main.sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
                    tables.append("sqlite_sequence")
                self._emptied = [f'DELETE FROM main."{table}"' for table in tables]
            if conn.total_changes != self._emptied_at:  # else no row was written since it was emptied
                conn.execute("BEGIN IMMEDIATE")
                for statement in self._emptied:
                    conn.execute(statement)
                for log in self._logs:
                    conn.execute(f"DELETE FROM {log}")
                conn.execute("COMMIT")
                self._emptied_at = conn.total_changes
            self._outbox_hooks.clear()
            self.outbox_written = False
            self._changes_taken.clear()
            self._answers.clear()

    def track_changes(self, table: str, key: str) -> None:
        """Note the key of every row of `table` inserted, updated or deleted from now on, in a TEMP table of
        this connection, written by TEMP triggers inside the writer's transaction (a rolled-back write
        notes nothing). For observers that read only what changed (`take_changed`); the schema and the
        reference's own queries are untouched."""
        log = f"changed_{table}"
        with self._lock:
            self._logs.add(log)
            self._conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {log} (key TEXT PRIMARY KEY)")
            for event, row in (("INSERT", "new"), ("UPDATE", "new"), ("DELETE", "old")):
                self._conn.execute(
                    f"CREATE TEMP TRIGGER IF NOT EXISTS {log}_{event.lower()} AFTER {event} ON main.{table} "
                    f"BEGIN INSERT OR IGNORE INTO {log} (key) VALUES ({row}.{key}); END")

    def take_changed(self, table: str, key: str, columns: str) -> tuple[list[sqlite3.Row], list[str]]:
        """The rows of `table` changed since the last call (as they are now) and the keys of those gone;
        the log is emptied. `track_changes` must have been called."""
        log = f"changed_{table}"
        if self._conn.total_changes == self._changes_taken.get(table):
            # No row of this connection written since the logs were emptied (the TEMP triggers see only
            # this connection's writes too): nothing to read. Spares a transaction per table per snapshot.
            return [], []
        rows: list[sqlite3.Row] = []
        # A private in-memory database: the lock alone keeps the three statements together (no other
        # connection exists); a file's take is one transaction.
        with self._reading if self.path is None else self.transaction() as conn:
            keys = [row[0] for row in conn.execute(f"SELECT key FROM {log}").fetchall()]
            if keys:
                rows = conn.execute(f"SELECT {columns} FROM main.{table} WHERE {key} IN (SELECT key FROM {log})"
                                    ).fetchall()
                conn.execute(f"DELETE FROM {log}")
            self._changes_taken[table] = conn.total_changes
        if not keys:
            return [], []
        found = {row[key] for row in rows}
        return rows, [k for k in keys if k not in found]


class _Transaction:
    """The context of `_Database.transaction`: the lock held, BEGIN (IMMEDIATE for writes) ... COMMIT,
    ROLLBACK on any exception. It keeps no state of its own between enter and exit (the database does,
    under its lock), so one serves every transaction of its database."""

    __slots__ = ("_begin", "_db")

    def __init__(self, db: _Database, *, write: bool) -> None:
        self._db = db
        self._begin = "BEGIN IMMEDIATE" if write else "BEGIN"

    def __enter__(self) -> sqlite3.Connection:
        db = self._db
        db._lock.acquire()
        try:
            db._conn.execute(self._begin)
        except BaseException as exc:
            db._lock.release()
            if isinstance(exc, sqlite3.OperationalError):
                raise db._unavailable(exc) from exc
            raise
        return db._conn

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        db = self._db
        try:
            if exc is not None:
                db._rollback()
                if isinstance(exc, sqlite3.OperationalError) and _is_transient(exc):
                    raise db._unavailable(exc) from exc
                return  # the exception goes on as it is
            try:
                db._conn.execute("COMMIT")
            except sqlite3.OperationalError as failure:
                db._rollback()
                raise db._unavailable(failure) from failure
            written, db.outbox_written = db.outbox_written, False
        finally:
            db._lock.release()
        if written:
            for hook in list(db._outbox_hooks):
                hook()


class _Reading:
    """The context of a read on a private in-memory database: its lock held, no BEGIN/COMMIT."""

    __slots__ = ("_conn", "_lock")

    def __init__(self, lock: threading.Lock, conn: sqlite3.Connection) -> None:
        self._lock = lock
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        return self._conn

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def _dump(value: Any) -> str:
    # No coercion: ints stay ints, "10" stays a string. NaN/Infinity are not JSON: refuse them.
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _constraint(exc: sqlite3.IntegrityError) -> ConstraintViolation:
    return ConstraintViolation(str(exc))


class _SqliteOutboxStore:
    """The outbox half shared by both databases, plus the helpers common to both stores."""

    def __init__(self, path: str | None, database: str, clock: Clock | None, timeout: float) -> None:
        self._db = _Database(path, database, timeout)
        self._clock: Clock = clock or SystemClock()
        self._tracking = False  # whether changed rows are being noted (changed_payments / changed_purchases)

    @property
    def path(self) -> str | None:
        """The database file, or None for a private in-memory database."""
        return self._db.path

    def close(self) -> None:
        self._db.close()

    def reset(self, clock: Clock) -> None:
        """Empty again, stamping by `clock` from now on (see _Database.reset; in-memory stores only)."""
        self._db.reset()
        self._clock = clock

    # --- OutboxStore -------------------------------------------------------------------------------

    def listen_outbox(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call `wake` whenever a transaction of this store that wrote an outbox row commits (an in-process
        signal: the relay's idle wait is cut short; it still polls). Returns the function that stops it."""
        return self._db.on_outbox_commit(wake)

    def pending_outbox(self, limit: int) -> list[OutboxMessage]:
        if limit <= 0:
            return []
        # asked by the relay and the settle's sizing every round: read anew only after a write
        return list(self._db.unchanged("pending_outbox", (limit,), lambda: self._pending_outbox(limit)))

    def _pending_outbox(self, limit: int) -> tuple[OutboxMessage, ...]:
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT id, topic, msg_key, value, headers, created_at FROM outbox"
                " WHERE published_at IS NULL ORDER BY id LIMIT ?", (limit,)).fetchall()
        return tuple(_outbox_message(row) for row in rows)

    def mark_published(self, ids: Sequence[int], at: float) -> None:
        """Idempotent: a row published twice (at least once delivery) keeps its first time."""
        if not ids:
            return
        with self._db.transaction() as conn:
            conn.executemany("UPDATE outbox SET published_at = ? WHERE id = ? AND published_at IS NULL",
                             [(at, int(i)) for i in ids])

    def enqueue_outbox(self, message: OutboxMessage) -> None:
        try:
            with self._db.transaction() as conn:
                self._insert_outbox(conn, message)
        except sqlite3.IntegrityError as exc:
            raise _constraint(exc) from exc

    # --- helpers beyond the port --------------------------------------------------------------------

    def outbox_rows(self) -> list[OutboxRow]:
        """Every outbox row, published or not, by id (evidence)."""
        with self._db.transaction(write=False) as conn:
            rows = conn.execute("SELECT id, topic, msg_key, value, headers, created_at, published_at"
                                " FROM outbox ORDER BY id").fetchall()
        return [OutboxRow(_outbox_message(row), row["published_at"]) for row in rows]

    def _insert_outbox(self, conn: sqlite3.Connection, message: OutboxMessage) -> int:
        """`message.created_at` 0.0 (the default) means "now" by the store's clock; `message.id` is
        ignored: the store assigns ids."""
        created_at = message.created_at or self._clock.now()
        headers = _dump([[name, value] for name, value in message.headers])
        cursor = conn.execute(
            "INSERT INTO outbox (topic, msg_key, value, headers, created_at) VALUES (?, ?, ?, ?, ?)",
            (message.topic, message.key, message.value, headers, created_at))
        self._db.outbox_written = True
        row_id = cursor.lastrowid
        assert row_id is not None
        return row_id


def _outbox_message(row: sqlite3.Row) -> OutboxMessage:
    headers = tuple((str(name), str(value)) for name, value in json.loads(row["headers"]))
    return OutboxMessage(topic=row["topic"], key=row["msg_key"], value=bytes(row["value"]),
                         headers=headers, id=row["id"], created_at=row["created_at"])


_PAYMENT_COLUMNS = ("id, student_id, course_id, amount_cents, currency, status, provider,"
                    " provider_payment_id, metadata, created_at, confirmed_at")


def _payment(row: sqlite3.Row) -> Payment:
    return Payment(
        id=row["id"], student_id=row["student_id"], course_id=row["course_id"],
        amount_cents=row["amount_cents"], currency=row["currency"], status=PaymentStatus(row["status"]),
        provider=row["provider"], provider_payment_id=row["provider_payment_id"],
        metadata=json.loads(row["metadata"]), created_at=row["created_at"],
        confirmed_at=row["confirmed_at"],
    )


class SqlitePaymentStore(_SqliteOutboxStore):
    """payments_db on SQLite. `path` None: a private in-memory database (gone when closed).
    `clock` stamps outbox rows whose created_at is unset. `timeout`: seconds to wait for a lock held
    by another connection before StoreUnavailable."""

    def __init__(self, path: str | None = None, *, clock: Clock | None = None,
                 timeout: float = 5.0) -> None:
        super().__init__(path, PAYMENTS_DB, clock, timeout)

    def insert_payment(self, payment: Payment) -> None:
        try:
            with self._db.transaction() as conn:
                conn.execute(
                    f"INSERT INTO payments ({_PAYMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (payment.id, payment.student_id, payment.course_id, payment.amount_cents,
                     payment.currency, str(payment.status), payment.provider, payment.provider_payment_id,
                     _dump(payment.metadata), payment.created_at, payment.confirmed_at))
        except sqlite3.IntegrityError as exc:
            raise _constraint(exc) from exc

    def get_payment(self, payment_id: str) -> Payment | None:
        with self._db.transaction(write=False) as conn:
            row = conn.execute(f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE id = ?",
                               (payment_id,)).fetchone()
        return None if row is None else _payment(row)

    def save_status(self, payment: Payment, outbox: OutboxMessage | None) -> None:
        """P3. Writes status, provider, provider_payment_id and confirmed_at only (courseId, amount and
        metadata are immutable, P2), then the outbox row, in one transaction."""
        try:
            with self._db.transaction() as conn:
                cursor = conn.execute(
                    "UPDATE payments SET status = ?, provider = ?, provider_payment_id = ?,"
                    " confirmed_at = ? WHERE id = ?",
                    (str(payment.status), payment.provider, payment.provider_payment_id,
                     payment.confirmed_at, payment.id))
                if cursor.rowcount != 1:
                    raise RowNotFound(f"payment {payment.id} does not exist")
                if outbox is not None:
                    self._insert_outbox(conn, outbox)
        except sqlite3.IntegrityError as exc:
            raise _constraint(exc) from exc

    def find_succeeded(self, payment_id: str, student_id: str) -> Payment | None:
        with self._db.transaction(write=False) as conn:
            row = conn.execute(
                f"SELECT {_PAYMENT_COLUMNS} FROM payments"
                " WHERE id = ? AND student_id = ? AND status = 'succeeded'",
                (payment_id, student_id)).fetchone()
        return None if row is None else _payment(row)

    def succeeded_confirmed_before(self, before: float, after: float | None = None) -> list[tuple[str, float]]:
        """Oldest confirmation first. Asked by the reconciler every settle round: read anew only after a write."""
        return list(self._db.unchanged("succeeded_confirmed_before", (before, after),
                                       lambda: tuple(self._succeeded_confirmed_before(before, after))))

    def _succeeded_confirmed_before(self, before: float, after: float | None) -> list[tuple[str, float]]:
        with self._db.transaction(write=False) as conn:
            cursor = conn.cursor()
            cursor.row_factory = None  # plain tuples, made in C: this runs on every settle round
            since = "" if after is None else " AND confirmed_at > ?"
            rows: list[tuple[str, float]] = cursor.execute(
                f"SELECT id, confirmed_at FROM payments WHERE status = 'succeeded' AND confirmed_at <= ?{since}"
                " ORDER BY confirmed_at, id", (before,) + (() if after is None else (after,))).fetchall()
        return rows

    def changed_payments(self) -> tuple[list[Payment], list[str]]:
        """Payments inserted or updated since the last call, and ids of payments deleted (the first call
        starts the tracking and returns every payment). For a cheap snapshot after every step."""
        if not self._tracking:
            self._tracking = True
            self._db.track_changes("payments", "id")
            return self.all_payments(), []
        rows, gone = self._db.take_changed("payments", "id", _PAYMENT_COLUMNS)
        return [_payment(row) for row in rows], gone

    def count_payments(self) -> int:
        return int(self._db.unchanged("count_payments", (), self._count_payments))

    def _count_payments(self) -> int:
        with self._db.transaction(write=False) as conn:
            return int(conn.execute("SELECT count(*) FROM payments").fetchone()[0])

    def all_payments(self) -> list[Payment]:
        """Oldest first (created_at, then id)."""
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(
                f"SELECT {_PAYMENT_COLUMNS} FROM payments ORDER BY created_at, id").fetchall()
        return [_payment(row) for row in rows]


_IN_CHUNK = 500  # ids per `IN (...)`: SQLite limits the parameters of one statement
_PURCHASE_COLUMNS = ("id, payment_id, student_id, course_id, purchase_tier, metadata, metadata_source,"
                     " is_active, created_at")


def _purchase(row: sqlite3.Row) -> Purchase:
    return Purchase(
        id=row["id"], payment_id=row["payment_id"], student_id=row["student_id"],
        course_id=row["course_id"], purchase_tier=row["purchase_tier"],
        metadata=json.loads(row["metadata"]), metadata_source=row["metadata_source"],
        is_active=bool(row["is_active"]), created_at=row["created_at"],
    )


class SqliteCourseStore(_SqliteOutboxStore):
    """courses_db on SQLite. `path` None: a private in-memory database. `clock` stamps processed_events
    rows and outbox rows whose created_at is unset."""

    def __init__(self, path: str | None = None, *, clock: Clock | None = None,
                 timeout: float = 5.0) -> None:
        super().__init__(path, COURSES_DB, clock, timeout)

    def record_purchase(self, purchase: Purchase, consumer: str, idempotency_key: str,
                        outbox: OutboxMessage | None, *, track: bool = True) -> bool:
        """W6. False, nothing written, when the key was processed or the payment has a purchase. Any
        other broken constraint (purchaseTier 250, a reused purchase id) is ConstraintViolation."""
        try:
            with self._db.transaction() as conn:
                if track and self._processed(conn, consumer, idempotency_key):
                    return False
                conn.execute(
                    f"INSERT INTO student_course_purchases ({_PURCHASE_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (purchase.id, purchase.payment_id, purchase.student_id, purchase.course_id,
                     purchase.purchase_tier, _dump(purchase.metadata), purchase.metadata_source,
                     int(purchase.is_active), purchase.created_at))
                if track:
                    conn.execute("INSERT INTO processed_events (consumer, idempotency_key, processed_at)"
                                 " VALUES (?, ?, ?)", (consumer, idempotency_key, self._clock.now()))
                if outbox is not None:
                    self._insert_outbox(conn, outbox)
                return True
        except sqlite3.IntegrityError as exc:
            # Rolled back. A lost race is checked, not assumed: only an existing purchase for this
            # payment (or, under concurrency, an existing tracking row) turns the error into False.
            name = getattr(exc, "sqlite_errorname", "")
            text = str(exc)
            if (name == "SQLITE_CONSTRAINT_UNIQUE" and "student_course_purchases.payment_id" in text
                    and self.purchase_for_payment(purchase.payment_id) is not None):
                return False
            if (track and name == "SQLITE_CONSTRAINT_PRIMARYKEY" and "processed_events." in text
                    and self.is_processed(consumer, idempotency_key)):
                return False
            raise _constraint(exc) from exc

    def is_processed(self, consumer: str, idempotency_key: str) -> bool:
        with self._db.transaction(write=False) as conn:
            return self._processed(conn, consumer, idempotency_key)

    def mark_processed(self, consumer: str, idempotency_key: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("INSERT INTO processed_events (consumer, idempotency_key, processed_at)"
                         " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                         (consumer, idempotency_key, self._clock.now()))

    def purchases_for_student(self, student_id: str) -> list[Purchase]:
        """Active purchases, oldest first (created_at, then id)."""
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(
                f"SELECT {_PURCHASE_COLUMNS} FROM student_course_purchases"
                " WHERE student_id = ? AND is_active = 1 ORDER BY created_at, id", (student_id,)).fetchall()
        return [_purchase(row) for row in rows]

    def purchase_for_payment(self, payment_id: str) -> Purchase | None:
        with self._db.transaction(write=False) as conn:
            row = conn.execute(f"SELECT {_PURCHASE_COLUMNS} FROM student_course_purchases"
                               " WHERE payment_id = ?", (payment_id,)).fetchone()
        return None if row is None else _purchase(row)

    def purchased_payments(self, payment_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        ids = list(dict.fromkeys(payment_ids))
        with self._db.transaction(write=False) as conn:
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start:start + _IN_CHUNK]
                found.update(row[0] for row in conn.execute(
                    "SELECT payment_id FROM student_course_purchases"
                    f" WHERE payment_id IN ({', '.join('?' * len(chunk))})", chunk).fetchall())
        return found

    def changed_purchases(self) -> tuple[list[Purchase], list[str]]:
        """Like SqlitePaymentStore.changed_payments, for purchases."""
        if not self._tracking:
            self._tracking = True
            self._db.track_changes("student_course_purchases", "id")
            return self.all_purchases(), []
        rows, gone = self._db.take_changed("student_course_purchases", "id", _PURCHASE_COLUMNS)
        return [_purchase(row) for row in rows], gone

    def all_purchases(self) -> list[Purchase]:
        """Active or not, oldest first (created_at, then id)."""
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(f"SELECT {_PURCHASE_COLUMNS} FROM student_course_purchases"
                                " ORDER BY created_at, id").fetchall()
        return [_purchase(row) for row in rows]

    # --- helpers beyond the port --------------------------------------------------------------------

    def processed_events(self) -> list[ProcessedEvent]:
        """Every tracking row, in processing order (evidence)."""
        with self._db.transaction(write=False) as conn:
            rows = conn.execute("SELECT consumer, idempotency_key, processed_at FROM processed_events"
                                " ORDER BY processed_at, rowid").fetchall()
        return [ProcessedEvent(row["consumer"], row["idempotency_key"], row["processed_at"])
                for row in rows]

    @staticmethod
    def _processed(conn: sqlite3.Connection, consumer: str, idempotency_key: str) -> bool:
        row = conn.execute("SELECT 1 FROM processed_events WHERE consumer = ? AND idempotency_key = ?",
                           (consumer, idempotency_key)).fetchone()
        return row is not None
