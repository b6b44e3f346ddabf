"""The consumer passes of `kcverify fuzz`: generated records on purchase-confirmed, the purchase worker
judged by what anyone can observe (purchase rows, dead letters, the payment's own event handled).

A case runs on a system of its own (`Systems`): a fresh one per case on a simulated target (embedded,
where a start costs nothing), one per pass on a real-time target (processes, external), where each case
has its own student (so its own payments and record key) and is judged only by what is attributable to
it (`Scope`). Its payment is created and confirmed through the API, its records are published
(`Target.publish`) before the system relays the payment's own event, then the flow is settled within
`BOUND` seconds; in the `poison then valid` pass a second payment is then created, confirmed and settled.
Each property is its own pass (one Hypothesis run), so a failure is shrunk to the smallest case that
breaks that property; the shrunk case is handed back to be written as a scenario file.

The expectations come from the rules (kcverify.spec) and the contracts, never from a system:

- `valid events` (W4, W6): a valid event for the succeeded payment, however often and in whatever order
  delivered, yields exactly one purchase, whose metadata is the W4 merge of the payment's metadata and
  the first valid event of the payment on the topic (its own or an injected one); no dead letter.
- `invalid events` (W2, W3, W8, I3): every record the contract refuses is dead-lettered exactly once,
  carrying the original, reason `schema_violation`, after 1 attempt (never retried); a valid event for
  a payment that does not exist is dead-lettered once (`payment_not_succeeded`); none makes a purchase.
- `poison then valid` (W2, W1, I3): no record blocks the partition: the payment's own event, published
  after the poison, is handled within the bound (the settle ends quiet, one purchase), and the worker
  keeps handling (a payment confirmed afterwards gets its purchase within the bound)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st

from kcverify import contracts
from kcverify.contracts import dead_letters
from kcverify.fuzz.events import (
    AMOUNT_CENTS,
    COURSE,
    CURRENCY,
    STUDENT,
    EventCase,
    poison_cases,
    schema_valid,
    valid_cases,
)
from kcverify.spec import names, oracle
from kcverify.targets.base import INJECTED_HEADER, BusRecord, RecordId, Snapshot, Target

OPERATION = "consumePurchaseConfirmed"  # the AsyncAPI operation the passes exercise (contracts/events/asyncapi.yaml)
SERVICE = "purchase-worker"
BOUND = 30.0  # seconds a settle may take: W7's retries (1 s + 2 s) of a payment that does not exist, with room
BACKLOG_BOUND = 120.0  # seconds a shared system may take to finish its earlier work before a pass's first case
DEFAULT_MAX_EXAMPLES = 100  # cases per consumer pass when the run's budget is the HTTP default
NEEDS = ("produce_events", "read_bus", "read_db")  # publish the records; see dead letters and purchase rows
FOLLOWED = ("poison then valid",)  # the properties whose cases confirm a second payment after the settle
SCHEMA_VIOLATION = "schema_violation"
PAYMENT_NOT_SUCCEEDED = "payment_not_succeeded"


def budget(max_examples: int) -> int:
    """Cases per consumer pass for the run's `--max-examples`: a fifth of it (at least 1), because a case
    is a whole flow (a payment or two, records, a settle or two), not one request: the HTTP default of 500
    gives each consumer pass 100 cases."""
    return max(1, max_examples // 5)


class Violation(AssertionError):
    """A property did not hold for one case (raised inside the Hypothesis test, so it shrinks)."""


class SetUpFailed(Exception):
    """The case's payment could not be created or confirmed: the pass cannot judge the consumer (ERROR)."""


@dataclass(frozen=True)
class Property:
    name: str
    mode: str  # the --modes word that selects it
    rules: tuple[str, ...]
    cases: Callable[[], st.SearchStrategy[EventCase]]
    summary: str


PROPERTIES = (
    Property("valid events", "positive", ("W4", "W6"), valid_cases,
             "a valid event for a succeeded payment yields exactly one purchase with the W4-merged metadata"),
    Property("invalid events", "negative", ("W2", "W3", "W8", "I3"), poison_cases,
             "an invalid event is dead-lettered exactly once, with the original, and never retried"),
    Property("poison then valid", "negative", ("W2", "W1", "I3"), poison_cases,
             "no event blocks the partition, and the worker keeps handling"),
)


