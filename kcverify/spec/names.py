"""The literal names the rules fix: topics, event types and version, consumer groups, the Kafka
headers an event carries, idempotency-key and cache-key formats, and the metadata fields. A system
that follows the rules uses exactly these strings, so both sides may import them."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# Topics (events of contracts/events/).
TOPIC_CONFIRMED = "purchase-confirmed"
TOPIC_CREATED = "purchase-created"
TOPIC_DLQ = "purchase-confirmed.dlq"
TOPICS = (TOPIC_CONFIRMED, TOPIC_CREATED, TOPIC_DLQ)

# Event types and the envelope version.
EVENT_CONFIRMED = "PURCHASE_CONFIRMED"
EVENT_CREATED = "PURCHASE_CREATED"
EVENT_VERSION = 1

# Consumer groups: the worker (W1) and the student service's cache invalidator (S3).
WORKER_GROUP = "purchase-worker"
INVALIDATOR_GROUP = "student-cache-invalidator"

# The components a scenario's run, kill, stop and restart steps name (the scenario schema's `component`),
# and the two HTTP services: the names a profile's `control` section gives its commands under.
SCENARIO_COMPONENTS = ("payment-relay", "purchase-worker", "course-relay", "cache-invalidator", "reconciler")
SERVICES = ("payment-service", "student-service")
COMPONENTS = (*SERVICES, *SCENARIO_COMPONENTS)

# The Kafka headers every event carries: they repeat these envelope fields. The Kafka key is studentId.
EVENT_HEADERS = ("eventId", "type", "correlationId", "idempotencyKey")

# Dead-letter reasons the rules name (W2, W3, W5).
DLQ_SCHEMA_VIOLATION = "schema_violation"
DLQ_PAYMENT_NOT_SUCCEEDED = "payment_not_succeeded"
DLQ_RETRIES_EXHAUSTED = "retries_exhausted"
DLQ_INVALID_METADATA = "invalid_metadata"

# P4: statuses only move forward (contracts/schemas/payment.schema.json): what each may become.
PAYMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    "initiated": frozenset({"succeeded", "failed", "cancelled"}),
    "succeeded": frozenset({"refunded"}),
    "failed": frozenset(),
    "cancelled": frozenset(),
    "refunded": frozenset(),
}

# Required checkout metadata (P1), and the five values the frontend shows (F1), in display order.
REQUIRED_METADATA = ("startDate", "classTime", "classTypeId", "scheduleType", "sessionCount")
DISPLAY_FIELDS = ("startDate", "classTime", "classTypeId", "scheduleType", "sessionCount")

# Where a purchase's metadata came from (W5).
SOURCE_PAYMENT = "payment"
SOURCE_EVENT = "event"

# The name of the student service's cache in its Cache-Status header (RFC 9211 names the cache first).
CACHE_STATUS_NAME = "student-service"


def confirmed_key(payment_id: str) -> str:
    """The idempotency key of a PURCHASE_CONFIRMED event."""
    return f"payment:{payment_id}:{EVENT_CONFIRMED}"


def created_key(purchase_id: str) -> str:
    """The idempotency key of a PURCHASE_CREATED event."""
    return f"purchase:{purchase_id}:{EVENT_CREATED}"


# What the checks call the canonical HTTP answers when they note fields a user's system does not carry
# (like a topic's name for the records on it): a payment, a learning view, one purchase in a view.
HTTP_PAYMENT = "HTTP payment answers"
HTTP_LEARNING_VIEW = "HTTP learning views"
HTTP_LEARNING_PURCHASE = "HTTP learning-view purchases"


def cache_key(student_id: str) -> str:
    """The cache key of a student's learning view (S2)."""
    return f"student:learning:{student_id}"


def group_topic(group: str, topic: str) -> str:
    """How a snapshot keys a consumer group's committed offsets on a topic."""
    return f"{group}/{topic}"


# Which component dies at each crash point (the part of the point's name before the dot).
CRASH_POINT_OWNERS: Mapping[str, str] = MappingProxyType({
    "payment": "payment-service",
    "payment-relay": "payment-relay",
    "course-relay": "course-relay",
    "worker": "purchase-worker",
    "invalidator": "cache-invalidator",
})


def crash_point_owner(point: str) -> str:
    """The component that dies at `point`, e.g. `worker.after_commit` → `purchase-worker`."""
    return CRASH_POINT_OWNERS[point.split(".", 1)[0]]
