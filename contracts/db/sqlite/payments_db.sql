-- version: 1.0.0
-- payments_db, SQLite dialect (embedded target). Same tables and constraints as
-- ../postgres/payments_db.sql. Loaded and executed by kcverify/reference/adapters/sqlite_store.py.
-- Timestamps are REAL seconds since the Unix epoch (they round-trip exactly as Python floats);
-- JSON columns are TEXT checked with json_valid. STRICT tables reject values of the wrong type.
-- Every statement is idempotent: the adapter runs this file on each open.

CREATE TABLE IF NOT EXISTS payments (
    id                  TEXT    NOT NULL PRIMARY KEY,
    student_id          TEXT    NOT NULL,
    course_id           TEXT    NOT NULL,
    amount_cents        INTEGER NOT NULL CONSTRAINT payments_amount_positive CHECK (amount_cents > 0),
    currency            TEXT    NOT NULL,
    status              TEXT    NOT NULL CONSTRAINT payments_status_known
                            CHECK (status IN ('initiated', 'succeeded', 'failed', 'cancelled', 'refunded')),
    provider            TEXT    NOT NULL,
    provider_payment_id TEXT,
    -- the checkout metadata, verbatim: types are part of the contract (sessionCount stays an integer)
    metadata            TEXT    NOT NULL CONSTRAINT payments_metadata_object
                            CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    created_at          REAL    NOT NULL,
    confirmed_at        REAL
) STRICT;

CREATE INDEX IF NOT EXISTS payments_by_student ON payments (student_id);
-- the reconciler's scan (I1): succeeded payments confirmed before a grace period
CREATE INDEX IF NOT EXISTS payments_by_status_confirmed ON payments (status, confirmed_at);

-- P3: written in the same transaction as the payment's status change; a relay publishes and marks.
CREATE TABLE IF NOT EXISTS outbox (
    id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    topic        TEXT    NOT NULL,
    msg_key      TEXT    NOT NULL,
    value        BLOB    NOT NULL,
    -- Kafka headers as a JSON array of [name, value] pairs: order and repeats are kept
    headers      TEXT    NOT NULL DEFAULT '[]' CONSTRAINT outbox_headers_array
                     CHECK (json_valid(headers) AND json_type(headers) = 'array'),
    created_at   REAL    NOT NULL,
    published_at REAL
) STRICT;

CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