@dataclass(frozen=True)
class Sent:
    """One delivered record of a case."""

    draft: int  # index of the draft in the case
    label: str
    record: RecordId
    value: bytes
    bound: bool  # a valid event for the case's payment


@dataclass(frozen=True)
class Shrunk:
    """The smallest failing case Hypothesis found for a property, and what failed on it."""

    case: EventCase
    messages: tuple[str, ...]


@dataclass
class EventPassResult:
    """One property's pass."""

    prop: Property
    cases: int = 0
    failing_cases: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # purchases, dead letters by reason, ...
    shrunk: Shrunk | None = None
    shrinks: bool = True  # False on a shared system: the failing case is reported as generated (`Systems`)
    duration: float = 0.0
    error: str = ""
    scenario_file: str = ""  # where the shrunk case was written (set by the caller)

    @property
    def operation(self) -> str:
        return OPERATION

    @property
    def mode(self) -> str:
        return self.prop.mode


Progress = Callable[[EventPassResult], None]


@dataclass(frozen=True)
class EventFuzzOptions:
    max_examples: int = DEFAULT_MAX_EXAMPLES
    seed: int = 0
    modes: tuple[str, ...] = ("positive", "negative")


class Systems:
    """Which system a case runs on. A simulated target (one that controls its clock) starts a fresh system
    for every case: cheap, and deterministic for the seed. A real-time target starts one per pass (a start
    there is seconds of processes reset and held): each case gets a student of its own, and after a case
    that failed the system is started again (a component the case brought down comes back). A shared
    system is settled once after its start, unjudged: work left from before the pass (an HTTP pass's
    confirmations, relayed and consumed only now) must not count against the first case's bound."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.per_case = "control_clock" in target.info.capabilities
        self.shared = not self.per_case
        self._started = False

    def begin_pass(self) -> None:
        self._started = False

    def for_case(self, serial: int, seed: int) -> str:
        """The system ready for case number `serial` (1, 2, ...); returns the case's student id."""
        if self.per_case or not self._started:
            self.target.start(seed=seed)
            self._started = True
            if self.shared:  # what the system had pending before (an HTTP pass's confirmations) is not the case's
                self.target.settle(BACKLOG_BOUND)
        return self.target.student_id(STUDENT if self.per_case else f"{STUDENT}-{serial}")

    def failed(self) -> None:
        """The last case failed: the next one starts again."""
        self._started = False


class EventFuzzer:
    """Runs the consumer passes against one target (`Systems` says when it is started)."""

    def __init__(self, target: Target, options: EventFuzzOptions, progress: Progress | None = None) -> None:
        self.target = target
        self.options = options
        self.progress = progress
        self.systems = Systems(target)

    def run(self) -> list[EventPassResult]:
        results = []
        lacking = sorted(set(NEEDS) - set(self.target.info.capabilities))
        for prop in PROPERTIES:
            if prop.mode not in self.options.modes:
                continue
            if lacking:  # skipped with the reason, never passed
                result = EventPassResult(prop, error=f"skipped: the target cannot {', '.join(lacking)}")
            else:
                result = self._pass(prop)
            results.append(result)
            if self.progress is not None:
                self.progress(result)
        return results

    def _pass(self, prop: Property) -> EventPassResult:
        result = EventPassResult(prop)
        last_failure: list[Shrunk] = []
        raised: list[str] = []  # what a case raised (not a verdict): named if it does not raise again
        serial = [0]

        self.systems.begin_pass()

        def test(case: EventCase) -> None:
            serial[0] += 1
            result.cases += 1
            try:
                student = self.systems.for_case(serial[0], self.options.seed + serial[0])
                messages = judge(prop, *run_case(self.target, case, student, serial[0], prop.name in FOLLOWED),
                                 result.outcomes)
            except BaseException as exc:
                self.systems.failed()
                raised[:] = [f"case {serial[0]} raised {type(exc).__name__}: {exc}"]
                raise
            if messages:
                self.systems.failed()
                result.failing_cases += 1
                last_failure[:] = [Shrunk(case, tuple(messages))]
                raise Violation(messages[0])

        # On a shared system a failing case may leave what made it fail (a record its worker never committed
        # is read again by the worker of every later case), so later cases could not be judged on their own:
        # the first failing case is reported as generated, not shrunk.
        result.shrinks = not self.systems.shared
        phases = (Phase.generate, Phase.shrink) if result.shrinks else (Phase.generate,)
        settings = hypothesis.settings(
            max_examples=self.options.max_examples, deadline=None, database=None, derandomize=False,
            print_blob=False, phases=phases, report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck))
        seeded = hypothesis.seed(self.options.seed)(settings(hypothesis.given(prop.cases())(test)))
        started = time.monotonic()
        try:
            seeded()
        except Violation:
            result.shrunk = last_failure[0] if last_failure else None  # Hypothesis runs the shrunk case last
        except hypothesis.errors.Flaky:  # the shrunk case passed when run again (a real-time target's timing)
            result.shrunk = last_failure[0] if last_failure else None
            result.error = "" if last_failure else (
                f"a failing case passed when run again ({raised[0] if raised else 'it raised nothing kcverify saw'})")
        except SetUpFailed as exc:
            result.error = str(exc)
        except hypothesis.errors.Unsatisfiable as exc:
            result.error = f"no case could be generated: {exc}"
        result.duration = time.monotonic() - started
        return result


