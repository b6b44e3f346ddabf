"""The real stores: payments_db and courses_db on PostgreSQL (`PostgresPaymentStore`,
`PostgresCourseStore`), the twins of sqlite_store.py, held to the same conformance suites.

- Connections: psycopg 3 through a small `psycopg_pool.ConnectionPool` (1..4 connections by default),
  opened on construction and checked on checkout, so a server restart costs one failed call at most.
  `close()` closes the pool.
- Schema: `contracts/db/postgres/<database>.sql`, applied on construction. Every statement is
  idempotent, but two processes running `CREATE TABLE IF NOT EXISTS` at once can still collide in
  PostgreSQL's catalogue, so the DDL runs under a transaction-scoped advisory lock. The tables go to the
  first schema of the connection's `search_path` (the tests give each test its own schema that way).
- Transactions: every port method is one transaction (autocommit connections: explicit
  `conn.transaction()` blocks, or one statement that is a transaction by itself), READ COMMITTED.
  `record_purchase` checks processed_events, then inserts;
  two workers racing on the same payment meet at the UNIQUE index: the loser's INSERT waits for the
  winner's commit, fails with a unique violation, its transaction is rolled back, and the adapter checks
  (in a new transaction) that the winner's row really exists before answering False, as the port says.
- Timestamps: the port's float epoch seconds <-> TIMESTAMPTZ, microsecond precision. A float with more
  digits than that comes back rounded to the microsecond (floats with few binary digits, such as the
  manual clock's, round-trip exactly). Stored in UTC; the session time zone does not matter.
- JSON: metadata is JSON (kept as written: JSONB refuses `\\u0000` in strings, which the metadata
  contract allows and SQLite stores), outbox headers JSONB; both read with `json.loads`, never coerced:
  10 stays an int, "10" a string, 2.5 a float. NaN/Infinity are not JSON: refused before the write, as
  SQLite does.
- Ordering: ties on a timestamp are broken by id with `COLLATE "C"` (byte order), which is SQLite's
  default text order, whatever the database's collation.

Errors: connection failures and timeouts (`psycopg.OperationalError`, which includes the pool's
`PoolTimeout`, serialization failures and cancelled statements) are `StoreUnavailable`; a broken
constraint or a value PostgreSQL rejects (`IntegrityError`, `DataError`) is `ConstraintViolation`;
`save_status` on a payment never inserted is `RowNotFound`."""

from __future__ import annotations

import json
import logging
import select
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row
from psycopg.types.json import Json, Jsonb
from psycopg_pool import ConnectionPool

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
from kcverify.reference.ports import Confirmation

# The constraint names of contracts/db/postgres/courses_db.sql that mean "a rival won the race".
PURCHASE_PAYMENT_UNIQUE = "purchases_payment_id_unique"
PROCESSED_EVENTS_PKEY = "processed_events_pkey"

# NOTIFY channel of a committed outbox write (listen_outbox); LISTEN_TIMEOUT: how often the listener
# looks whether it was stopped.
OUTBOX_CHANNEL = "kcverify_outbox"
LISTEN_TIMEOUT = 1.0
# A pooled connection idle longer than this (seconds) is checked with a round trip before it is handed out.
IDLE_CHECK_AFTER = 1.0
_RETURNED_KEPT = 256  # return times remembered (by connection id) before the table starts over

log = logging.getLogger("kcverify.reference.adapters.postgres_store")

# One key for every kcverify DDL run: serializes concurrent `CREATE ... IF NOT EXISTS` (see docstring).
_DDL_LOCK = 0x6B63_7665_7269_6679  # "kcverify"

Row = dict[str, Any]
T = TypeVar("T")


