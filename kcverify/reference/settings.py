"""Settings of the reference system: one frozen value that `bootstrap()` wires components from."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from kcverify.spec import policy

# Development-only keys, published with kcverify: they protect nothing. The embedded reference uses them
# (zero set-up); a served process uses them only in development mode (`--dev`). Anything else reads its
# own from the environment (`secrets_from_environment`) and refuses to start without them.
DEV_WEBHOOK_SECRET = "kcverify-dev-webhook-key"
DEV_AUTH_SECRET = "kcverify-dev-auth-key-not-for-production"
WEBHOOK_SECRET_ENV = "KCVERIFY_WEBHOOK_SECRET"
AUTH_SECRET_ENV = "KCVERIFY_AUTH_SECRET"


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
    # P2: how far a callback's signed timestamp may be from this system's clock, in seconds
    signature_tolerance: float = policy.SIGNATURE_TOLERANCE
    token_ttl: float = 3600.0  # lifetime of the bearer tokens this system issues
    cache_ttl: float = policy.CACHE_TTL
    retry_attempts: int = policy.RETRY_ATTEMPTS
    retry_backoff: tuple[float, ...] = policy.RETRY_BACKOFF
    reconcile_grace: float = policy.RECONCILE_GRACE
    # How long the cache invalidator waits before retrying a failed delete. The real stack's processes
    # use a short one: on real time, "the next 50 cache calls fail" would otherwise take 50 s to drain.
    invalidator_retry: float = 1.0
    partitions: int = 3
    # Members of the purchase-worker group an embedded system runs (settle steps each in turn). More than
    # one, so that partitions are split between members and per-student order across a rebalance is
    # exercised; a served worker process is one member.
    workers: int = 2
    relay_batch: int = 100
    # Static consumer-group membership of a served worker (its slot's name, e.g. "worker-2"): restarted by a
    # supervisor, it rejoins with its old assignment instead of costing the group two rebalances. None:
    # dynamic membership, the partitions of a member that stops move to the others at once.
    group_instance: str | None = None
    defects: frozenset[str] = field(default_factory=frozenset)
    seed: int = 0

    def backoff(self, failed_attempt: int) -> float:
        """Delay after the n-th failed attempt (1-based); the last configured delay repeats."""
        if not self.retry_backoff:
            return 0.0
        return self.retry_backoff[min(failed_attempt, len(self.retry_backoff)) - 1]

    @property
    def development_keys(self) -> bool:
        """True when either secret is a published development key."""
        return self.webhook_secret == DEV_WEBHOOK_SECRET or self.auth_secret == DEV_AUTH_SECRET


class MissingSecret(ValueError):
    """A non-development start without a secret in the environment; the message names the variable."""


def secrets_from_environment(settings: Settings, *, dev: bool,
                             environ: Mapping[str, str] | None = None) -> Settings:
    """The settings with the secrets a deployment set in the environment (KCVERIFY_WEBHOOK_SECRET,
    KCVERIFY_AUTH_SECRET). A variable that is unset keeps the settings' value only in development mode
    (`dev`), or when the settings already carry a secret of their own; otherwise MissingSecret: a
    process that would silently guard real payments with a published key must not start."""
    env = os.environ if environ is None else environ
    webhook = env.get(WEBHOOK_SECRET_ENV, "") or settings.webhook_secret
    auth = env.get(AUTH_SECRET_ENV, "") or settings.auth_secret
    missing = [variable for variable, value, dev_key in ((WEBHOOK_SECRET_ENV, webhook, DEV_WEBHOOK_SECRET),
                                                         (AUTH_SECRET_ENV, auth, DEV_AUTH_SECRET))
               if value == dev_key and not dev]
    if missing:
        raise MissingSecret(f"{' and '.join(missing)} not set (a published development key does not count): a "
                            "non-development process needs its own secrets in the environment, or --dev for the "
                            "development keys")
    return replace(settings, webhook_secret=webhook, auth_secret=auth)
