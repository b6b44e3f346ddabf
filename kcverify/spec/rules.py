"""The SPEC rules the reference implements and the checks verify, by id. Reports cite these ids;
docs/spec-rules.md explains each one at length (a test keeps the two in step)."""

from __future__ import annotations

RULES: dict[str, str] = {
    "P1": "creating a payment validates its metadata; 422 with one entry per field; nothing stored on error",
    "P2": "confirmation needs a valid HMAC signature bound to this payment and to time (else 401) and may "
          "change only status and provider ids",
    "P3": "on success, status and the PURCHASE_CONFIRMED outbox row commit in one transaction; nothing is lost; "
          "outbox rows are published in commit order",
    "P4": "confirming again (a retry or a replay within the tolerance) is idempotent (200, no change, no second "
          "event); illegal transitions are 409",
    "P5": "on success the student's learning cache is invalidated (not sufficient alone, see S3)",
    "W1": "the worker consumes from the earliest offset, commits only after handling, and handles each partition "
          "in order (events keyed by studentId: a student's purchases follow the order of their confirmations)",
    "W2": "schema-invalid events are dead-lettered at once and never block the partition",
    "W3": "only a succeeded payment of that student grants a course (forged events grant nothing)",
    "W4": "the payment row wins the metadata merge; event-only keys are kept; the result satisfies the schema",
    "W5": "if payments_db cannot be read, complete event metadata is used (source event); else dead letter",
    "W6": "exactly one purchase and one PURCHASE_CREATED per payment, in one transaction with the tracking row",
    "W7": "transient failures: 3 attempts, backoff 1 s then 2 s, then dead letter with attempts 3",
    "W8": "a dead-lettered event can be replayed and then yields exactly one purchase",
    "S1": "the learning view lists every active purchase with merged metadata; only the student or an admin",
    "S2": "responses are cached 300 s with Age and Cache-Status; errors are never cached",
    "S3": "every learning response that starts after commit + bound shows the purchase (no stale set)",
    "S4": "an admin can invalidate a student's learning cache at once",
    "S5": "if the cache is down, reads fall back to the database (never an error)",
    "F1": "the frontend takes its five values from the purchase's metadata, with the app's fallbacks",
    "F2": "each value the student sees equals the value chosen at checkout",
    "I1": "every succeeded payment has exactly one purchase, eventually",
    "I2": "no purchase exists without a succeeded payment",
    "I3": "every event consumed was processed or dead-lettered; nothing is left unconsumed",
    "I4": "every HTTP response and every event conforms to its contract",
}
