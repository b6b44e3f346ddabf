"""The stack target: the reference running as separate processes on the local stack of
`kcverify stack up` (HTTP over loopback, events through Kafka, state in PostgreSQL, the cache in
Redis), driven with the same primitives and the same meaning as the embedded target.

- Processes (launcher.SPECS): payment, student (+ the cache invalidator), worker, payment-relay,
  course-relay, reconciler, each `kcverify serve COMPONENT` with the test-only control endpoint, with
  the named defects the target was built with. Started lazily on the first scenario, reused by the next
  ones (restarted when a scenario left one down), stopped by `close()` at the end of the run.
- Stillness between steps: the background components are HELD between steps and run (concurrently, on
  real time) during `settle` and `run`, as in the embedded system, where nothing moves unless a step
  makes it. Free-running components would turn "publish, then make the next 3 reads fail" into a race
  the worker wins before the fault exists. The HTTP services always serve.
- Namespaces: the databases, topics and cache are shared by every scenario and never wiped; each
  scenario gets fresh student ids (`{run}{n}-{name}`), and snapshots show only its rows and records
  (dead letters keep the original key) and the trace records about them. Offsets are global.
- Faults: one table shared by every process (a file): "the next N calls to courses_db fail" counts
  calls whichever process makes them, as the embedded system counts them across components.
- Time is real: no `control_clock` (the TTL scenario is skipped); the freshness bound is 1 s.
- Watches: a component process that exits when no step of the scenario stopped, killed or crashed it
  is restarted and reported as an `Incident` (the Runner ends that scenario as ERROR: its verdict is
  unknown). The stack itself is probed before every scenario (cheaply), every second of a settle, and
  whenever an operation fails or a settle hits its bound: PostgreSQL, Redis or the Kafka broker gone
  raises TargetUnreachable naming it, and the run stops there (exit 2).

See docs/targets.md."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import httpx

from kcverify.core.clock import SystemClock
from kcverify.core.errors import BusUnavailable, TargetUnreachable
from kcverify.reference import domain, frontend
from kcverify.reference.auth import issue_token
from kcverify.reference.defects import BY_NAME, CATALOGUE, SLOWDOWNS, Defects
from kcverify.reference.settings import AUTH_SECRET_ENV, WEBHOOK_SECRET_ENV, Settings
from kcverify.spec import names, policy
from kcverify.spec.gateway import callback_signature
from kcverify.stack.network import HOST
from kcverify.targets.base import (
    CAPABILITIES,
    EXPIRED_FOR,
    BusRecord,
    CacheEntry,
    HttpReply,
    Incident,
    RecordId,
    Snapshot,
    TargetInfo,
)
from kcverify.targets.http_client import HttpClient, http_client
from kcverify.targets.processes.launcher import (
    IN_PROCESS,
    OWNER,
    OWNERS,
    READY_TIMEOUT,
    SPECS,
    ManagedProcess,
    ProcessFailed,
)

if TYPE_CHECKING:
    # Imported where used: the observer needs psycopg and confluent-kafka, and loading this class to
    # list it (`kcverify targets`) must not import them.
    from kcverify.reference.adapters.kafka_bus import KafkaBus
    from kcverify.targets.external.cache import Cache
    from kcverify.targets.processes.observer import Databases, TopicReader, TraceFiles
    from kcverify.targets.registry import TargetOptions

SETTLE_TIMEOUT = 30.0
SETTLE_POLL = 0.1
SETTLE_STABLE = 2  # consecutive quiet polls
READ_HOLD_TIMEOUT = 15.0
STACK_PROBE_EVERY = 1.0  # seconds between quick stack probes while a settle runs
GONE_STOP_TIMEOUT = 3.0  # SIGTERM grace for the processes at the end of a run whose stack is gone
COMMITTED_RETRY = 5.0  # seconds a committed-offsets query is retried (a fresh broker still loading its groups)
# how the exit line names each service of the stack (kcverify.stack.lifecycle.ORDER)
# A process killed by one of these crashed by itself (a bug: a bad memory access, an abort); SIGKILL,
# SIGTERM and the like come from outside (an operator, the OOM killer): the scenario's verdict is unknown.
OWN_DEATH_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE, signal.SIGILL})


def died_by_itself(status: int) -> bool:
    """Whether a component process that ended with `status` (Popen's: -N for signal N) ended by itself: a
    failure status (an uncaught error, `os._exit`), or a crash signal. Status 0 is a graceful stop, which
    the components make only when told to (SIGTERM, SIGINT): from outside, as SIGKILL is."""
    return status > 0 or -status in OWN_DEATH_SIGNALS
STACK_NAMES = {"postgres": "PostgreSQL", "redis": "Redis", "kafka": "the Kafka broker"}
SERVICES = {"payment-service": "payment", "student-service": "student"}
# the topic a component's trace records are about when they name a partition and offset but no topic
WORKER_TOPICS = {"purchase-worker": domain.TOPIC_CONFIRMED}
GROUPS = ((domain.WORKER_GROUP, domain.TOPIC_CONFIRMED), (domain.INVALIDATOR_GROUP, domain.TOPIC_CREATED))


@dataclass
class _SplitRead:
    """A learning read held in the student service between its two halves."""

    student: str
    thread: threading.Thread
    reply: list[HttpReply] = field(default_factory=list)


class ProcessesTarget:
    """The reference as separate processes on the local stack of `kcverify stack up`."""

    # What the registry lists without building one (kcverify.targets.registry).
    description = "the reference as separate processes on the local stack of `kcverify stack up`"
    capabilities = frozenset(CAPABILITIES) - {"control_clock"}
    defect_names = tuple(BY_NAME)
    defect_catalogue = CATALOGUE + SLOWDOWNS  # names, rules and descriptions, for the kill matrix
    isolated = False  # one shared stack: one target at a time

    def __init__(self, stack: dict[str, Any], state_dir: Path, *, settle_timeout: float = SETTLE_TIMEOUT,
                 defects: Iterable[str] = (), static_membership: bool = False) -> None:
        """`defects`: named defects of the reference the component processes are started with.
        `static_membership`: the worker processes join their group as static members named after their
        slot, as workers restarted by a supervisor do (`kcverify chaos`); scenario runs keep dynamic
        members, so that a worker a crash point kills hands its partitions to the other at once."""
        self._stack = stack
        self._state_dir = state_dir
        # Retry policy and TTL are what the processes use too; the secrets are this run's own, generated
        # here and handed to the processes through the environment, as a deployment sets them.
        self._settings = Settings(mode="stack", webhook_secret=secrets.token_hex(32), auth_secret=secrets.token_hex(32))
        self._settle_timeout = settle_timeout
        self.info = TargetInfo(
            name="processes",
            capabilities=self.capabilities,
            freshness_bound=policy.FRESHNESS_BOUND_REAL,
        )
        self._clock = SystemClock()
        self._run = f"k{uuid.uuid4().hex[:6]}-"
        self._run_dir = state_dir / "target-runs" / self._run.rstrip("-")
        self._faults_file = self._run_dir / "faults.json"
        self._client: HttpClient | None = None
        self._lock: TextIO | None = None
        self._procs: dict[str, ManagedProcess] = {}
        self._control_pool: ThreadPoolExecutor | None = None
        self._defects = frozenset(defects)
        self._static_membership = static_membership
        unknown = sorted(self._defects - set(BY_NAME))
        if unknown:
            raise ValueError(f"unknown defect(s): {', '.join(unknown)}")
        self._db: Databases | None = None
        self._topics: TopicReader | None = None
        self._traces: TraceFiles | None = None
        self._bus: KafkaBus | None = None  # created on first use (publish, offsets)
        self._cache: Cache | None = None  # created on first use (cache_entry)
        self._scenario = 0
        self._prefix = f"{self._run}0-"
        self._started_at = 0.0
        self._notes: list[dict[str, Any]] = []  # trace records the target writes itself (kill, stop...)
        self._replayed: set[tuple[int, int]] = set()
        self._reads: list[_SplitRead] = []
        self._incidents: list[Incident] = []  # seen by the watch, not yet handed to the Runner
        self._stack_gone = False
        self.last_settle_pending: list[str] = []

    @classmethod
    def from_options(cls, options: TargetOptions) -> ProcessesTarget:
        """The registry's factory: setting `state_dir` picks the stack (default as `kcverify stack`);
        `static_membership` (true) makes the workers static group members (`kcverify chaos`)."""
        state_dir = options.settings.get("state_dir")
        return cls.from_state(None if state_dir is None else str(state_dir), defects=options.defects,
                              static_membership=bool(options.settings.get("static_membership", False)))

    @classmethod
    def from_state(cls, state_dir: str | os.PathLike[str] | None = None, *,
                   defects: Iterable[str] = (), static_membership: bool = False) -> ProcessesTarget:
        """The target for the stack of `kcverify stack up` in `state_dir` (default as `kcverify stack`),
        its processes started with `defects`. TargetUnreachable (exit 2) when no stack runs there or a
        service does not answer."""
        from kcverify.stack import StackError, load_settings, resolve_state_dir, status

        directory = resolve_state_dir(state_dir)
        try:
            stack = load_settings(state_dir)
            down = [s for s in status(directory) if not s.up]
        except StackError as exc:
            raise TargetUnreachable(f"the processes target needs a running stack: {exc}") from exc
        if down:
            what = ", ".join(f"{s.name} ({s.detail})" for s in down)
            raise TargetUnreachable(f"the stack in {directory} is not healthy: {what}; run `kcverify stack up`")
        target = cls(stack, directory, defects=defects, static_membership=static_membership)
        target._claim_stack()  # a second run on the same stack is refused here, before anything starts
        return target

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self, *, seed: int) -> None:
        """Processes up (started with the target's defects, restarted if a scenario left one down),
        everything held and reset, and a fresh namespace. The seed does not apply: ids are random on a
        real stack. TargetUnreachable when PostgreSQL, Redis or the broker is gone."""
        self._check_stack(thorough=False)
        # Everything below talks to the stack (marking the topics' ends asks the broker): a broker that
        # dies between the probe above and here must stop the run too, not read as one scenario's error.
        with self._guard():
            self._ensure_processes()
            self._each(lambda p: p.control("POST", "/reset"))
            self._hold_all()
            self._observer()
            self._incidents = []  # one that died between two scenarios was restarted above: no scenario's loss
            assert self._topics is not None and self._traces is not None
            self._scenario += 1
            self._prefix = f"{self._run}{self._scenario}-"
            self._started_at = self.now()
            self._topics.mark()
            self._traces.mark()
        self._notes = []
        self._replayed = set()
        self.last_settle_pending = []

    def stop(self) -> None:
        """The end of one scenario: a read still held is let go. The processes stay for the next one."""
        if self._reads and "student" in self._procs:
            self._procs["student"].control("POST", "/release", {})
        for pending in self._reads:
            pending.thread.join(READ_HOLD_TIMEOUT)
        self._reads = []

    def close(self) -> None:
        """The end of the run: every process stopped gracefully, connections closed, run files removed
        (kept when KCVERIFY_STACK_KEEP_RUN is set, for debugging)."""
        self.stop()
        self._stop_processes()
        self._procs = {}
        for closer in (self._db, self._topics, self._cache):
            if closer is not None:
                closer.close()
        if self._bus is not None:
            self._bus.close()
        self._db = self._topics = self._traces = self._bus = self._cache = None
        if self._control_pool is not None:
            self._control_pool.shutdown()
            self._control_pool = None
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None
        if not os.environ.get("KCVERIFY_STACK_KEEP_RUN"):
            shutil.rmtree(self._run_dir, ignore_errors=True)

    def __enter__(self) -> ProcessesTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure_processes(self) -> None:
        if not self._procs:
            self._claim_stack()
            self._run_dir.mkdir(parents=True, exist_ok=True)
            self._faults_file.touch()
            self._client = http_client(30.0)
            env = {WEBHOOK_SECRET_ENV: self._settings.webhook_secret, AUTH_SECRET_ENV: self._settings.auth_secret}
            self._procs = {spec.name: ManagedProcess(spec, self._run_dir, self._state_dir, self._faults_file,
                                                     self._client, env) for spec in SPECS}
            for process in self._procs.values():
                if self._static_membership and process.spec.kind == "worker":
                    process.group_instance = process.spec.name
        defects = self._defects
        starting = [p for p in self._procs.values() if not p.alive()]
        for process in starting:
            process.spawn(defects)
        deadline = time.monotonic() + READY_TIMEOUT
        try:
            for process in starting:
                process.wait_ready(deadline)
        except Exception as exc:
            raise TargetUnreachable(f"a component process of the processes target did not start: {exc}") from exc
        student = self._procs["student"].control("GET", "/health") or {}
        for name, state in (student.get("components") or {}).items():
            if state in ("down", "stopped"):
                self._procs["student"].control("POST", f"/components/{name}/restart")

    def _claim_stack(self) -> None:
        """One run at a time per stack: two runs' workers would share the consumer group and take each
        other's events (held, with the other run's defects). The lock goes with the process."""
        if self._lock is not None:
            return
        self._state_dir.mkdir(parents=True, exist_ok=True)
        lock = (self._state_dir / "target.lock").open("a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise TargetUnreachable(f"another `kcverify run --target processes` is using the stack in "
                                    f"{self._state_dir}; wait for it (one run at a time per stack)") from None
        self._lock = lock

    def _stop_processes(self) -> None:
        # Without their stack the processes may hang in a broker call: a short grace, then SIGKILL.
        grace = GONE_STOP_TIMEOUT if self._stack_gone else None
        with ThreadPoolExecutor(len(SPECS)) as pool:
            list(pool.map(lambda p: p.terminate() if grace is None else p.terminate(grace), self._procs.values()))

    # --- the watches ---------------------------------------------------------------------------------

    def incidents(self) -> list[Incident]:
        """Every component process that exited since the last call although no step of the scenario
        stopped, killed or crashed it, each restarted (held, as the others are between steps). The
        Runner asks after every step."""
        for process in self._procs.values():
            if self._reap(process):
                self._respawn(process)
        found, self._incidents = self._incidents, []
        return found

    def _reap(self, process: ManagedProcess) -> bool:
        """Record the exit of `process` as an incident when it is not the scenario's own (the target's
        stop or kill, or the crash point it was armed with: CRASH_EXIT). True when it was recorded."""
        status = process.exit_status()
        if status is None or process.exit_reported:
            return False
        process.exit_reported = True
        from kcverify.reference.component_process import CRASH_EXIT

        if process.exit_expected or (process.crash_armed and status == CRASH_EXIT):
            return False
        what = f"the {process.spec.components[0]} process {process.describe_exit()}"
        self._incidents.append(Incident(what, "restarted", own=died_by_itself(status)))
        return True

    def _respawn(self, process: ManagedProcess) -> None:
        """Restart a process the watch found dead; when it will not come back, the incident says so."""
        process.spawn(self._defects)
        try:
            process.wait_ready(time.monotonic() + READY_TIMEOUT)
        except ProcessFailed as exc:
            self._check_stack(thorough=True)
            last = self._incidents[-1]
            self._incidents[-1] = Incident(last.what, f"restarting it failed: {exc}", own=last.own)
            return
        self._note(process.spec.components[0], "started")

    def _check_stack(self, *, thorough: bool) -> None:
        """TargetUnreachable naming every service of the stack that is gone. `thorough`: a real request
        to each (seconds at most; after a failure); else process alive and port open (milliseconds)."""
        from kcverify.stack import StackError, resolve_state_dir, status

        try:
            down = [s for s in status(self._state_dir, quick=not thorough) if not s.up]
        except StackError as exc:
            down, detail = [], str(exc)
        else:
            detail = ""
        if not down and not detail:
            return
        self._stack_gone = True
        parts = [f"{STACK_NAMES.get(s.name, s.name)} at {HOST}:{s.port} is gone ({s.detail})" for s in down]
        where = "" if self._state_dir == resolve_state_dir(None) else f" --state-dir {self._state_dir}"
        raise TargetUnreachable(f"{'; '.join(parts) or detail}; run `kcverify stack up{where}`")

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """An operation that fails (a broker call timing out, a lost database connection) first asks
        whether the stack is still there: if not, the run stops with that, not with this symptom."""
        try:
            yield
        except TargetUnreachable:
            raise
        except Exception:
            self._check_stack(thorough=True)
            raise

    def _each(self, action: Any) -> list[Any]:
        """`action(process)` for every running process, concurrently."""
        live = [p for p in self._procs.values() if p.alive()]
        if not live:
            return []
        if self._control_pool is None:  # kept for the run: its threads keep their HTTP connections
            self._control_pool = ThreadPoolExecutor(len(SPECS), thread_name_prefix="kcverify-control")
        return list(self._control_pool.map(action, live))

    def _hold_all(self) -> None:
        self._each(lambda p: p.control("POST", "/hold", {}))

    def _resume_all(self) -> None:
        self._each(lambda p: p.control("POST", "/resume", {}))

    def _observer(self) -> None:
        from kcverify.targets.processes.observer import Databases, TopicReader, TraceFiles

        if self._db is None:
            self._db = Databases(self._stack["payments_dsn"], self._stack["courses_dsn"])
        if self._topics is None:
            self._topics = TopicReader(self._stack["kafka_bootstrap"], self._kafka().end_offsets)
        if self._traces is None:
            self._traces = TraceFiles(self._run_dir)

    def _kafka(self) -> KafkaBus:
        if self._bus is None:
            from kcverify.reference.adapters import kafka_bus
            from kcverify.reference.adapters.kafka_bus import KafkaBus

            if not kafka_bus.log.handlers:  # quiet unless logging is configured (see observer.log)
                kafka_bus.log.addHandler(logging.NullHandler())
            self._bus = KafkaBus(self._stack["kafka_bootstrap"], self._clock, client_id="kcverify-target")
        return self._bus

    def _note(self, component: str, event: str, **fields: Any) -> None:
        self._notes.append({"at": self.now(), "component": component, "event": event, "by": "stack-target",
                            **fields})

    # --- for tests and tools -------------------------------------------------------------------------

    @property
    def stack_settings(self) -> dict[str, Any]:
        """The stack's stack.json (DSNs, Kafka bootstrap, Redis URL, ...)."""
        return dict(self._stack)

    def process(self, name: str) -> ManagedProcess:
        """A component process by name (launcher.SPECS): its pid, ports, control endpoint."""
        return self._procs[name]

    def run_free(self) -> None:
        """Let every live component run on its own, as in production, until `hold_all` (`kcverify bench`
        measures the flow this way; scenarios never do: between their steps everything is held)."""
        with self._guard():
            self._resume_all()

    def process_names(self) -> tuple[str, ...]:
        """The component processes (launcher.SPECS names), for a nemesis that picks one to kill."""
        return tuple(spec.name for spec in SPECS)

    def respawn_free(self, name: str) -> None:
        """Start the process `name` again if it is down (with the target's defects; a supervisor's
        restart after a crash) and let it run free. Its exit was the caller's (a kill by a nemesis): no
        incident. The stack is expected back (`stack_recovered` after a service restart)."""
        process = self._procs[name]
        if process.alive():
            return
        process.exit_reported = True
        process.spawn(self._defects)
        process.wait_ready(time.monotonic() + READY_TIMEOUT)
        self._note(process.spec.components[0], "started")
        process.control("POST", "/resume", {})

    def stack_recovered(self) -> None:
        """The stack is whole again after a planned outage (`kcverify chaos` restarts a service on
        purpose): forget that it was seen gone, so holds and stops behave as on a healthy stack."""
        self._check_stack(thorough=True)
        self._stack_gone = False

    def hold_all(self) -> None:
        """Hold every component again at its next safe point (after `run_free`); not when the stack is
        gone (a hold would wait for a step stuck on it)."""
        if self._stack_gone:
            return
        with self._guard():
            self._hold_all()

    # --- the primitives ----------------------------------------------------------------------------

    def now(self) -> float:
        return self._clock.now()  # the host's clock: the same one the processes and PostgreSQL stamp with

    def student_id(self, name: str) -> str:
        return f"{self._prefix}{name}"

    def cache_entry(self, student_id: str) -> CacheEntry:
        """The student's learning-view key, read from the stack's Redis (PTTL), as on a user's system."""
        if self._cache is None:
            from kcverify.targets.external.cache import Cache

            self._cache = Cache(self._stack["redis_url"], names.cache_key("{studentId}"))
        return self._cache.observe(student_id)

    def http(self, service: str, method: str, path: str, *, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> HttpReply:
        return self._request(service, method, path, body=body, headers=headers, timeout=30.0)

    def _request(self, service: str, method: str, path: str, *, body: bytes | None = None,
                 headers: dict[str, str] | None = None, timeout: float | None) -> HttpReply:
        assert self._client is not None, "target not started"
        process = self._procs[SERVICES[service]]
        if not process.alive():  # died at a crash point in an earlier request: a supervisor restarts it
            self._reap(process)  # (an incident when no crash point was armed)
            process.spawn(self._defects)
            process.wait_ready(time.monotonic() + READY_TIMEOUT)
            self._note(service, "started")
        try:
            response = self._client.request(method, f"{process.service_url}{path}", content=body,
                                            headers=headers or {}, timeout=timeout)
        except httpx.HTTPError as exc:
            if process.wait_exit(2.0) is None:  # no answer from a live service: is its stack still there?
                self._check_stack(thorough=True)
            # a service that died mid-request is reaped now and restarted next time
            return HttpReply(None, {}, b"", error=f"no response from {service}: {type(exc).__name__}: {exc}")
        return HttpReply(response.status_code, dict(response.headers), response.content)

    def sign(self, payment_id: str, body: bytes, at: float | None = None) -> str:
        return callback_signature(self._settings.webhook_secret, payment_id, body, self.now() if at is None else at)

    def token(self, subject: str, role: str) -> str:
        return issue_token(self._settings.auth_secret, subject, role, now=self.now(), ttl=self._settings.token_ttl)

    def expired_token(self, subject: str, role: str) -> str:
        ttl = self._settings.token_ttl
        return issue_token(self._settings.auth_secret, subject, role, now=self.now() - ttl - EXPIRED_FOR, ttl=ttl)

    def publish(self, topic: str, key: str | None, value: bytes,
                headers: tuple[tuple[str, str], ...] = ()) -> RecordId:
        with self._guard():
            delivered = self._kafka().publish(topic, key, value, headers)
        return RecordId(delivered.topic, delivered.partition, delivered.offset)

    def step_component(self, component: str, times: int) -> None:
        """`run`: `times` steps of that component now, the others held (as embedded `System.step`). A
        component that is down does nothing; one that dies at a crash point mid-step just ends. The
        worker's processes take their steps each in turn, as the embedded group's members do."""
        for process in self._owners(component):
            with self._guard():
                process.control("POST", "/step", {"component": component, "times": times})

    def arm_crash(self, point: str) -> None:
        """Armed in every process of the component: each worker process that reaches the point dies there
        (the one that has the event first; a survivor too, should the event come to it)."""
        armed = []
        for process in self._owners(names.crash_point_owner(point)):
            process.crash_armed = True  # its coming exit at the point (CRASH_EXIT) is the scenario's own
            if process.control("POST", "/crash", {"point": point}) is not None:
                armed.append(process)
        if not armed:
            raise RuntimeError(f"cannot arm {point}: no process of {names.crash_point_owner(point)} is running")

    def kill(self, component: str) -> None:
        if component in IN_PROCESS:
            self._procs[OWNER[component]].control("POST", f"/components/{component}/kill")
            return
        for process in self._owners(component):
            self._reap(process)  # dead already, by no step of the scenario: an incident
            process.kill()
        self._note(component, "crashed", point="killed")

    def stop_component(self, component: str) -> None:
        if component in IN_PROCESS:
            self._procs[OWNER[component]].control("POST", f"/components/{component}/stop")
            return
        for process in self._owners(component):
            self._reap(process)
            status = process.terminate()
            self._note(component, "stopped", exitStatus=status)

    def restart(self, component: str) -> None:
        if component in IN_PROCESS:
            self._procs[OWNER[component]].control("POST", f"/components/{component}/restart")
            return
        owners = self._owners(component)
        if all(process.alive() for process in owners):
            return
        # A worker process that survived its peer's crash may still have the crash point armed: the
        # restart is of the whole worker deployment, so no armed point outlives it.
        for process in owners:
            self._reap(process)
            if process.alive():
                process.terminate()
        for process in owners:
            process.spawn(self._defects)
            process.wait_ready(time.monotonic() + READY_TIMEOUT)
            self._note(component, "started")

    def _owners(self, component: str) -> list[ManagedProcess]:
        return [self._procs[name] for name in OWNERS[component]]

    def fail(self, resource: str, times: int, op: str | None, after: int = 0) -> None:
        """Every process reads the same fault table, so any live one can take the rule."""
        rule = {"resource": resource, "times": times, "op": op, "after": after}
        for process in self._procs.values():
            if process.control("POST", "/faults", rule) is not None:
                return
        raise RuntimeError("no component process is running to take the fault")

    def begin_read(self, student: str, authorization: str) -> Any:
        """The GET starts in a thread and is held in the student service between its two halves; returns
        once it is held, or the reply when the service answered at once (401/403/400)."""
        process = self._procs["student"]
        process.control("POST", "/pause", {"student": student})
        pending = _SplitRead(student, threading.Thread(target=lambda: None))

        def get() -> None:
            # no timeout: it is held for as long as the scenario's steps in between take
            pending.reply.append(self._request("student-service", "GET", f"/api/v1/students/{student}/learning",
                                               headers={"Authorization": authorization}, timeout=None))

        pending.thread = threading.Thread(target=get, name=f"kcverify-read-{student}", daemon=True)
        pending.thread.start()
        deadline = time.monotonic() + READ_HOLD_TIMEOUT
        while True:
            if not pending.thread.is_alive():
                process.control("POST", "/release", {"student": student})
                return pending.reply[0]
            held = (process.control("GET", "/paused") or {}).get("paused", [])
            if student in held:
                self._reads.append(pending)
                return pending
            if time.monotonic() >= deadline:
                process.control("POST", "/release", {"student": student})
                pending.thread.join(READ_HOLD_TIMEOUT)
                raise RuntimeError(f"the learning read of {student} never reached its pause point")
            time.sleep(0.01)

    def finish_read(self, handle: Any) -> HttpReply:
        if isinstance(handle, HttpReply):
            return handle
        assert isinstance(handle, _SplitRead)
        self._procs["student"].control("POST", "/release", {"student": handle.student})
        handle.thread.join(READ_HOLD_TIMEOUT + 30.0)
        if handle in self._reads:
            self._reads.remove(handle)
        if not handle.reply:
            return HttpReply(None, {}, b"", error="the held read did not finish")
        return handle.reply[0]

    def advance_clock(self, seconds: float) -> None:
        raise NotImplementedError("the stack runs on real time (no control_clock)")

    def wait(self, seconds: float) -> None:
        """Real time passes; the components stay held as between any two steps."""
        time.sleep(seconds)

    def settle(self, timeout: float | None) -> bool:
        """Let every live component run until the flow is quiet for SETTLE_STABLE polls in a row, then
        hold them again. Quiet: no unpublished outbox row (of a live relay), the worker and invalidator
        groups have consumed and committed everything (when live), and no succeeded payment of this
        namespace lacks its purchase while the reconciler could still help. False on the bound (work
        pending: `last_settle_pending` says what)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self._settle_timeout)
        probed = time.monotonic()
        with self._guard():
            self._resume_all()
            try:
                stable = 0
                while True:
                    pending = self._pending_work()
                    stable = stable + 1 if not pending else 0
                    if stable >= SETTLE_STABLE:
                        self.last_settle_pending = []
                        return True
                    if time.monotonic() >= deadline:
                        self.last_settle_pending = pending
                        self._check_stack(thorough=True)  # the bound hit: work pending, or no stack?
                        return False
                    if time.monotonic() - probed >= STACK_PROBE_EVERY:
                        self._check_stack(thorough=False)
                        probed = time.monotonic()
                    time.sleep(min(SETTLE_POLL, max(0.0, deadline - time.monotonic())))  # the last poll at the bound
            finally:
                if not self._stack_gone:  # holding would wait for a step stuck on the missing stack
                    self._hold_all()

    def _pending_work(self) -> list[str]:
        assert self._db is not None
        down = self._down()
        pending: list[str] = []
        for relay, db in (("payment-relay", "payments"), ("course-relay", "courses")):
            if relay not in down and (n := self._db.pending_outbox(db)):
                pending.append(f"{n} unpublished {db}_db outbox row(s)")
        bus = self._kafka()
        for component, (group, topic) in zip(("purchase-worker", "cache-invalidator"), GROUPS, strict=True):
            if component in down:
                continue
            ends, committed = bus.end_offsets(topic), self._committed(group, topic)
            lag = sum(max(0, end - (committed.get(p) or 0)) for p, end in ends.items())
            if lag:
                pending.append(f"{group} is {lag} record(s) behind on {topic}")
        helpers = {"reconciler", "payment-relay", "purchase-worker"}
        if not helpers & down and "no-reconciler" not in (self._defects):
            orphans = self._db.orphans(self._prefix)
            if orphans:
                pending.append(f"{len(orphans)} succeeded payment(s) without a purchase yet")
        return pending

    def _committed(self, group: str, topic: str) -> dict[int, int | None]:
        """The group's committed offsets, asked again for a few seconds when the broker answers with a
        transient error (COORDINATOR_LOAD_IN_PROGRESS on a freshly started broker): a read, safe to
        repeat. A broker that is gone ends it at once (the quick stack probe)."""
        deadline = time.monotonic() + COMMITTED_RETRY
        while True:
            try:
                return self._kafka().committed(group, topic)
            except BusUnavailable:
                if time.monotonic() >= deadline:
                    raise
                self._check_stack(thorough=False)
                time.sleep(0.2)

    def _down(self) -> frozenset[str]:
        down: set[str] = set()
        for process in self._procs.values():
            loops = [c for c in process.spec.components if c in OWNER and c not in SERVICES]
            if not process.alive():
                down.update(loops)
                continue
            if any(c in IN_PROCESS for c in loops):
                states = (process.control("GET", "/health") or {}).get("components", {})
                down.update(c for c, state in states.items() if state in ("down", "stopped"))
        return frozenset(down)

    def display(self, item: dict[str, Any]) -> dict[str, Any]:
        """What the reference's app shows for one purchase of a learning view (its frontend model, F1)."""
        return frontend.display(item, Defects(self._defects)).to_json()

    def replay_dlq(self) -> int:
        with self._guard():
            return self._replay_dlq()

    def _replay_dlq(self) -> int:
        """W8 for this scenario: every dead letter of this namespace not replayed yet goes back to its
        original topic, verbatim, with its key and headers (the embedded replayer's group over the
        whole DLQ would also replay other scenarios' letters on a shared stack)."""
        assert self._topics is not None
        self._topics.read_new()
        count = 0
        for record in self._topics.records[domain.TOPIC_DLQ]:
            if not (record.key or "").startswith(self._prefix) or (record.partition, record.offset) in self._replayed:
                continue
            letter = json.loads(record.value)
            original = letter["originalEvent"]
            raw = original.encode() if isinstance(original, str) else domain.encode(original)
            self._kafka().publish(letter["originalTopic"], record.key, raw, list(record.headers))
            self._replayed.add((record.partition, record.offset))
            self._note("dlq-replayer", "replayed", reason=letter.get("reason"), originalOffset=letter.get("offset"))
            count += 1
        return count

    def snapshot(self) -> Snapshot:
        with self._guard():
            return self._snapshot()

    def _snapshot(self) -> Snapshot:
        assert self._db is not None and self._topics is not None and self._traces is not None
        self._topics.read_new()
        self._traces.read_new()
        prefix = self._prefix
        topics = {t: [r for r in records if (r.key or "").startswith(prefix)]
                  for t, records in self._topics.records.items()}
        payments = self._db.payments(prefix)
        return Snapshot(
            at=self.now(),
            payments=payments,
            purchases=self._db.purchases(prefix),
            topics=topics,
            end_offsets={t: dict(ends) for t, ends in self._topics.ends.items()},
            committed={f"{g}/{t}": self._committed(g, t) for g, t in GROUPS},
            traces=self._scenario_traces({p["id"] for p in payments}),
            down=self._down(),
        )

    def _scenario_traces(self, payment_ids: set[str]) -> list[dict[str, Any]]:
        """This scenario's trace records: those since it started, minus the ones that are about another
        namespace (another payment, student or record). The processes serve every namespace: the
        reconciler may, say, re-publish an earlier run's orphan while this scenario runs."""
        assert self._topics is not None and self._traces is not None
        foreign = {(r.topic, r.partition, r.offset) for records in self._topics.records.values() for r in records
                   if not (r.key or "").startswith(self._prefix)}

        def ours(record: dict[str, Any]) -> bool:
            if record.get("at", 0) < self._started_at:
                return False
            payment, student = record.get("paymentId"), record.get("studentId")
            if isinstance(payment, str) and payment not in payment_ids:
                return False
            if isinstance(student, str) and not student.startswith(self._prefix):
                return False
            topic = record.get("topic") or WORKER_TOPICS.get(str(record.get("component")))
            return (topic, record.get("partition"), record.get("offset")) not in foreign

        out = [r for r in [*self._traces.records, *self._notes] if ours(r)]
        out.sort(key=lambda r: float(r.get("at", 0)))
        return out


__all__ = ["BusRecord", "ProcessesTarget"]
