-- version: 1.1.0
-- payments_db, PostgreSQL dialect (real stack). Same tables and constraints as
-- ../sqlite/payments_db.sql. Executed by the PostgreSQL adapter on start: every statement is
-- idempotent. Timestamps are TIMESTAMPTZ (microsecond precision); ids are TEXT (uuid strings, and
-- student/course ids are whatever the caller uses). Metadata is JSON, kept as written: JSONB would
-- refuse a string holding U+0000, which the metadata contract allows (a 500 on a valid request).

CREATE TABLE IF NOT EXISTS payments (
    id                  TEXT        NOT NULL PRIMARY KEY,
    student_id          TEXT        NOT NULL,
    course_id           TEXT        NOT NULL,
    amount_cents        BIGINT      NOT NULL CONSTRAINT payments_amount_positive CHECK (amount_cents > 0),
    currency            TEXT        NOT NULL,
    status              TEXT        NOT NULL CONSTRAINT payments_status_known
                            CHECK (status IN ('initiated', 'succeeded', 'failed', 'cancelled', 'refunded')),
    provider            TEXT        NOT NULL,
    provider_payment_id TEXT,
    -- the checkout metadata, verbatim: types are part of the contract (sessionCount stays an integer)
    metadata            JSON        NOT NULL CONSTRAINT payments_metadata_object
                            CHECK (json_typeof(metadata) = 'object'),
    created_at          TIMESTAMPTZ NOT NULL,
    confirmed_at        TIMESTAMPTZ
);

CREATE INDEX IF NOT EXISTS payments_by_student ON payments (student_id);
-- the reconciler's scan (I1): succeeded payments confirmed before a grace period
CREATE INDEX IF NOT EXISTS payments_by_status_confirmed ON payments (status, confirmed_at);

-- P3: written in the same transaction as the payment's status change; a relay publishes and marks.
CREATE TABLE IF NOT EXISTS outbox (
    id           BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic        TEXT        NOT NULL,
    msg_key      TEXT        NOT NULL,
    value        BYTEA       NOT NULL,
    -- Kafka headers as a JSON array of [name, value] pairs: order and repeats are kept
    headers      JSONB       NOT NULL DEFAULT '[]'::jsonb CONSTRAINT outbox_headers_array
                     CHECK (jsonb_typeof(headers) = 'array'),
    created_at   TIMESTAMPTZ NOT NULL,
    published_at TIMESTAMPTZ
);

CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