def _to_db_time(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _from_db_time(value: datetime) -> float:
    # aware datetime: exact integer microseconds divided once, the closest float to the stored instant
    return value.timestamp()


def _opt_time(value: datetime | None) -> float | None:
    return None if value is None else _from_db_time(value)


def _dumps(value: Any) -> str:
    # No coercion; NaN/Infinity are not JSON, refuse them (as sqlite_store does).
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _jsonb(value: Any) -> Jsonb:
    _dumps(value)  # raise ValueError here, before the transaction, not inside the driver
    return Jsonb(value, dumps=_dumps)


def _json(value: Any) -> Json:
    _dumps(value)  # as _jsonb
    return Json(value, dumps=_dumps)


class _Database:
    """A connection pool on one database, and transactions on it."""

    def __init__(self, dsn: str, database: str, *, min_size: int, max_size: int, timeout: float,
                 connect_timeout: float, application_name: str | None) -> None:
        self.dsn = dsn
        self._name = database
        self._returned: dict[int, float] = {}  # id(connection) -> when it was last given back
        self._pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            dsn, min_size=min_size, max_size=max_size, timeout=timeout, open=False,
            name=f"kcverify-{database}",
            check=self._check,
            kwargs={"autocommit": True, "row_factory": dict_row,
                    "connect_timeout": max(1, round(connect_timeout)),
                    "application_name": application_name or f"kcverify-{database}"},
            connection_class=psycopg.Connection[Row],
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
        except psycopg.OperationalError as exc:
            self._pool.close()  # else its workers go on trying to connect in the background
            reason = _why_not(dsn, connect_timeout) or str(exc)
            raise StoreUnavailable(f"{database}: cannot connect to {_redacted(dsn)}: {reason}") from exc
        try:
            with self.transaction() as conn:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
                conn.execute(ddl("postgres", database))
        except BaseException:
            self._pool.close()
            raise

    def _check(self, conn: psycopg.Connection[Row]) -> None:
        """A connection broken while idle (a server restart) is replaced on checkout, not handed out. The
        check costs a round trip, so a connection given back less than IDLE_CHECK_AFTER ago is taken as it
        is (under load that is every checkout) unless its socket has something to read: an idle
        connection has nothing to read until the server ends it (its last message, then the close)."""
        returned = self._returned.get(id(conn))
        if returned is not None and time.monotonic() - returned < IDLE_CHECK_AFTER and not _readable(conn):
            return
        ConnectionPool.check_connection(conn)

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Row]]:
        """One transaction on a pooled connection: COMMIT at the end, ROLLBACK on any exception
        (SimulatedCrash included: a crashed process's transaction never commits).

        Not in libpq's pipeline mode: psycopg wraps a transaction in a pipeline with a sync of its own at
        BEGIN and at the end, and measured on this stack (1,000 calls each, one connection) the confirm's
        transaction took 690 us of wall time and 500 us of client CPU pipelined against 510 and 290
        without, the purchase's 830-1,000 and 680-770 against 800 and 500."""
        with self._connection(transaction=True) as conn:
            yield conn

    @contextmanager
    def statement(self) -> Iterator[psycopg.Connection[Row]]:
        """A pooled autocommit connection for ONE statement, which PostgreSQL runs as a transaction of its
        own: the same atomicity and READ COMMITTED snapshot as `transaction()` gives it, without the BEGIN
        and COMMIT round trips (two of the three a single read costs otherwise). Only for a block that
        executes exactly one statement."""
        with self._connection(transaction=False) as conn:
            yield conn

    @contextmanager
    def _connection(self, *, transaction: bool) -> Iterator[psycopg.Connection[Row]]:
        try:
            with self._pool.connection() as conn:
                try:
                    if transaction:
                        with conn.transaction():
                            yield conn
                    else:
                        yield conn
                finally:  # noted here, not with the pool's `reset` hook: that makes every return go
                    # through a pool worker thread
                    if len(self._returned) > _RETURNED_KEPT:  # ids of connections closed since
                        self._returned.clear()
                    self._returned[id(conn)] = time.monotonic()
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"{self._name}: {exc}") from exc
        except (psycopg.IntegrityError, psycopg.DataError) as exc:
            raise _Constraint(exc) from exc

    def close(self) -> None:
        self._pool.close()


