"""Evidence: the append-only history of one scenario run. Operations (HTTP exchanges, injected
events, settles) with their start and finish times on the target's clock, and a snapshot of the
observable state after every step. Checks read evidence; they never touch the target."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kcverify.spec.policy import SPEC_CONVENTIONS, Conventions
from kcverify.targets.base import BusRecord, HttpReply, RecordId, Snapshot, TargetInfo


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
    snapshots: list[tuple[int, Snapshot]] = field(default_factory=list)
    step_titles: dict[int, str] = field(default_factory=dict)
    # step -> (kind, arguments): what the scenario did, e.g. which faults it injected, which a check may
    # need to judge an outcome (a re-publish is legitimate only after a fault that repeats one)
    step_actions: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    seq: int = 0
    # What the system is judged by where the rules leave room for configuration (retries, backoff, TTL):
    # the spec's defaults, or a profile's declared conventions. Never the system's own settings.
    conventions: Conventions = SPEC_CONVENTIONS

    def tick(self) -> int:
        """The next number in the one order of every operation's start and end."""
        self.seq += 1
        return self.seq

    @property
    def last(self) -> Snapshot:
        return self.snapshots[-1][1] if self.snapshots else Snapshot(at=0.0)

    def payment_name(self, payment_id: str) -> str:
        for record in self.payments.values():
            if record.id == payment_id:
                return record.name
        return payment_id[:8]

    def genuine(self, topic: str, snapshot: Snapshot | None = None) -> list[BusRecord]:
        """Records the system itself produced: all records minus exactly those the scenario injected,
        known by where the broker put them (topic, partition, offset). Not by content or position: a copy
        injected under another key sits on another partition, possibly listed before the original."""
        injected = {(r.partition, r.offset) for r in self.injected if r.topic == topic}
        return [r for r in (snapshot or self.last).topics.get(topic, []) if (r.partition, r.offset) not in injected]

    def step_title(self, step: int | None) -> str | None:
        return None if step is None else self.step_titles.get(step)


def decode(record: BusRecord) -> dict[str, Any] | None:
    try:
        value = json.loads(record.value)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None
