"""Evidence: the append-only history of one scenario run. Operations (HTTP exchanges, injected
events, settles) with their start and finish times on the target's clock, and a snapshot of the
observable state after every step. Checks read evidence; they never touch the target."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from kcverify.evidence.window import RowChange, SnapshotWindow, StepState
from kcverify.spec.names import TOPIC_CONFIRMED, TOPIC_CREATED
from kcverify.spec.policy import SPEC_CONVENTIONS, Conventions
from kcverify.targets.base import INJECTED_HEADER, BusRecord, CacheEntry, HttpReply, RecordId, Snapshot, TargetInfo


@dataclass(frozen=True)
class Exchange:
    step: int  # 1-based; 0 for the engine's final probes
    kind: str  # the step kind, or "probe"
    service: str
    method: str
    path: str
    request_body: bytes
    started_at: float
    finished_at: float
    reply: HttpReply
    student: str | None = None
    start_seq: int = 0  # order of the start among all operations (the manual clock often ties)
    principal: tuple[str, str] | None = None  # (subject, role) of the bearer token sent, if any
    # for gateway callbacks, how the request was signed (SIGNATURES in engine/steps.py): "fresh" is the
    # gateway's own for this payment now; "none", "other-payment", "stale", "replay" are attempts
    signature: str | None = None
    # for a learning read answered 200 on a target that can see its cache (`read_cache`): the student's
    # key right after the answer, so S2's expiry is judged by what the cache holds, not by what it says
    cache: CacheEntry | None = None
    # for a learning read or an invalidation sent with a broken bearer token (the step's `credential`):
    # "none" (no Authorization header), "forged" (a signature that does not match) or "expired"
    credential: str | None = None
    # for a learning read answered 200 on a target that runs a frontend model of its own (the reference's
    # `display`): the five values its app shows for each listed purchase, by paymentId (F1, F2)
    shown: dict[str, dict[str, Any]] | None = None

    @property
    def indeterminate(self) -> bool:
        return self.reply.status is None


@dataclass
class PaymentRecord:
    """A payment the scenario created: the name it goes by and what the student chose at checkout."""

    name: str
    id: str
    student: str
    course: str
    checkout: dict[str, Any]
    step: int
    generated: bool = False  # the checkout metadata was drawn by the generator (a failure shows it whole)


@dataclass(frozen=True)
class Settle:
    step: int
    started_at: float
    finished_at: float
    quiet: bool
    end_seq: int = 0


@dataclass
class Evidence:
    target: TargetInfo
    freshness_bound: float | None
    exchanges: list[Exchange] = field(default_factory=list)
    payments: dict[str, PaymentRecord] = field(default_factory=dict)
    injected: list[RecordId] = field(default_factory=list)  # records the scenario produced (`publish`)
    settles: list[Settle] = field(default_factory=list)
    # The last two snapshots whole, a per-step history of every older one, and the last step's delta
    # (evidence/window.py): `snapshots.append((step, snapshot))` as before; iterating sees the two kept.
    snapshots: SnapshotWindow = field(default_factory=SnapshotWindow)
    step_titles: dict[int, str] = field(default_factory=dict)
    # step -> (kind, arguments): what the scenario did, e.g. which faults it injected, which a check may
    # need to judge an outcome (a re-publish is legitimate only after a fault that repeats one)
    step_actions: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    seq: int = 0
    # What the system is judged by where the rules leave room for configuration (retries, backoff, TTL):
    # the spec's defaults, or a profile's declared conventions. Never the system's own settings.
    conventions: Conventions = SPEC_CONVENTIONS
    # indexes kept up to date as the lists above grow (appended to, never rewritten)
    _indexed: int = field(default=0, repr=False)
    _by_step: dict[int, list[Exchange]] = field(default_factory=dict, repr=False)
    _injected_seen: int = field(default=0, repr=False)
    _injected_index: dict[str, set[tuple[int, int]]] = field(default_factory=dict, repr=False)
    _names: dict[str, str] = field(default_factory=dict, repr=False)
    _names_seen: int = field(default=0, repr=False)

    def tick(self) -> int:
        """The next number in the one order of every operation's start and end."""
        self.seq += 1
        return self.seq

    @property
    def last(self) -> Snapshot:
        return self.snapshots[-1][1] if self.snapshots else Snapshot(at=0.0)

    @property
    def previous(self) -> Snapshot:
        """The snapshot before the last one (an empty one before the second step)."""
        return self.snapshots.previous

    @property
    def history(self) -> list[StepState]:
        """Every snapshot's step, time and components down, however old."""
        return self.snapshots.history

    def down_at(self, step: int) -> frozenset[str]:
        """The components down in the first snapshot taken at or after `step` (the last one if none)."""
        for state in self.history:
            if state.step >= step:
                return state.down
        return self.last.down

    def ever_down(self, component: str) -> bool:
        return any(component in state.down for state in self.history)

    def new_records(self, topic: str) -> list[BusRecord]:
        """The records of `topic` the last snapshot shows and the one before it did not, injected included."""
        return self.snapshots.new_records(topic)

    def new_genuine(self, topic: str) -> list[BusRecord]:
        """`new_records` minus those the scenario injected: what the system produced in the last step."""
        new = self.snapshots.new_records(topic)
        if not new:  # most steps add no record to most topics: every check asks, per topic, per step
            return []
        injected = self._injected_at(topic)
        return [r for r in new if (r.partition, r.offset) not in injected and not _relays_injection(topic, r)]

    def row_changes(self, table: str) -> list[RowChange]:
        """Rows of `table` ("payments", "purchases") that differ between the previous snapshot and the last."""
        return self.snapshots.row_changes(table)

    def row(self, table: str, key: str, *, previous: bool = False) -> dict[str, Any] | None:
        """A row of the last snapshot (or the one before) by its id (paymentId / purchaseId)."""
        return self.snapshots.previous_row(table, key) if previous else self.snapshots.row(table, key)

    def exchanges_of(self, step: int) -> list[Exchange]:
        """The exchanges of one step, without a scan of the whole run."""
        for exchange in self.exchanges[self._indexed:]:
            self._by_step.setdefault(exchange.step, []).append(exchange)
        self._indexed = len(self.exchanges)
        return self._by_step.get(step, [])

    def _injected_at(self, topic: str) -> set[tuple[int, int]]:
        for record in self.injected[self._injected_seen:]:
            self._injected_index.setdefault(record.topic, set()).add((record.partition, record.offset))
        self._injected_seen = len(self.injected)
        return self._injected_index.get(topic, set())

    def payment_name(self, payment_id: str | None) -> str:
        """The scenario's name of a payment; its id's start for one no step created; a word for none (a
        user's purchase row may not carry its payment's id)."""
        if not isinstance(payment_id, str):
            return "(a purchase without a payment id)" if payment_id is None else str(payment_id)
        name = self._names.get(payment_id)
        if self._names_seen != len(self.payments):
            # names are added as payments are created: index only the new ones (a full rebuild for every new
            # payment was quadratic over a long run)
            new = islice(self.payments.values(), self._names_seen, None)
            self._names.update((record.id, record.name) for record in new)
            self._names_seen = len(self.payments)
            name = self._names.get(payment_id)
        if name is None:  # a name bound again to another payment, or an id no step created
            self._names.update((record.id, record.name) for record in self.payments.values())
            name = self._names.get(payment_id)
        return name if name is not None else payment_id[:8]

    def genuine(self, topic: str, snapshot: Snapshot | None = None) -> list[BusRecord]:
        """Records the system itself produced: all records minus exactly those the scenario injected,
        known by where the broker put them (topic, partition, offset). Not by content or position: a copy
        injected under another key sits on another partition, possibly listed before the original."""
        injected = self._injected_at(topic)
        return [r for r in (snapshot or self.last).topics.get(topic, [])
                if (r.partition, r.offset) not in injected and not _relays_injection(topic, r)]

    def step_title(self, step: int | None) -> str | None:
        return None if step is None else self.step_titles.get(step)


EVENT_TOPICS = (TOPIC_CONFIRMED, TOPIC_CREATED)


def _relays_injection(topic: str, record: BusRecord) -> bool:
    """A record on an event topic that carries the scenario's injection header is the system relaying the
    scenario's own event (a dead-letter replay of an injected record): its envelope and headers are the
    scenario's, not the system's. Its dead letter, on the DLQ topic, is the system's and stays judged."""
    return topic in EVENT_TOPICS and any(name == INJECTED_HEADER for name, _ in record.headers)


def listed_purchases(view: Any) -> list[dict[str, Any]]:
    """The purchases a learning view's body lists; none when it is not a view with a list of them (a
    `purchases` that is null or missing, a body that is not an object): the contract check reports the
    shape, and every other reader of views sees a view that shows nothing, instead of failing on it."""
    items = view.get("purchases") if isinstance(view, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def decode(record: BusRecord) -> dict[str, Any] | None:
    try:
        value = json.loads(record.value)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None
