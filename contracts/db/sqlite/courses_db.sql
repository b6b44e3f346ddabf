-- version: 1.0.0
-- courses_db, SQLite dialect (embedded target). Same tables and constraints as
-- ../postgres/courses_db.sql. Loaded and executed by kcverify/reference/adapters/sqlite_store.py.
-- Timestamps are REAL seconds since the Unix epoch; JSON columns are TEXT checked with json_valid.
-- Every statement is idempotent: the adapter runs this file on each open.

CREATE TABLE IF NOT EXISTS student_course_purchases (
    id              TEXT    NOT NULL PRIMARY KEY,
    -- W6: one purchase per payment (a student may buy the same course again with another payment)
    payment_id      TEXT    NOT NULL CONSTRAINT purchases_payment_id_unique UNIQUE,
    student_id      TEXT    NOT NULL,
    course_id       TEXT    NOT NULL,
    purchase_tier   INTEGER NOT NULL CONSTRAINT purchases_tier_range CHECK (purchase_tier BETWEEN 1 AND 200),
    -- the merged metadata (W4), verbatim
    metadata        TEXT    NOT NULL CONSTRAINT purchases_metadata_object
                        CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    metadata_source TEXT    NOT NULL CONSTRAINT purchases_metadata_source_known
                        CHECK (metadata_source IN ('payment', 'event')),
    is_active       INTEGER NOT NULL DEFAULT 1 CONSTRAINT purchases_is_active_bool CHECK (is_active IN (0, 1)),
    created_at      REAL    NOT NULL
) STRICT;

-- the learning view (S1): a student's purchases, oldest first
CREATE INDEX IF NOT EXISTS purchases_by_student ON student_course_purchases (student_id, created_at);

-- W6: idempotency tracking, written in the same transaction as the purchase
CREATE TABLE IF NOT EXISTS processed_events (
    consumer        TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    processed_at    REAL NOT NULL,
    PRIMARY KEY (consumer, idempotency_key)
) STRICT;

-- W6: PURCHASE_CREATED rows, written in the same transaction as the purchase
CREATE TABLE IF NOT EXISTS outbox (
    id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    topic        TEXT    NOT NULL,
    msg_key      TEXT    NOT NULL,
    value        BLOB    NOT NULL,
    headers      TEXT    NOT NULL DEFAULT '[]' CONSTRAINT outbox_headers_array
                     CHECK (json_valid(headers) AND json_type(headers) = 'array'),
    created_at   REAL    NOT NULL,
    published_at REAL
) STRICT;

CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