def _readable(conn: psycopg.Connection[Row]) -> bool:
    """Whether an idle connection's socket has data or an end of file waiting (a syscall, no round trip)."""
    try:
        ready, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return True  # no usable socket: the full check decides
    return bool(ready)


class _Constraint(ConstraintViolation):
    """A ConstraintViolation that keeps the driver's error, so `record_purchase` can tell a lost race
    (by the constraint's name) from bad data."""

    def __init__(self, cause: psycopg.Error) -> None:
        super().__init__(str(cause).strip())
        self.cause = cause
        self.constraint: str | None = cause.diag.constraint_name
        self.unique = isinstance(cause, pg_errors.UniqueViolation)


def _why_not(dsn: str, connect_timeout: float) -> str | None:
    """The driver's own reason a connection fails ("Connection refused", "database does not exist"):
    the pool only says it timed out."""
    try:
        psycopg.connect(dsn, connect_timeout=max(1, round(connect_timeout))).close()
    except psycopg.Error as exc:
        return " ".join(str(exc).split())
    return None


def _redacted(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable dsn>"
    params.pop("password", None)
    return psycopg.conninfo.make_conninfo("", **{k: v for k, v in params.items() if v is not None})


class _PostgresOutboxStore:
    """The outbox half shared by both databases, plus the helpers common to both stores."""

    def __init__(self, dsn: str, database: str, clock: Clock | None, *, min_size: int, max_size: int,
                 timeout: float, connect_timeout: float, application_name: str | None) -> None:
        self._db = _Database(dsn, database, min_size=min_size, max_size=max_size, timeout=timeout,
                             connect_timeout=connect_timeout, application_name=application_name)
        self._clock: Clock = clock or SystemClock()

    @property
    def dsn(self) -> str:
        return self._db.dsn

    def close(self) -> None:
        self._db.close()

    # --- OutboxStore -------------------------------------------------------------------------------

    def pending_outbox(self, limit: int) -> list[OutboxMessage]:
        if limit <= 0:
            return []
        return self._read(
            "SELECT id, topic, msg_key, value, headers, created_at FROM outbox"
            " WHERE published_at IS NULL ORDER BY id LIMIT %s", (limit,), _outbox_message)

    def mark_published(self, ids: Sequence[int], at: float) -> None:
        """Idempotent: a row published twice (at least once delivery) keeps its first time."""
        if not ids:
            return
        with self._db.statement() as conn:
            conn.execute("UPDATE outbox SET published_at = %s WHERE id = ANY(%s) AND published_at IS NULL",
                         (_to_db_time(at), [int(i) for i in ids]))

    def enqueue_outbox(self, message: OutboxMessage) -> None:
        with self._db.transaction() as conn:
            self._insert_outbox(conn, message)

    # --- helpers beyond the port --------------------------------------------------------------------

    def outbox_rows(self) -> list[OutboxRow]:
        """Every outbox row, published or not, by id (evidence)."""
        return self._read("SELECT id, topic, msg_key, value, headers, created_at, published_at"
                          " FROM outbox ORDER BY id", (),
                          lambda row: OutboxRow(_outbox_message(row), _opt_time(row["published_at"])))

    # --- internals ----------------------------------------------------------------------------------

    def _read(self, query: str, params: Sequence[Any], convert: Callable[[Row], T]) -> list[T]:
        with self._db.statement() as conn:  # one SELECT
            rows = conn.execute(query, params).fetchall()
        return [convert(row) for row in rows]

    def _read_one(self, query: str, params: Sequence[Any], convert: Callable[[Row], T]) -> T | None:
        found = self._read(query, params, convert)
        return found[0] if found else None

    def _insert_outbox(self, conn: psycopg.Connection[Row], message: OutboxMessage) -> None:
        """`message.created_at` 0.0 (the default) means "now" by the store's clock; `message.id` is
        ignored: the store assigns ids."""
        created_at = message.created_at or self._clock.now()
        headers = _jsonb([[name, value] for name, value in message.headers])
        # pg_notify is delivered when (and only if) the transaction commits: the relays wake at once
        # (listen_outbox). One statement with the INSERT: one round trip, not two.
        conn.execute(
            "WITH added AS (INSERT INTO outbox (topic, msg_key, value, headers, created_at)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id)"
            f" SELECT pg_notify('{OUTBOX_CHANNEL}', '') FROM added",
            (message.topic, message.key, message.value, headers, _to_db_time(created_at)))

    def listen_outbox(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call `wake` whenever a transaction that wrote an outbox row commits, in any process (LISTEN on a
        connection of its own, in a thread of its own; a lost connection is reopened every second). The
        relay still polls: a notification only cuts its idle wait short. Returns the function that stops
        listening."""
        listener = _OutboxListener(self._db.dsn, wake)
        listener.start()
        return listener.stop


class _OutboxListener(threading.Thread):
    """LISTEN for OUTBOX_CHANNEL; `wake()` on every notification (and once after each (re)connect, for
    what may have committed while it was not listening)."""

    def __init__(self, dsn: str, wake: Callable[[], None]) -> None:
        super().__init__(name="kcverify-outbox-listener", daemon=True)
        self._dsn = dsn
        self._wake = wake
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=5)

    def run(self) -> None:
        while not self._stopped.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True, connect_timeout=5,
                                     application_name="kcverify-outbox-listener") as conn:
                    conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
                    self._wake()
                    while not self._stopped.is_set():
                        for _ in conn.notifies(timeout=LISTEN_TIMEOUT, stop_after=1):
                            self._wake()
            except psycopg.Error as exc:
                log.warning("outbox listener: %s; listening again in 1 s (the relay polls meanwhile)", exc)
                self._stopped.wait(1.0)


def _outbox_message(row: Row) -> OutboxMessage:
    headers = tuple((str(name), str(value)) for name, value in row["headers"])
    return OutboxMessage(topic=row["topic"], key=row["msg_key"], value=bytes(row["value"]),
                         headers=headers, id=int(row["id"]), created_at=_from_db_time(row["created_at"]))


_PAYMENT_COLUMNS = ("id, student_id, course_id, amount_cents, currency, status, provider,"
                    " provider_payment_id, metadata, created_at, confirmed_at")


def _payment(row: Row) -> Payment:
    return Payment(
        id=row["id"], student_id=row["student_id"], course_id=row["course_id"],
        amount_cents=int(row["amount_cents"]), currency=row["currency"], status=PaymentStatus(row["status"]),
        provider=row["provider"], provider_payment_id=row["provider_payment_id"],
        metadata=row["metadata"], created_at=_from_db_time(row["created_at"]),
        confirmed_at=_opt_time(row["confirmed_at"]),
    )


class PostgresPaymentStore(_PostgresOutboxStore):
    """payments_db on PostgreSQL (see the module docstring). `clock` stamps outbox rows whose
    created_at is unset. `pool_min`/`pool_max`: pool size; `timeout`: seconds to wait for a pooled
    connection (and for the pool to open) before StoreUnavailable; `connect_timeout`: per connection
    attempt; `application_name`: how the connections show in pg_stat_activity (default
    `kcverify-payments_db`). Raises StoreUnavailable when the server cannot be reached on construction."""

    def __init__(self, dsn: str, *, clock: Clock | None = None, pool_min: int = 1, pool_max: int = 4,
                 timeout: float = 5.0, connect_timeout: float = 3.0, application_name: str | None = None) -> None:
        super().__init__(dsn, PAYMENTS_DB, clock, min_size=pool_min, max_size=pool_max, timeout=timeout,
                         connect_timeout=connect_timeout, application_name=application_name)

    def insert_payment(self, payment: Payment) -> None:
        metadata = _json(payment.metadata)
        with self._db.statement() as conn:
            conn.execute(
                f"INSERT INTO payments ({_PAYMENT_COLUMNS})"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (payment.id, payment.student_id, payment.course_id, payment.amount_cents, payment.currency,
                 str(payment.status), payment.provider, payment.provider_payment_id, metadata,
                 _to_db_time(payment.created_at),
                 None if payment.confirmed_at is None else _to_db_time(payment.confirmed_at)))

    def get_payment(self, payment_id: str) -> Payment | None:
        return self._read_one(f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE id = %s", (payment_id,),
                              _payment)

    def save_status(self, payment: Payment, outbox: OutboxMessage | None) -> None:
        """P3. Writes status, provider, provider_payment_id and confirmed_at only (courseId, amount and
        metadata are immutable, P2), then the outbox row, in one transaction."""
        with self._db.transaction() as conn:
            updated = conn.execute(
                "UPDATE payments SET status = %s, provider = %s, provider_payment_id = %s, confirmed_at = %s"
                " WHERE id = %s RETURNING id",
                (str(payment.status), payment.provider, payment.provider_payment_id,
                 None if payment.confirmed_at is None else _to_db_time(payment.confirmed_at), payment.id)).fetchall()
            if len(updated) != 1:
                raise RowNotFound(f"payment {payment.id} does not exist")
            if outbox is not None:
                self._insert_outbox(conn, outbox)

    def find_succeeded(self, payment_id: str, student_id: str) -> Payment | None:
        return self._read_one(
            f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE id = %s AND student_id = %s"
            " AND status = 'succeeded'", (payment_id, student_id), _payment)

    def succeeded_confirmed_before(self, before: float, after: float | None = None) -> list[tuple[str, float]]:
        """Oldest confirmation first."""
        since = "" if after is None else " AND confirmed_at > %s"
        return self._read(
            f"SELECT id, confirmed_at FROM payments WHERE status = 'succeeded' AND confirmed_at <= %s{since}"
            ' ORDER BY confirmed_at, id COLLATE "C"',
            (_to_db_time(before),) + (() if after is None else (_to_db_time(after),)),
            lambda row: Confirmation(row["id"], _from_db_time(row["confirmed_at"])))

    def all_payments(self) -> list[Payment]:
        """Oldest first (created_at, then id)."""
        return self._read(f'SELECT {_PAYMENT_COLUMNS} FROM payments ORDER BY created_at, id COLLATE "C"', (),
                          _payment)


_PURCHASE_COLUMNS = ("id, payment_id, student_id, course_id, purchase_tier, metadata, metadata_source,"
                     " is_active, created_at")


def _purchase(row: Row) -> Purchase:
    return Purchase(
        id=row["id"], payment_id=row["payment_id"], student_id=row["student_id"],
        course_id=row["course_id"], purchase_tier=int(row["purchase_tier"]), metadata=row["metadata"],
        metadata_source=row["metadata_source"], is_active=bool(row["is_active"]),
        created_at=_from_db_time(row["created_at"]),
    )


class PostgresCourseStore(_PostgresOutboxStore):
    """courses_db on PostgreSQL (see the module docstring). `clock` stamps processed_events rows and
    outbox rows whose created_at is unset; the other options are PostgresPaymentStore's."""

    def __init__(self, dsn: str, *, clock: Clock | None = None, pool_min: int = 1, pool_max: int = 4,
                 timeout: float = 5.0, connect_timeout: float = 3.0, application_name: str | None = None) -> None:
        super().__init__(dsn, COURSES_DB, clock, min_size=pool_min, max_size=pool_max, timeout=timeout,
                         connect_timeout=connect_timeout, application_name=application_name)

    def record_purchase(self, purchase: Purchase, consumer: str, idempotency_key: str,
                        outbox: OutboxMessage | None, *, track: bool = True) -> bool:
        """W6. False, nothing written, when the key was processed or the payment has a purchase (also
        when a concurrent worker wins either race while this one runs). Any other broken constraint
        (purchaseTier 250, a reused purchase id) is ConstraintViolation."""
        metadata = _json(purchase.metadata)
        try:
            with self._db.transaction() as conn:
                if track and self._processed(conn, consumer, idempotency_key):
                    return False
                conn.execute(
                    f"INSERT INTO student_course_purchases ({_PURCHASE_COLUMNS})"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (purchase.id, purchase.payment_id, purchase.student_id, purchase.course_id,
                     purchase.purchase_tier, metadata, purchase.metadata_source, purchase.is_active,
                     _to_db_time(purchase.created_at)))
                if track:
                    conn.execute("INSERT INTO processed_events (consumer, idempotency_key, processed_at)"
                                 " VALUES (%s, %s, %s)", (consumer, idempotency_key, _to_db_time(self._clock.now())))
                if outbox is not None:
                    self._insert_outbox(conn, outbox)
                return True
        except _Constraint as exc:
            # Rolled back. A lost race is checked, not assumed: only an existing purchase for this
            # payment (or, under concurrency, an existing tracking row) turns the error into False.
            if (exc.unique and exc.constraint == PURCHASE_PAYMENT_UNIQUE
                    and self.purchase_for_payment(purchase.payment_id) is not None):
                return False
            if (track and exc.unique and exc.constraint == PROCESSED_EVENTS_PKEY
                    and self.is_processed(consumer, idempotency_key)):
                return False
            raise

    def is_processed(self, consumer: str, idempotency_key: str) -> bool:
        with self._db.statement() as conn:
            return self._processed(conn, consumer, idempotency_key)

    def mark_processed(self, consumer: str, idempotency_key: str) -> None:
        with self._db.statement() as conn:
            conn.execute("INSERT INTO processed_events (consumer, idempotency_key, processed_at)"
                         " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                         (consumer, idempotency_key, _to_db_time(self._clock.now())))

    def purchases_for_student(self, student_id: str) -> list[Purchase]:
        """Active purchases, oldest first (created_at, then id)."""
        return self._read(
            f"SELECT {_PURCHASE_COLUMNS} FROM student_course_purchases WHERE student_id = %s AND is_active"
            ' ORDER BY created_at, id COLLATE "C"', (student_id,), _purchase)

    def purchase_for_payment(self, payment_id: str) -> Purchase | None:
        return self._read_one(f"SELECT {_PURCHASE_COLUMNS} FROM student_course_purchases WHERE payment_id = %s",
                              (payment_id,), _purchase)

    def purchased_payments(self, payment_ids: Sequence[str]) -> set[str]:
        if not payment_ids:
            return set()
        return set(self._read("SELECT payment_id FROM student_course_purchases WHERE payment_id = ANY(%s)",
                              (list(payment_ids),), lambda row: str(row["payment_id"])))

    def all_purchases(self) -> list[Purchase]:
        """Active or not, oldest first (created_at, then id)."""
        return self._read(
            f'SELECT {_PURCHASE_COLUMNS} FROM student_course_purchases ORDER BY created_at, id COLLATE "C"', (),
            _purchase)

    # --- helpers beyond the port --------------------------------------------------------------------

    def processed_events(self) -> list[ProcessedEvent]:
        """Every tracking row, by processing time (evidence). Rows stamped at the same instant come in
        key order (PostgreSQL has no insertion order to fall back on, unlike SQLite's rowid)."""
        return self._read(
            'SELECT consumer, idempotency_key, processed_at FROM processed_events'
            ' ORDER BY processed_at, consumer COLLATE "C", idempotency_key COLLATE "C"', (),
            lambda row: ProcessedEvent(row["consumer"], row["idempotency_key"], _from_db_time(row["processed_at"])))

    @staticmethod
    def _processed(conn: psycopg.Connection[Row], consumer: str, idempotency_key: str) -> bool:
        row = conn.execute("SELECT 1 FROM processed_events WHERE consumer = %s AND idempotency_key = %s",
                           (consumer, idempotency_key)).fetchone()
        return row is not None
