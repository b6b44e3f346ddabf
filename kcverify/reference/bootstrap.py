"""The one place that wires adapters into components, from Settings.

`bootstrap(settings)` returns a `System`: every store, the bus, the cache, every component, and the
instrumentation (crash points, faults, trace). Embedded systems are step-driven: `settle()` runs every
live component until nothing is left to do, moving a manual clock to the next retry or reconcile when
that is all that remains."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.applications import Starlette

from kcverify.core.clock import Clock, ManualClock, SystemClock
from kcverify.core.errors import BusUnavailable, SimulatedCrash
from kcverify.core.ids import IdSource, RandomIds, SeededIds
from kcverify.reference import domain, payment_api, student_api
from kcverify.reference.defects import MISCONFIGURED, Defects
from kcverify.reference.dlq import DeadLetterReplayer
from kcverify.reference.instrument import CrashPoints, Faults, MemoryTracer, Tracer, with_faults
from kcverify.reference.payment_service import PaymentService
from kcverify.reference.ports import Bus, Cache, CourseStore, PaymentStore
from kcverify.reference.purchase_worker import PurchaseWorker, Step
from kcverify.reference.reconciler import Reconciler
from kcverify.reference.relay import OutboxRelay
from kcverify.reference.settings import Settings
from kcverify.reference.student_service import CacheInvalidator, StudentService

# Components a scenario can crash, stop and restart, in the order settle() runs them.
COMPONENTS = ("payment-relay", "purchase-worker", "course-relay", "cache-invalidator", "reconciler")

# The rounds a settle may run without the clock moving: a base plus this many per unit of work.
ROUND_BUDGET_BASE = 100
ROUNDS_PER_ITEM = 10
ROUND_BUDGET_SCAN = 100_000  # outbox rows counted at most
MAX_ROUNDS_BASE = 20_000  # a settle's rounds in all, plus the round budget of the work at its start

# Topic partition counts: DLQ has one partition so its order is the order of failure.
TOPIC_PARTITIONS = {domain.TOPIC_CONFIRMED: None, domain.TOPIC_CREATED: None, domain.TOPIC_DLQ: 1}


@dataclass
class SettleResult:
    quiet: bool  # nothing left to do (False: a bound was hit with work still pending)
    rounds: int
    advanced: float  # seconds the manual clock moved
    # Set only when the settle ended at its own cap on rounds (`max_rounds`) with the flow still making
    # progress: the harness's limit, not a stuck system. `pending` is the work counted at the end.
    round_cap: int | None = None
    pending: int = 0


@dataclass
class System:
    settings: Settings
    clock: Clock
    ids: IdSource
    defects: Defects
    crash_points: CrashPoints
    faults: Faults
    tracer: Tracer
    payment_store: PaymentStore
    course_store: CourseStore
    bus: Bus
    cache: Cache
    payment_service: PaymentService
    student_service: StudentService
    workers: list[PurchaseWorker]  # the members of the purchase-worker group, in the order settle steps them
    payment_relay: OutboxRelay
    course_relay: OutboxRelay
    invalidator: CacheInvalidator
    reconciler: Reconciler
    dlq_replayer: DeadLetterReplayer
    # The same adapters without injected faults: for observers (a target's snapshot, a scenario's own
    # publish), which must neither trip over a fault meant for the system nor use one up.
    unfaulted: tuple[PaymentStore, CourseStore, Bus, Cache]
    down: set[str] = field(default_factory=set)
    crashed: list[tuple[str, str]] = field(default_factory=list)  # (component, crash point)
    # Indexes of the worker members that died at a crash point while the others went on (the component
    # "purchase-worker" counts as down while any member is).
    workers_down: set[int] = field(default_factory=set)

    @property
    def worker(self) -> PurchaseWorker:
        """The first member of the worker group (a served worker process runs only this one)."""
        return self.workers[0]

    # --- HTTP --------------------------------------------------------------------------------
    def payment_app(self, *, threaded: bool = False) -> Starlette:
        return payment_api.create_app(self.payment_service, threaded=threaded)

    def student_app(self, *, threaded: bool = False) -> Starlette:
        return student_api.create_app(self.student_service, threaded=threaded)

    # --- components ---------------------------------------------------------------------------
    def _steppers(self) -> dict[str, Callable[[], bool]]:
        return {
            "payment-relay": lambda: self.payment_relay.run_once() > 0,
            "purchase-worker": self._step_workers,
            "course-relay": lambda: self.course_relay.run_once() > 0,
            "cache-invalidator": self.invalidator.poll_once,
            "reconciler": lambda: self.reconciler.run_once() > 0,
        }

    def _step_workers(self) -> bool:
        """One step of every live member of the worker group, in member order (deterministic). A member
        that hits a crash point dies alone, as one of several worker processes would: the group
        rebalances and the others take over its partitions from the committed offsets."""
        live = []
        for index, worker in enumerate(self.workers):
            if index in self.workers_down:
                continue
            try:
                worker.start()  # every live member joins before any polls: one rebalance, not one per member
            except BusUnavailable as exc:  # the broker is away: this member joins at a later step
                self.tracer.emit("purchase-worker", "join_failed", member=index, error=str(exc))
                continue
            live.append((index, worker))
        worked = False
        for index, worker in live:
            try:
                worked = worker.poll_once() not in (Step.IDLE, Step.WAITING) or worked
            except SimulatedCrash as crash:
                worker.abandon()
                self.workers_down.add(index)
                self.down.add("purchase-worker")
                self.crashed.append(("purchase-worker", crash.point))
                self.tracer.emit("purchase-worker", "crashed", point=crash.point, member=index)
                worked = True
        return worked

    def step(self, component: str) -> bool:
        """Run one step of a live component; a crash point it hits takes it down (like SIGKILL).
        Returns True when it did some work."""
        if component not in COMPONENTS:
            raise KeyError(component)
        if component == "purchase-worker":
            return self._step_workers()  # its members die alone (see there)
        if component in self.down:
            return False
        try:
            return self._steppers()[component]()
        except SimulatedCrash as crash:
            self.crash(component, crash.point)
            return True

    def crash(self, component: str, point: str = "killed") -> None:
        """The component dies where it stands: no graceful close, nothing committed."""
        abandon: dict[str, Callable[[], None]] = {
            "purchase-worker": self._abandon_workers,
            "cache-invalidator": self.invalidator.abandon,
        }
        if component in abandon:
            abandon[component]()
        self.down.add(component)
        self.crashed.append((component, point))
        self.tracer.emit(component, "crashed", point=point)

    def stop(self, component: str) -> None:
        """Graceful stop (SIGTERM): consumers leave their group cleanly."""
        closers: dict[str, Callable[[], None]] = {
            "purchase-worker": self._close_workers,
            "cache-invalidator": self.invalidator.close,
        }
        if component in closers:
            closers[component]()
        self.down.add(component)
        self.tracer.emit(component, "stopped")

    def restart(self, component: str) -> None:
        if component not in COMPONENTS:
            raise KeyError(component)
        self.down.discard(component)
        starters: dict[str, Callable[[], None]] = {
            "purchase-worker": self._start_workers,
            "cache-invalidator": self.invalidator.start,
        }
        if component in starters:
            starters[component]()
        self.tracer.emit(component, "started")

    # A scenario's kill, stop and restart of "purchase-worker" act on the whole group (every member).
    def _abandon_workers(self) -> None:
        for worker in self.workers:  # all forget first: one's departure must not make another commit
            worker.forget()
        for index, worker in enumerate(self.workers):
            worker.abandon()
            self.workers_down.add(index)

    def _close_workers(self) -> None:
        for index, worker in enumerate(self.workers):
            worker.close()
            self.workers_down.add(index)

    def _start_workers(self) -> None:
        for index in sorted(self.workers_down):
            self.workers[index].start()
        self.workers_down.clear()

    def _next_wakeup(self) -> float | None:
        wakeups: list[float | None] = []
        for name, relay in (("payment-relay", self.payment_relay), ("course-relay", self.course_relay)):
            if name not in self.down:
                wakeups.append(relay.next_wakeup())
        wakeups.extend(w.next_wakeup() for i, w in enumerate(self.workers) if i not in self.workers_down)
        if "cache-invalidator" not in self.down:
            wakeups.append(self.invalidator.next_wakeup())
        # A re-publish helps only if something can carry it to a purchase. While any worker member is down
        # (a crash point killed it, the scenario has not restarted it) the clock does not jump to the
        # reconciler's grace either: what the crash left behind stays observable until the restart.
        if not {"reconciler", "payment-relay", "purchase-worker"} & self.down:
            wakeups.append(self.reconciler.next_wakeup())
        times = [w for w in wakeups if w is not None]
        return min(times) if times else None

    def settle(self, *, max_rounds: int | None = None, horizon: float = 3600.0) -> SettleResult:
        """Run everything until quiet. With a manual clock, jump to the next timed wake-up (a retry's
        backoff, a reconcile grace) unless it lies beyond `horizon` seconds from the start: `horizon`
        bounds the simulated time a settle may take. Between two moves of the clock the rounds are
        bounded too, in proportion to the work there is (`_round_budget`): a component that reports
        work every round without the clock moving is stuck, and the settle ends at once, not quiet."""
        start = self.clock.now()
        budget, idle = self._round_budget(), 0
        if max_rounds is None:
            # the whole settle's bound scales with the work pending at its start (20,000 poison copies
            # injected in one step need 20,000 rounds of the worker), never a fixed count below it
            max_rounds = MAX_ROUNDS_BASE + budget
        for rounds in range(1, max_rounds + 1):
            idle += 1
            if idle > budget:
                return SettleResult(False, rounds, self.clock.now() - start)
            worked = False
            for component in COMPONENTS:
                if component != "reconciler":
                    worked = self.step(component) or worked
            if worked:
                continue
            if self.step("reconciler"):
                continue
            wake = self._next_wakeup()
            if wake is None:
                return SettleResult(True, rounds, self.clock.now() - start)
            if not isinstance(self.clock, ManualClock) or wake - start > horizon:
                return SettleResult(False, rounds, self.clock.now() - start)
            now = self.clock.now()
            if wake <= now:  # due already, yet nobody worked: a millisecond more, and no new budget (a
                self.clock.advance_to(now + 0.001)  # component that keeps asking and never works is stuck)
                continue
            self.clock.advance_to(wake)
            budget, idle = self._round_budget(), 0
        return SettleResult(False, max_rounds, self.clock.now() - start, round_cap=max_rounds,
                            pending=self._work_items())

    def _round_budget(self) -> int:
        """How many rounds the work in the system can take before the clock must move again. In one
        round every live component takes one step, and each record, outbox row or payment gives each
        component at most a few steps of work (publish, handle, announce, invalidate, re-publish)."""
        return ROUND_BUDGET_BASE + ROUNDS_PER_ITEM * self._work_items()

    def _work_items(self) -> int:
        """Records on the topics, pending outbox rows and payments: the units of work a settle is sized by."""
        payments, courses, bus, _ = self.unfaulted
        ends = getattr(bus, "end_offsets", None)  # counted, not copied: a settle per step stays cheap
        items = sum(sum(ends(t).values()) if ends else len(bus.read_all(t)) for t in domain.TOPICS)
        items += len(payments.pending_outbox(ROUND_BUDGET_SCAN)) + len(courses.pending_outbox(ROUND_BUDGET_SCAN))
        count = getattr(payments, "count_payments", None)
        items += count() if count else len(payments.all_payments())
        return items


def deployed_settings(settings: Settings) -> Settings:
    """The settings as deployed: those of the defects that are a wrong configuration (defects.MISCONFIGURED)
    override what they name, as a mistyped value in a deployment's configuration would."""
    changes: dict[str, Any] = {}
    for name in sorted(Defects(settings.defects).names):  # an unknown name fails here, as it would later
        changes.update(MISCONFIGURED.get(name, {}))
    return replace(settings, **changes) if changes else settings


