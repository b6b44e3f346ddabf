"""The adapters each conformance suite runs on: one registry per port.

To put a new adapter under a suite, append one `Factory` to its list, e.g. for PostgreSQL

    PAYMENT_STORES.append(Factory("postgres", make_pg_payments, needs="postgres"))

`make` gets a `Context` (the shared manual clock, a temporary directory, a unique suffix for names on
a shared server, the service's address, and `defer()` for cleanup) and returns a fresh, empty
adapter (stores) or a kit (bus, cache: the adapter plus how the suite waits or moves time on it).
A factory that `needs` a service is marked `integration` and skipped while the service's address
variable (SERVICE_ENV) is unset. `traits` name embedded-only guarantees that some tests check beyond
the port's contract (see TRAITS); a factory without the trait skips those tests.

Suites never touch adapter internals: only the port, plus the helpers every adapter of that port
offers (bus: `end_offsets`, `committed`, consumer `crash()` — close without committing)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from kcverify.core.clock import ManualClock
from kcverify.reference.adapters.embedded_bus import EmbeddedBus
from kcverify.reference.adapters.memory_cache import MemoryCache
from kcverify.reference.adapters.sqlite_store import SqliteCourseStore, SqlitePaymentStore
from kcverify.reference.ports import Bus, Cache, Consumer, CourseStore, PaymentStore

T = TypeVar("T")

# service -> the environment variable holding its address (a DSN, bootstrap servers, a URL)
SERVICE_ENV: dict[str, str] = {
    "postgres": "KCVERIFY_TEST_POSTGRES_DSN",
    "kafka": "KCVERIFY_TEST_KAFKA_BOOTSTRAP",
    "redis": "KCVERIFY_TEST_REDIS_URL",
}

TRAITS: dict[str, str] = {
    "manual_clock": "time is the shared ManualClock (exact TTL boundaries, message timestamps)",
    "instant_rebalance": "joins, leaves and topic creation rebalance at once (no session timeout)",
    "eager_rebalance": "a rebalance restarts every member at the committed offsets",
    "round_robin_null_key": "records without a key go to the partitions in turn",
    "deterministic_poll": "poll takes one record from each partition in turn",
}


@dataclass
class Context:
    clock: ManualClock
    tmp_path: Path
    unique: str  # append to database names, topics, groups, cache keys on a shared server
    service: str | None = None  # the address of the service the factory needs
    cleanups: list[Callable[[], Any]] = field(default_factory=list)

    def defer(self, cleanup: Callable[[], Any]) -> None:
        """Run `cleanup` after the test (last deferred, first run)."""
        self.cleanups.append(cleanup)


@dataclass(frozen=True)
class Factory(Generic[T]):
    id: str
    make: Callable[[Context], T]
    needs: str | None = None  # a key of SERVICE_ENV
    traits: frozenset[str] = frozenset()


@dataclass
class BusKit:
    """A bus and how the suite waits on it."""

    bus: Bus
    # how long one poll may wait for a record on its way; 0 where a record is there or never
    poll_timeout: float = 0.0
    # waits until a new consumer owns its partitions (a real broker assigns them asynchronously)
    ready: Callable[[Consumer], None] = lambda consumer: None
    # how many empty polls in a row mean "nothing more is coming"
    idle_polls: int = 1


@dataclass
class CacheKit:
    """A cache and its time: `now()` is what callers pass as `now`, `advance(s)` lets s seconds pass
    (a manual clock moves; a real server needs real waiting)."""

    cache: Cache
    now: Callable[[], float]
    advance: Callable[[float], None]


# --- the embedded adapters ------------------------------------------------------------------------


def _sqlite_payments_memory(ctx: Context) -> PaymentStore:
    store = SqlitePaymentStore(None, clock=ctx.clock)
    ctx.defer(store.close)
    return store


def _sqlite_payments_file(ctx: Context) -> PaymentStore:
    store = SqlitePaymentStore(str(ctx.tmp_path / "payments_db.sqlite3"), clock=ctx.clock)
    ctx.defer(store.close)
    return store


def _sqlite_courses_memory(ctx: Context) -> CourseStore:
    store = SqliteCourseStore(None, clock=ctx.clock)
    ctx.defer(store.close)
    return store


def _sqlite_courses_file(ctx: Context) -> CourseStore:
    store = SqliteCourseStore(str(ctx.tmp_path / "courses_db.sqlite3"), clock=ctx.clock)
    ctx.defer(store.close)
    return store


def _embedded_bus(ctx: Context) -> BusKit:
    return BusKit(EmbeddedBus(ctx.clock))


def _memory_cache(ctx: Context) -> CacheKit:
    return CacheKit(MemoryCache(ctx.clock), now=ctx.clock.now, advance=ctx.clock.advance)


EMBEDDED_BUS_TRAITS = frozenset(TRAITS)

PAYMENT_STORES: list[Factory[PaymentStore]] = [
    Factory("sqlite-memory", _sqlite_payments_memory),
    Factory("sqlite-file", _sqlite_payments_file),
]

COURSE_STORES: list[Factory[CourseStore]] = [
    Factory("sqlite-memory", _sqlite_courses_memory),
    Factory("sqlite-file", _sqlite_courses_file),
]

BUSES: list[Factory[BusKit]] = [
    Factory("embedded", _embedded_bus, traits=EMBEDDED_BUS_TRAITS),
]

CACHES: list[Factory[CacheKit]] = [
    Factory("memory", _memory_cache, traits=frozenset({"manual_clock"})),
]
