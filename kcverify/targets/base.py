"""The Target protocol: the primitives the engine needs from a system under test, and the
capabilities that say which of them a target really has. The engine turns scenario steps into these
calls; a step that needs a capability the target lacks is reported `skipped (needs X)`, never passed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

# Capabilities a target may offer beyond plain HTTP.
CAPABILITIES = (
    "http",
    "produce_events",  # put arbitrary bytes on a topic
    "read_db",  # snapshot payments and purchases
    "read_bus",  # read every record of every topic, and offsets
    "read_traces",  # the components' own trace of attempts, retries, commits
    "inject_faults",  # make a store / the cache / the bus fail for the next N calls
    "control_clock",  # advance time without waiting
    "split_reads",  # run a learning read in two halves
    "control_components",  # step, stop, kill, restart
    "crash_components",  # crash a component at a named point in its code (the reference's instrumentation)
    "read_cache",  # see a student's learning-view key in the cache: there or not, and its TTL
    "caller_credentials",  # the bearer token a step sends (or its absence) reaches the system as sent
    "expiring_tokens",  # mint a bearer token that has expired already (`expired_token`)
)
# How long ago an expired token (`expired_token`) expired: an hour, well past the clock skew services allow
# when they judge expiry (libraries default to 1 to 5 minutes) and the skew between two hosts' clocks.
EXPIRED_FOR = 3600


@dataclass(frozen=True)
class HttpReply:
    """One HTTP exchange as the client saw it. status None: no answer (the server died mid-request),
    an indeterminate outcome that is never counted as passed."""

    status: int | None
    headers: dict[str, str]
    body: bytes
    error: str = ""

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass(frozen=True)
class BusRecord:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    headers: tuple[tuple[str, str], ...]
    timestamp: float


# Set on every record a scenario injects (`publish`), so anyone reading the topic can tell it from the
# system's own records. The verifier itself tells them apart by the identity `Target.publish` returns:
# the system copies headers onward (a dead letter, its replay), so the header alone would not be exact.
INJECTED_HEADER = "kcverify-injected"


@dataclass(frozen=True)
class CacheEntry:
    """One student's learning-view key as the cache holds it at one moment (`Target.cache_entry`).
    `ttl`: seconds until it expires; None when the key is absent or has no expiry at all (S2: a learning
    view must expire)."""

    key: str
    present: bool
    ttl: float | None


@dataclass(frozen=True)
class RecordId:
    """Where a produced record landed, as the broker acknowledged it."""

    topic: str
    partition: int
    offset: int


@dataclass
class Snapshot:
    """The state of the system at one moment, as far as the target can see it."""

    at: float
    payments: list[dict[str, Any]] = field(default_factory=list)  # Payment.to_json() shape
    purchases: list[dict[str, Any]] = field(default_factory=list)  # Purchase.to_json() shape
    topics: dict[str, list[BusRecord]] = field(default_factory=dict)
    end_offsets: dict[str, dict[int, int]] = field(default_factory=dict)
    committed: dict[str, dict[int, int | None]] = field(default_factory=dict)  # "group/topic" -> offsets
    traces: list[dict[str, Any]] = field(default_factory=list)
    down: frozenset[str] = frozenset()
    # True when every topic is listed sorted by (partition, offset): the evidence then finds the records
    # new since the previous snapshot by bisection instead of comparing every record (evidence/window.py).
    ordered: bool = False
    # Optional, for long runs: `serial` numbers a target's snapshots 1, 2, ... within one system, and
    # `changed_rows` (table -> (rows that are new or changed since the snapshot numbered `serial - 1`, keys
    # of rows gone)) lets the evidence look only at those instead of comparing every row of a table on
    # every step. None: the evidence compares the tables itself.
    serial: int = 0
    changed_rows: dict[str, tuple[list[dict[str, Any]], list[str]]] | None = None


@dataclass(frozen=True)
class Incident:
    """Something that happened to the system under test that none of the scenario's steps made happen:
    a component process died and was restarted.

    Killed from outside (SIGKILL, SIGTERM: an operator, the OOM killer), the scenario's verdict is
    unknown: the Runner ends it as ERROR with `what`, the step it was seen in, and `action` ("the
    purchase-worker process exited (signal 9) during step 3; restarted"). Ended by itself (`own`: it
    exited with a status, or crashed with SIGSEGV, SIGABRT and the like), the death is the system's own
    failure, as a consumer that dies on an event it cannot handle instead of dead-lettering it: the
    Runner fails the step with it."""

    what: str  # "the purchase-worker process exited (signal 9)"
    action: str = ""  # what the target did about it: "restarted"
    own: bool = False  # the component ended by itself, not killed from outside


@dataclass(frozen=True)
class TargetInfo:
    name: str
    capabilities: frozenset[str]
    freshness_bound: float | None  # seconds after the commit; None: "after the next settle"
    # No retry counts, backoffs or TTLs here: what a system is judged by comes from the rules
    # (kcverify.spec.policy.Conventions), never from the system's own configuration.


class Target(Protocol):
    """A target may also offer `close()`: the Runner calls it once at the end of a run (the processes
    target stops its processes there), and `incidents() -> list[Incident]`: what happened outside the
    scenario's steps since the last call (the Runner asks after every step). Neither is part of the
    protocol, so targets without them conform.

    A target with the `read_cache` capability offers `cache_entry(name) -> CacheEntry`: the learning-view
    key of the scenario's student `name`, read straight from the cache (the engine looks after every
    learning read answered 200, so the freshness check can judge the key's TTL by S2).

    A target that runs a frontend model of its own (the reference's) offers `display(item) -> dict`: the
    five values its app shows for one purchase of a learning view (F1); the metadata check judges those
    instead of kcverify's own reading of the app's rules.

    A target whose infrastructure is gone (a database or broker that no longer runs) raises
    TargetUnreachable from any primitive: the Runner stops the whole run there (exit 2) rather than
    letting every later step time out.

    Everything fixed for a run (named defects, a state directory, a profile) is given when the target is
    built (kcverify.targets.registry.TargetOptions); only the seed changes between scenarios."""

    info: TargetInfo

    def start(self, *, seed: int) -> None:
        """A fresh system for one scenario."""
        ...

    def stop(self) -> None: ...

    def now(self) -> float: ...

    def student_id(self, name: str) -> str:
        """The real id of the scenario's student `name` (e.g. prefixed per scenario on a shared stack,
        so each scenario sees only its own students, payments and events)."""
        ...

    def http(self, service: str, method: str, path: str, *, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> HttpReply: ...

    def sign(self, payment_id: str, body: bytes, at: float | None = None) -> str:
        """The X-Signature a genuine payment gateway would send with this body for this payment, signed
        at `at` (default: now, on the target's clock). A signature for another payment or an old `at` is
        how a scenario forges a confirmation (P2)."""
        ...

    def token(self, subject: str, role: str) -> str:
        """A bearer token for `subject` as `role`, issued now on the target's clock."""
        ...

    def expired_token(self, subject: str, role: str) -> str:
        """A bearer token for `subject` as `role` as the system issues them, but one that expired a minute
        ago on the target's clock (the target knows its tokens' lifetime). Needs `expiring_tokens`."""
        ...

    def publish(self, topic: str, key: str | None, value: bytes,
                headers: tuple[tuple[str, str], ...] = ()) -> RecordId:
        """Produce one record as the scenario's own (not the system's); returns where it landed."""
        ...

    def step_component(self, component: str, times: int) -> None: ...

    def arm_crash(self, point: str) -> None: ...

    def kill(self, component: str) -> None: ...

    def stop_component(self, component: str) -> None: ...

    def restart(self, component: str) -> None: ...

    def fail(self, resource: str, times: int, op: str | None, after: int = 0) -> None:
        """The `times` calls to `resource` (its method `op`, any when None) after the next `after` fail."""
        ...

    def begin_read(self, student: str, authorization: str) -> Any:
        """Returns a handle for finish_read, or an HttpReply when the read was refused (401/403/400)."""
        ...

    def finish_read(self, handle: Any) -> HttpReply: ...

    def advance_clock(self, seconds: float) -> None: ...

    def wait(self, seconds: float) -> None:
        """Let `seconds` of the system's own time pass (real seconds, or the manual clock), so that a
        later read is judged past a time bound such as freshness."""
        ...

    def settle(self, timeout: float | None) -> bool:
        """Run / wait until quiet; False when a bound was hit with work pending."""
        ...

    def replay_dlq(self) -> int: ...

    def snapshot(self) -> Snapshot: ...