def _embedded_adapters(settings: Settings, clock: Clock) -> tuple[PaymentStore, CourseStore, Bus, Cache]:
    from kcverify.reference.adapters.embedded_bus import EmbeddedBus
    from kcverify.reference.adapters.memory_cache import MemoryCache
    from kcverify.reference.adapters.sqlite_store import SqliteCourseStore, SqlitePaymentStore

    return (SqlitePaymentStore(settings.payments_sqlite, clock=clock),
            SqliteCourseStore(settings.courses_sqlite, clock=clock),
            EmbeddedBus(clock), MemoryCache(clock))


def _stack_adapters(settings: Settings, clock: Clock) -> tuple[PaymentStore, CourseStore, Bus, Cache]:
    # Imported by name: the real adapters pull in their client libraries only when asked for.
    postgres = importlib.import_module("kcverify.reference.adapters.postgres_store")
    kafka = importlib.import_module("kcverify.reference.adapters.kafka_bus")
    redis = importlib.import_module("kcverify.reference.adapters.redis_cache")
    if not (settings.payments_dsn and settings.courses_dsn and settings.kafka_bootstrap and settings.redis_url):
        raise ValueError("stack mode needs payments_dsn, courses_dsn, kafka_bootstrap and redis_url")
    adapters: tuple[PaymentStore, CourseStore, Bus, Cache] = (
        postgres.PostgresPaymentStore(settings.payments_dsn), postgres.PostgresCourseStore(settings.courses_dsn),
        kafka.KafkaBus(settings.kafka_bootstrap, clock, group_instance=settings.group_instance),
        redis.RedisCache(settings.redis_url),
    )
    return adapters


