"""The adapters each conformance suite runs on: one registry per port.

To put a new adapter under a suite, append one `Factory` to its list, e.g.

    PAYMENT_STORES.append(Factory("postgres", _pg_payments, needs="postgres"))

`make` gets a `Context` (the shared manual clock, a temporary directory, a unique suffix for names on
a shared server, the service's address, and `defer()` for cleanup) and returns a fresh, empty
adapter (stores) or a kit (bus, cache: the adapter plus how the suite waits or moves time on it).
A factory that `needs` a service is marked `integration`; its address comes from the service's
variable (SERVICE_ENV) or, when that is unset, from a stack conftest.py starts once per session, so
it is never skipped (deselect with `-m "not integration"`). `traits` name guarantees that some tests
check beyond the port's contract and not every adapter gives (see TRAITS); a factory without the
trait skips those tests.

Each real factory gives every test a clean state of its own on the shared server: a fresh PostgreSQL
schema (dropped afterwards), topic and group names carrying the test's unique suffix (the topics are
deleted afterwards), a Redis key prefix (its keys are deleted afterwards).

Suites never touch adapter internals: only the port, plus the helpers every adapter of that port
offers (bus: `end_offsets`, `committed`, consumer `crash()` — close without committing)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import psycopg
import redis
from confluent_kafka.admin import AdminClient
from psycopg import sql

from kcverify.core.admin_calls import all_done, collector_paused
from kcverify.core.clock import ManualClock
from kcverify.reference.adapters.embedded_bus import EmbeddedBus, UnknownTopic
from kcverify.reference.adapters.kafka_bus import KafkaBus, KafkaConsumer
from kcverify.reference.adapters.memory_cache import MemoryCache
from kcverify.reference.adapters.postgres_store import PostgresCourseStore, PostgresPaymentStore
from kcverify.reference.adapters.redis_cache import RedisCache
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
    # how long a drain that expects N records may wait for them (a rebalance or a metadata refresh
    # still on its way); it stops as soon as they are there, so this costs time only on failure
    settle_timeout: float = 0.0


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


# --- the real adapters ----------------------------------------------------------------------------


def _pg_schema(ctx: Context, database: str) -> str:
    """A DSN whose search_path is a schema of this test's own (dropped after it): the store's DDL
    creates its tables there, so tests never see each other's rows."""
    assert ctx.service is not None
    schema = f"t_{ctx.unique}_{database}"
    with psycopg.connect(ctx.service, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))

    def drop() -> None:
        with psycopg.connect(ctx.service or "", autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))

    ctx.defer(drop)
    return psycopg.conninfo.make_conninfo(ctx.service, options=f"-c search_path={schema}")


def _pg_payments(ctx: Context) -> PaymentStore:
    store = PostgresPaymentStore(_pg_schema(ctx, "payments"), clock=ctx.clock)
    ctx.defer(store.close)
    return store


def _pg_courses(ctx: Context) -> CourseStore:
    store = PostgresCourseStore(_pg_schema(ctx, "courses"), clock=ctx.clock)
    ctx.defer(store.close)
    return store


SETTLE_TIMEOUT = 20.0


def _settle(bus: KafkaBus, members: list[KafkaConsumer], joined: KafkaConsumer) -> None:
    """Serve every open member of `joined`'s group until the group has settled around it: `joined` has
    its first assignment, and the members' assignments are disjoint and cover every partition of the
    topics that exist. Serving matters: a member learns of a rebalance only through its own poll, and
    the group waits for every member before it hands out partitions (eager protocol)."""
    expected: set[tuple[str, int]] = set()
    for topic in joined.topics:
        with contextlib.suppress(UnknownTopic):  # assigned once it exists; not part of settling now
            expected |= {(topic, p) for p in range(bus.partitions(topic))}
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        group = [m for m in members if m.group == joined.group and not m.closed]
        for member in group:
            member.serve(0.05)
        owned = [set(m.assignment()) for m in group]
        union = set().union(*owned)
        if joined.assignments > 0 and union == expected and sum(map(len, owned)) == len(union):
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"group {joined.group} did not settle in {SETTLE_TIMEOUT}s: "
                                 f"{[(m.client_id, m.assignment()) for m in group]}, expected {sorted(expected)}")


def delete_topics(bus: KafkaBus, fragment: str) -> None:
    """Delete the topics whose name contains `fragment` (a test's unique suffix). Deletion is not part
    of the port, so it uses an AdminClient of its own; best effort."""
    mine = [name for name in bus.topics() if fragment in name]
    if mine:
        admin = AdminClient({"bootstrap.servers": bus.bootstrap, "log_level": 0})
        with collector_paused():
            all_done(admin.delete_topics(mine, operation_timeout=10).values(), 15)  # errors are not read


def _kafka_bus(ctx: Context) -> BusKit:
    assert ctx.service is not None
    # Records carry the manual clock's timestamps (months in the past): the broker would apply its
    # 7-day time retention to them, so test topics keep records forever (they are deleted after).
    bus = KafkaBus(ctx.service, ctx.clock, topic_config={"retention.ms": "-1"})
    members: list[KafkaConsumer] = []

    def ready(consumer: Consumer) -> None:
        assert isinstance(consumer, KafkaConsumer)
        members.append(consumer)
        _settle(bus, members, consumer)

    def cleanup() -> None:
        try:
            delete_topics(bus, ctx.unique)
        finally:
            bus.close()

    ctx.defer(cleanup)
    return BusKit(bus, poll_timeout=0.1, ready=ready, idle_polls=5, settle_timeout=SETTLE_TIMEOUT)


def _redis_cache(ctx: Context) -> CacheKit:
    assert ctx.service is not None
    prefix = f"kcverify-test:{ctx.unique}:"
    cache = RedisCache(ctx.service, prefix=prefix)

    def cleanup() -> None:
        cache.close()
        client = redis.Redis.from_url(ctx.service or "")
        try:
            for name in client.scan_iter(match=prefix + "*", count=500):
                client.delete(name)
        finally:
            client.close()

    ctx.defer(cleanup)
    # Redis expires entries by its own clock: time passes for real (the suite's TTLs are 0.4 s).
    return CacheKit(cache, now=time.time, advance=time.sleep)


EMBEDDED_BUS_TRAITS = frozenset(TRAITS)
# Kafka with the range assignor is eager; records are stamped by the bus's clock (the manual one here).
KAFKA_BUS_TRAITS = frozenset({"eager_rebalance", "manual_clock"})

PAYMENT_STORES: list[Factory[PaymentStore]] = [
    Factory("sqlite-memory", _sqlite_payments_memory),
    Factory("sqlite-file", _sqlite_payments_file),
    Factory("postgres", _pg_payments, needs="postgres"),
]

COURSE_STORES: list[Factory[CourseStore]] = [
    Factory("sqlite-memory", _sqlite_courses_memory),
    Factory("sqlite-file", _sqlite_courses_file),
    Factory("postgres", _pg_courses, needs="postgres"),
]

BUSES: list[Factory[BusKit]] = [
    Factory("embedded", _embedded_bus, traits=EMBEDDED_BUS_TRAITS),
    Factory("kafka", _kafka_bus, needs="kafka", traits=KAFKA_BUS_TRAITS),
]

CACHES: list[Factory[CacheKit]] = [
    Factory("memory", _memory_cache, traits=frozenset({"manual_clock"})),
    Factory("redis", _redis_cache, needs="redis"),
]