@dataclass(frozen=True)
class Observed:
    """What one case made the system do, as anyone can see it. On a shared system the snapshot holds every
    case's rows and records: the judge looks only at the case's own (`Scope`)."""

    payment: str
    follower: str  # "" when the pass confirms no second payment
    sent: tuple[Sent, ...]
    quiet: bool
    follower_quiet: bool
    snapshot: Snapshot
    payment_metadata: dict[str, Any]
    student: str = ""  # the key every record of the case was published with
    tags: frozenset[str] = frozenset()  # the INJECTED_HEADER values of the case's records
    setup_error: str = ""


def run_case(target: Target, case: EventCase, student: str, serial: int,
             follow: bool) -> tuple[EventCase, Observed]:
    """Case number `serial` on a system already started, as `student`; `follow`: a second payment after."""
    payment = _paid(target, student, dict(case.payment_metadata))
    sent: list[Sent] = []
    tags = set()
    for index, draft in enumerate(case.drafts):
        value = draft.value(payment, student)
        for copy in range(1, draft.copies + 1):
            tag = f"fuzz-{serial}-{index + 1}-copy-{copy}"
            record = target.publish(names.TOPIC_CONFIRMED, student, value, ((INJECTED_HEADER, tag),))
            sent.append(Sent(index, draft.label, record, value, draft.for_payment))
            tags.add(tag)
    quiet = target.settle(BOUND)
    follower, follower_quiet = "", True
    if follow:
        follower = _paid(target, student, dict(case.payment_metadata))
        follower_quiet = target.settle(BOUND)
    return case, Observed(payment, follower, tuple(sent), quiet, follower_quiet, target.snapshot(),
                          dict(case.payment_metadata), student, frozenset(tags))


def _paid(target: Target, student: str, metadata: dict[str, Any]) -> str:
    """A payment created and confirmed through the API (P1, P2), as the gateway would."""
    body = json.dumps({"studentId": student, "courseId": COURSE, "amountCents": AMOUNT_CENTS, "currency": CURRENCY,
                       "metadata": metadata}).encode()
    reply = target.http("payment-service", "POST", "/api/v1/payments", body=body,
                        headers={"Content-Type": "application/json"})
    if reply.status != 201:
        raise SetUpFailed(f"creating the case's payment answered {reply.status or reply.error}: "
                        f"{reply.body[:200].decode(errors='replace')}")
    payment_id = str(reply.json()["id"])
    callback = json.dumps({"status": "succeeded", "providerPaymentId": "pi_fuzz"}).encode()
    reply = target.http("payment-service", "POST", f"/api/v1/payments/{payment_id}/confirm", body=callback,
                        headers={"Content-Type": "application/json",
                                 "X-Signature": target.sign(payment_id, callback)})
    if reply.status != 200:
        raise SetUpFailed(f"confirming the case's payment answered {reply.status or reply.error}")
    return payment_id


