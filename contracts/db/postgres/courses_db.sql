-- version: 1.1.0
-- courses_db, PostgreSQL dialect (real stack). Same tables and constraints as
-- ../sqlite/courses_db.sql. Executed by the PostgreSQL adapter on start: every statement is
-- idempotent. Timestamps are TIMESTAMPTZ (microsecond precision); ids are TEXT. Metadata is JSON,
-- kept as written (JSONB cannot hold U+0000, which the metadata contract allows); headers are JSONB.

CREATE TABLE IF NOT EXISTS student_course_purchases (
    id              TEXT        NOT NULL PRIMARY KEY,
    -- W6: one purchase per payment (a student may buy the same course again with another payment).
    -- The adapter recognises a lost race by this constraint's name.
    payment_id      TEXT        NOT NULL CONSTRAINT purchases_payment_id_unique UNIQUE,
    student_id      TEXT        NOT NULL,
    course_id       TEXT        NOT NULL,
    purchase_tier   INTEGER     NOT NULL CONSTRAINT purchases_tier_range CHECK (purchase_tier BETWEEN 1 AND 200),
    -- the merged metadata (W4), verbatim
    metadata        JSON        NOT NULL CONSTRAINT purchases_metadata_object
                        CHECK (json_typeof(metadata) = 'object'),
    metadata_source TEXT        NOT NULL CONSTRAINT purchases_metadata_source_known
                        CHECK (metadata_source IN ('payment', 'event')),
    is_active       BOOLEAN     NOT NULL DEFAULT TRUE,
    created_at      TIMESTAMPTZ NOT NULL
);

-- the learning view (S1): a student's purchases, oldest first
CREATE INDEX IF NOT EXISTS purchases_by_student ON student_course_purchases (student_id, created_at);

-- W6: idempotency tracking, written in the same transaction as the purchase
CREATE TABLE IF NOT EXISTS processed_events (
    consumer        TEXT        NOT NULL,
    idempotency_key TEXT        NOT NULL,
    processed_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT processed_events_pkey PRIMARY KEY (consumer, idempotency_key)
);

-- W6: PURCHASE_CREATED rows, written in the same transaction as the purchase
CREATE TABLE IF NOT EXISTS outbox (
    id           BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic        TEXT        NOT NULL,
    msg_key      TEXT        NOT NULL,
    value        BYTEA       NOT NULL,
    headers      JSONB       NOT NULL DEFAULT '[]'::jsonb CONSTRAINT outbox_headers_array
                     CHECK (jsonb_typeof(headers) = 'array'),
    created_at   TIMESTAMPTZ NOT NULL,
    published_at TIMESTAMPTZ
);

CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
