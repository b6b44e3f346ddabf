"""What the SQL stores share, whatever the engine: the DDL loader, the two errors every store raises
for bad writes, and the evidence rows their helpers return.

The DDL lives in `contracts/db/<dialect>/<database>.sql` (no DDL in Python); `SqlitePaymentStore` and
`PostgresPaymentStore` (and the course stores) both load it from here, so one adapter never imports
another's module for it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from kcverify.contracts import contracts_dir
from kcverify.reference.domain import OutboxMessage

PAYMENTS_DB = "payments_db"
COURSES_DB = "courses_db"
DIALECTS = ("sqlite", "postgres")


class ConstraintViolation(ValueError):
    """A write broke a table constraint other than the one race the port tolerates (a purchase for the
    same payment): a CHECK (purchaseTier 250, amountCents 0, an unknown status), NOT NULL, a value of
    the wrong type, a duplicate primary key. Nothing was written. Bad data or a bug: never transient,
    do not retry. Shared by every store adapter (SQLite and PostgreSQL raise the same class)."""


class RowNotFound(LookupError):
    """`save_status` named a payment that was never inserted. Nothing was written."""


@dataclass(frozen=True)
class OutboxRow:
    """An outbox row with its publication time (None while pending), for evidence."""

    message: OutboxMessage
    published_at: float | None


@dataclass(frozen=True)
class ProcessedEvent:
    """A processed_events tracking row (W6), for evidence."""

    consumer: str
    idempotency_key: str
    processed_at: float


@cache
def ddl(dialect: str, database: str) -> str:
    """The DDL of `contracts/db/<dialect>/<database>.sql`; dialect `sqlite` | `postgres`, database
    `payments_db` | `courses_db`. Every statement in it is idempotent."""
    if dialect not in DIALECTS or database not in (PAYMENTS_DB, COURSES_DB):
        raise ValueError(f"no DDL for {dialect}/{database}")
    return (contracts_dir() / "db" / dialect / f"{database}.sql").read_text(encoding="utf-8")