@dataclass(frozen=True)
class Scope:
    """What is attributable to one case, by what anyone can observe: its payments (and the payments its own
    records name), its student (the key of every record it published, which a dead letter keeps), its
    records' places (a dead letter names the partition and offset of its original) and the
    INJECTED_HEADER values it sent with them (copied onward by a system that keeps headers)."""

    payments: frozenset[str]
    named: frozenset[str]  # payments the case's other records name (they do not exist)
    student: str
    places: frozenset[tuple[str, int, int]]
    tags: frozenset[str]

    @classmethod
    def of(cls, seen: Observed) -> Scope:
        named = {pid for sent in seen.sent if not sent.bound and (pid := _named_payment(sent.value))}
        return cls(frozenset({seen.payment, seen.follower} - {""}), frozenset(named), seen.student,
                   frozenset((s.record.topic, s.record.partition, s.record.offset) for s in seen.sent), seen.tags)

    def purchase(self, row: Mapping[str, Any]) -> bool:
        if row.get("paymentId") in self.payments | self.named:
            return True
        return bool(self.student) and row.get("studentId") == self.student

    def letter(self, record: BusRecord, letter: Mapping[str, Any]) -> bool:
        if (letter.get("originalTopic"), letter.get("partition"), letter.get("offset")) in self.places:
            return True
        if self.student and record.key == self.student:
            return True
        if any(name == INJECTED_HEADER and value in self.tags for name, value in record.headers):
            return True
        payload = (dead_letters.original_event(letter) or {}).get("payload")
        return isinstance(payload, dict) and payload.get("paymentId") in self.payments | self.named


def _named_payment(value: bytes) -> str:
    try:
        event = json.loads(value)
    except ValueError:
        return ""
    payload = event.get("payload") if isinstance(event, dict) else None
    payment = payload.get("paymentId") if isinstance(payload, dict) else None
    return payment if isinstance(payment, str) else ""


def _letters(snapshot: Snapshot, scope: Scope) -> list[dict[str, Any]]:
    """The dead letters attributable to the case (all of them on a system of its own)."""
    letters = []
    for record in snapshot.topics.get(names.TOPIC_DLQ, []):
        try:
            letter = json.loads(record.value)
        except ValueError:
            letter = None
        letter = letter if isinstance(letter, dict) else {"unreadable": record.value[:80]}
        if scope.letter(record, letter):
            letters.append(letter)
    return letters


def _as_read(snapshot: Snapshot, sent: Sent) -> bytes:
    """The value of a sent record as the system read it: the record at its place on the topic as the target
    sees it (an external profile's envelope may not carry every canonical field, so what the system got is
    not the canonical bytes that were sent), else the bytes sent."""
    for record in snapshot.topics.get(sent.record.topic, []):
        if (record.partition, record.offset) == (sent.record.partition, sent.record.offset):
            return record.value
    return sent.value


def _first_on_topic(seen: Observed) -> dict[str, Any] | None:
    """The metadata of the first PURCHASE_CONFIRMED of the payment on the topic, the system's own or an
    injected copy, whichever the broker put first: the worker reads them in that order and W4 merges with
    the first it handles (a system that publishes at confirmation, not through a held relay, puts its own
    event before the fuzzer's)."""
    records = sorted(seen.snapshot.topics.get(names.TOPIC_CONFIRMED, []), key=lambda r: (r.partition, r.offset))
    for record in records:
        try:
            event = json.loads(record.value)
        except ValueError:
            continue
        payload = event.get("payload") if isinstance(event, dict) else None
        if isinstance(payload, dict) and payload.get("paymentId") == seen.payment \
                and isinstance(payload.get("metadata"), dict):
            metadata: dict[str, Any] = payload["metadata"]
            return metadata
    return None


def judge(prop: Property, case: EventCase, seen: Observed, outcomes: Counter[str]) -> list[str]:
    snapshot = seen.snapshot
    scope = Scope.of(seen)
    purchases = [p for p in snapshot.purchases if p.get("paymentId") == seen.payment]
    letters = _letters(snapshot, scope)
    outcomes["purchase"] += sum(1 for p in snapshot.purchases if scope.purchase(p))
    for letter in letters:
        outcomes[f"dead letter {letter.get('reason', '?')}"] += 1
    if prop.name == "valid events":
        return _valid(seen, purchases, letters)
    if prop.name == "invalid events":
        return _dead_lettered(seen, snapshot, letters, scope)
    return _not_blocked(seen, snapshot, purchases)