def _worker_backlog(bus: Bus) -> Callable[[], int | None] | None:
    """Records the purchase-worker group has yet to consume on the confirmed topic, from the bus's end and
    committed offsets (both buses offer them); None when the bus cannot say (the broker away)."""
    inner = getattr(bus, "inner", bus)  # through a wrapper that checks contracts
    ends, committed = getattr(inner, "end_offsets", None), getattr(inner, "committed", None)
    if ends is None or committed is None:
        return None

    def backlog() -> int | None:
        try:
            done = committed(domain.WORKER_GROUP, domain.TOPIC_CONFIRMED)
            return int(sum(max(0, end - (done.get(p) or 0)) for p, end in ends(domain.TOPIC_CONFIRMED).items()))
        except BusUnavailable:
            return None

    return backlog


def bootstrap(settings: Settings | None = None, *, clock: Clock | None = None, ids: IdSource | None = None,
              tracer: Tracer | None = None, faults: Faults | None = None,
              adapters: tuple[PaymentStore, CourseStore, Bus, Cache] | None = None) -> System:
    settings = deployed_settings(settings or Settings())
    embedded = settings.mode == "embedded"
    clock = clock or (ManualClock() if embedded else SystemClock())
    ids = ids or (SeededIds(settings.seed) if embedded else RandomIds())
    tracer = tracer or MemoryTracer(clock)
    defects = Defects(settings.defects)
    crash_points = CrashPoints()
    faults = faults or Faults()  # the real stack's processes pass one rule table they all share
    if adapters is None:
        adapters = _embedded_adapters(settings, clock) if embedded else _stack_adapters(settings, clock)
    raw_payments, raw_courses, raw_bus, raw_cache = adapters
    bus = raw_bus
    for topic, partitions in TOPIC_PARTITIONS.items():
        bus.create_topic(topic, partitions or settings.partitions)
    payments = with_faults(raw_payments, "payments_db", faults)
    courses = with_faults(raw_courses, "courses_db", faults)
    cache = with_faults(raw_cache, "cache", faults)
    bus = with_faults(bus, "bus", faults)

    common: dict[str, Any] = {"clock": clock, "tracer": tracer}
    return System(
        settings=settings, clock=clock, ids=ids, defects=defects, crash_points=crash_points, faults=faults,
        tracer=tracer, payment_store=payments, course_store=courses, bus=bus, cache=cache,
        payment_service=PaymentService(store=payments, cache=cache, bus=bus, ids=ids,
                                       webhook_secret=settings.webhook_secret,
                                       signature_tolerance=settings.signature_tolerance, defects=defects,
                                       crash=crash_points, **common),
        student_service=StudentService(courses=courses, cache=cache, settings=settings, defects=defects, **common),
        workers=[PurchaseWorker(payments=payments, courses=courses, bus=bus, ids=ids, settings=settings,
                                defects=defects, crash=crash_points, **common)
                 for _ in range(max(1, settings.workers))],
        payment_relay=OutboxRelay(name="payment-relay", store=payments, bus=bus, crash=crash_points,
                                  batch=settings.relay_batch, defects=defects, **common),
        course_relay=OutboxRelay(name="course-relay", store=courses, bus=bus, crash=crash_points,
                                 batch=settings.relay_batch, defects=defects, **common),
        invalidator=CacheInvalidator(bus=bus, cache=cache, defects=defects, crash=crash_points,
                                     retry_after=settings.invalidator_retry, **common),
        reconciler=Reconciler(payments=payments, courses=courses, grace=settings.reconcile_grace,
                              defects=defects, backlog=_worker_backlog(raw_bus), **common),
        dlq_replayer=DeadLetterReplayer(bus=bus, tracer=tracer),
        unfaulted=(raw_payments, raw_courses, raw_bus, raw_cache),
    )
