"""The embedded target: the reference system in this process (SQLite in memory, the embedded log,
the in-memory cache, a manual clock), driven through its real HTTP apps. Zero set-up, deterministic
for a seed, and every capability: faults, crash points, split reads, clock control, full visibility."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import replace
from itertools import chain
from typing import TYPE_CHECKING, Any

from kcverify.core.errors import SimulatedCrash
from kcverify.reference import domain, frontend
from kcverify.reference.auth import issue_token
from kcverify.reference.bootstrap import ROUNDS_PER_ITEM, System, bootstrap
from kcverify.reference.defects import BY_NAME, CATALOGUE, SLOWDOWNS, Defects
from kcverify.reference.problems import Problem
from kcverify.reference.settings import Settings
from kcverify.reference.student_service import PendingRead
from kcverify.spec import names, policy
from kcverify.spec.gateway import callback_signature
from kcverify.targets.asgi import AsgiClient
from kcverify.targets.base import (
    CAPABILITIES,
    EXPIRED_FOR,
    BusRecord,
    CacheEntry,
    HttpReply,
    RecordId,
    Snapshot,
    TargetInfo,
)

if TYPE_CHECKING:
    from kcverify.targets.registry import TargetOptions

GROUPS = ((domain.WORKER_GROUP, domain.TOPIC_CONFIRMED), (domain.INVALIDATOR_GROUP, domain.TOPIC_CREATED))


class EmbeddedTarget:
    """The reference in this process: SQLite in memory, the embedded log, a manual clock (the default)."""

    # What the registry lists without building one (kcverify.targets.registry).
    description = "the reference in this process: SQLite in memory, the embedded log, a manual clock"
    capabilities = frozenset(CAPABILITIES)
    defect_names = tuple(BY_NAME)
    defect_catalogue = CATALOGUE + SLOWDOWNS  # names, rules and descriptions, for the kill matrix
    isolated = True  # each instance is its own system: several run side by side in a pool

    def __init__(self, settings: Settings | None = None, *, defects: Iterable[str] | None = None) -> None:
        """`defects`: named defects of the reference switched on in every system this target starts
        (default: those of `settings`, none)."""
        base = settings or Settings()
        self._base = base if defects is None else replace(base, defects=frozenset(defects))
        self.info = TargetInfo(
            name="embedded",
            capabilities=self.capabilities,
            freshness_bound=policy.FRESHNESS_BOUND_EMBEDDED,  # S3 embedded: every read after the next settle
        )
        self._system: System | None = None
        self._clients: dict[str, AsgiClient] = {}
        self._records = _Records()
        # (bus changes, end offsets, topics, committed) of the last snapshot of this system's bus
        self._bus_seen: tuple[int | None, dict[str, dict[int, int]], dict[str, list[BusRecord]],
                              dict[str, dict[int, int | None]]] | None = None
        self._serial = 0
        self._settle_limit: str | None = None
        self._payments = _Rows(_nothing)
        self._purchases = _Rows(_nothing)

    @classmethod
    def from_options(cls, options: TargetOptions) -> EmbeddedTarget:
        """The registry's factory: no settings of its own, only the defects."""
        return cls(defects=options.defects)

    @property
    def defects(self) -> frozenset[str]:
        return frozenset(self._base.defects)

    @property
    def system(self) -> System:
        if self._system is None:
            raise RuntimeError("target not started")
        return self._system

    def start(self, *, seed: int) -> None:
        system = self._fresh_system(seed)
        self._clients = {
            "payment-service": AsgiClient(system.payment_app()),
            "student-service": AsgiClient(system.student_app()),
        }

    def _fresh_system(self, seed: int) -> System:
        """A new system from the same settings, and fresh incremental readers of its records and rows
        (the snapshot reads only what changed since the last one of this system)."""
        self.stop()
        self._system = self._bootstrap(replace(self._base, seed=seed))
        payments, courses, _, _ = self._system.unfaulted
        self._records = _Records()
        self._bus_seen = None
        self._serial = 0
        self._payments = _Rows(payments.changed_payments)  # type: ignore[attr-defined]
        self._purchases = _Rows(courses.changed_purchases)  # type: ignore[attr-defined]
        return self._system

    def _bootstrap(self, settings: Settings) -> System:
        return bootstrap(settings)

    def stop(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients = {}
        self._system = None

    def now(self) -> float:
        return self.system.clock.now()

    def student_id(self, name: str) -> str:
        return name  # a fresh system per scenario: nothing to keep apart

    def cache_entry(self, student_id: str) -> CacheEntry:
        """The student's learning-view key in the in-memory cache (past any injected cache fault)."""
        from kcverify.reference.adapters.memory_cache import MemoryCache

        cache = self.system.unfaulted[3]
        assert isinstance(cache, MemoryCache)
        key = names.cache_key(student_id)
        ttl = cache.expires_in(key)
        return CacheEntry(key, ttl is not None, ttl)

    def http(self, service: str, method: str, path: str, *, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> HttpReply:
        try:
            response = self._clients[service].request(method, path, content=body, headers=headers or {})
        except SimulatedCrash as crash:
            # The service process died mid-request: the client gets no answer at all.
            self.system.tracer.emit(service, "crashed", point=crash.point)
            return HttpReply(None, {}, b"", error=f"no response: {service} crashed at {crash.point}")
        return HttpReply(response.status_code, dict(response.headers), response.content)

    def sign(self, payment_id: str, body: bytes, at: float | None = None) -> str:
        secret = self.system.settings.webhook_secret
        return callback_signature(secret, payment_id, body, self.now() if at is None else at)

    def token(self, subject: str, role: str) -> str:
        settings = self.system.settings
        return issue_token(settings.auth_secret, subject, role, now=self.now(), ttl=settings.token_ttl)

    def expired_token(self, subject: str, role: str) -> str:
        settings = self.system.settings
        return issue_token(settings.auth_secret, subject, role, now=self.now() - settings.token_ttl - EXPIRED_FOR,
                           ttl=settings.token_ttl)

    def publish(self, topic: str, key: str | None, value: bytes,
                headers: tuple[tuple[str, str], ...] = ()) -> RecordId:
        delivered = self.system.unfaulted[2].publish(topic, key, value, headers)
        return RecordId(delivered.topic, delivered.partition, delivered.offset)

    def step_component(self, component: str, times: int) -> None:
        for _ in range(times):
            self.system.step(component)

    def arm_crash(self, point: str) -> None:
        self.system.crash_points.arm(point)

    def kill(self, component: str) -> None:
        self.system.crash(component, "killed")

    def stop_component(self, component: str) -> None:
        self.system.stop(component)

    def restart(self, component: str) -> None:
        self.system.restart(component)

    def fail(self, resource: str, times: int, op: str | None, after: int = 0) -> None:
        self.system.faults.fail_next(resource, times, op, after)

    def begin_read(self, student: str, authorization: str) -> Any:
        service = self.system.student_service
        try:
            service.authorize(authorization, student)
        except Problem as problem:
            return _problem_reply(problem)
        return service.begin_read(student)

    def finish_read(self, handle: Any) -> HttpReply:
        if isinstance(handle, HttpReply):
            return handle
        assert isinstance(handle, PendingRead)
        try:
            answer = self.system.student_service.finish_read(handle)
        except Problem as problem:
            return _problem_reply(problem)
        return HttpReply(answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.body)

    def advance_clock(self, seconds: float) -> None:
        self.system.clock.advance(seconds)  # type: ignore[attr-defined]

    def wait(self, seconds: float) -> None:
        """The system's time is the manual clock: waiting moves it and runs nothing."""
        self.advance_clock(seconds)

    def settle(self, timeout: float | None) -> bool:
        """`timeout` bounds the simulated seconds the settle may move the manual clock; without one, the
        system's default horizon. Either way, rounds without the clock moving are bounded by the work."""
        result = self.system.settle() if timeout is None else self.system.settle(horizon=timeout)
        self._settle_limit = None
        if result.round_cap is not None:
            self._settle_limit = (
                f"the settle ran kcverify's cap of {result.round_cap:,} rounds (it grows by {ROUNDS_PER_ITEM} per "
                f"record, outbox row and payment in the system when a settle starts) while the flow was still "
                f"making progress, with {result.pending:,} such items in the system at the end")
        return result.quiet

    def settle_limit(self) -> str | None:
        """Why the last settle ended not quiet when the reason was kcverify's own cap on the work a settle
        may do, not the system: the cap, the work pending (None when the last settle ended otherwise)."""
        return self._settle_limit

    def display(self, item: dict[str, Any]) -> dict[str, Any]:
        """What the reference's app shows for one purchase of a learning view (its frontend model, F1)."""
        return frontend.display(item, Defects(self._base.defects)).to_json()

    def replay_dlq(self) -> int:
        return self.system.dlq_replayer.replay_all()

    def snapshot(self) -> Snapshot:
        """Read only what changed since the previous snapshot: records after each partition's last one
        read, rows the stores noted as changed. Unchanged rows and records are the same objects as in
        the previous snapshot, so the evidence compares by identity (kcverify/evidence/window.py)."""
        system = self.system
        _, _, bus, _ = system.unfaulted
        changes = getattr(bus, "changes", None)  # the embedded bus counts what an observer could see change
        if changes is None or self._bus_seen is None or self._bus_seen[0] != changes:
            ends = {t: bus.end_offsets(t) for t in domain.TOPICS}
            topics = {t: self._records.read(bus, t, ends[t]) for t in domain.TOPICS}
            committed = {f"{g}/{t}": bus.committed(g, t) for g, t in GROUPS}
            self._bus_seen = (changes, ends, topics, committed)
        else:  # nothing published, committed or created since the last snapshot: the same (unchanged) views
            _, ends, topics, committed = self._bus_seen
        payments, changed_payments = self._payments.read()
        purchases, changed_purchases = self._purchases.read()
        self._serial += 1
        return Snapshot(
            at=system.clock.now(),
            payments=payments,
            purchases=purchases,
            serial=self._serial,
            changed_rows={"payments": changed_payments, "purchases": changed_purchases},
            topics=topics,
            end_offsets=ends,
            committed=committed,
            traces=list(getattr(system.tracer, "records", [])),
            down=frozenset(system.down),
            ordered=True,
        )


class _Records:
    """The records of every topic read so far, partition by partition; each snapshot reads only the new."""

    def __init__(self) -> None:
        self._logs: dict[str, list[list[BusRecord]]] = {}
        self._listed: dict[str, list[BusRecord]] = {}  # the last list given, while no record came since

    def read(self, bus: Any, topic: str, ends: dict[int, int]) -> list[BusRecord]:
        """The topic's records, given its end offsets now (`bus.end_offsets(topic)`)."""
        logs = self._logs.setdefault(topic, [])
        while len(logs) < len(ends):
            logs.append([])
        grew = False
        for partition, end in ends.items():
            log = logs[partition]
            if len(log) < end:
                log.extend(BusRecord(m.topic, m.partition, m.offset, m.key, m.value, m.headers, m.timestamp)
                           for m in bus.read_from(topic, partition, len(log)))
                grew = True
        if grew or topic not in self._listed:  # unchanged: the same list, which the evidence skips at once
            self._listed[topic] = list(chain.from_iterable(logs))
        return self._listed[topic]


class _Rows:
    """One table's rows as JSON, in the stores' order (created_at, then id), kept up to date from the rows
    the store says changed; a changed row gets a new dict, an unchanged one keeps its own."""

    def __init__(self, changed: Callable[[], tuple[list[Any], list[str]]]) -> None:
        self._changed = changed
        self._keys: list[tuple[float, str]] = []
        self._rows: list[dict[str, Any]] = []
        self._where: dict[str, tuple[float, str]] = {}
        self._listed: list[dict[str, Any]] | None = None

    def read(self) -> tuple[list[dict[str, Any]], tuple[list[dict[str, Any]], list[str]]]:
        """The table's rows, and what changed since the last read: the new dicts in the table's order and
        the keys of rows gone (`Snapshot.changed_rows`)."""
        rows, gone = self._changed()
        if not rows and not gone and self._listed is not None:
            return self._listed, ([], [])  # unchanged: the same list, which the evidence skips at once
        removed = [key for key in gone if self._remove(key)]
        changed: list[tuple[tuple[float, str], dict[str, Any]]] = []
        for row in rows:
            self._remove(row.id)
            where = (row.created_at, row.id)
            at = bisect_left(self._keys, where)
            self._keys.insert(at, where)
            as_json = row.to_json()
            self._rows.insert(at, as_json)
            self._where[row.id] = where
            changed.append((where, as_json))
        changed.sort(key=lambda item: item[0])
        self._listed = list(self._rows)
        return self._listed, ([as_json for _, as_json in changed], removed)

    def _remove(self, key: str) -> bool:
        where = self._where.pop(key, None)
        if where is not None:
            at = bisect_left(self._keys, where)
            del self._keys[at], self._rows[at]
        return where is not None


def _nothing() -> tuple[list[Any], list[str]]:
    return [], []


def _problem_reply(problem: Problem) -> HttpReply:
    import json

    return HttpReply(problem.status, {"content-type": "application/problem+json"},
                     json.dumps(problem.to_json()).encode())