def _valid(seen: Observed, purchases: list[dict[str, Any]], letters: list[dict[str, Any]]) -> list[str]:
    problems = []
    if not seen.quiet:
        problems.append(f"the flow did not settle within {BOUND:g} s (I3)")
    if len(purchases) != 1:
        problems.append(f"{len(purchases)} purchases for the payment, expected exactly 1 (W6)")
    first = next((s for s in seen.sent if s.bound), None)
    event_md = _first_on_topic(seen)
    if event_md is None and first is not None:
        event_md = json.loads(first.value)["payload"]["metadata"]
    if purchases and event_md is not None:
        expected = oracle.merge(seen.payment_metadata, event_md)
        got = purchases[0].get("metadata")
        if got != expected:
            problems.append(f"the purchase's metadata is {_short(got)}, the W4 merge of the payment's and the "
                            f"first valid event's on the topic is {_short(expected)} (W4)")
    if letters:
        problems.append(f"{len(letters)} dead letter(s) for valid events: "
                        f"{', '.join(str(x.get('reason')) for x in letters)} (W2)")
    return problems


def _dead_lettered(seen: Observed, snapshot: Snapshot, letters: list[dict[str, Any]], scope: Scope) -> list[str]:
    problems = []
    for sent in seen.sent:
        if sent.bound:
            continue
        mine = [x for x in letters if x.get("originalTopic") == sent.record.topic
                and x.get("partition") == sent.record.partition and x.get("offset") == sent.record.offset]
        what = f"record {sent.draft + 1} ({sent.label}, offset {sent.record.offset})"
        if len(mine) != 1:
            problems.append(f"{what} was dead-lettered {len(mine)} times, expected exactly once (W2, I3)")
            continue
        letter = mine[0]
        # valid or not as the system received it: a profile's envelope may not carry a near-valid record's
        # fault (an extra field it has no place for is not written), and then the record is a valid one there
        received = _as_read(snapshot, sent)
        invalid = not schema_valid(received)
        if not dead_letters.carries(letter.get("originalEvent"), received):
            problems.append(f"{what}: the dead letter does not carry the original (W8)")
        if contracts.validate("events/dead-letter", letter):
            problems.append(f"{what}: the dead letter breaks contracts/events/dead-letter.schema.json (I4)")
        wanted = SCHEMA_VIOLATION if invalid else PAYMENT_NOT_SUCCEEDED
        if letter.get("reason") != wanted:
            problems.append(f"{what}: dead-lettered with reason {letter.get('reason')!r}, expected {wanted!r} "
                            f"({'W2' if invalid else 'W3'})")
        if invalid and letter.get("attempts") != 1:
            problems.append(f"{what}: dead-lettered after {letter.get('attempts')} attempts; a schema violation is "
                            "never retried (W2)")
    strays = [p for p in snapshot.purchases if scope.purchase(p) and p.get("paymentId") not in scope.payments]
    if strays:
        problems.append(f"{len(strays)} purchase(s) for payments that do not exist (W3)")
    return problems


def _not_blocked(seen: Observed, snapshot: Snapshot, purchases: list[dict[str, Any]]) -> list[str]:
    problems = []
    if not seen.quiet:
        problems.append(f"the partition did not drain within {BOUND:g} s after the poison (W2, I3)")
    if len(purchases) != 1:
        problems.append(f"the payment confirmed before the poison was relayed after it got {len(purchases)} "
                        "purchases, expected 1: the poison blocked its partition or the worker stopped (W2, W1)")
    if SERVICE in snapshot.down:
        problems.append("the purchase worker is down: it stopped on a record instead of dead-lettering it (W2)")
    follower = [p for p in snapshot.purchases if p.get("paymentId") == seen.follower]
    if not seen.follower_quiet or len(follower) != 1:
        problems.append(f"a payment confirmed after the poison got {len(follower)} purchases within {BOUND:g} s, "
                        "expected 1: the worker stopped handling (W1, I3)")
    return problems


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "..."


def first_lines(messages: Sequence[str]) -> str:
    return "\n".join(messages)
