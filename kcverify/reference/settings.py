"""Settings of the reference system: one frozen value that `bootstrap()` wires components from."""

from __future__ import annotations

from dataclasses import dataclass, field

from kcverify.spec import policy

# Development-only keys for the embedded reference and local stacks. They protect nothing real;
# a deployment sets its own through the environment (KCVERIFY_WEBHOOK_SECRET, KCVERIFY_AUTH_SECRET).
DEV_WEBHOOK_SECRET = "kcverify-dev-webhook-key"
DEV_AUTH_SECRET = "kcverify-dev-auth-key-not-for-production"


@dataclass(frozen=True)
class Settings:
    mode: str = "embedded"  # "embedded" | "stack"
    # embedded: SQLite file paths, or None for private in-memory databases
    payments_sqlite: str | None = None
    courses_sqlite: str | None = None
    # stack: PostgreSQL DSNs, Kafka bootstrap servers, Redis URL
    payments_dsn: str | None = None
    courses_dsn: str | None = None
    kafka_bootstrap: str | None = None
    redis_url: str | None = None
    webhook_secret: str = DEV_WEBHOOK_SECRET
    auth_secret: str = DEV_AUTH_SECRET
    cache_ttl: float = policy.CACHE_TTL
    retry_attempts: int = policy.RETRY_ATTEMPTS
    retry_backoff: tuple[float, ...] = policy.RETRY_BACKOFF
    reconcile_grace: float = policy.RECONCILE_GRACE
    # How long the cache invalidator waits before retrying a failed delete. The real stack's processes
    # use a short one: on real time, "the next 50 cache calls fail" would otherwise take 50 s to drain.
    invalidator_retry: float = 1.0
    partitions: int = 3
    relay_batch: int = 100
    defects: frozenset[str] = field(default_factory=frozenset)
    seed: int = 0

    def backoff(self, failed_attempt: int) -> float:
        """Delay after the n-th failed attempt (1-based); the last configured delay repeats."""
        if not self.retry_backoff:
            return 0.0
        return self.retry_backoff[min(failed_attempt, len(self.retry_backoff)) - 1]
