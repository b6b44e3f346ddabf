"""What the explorer generates: lists of abstract actions, compiled into ordinary scenario steps.

The explorer draws and shrinks a *program*: a list of `(kind, a, b)` triples of small integers. A
model of the scenario (payments and their status, open reads, armed crash points, pending faults)
compiles the program into steps, resolving each integer against what exists at that point (`confirm`
picks `a % len(payments)`), completing an action that needs something first (a `confirm` with no payment
creates one, a `publish` with nothing published yet settles first, a `begin_read` is finished one to
three steps later) and dropping an action whose precondition cannot hold (a `restart` of a component
that cannot be down, an illegal status transition). Because every program compiles to a valid scenario,
the shrinker (shrink.py) may delete or simplify any action and the result is still a scenario the
loader accepts and a correct reference passes.

The compiled steps carry no `expect` of their own beyond the one an unsigned confirmation needs (401):
the built-in checks judge every schedule, after every step and after the final settle.

What the model keeps away from, because a correct reference would fail it or the step could not run:
- `crash: {at: payment.after_commit}`: the confirmation then gets no response, which the step's
  default expectation (200) reports; the loss it tests is reached through `fail: {resource: bus}`.
- faults on operations the HTTP paths use (`insert_payment`, `purchases_for_student`, ...): their 5xx
  would be a step failure, not a finding; and on `all_payments`/`all_purchases`, which the snapshots read.
- `publish` of a payment before a settle has published its confirmation, or once a bus fault may
  still be pending (the target's `publish` would consume it and the step would error).
- `advance_clock` while a split read is open: the read would answer a cache hit older than the TTL.
- reads once the cache invalidator may have crashed: until it is restarted nothing invalidates the
  cache, and the freshness check judges a stale view then as it would any other.
- components left down: when crash points were armed, the scenario ends with restarts and settles so
  that every armed point has fired or never can, and every component runs again before the final
  settle (I1 assumes a running system)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kcverify import contracts
from kcverify.scenario.model import Scenario, Step, freeze
from kcverify.spec.names import CRASH_POINT_OWNERS

# An action: the step kind, and two small integers the model resolves against the scenario so far.
Action = tuple[str, int, int]

# Order matters for shrinking: the shrinker moves a kind towards the first entry, so the simplest kinds
# come first. Repeats weigh the draw towards the steps most bugs need (payments, confirmations, settles).
ACTION_KINDS: tuple[str, ...] = (
    "settle", "confirm", "create_payment", "read", "settle", "confirm", "run", "begin_read", "run",
    "crash", "restart", "fail", "publish", "advance_clock",
)

STUDENTS = ("s1", "s2")
MAX_PAYMENTS = 3
MAX_OPEN_READS = 2
MAX_CRASHES = 2  # armed crash points per schedule; each costs a round of restarts at the end

# Components a `run` step may step, in the order `settle` runs them (bootstrap.COMPONENTS).
COMPONENTS = ("payment-relay", "purchase-worker", "course-relay", "cache-invalidator", "reconciler")

# Every crash point but payment.after_commit (see the module docstring).
CRASH_POINTS = (
    "worker.after_poll", "worker.after_commit", "worker.after_marker", "worker.after_dead_letter",
    "payment-relay.after_publish", "course-relay.after_publish", "invalidator.after_poll",
)

# (resource, op) pairs that only background components call, so a fault shows as a retry, a dead
# letter, a fallback or a reconcile, never as a 5xx to a scenario step.
FAULTS: tuple[tuple[str, str], ...] = (
    ("payments_db", "find_succeeded"),
    ("courses_db", "record_purchase"),
    ("bus", "publish"),
    ("cache", "delete"),
    ("courses_db", "is_processed"),
    ("payments_db", "pending_outbox"),
    ("payments_db", "mark_published"),
    ("courses_db", "pending_outbox"),
    ("courses_db", "mark_published"),
    ("cache", "get"),
    ("cache", "version"),
    ("cache", "set_if_version"),
)

MIN_ACTIONS = 3  # fewer rarely interleave anything; shrinking the compiled steps goes further

CLOCK_STEPS = (1, 2, 30, 61, 301)  # a backoff, the second backoff, a while, past reconcile grace, past the TTL

SCENARIO_SCHEMA = "schemas/scenario"


KINDS = tuple(dict.fromkeys(ACTION_KINDS))  # each kind once, in ACTION_KINDS's order (the swarm mask's bits)
_MASK_BYTES = (len(KINDS) + 7) // 8


def random_program(rng: random.Random, max_steps: int) -> list[Action]:
    """A program of `MIN_ACTIONS` to `max_steps` actions drawn from `rng`, "swarm" style: the first bytes
    switch a random subset of the action kinds on and the actions are drawn only from those. A bug that
    needs, say, a split read around a settle is found far sooner among programs made of five kinds than
    among programs of all twelve, where every action has a small chance of being the one needed."""
    least = min(MIN_ACTIONS, max_steps)
    size = _MASK_BYTES + 2 * rng.randint(least, max_steps)
    return decode_program(rng.getrandbits(8 * size).to_bytes(size, "big"))


def decode_program(data: bytes) -> list[Action]:
    """The program a byte string means: the first bytes are the swarm mask (a bit per kind), then two
    bytes per action. An action's kind is its code's remainder among the kinds the mask allows (weighted
    by their repeats in ACTION_KINDS), its two integers (0-15) the rest of the code."""
    mask = int.from_bytes(data[:_MASK_BYTES], "big") & (2 ** len(KINDS) - 1)
    weighted = [kind for kind in ACTION_KINDS if mask >> KINDS.index(kind) & 1] or list(ACTION_KINDS)
    span = len(weighted) * 256
    codes = [int.from_bytes(data[i:i + 2], "big") % span for i in range(_MASK_BYTES, len(data) - 1, 2)]
    # The kind is the code's remainder, not its high part, so the lower codes do not starve the later kinds.
    return [(weighted[code % len(weighted)], code // len(weighted) // 16, code // len(weighted) % 16)
            for code in codes]


@dataclass(frozen=True)
class Planned:
    """One compiled step: its kind and its arguments as written in the file (defaults left out)."""

    kind: str
    args: Mapping[str, Any]
    expect: Mapping[str, Any] | None = None

    def as_yaml_item(self) -> dict[str, Any]:
        given = dict(self.args)
        if self.expect is not None:
            given["expect"] = dict(self.expect)
        return {self.kind: given}


@dataclass
class _Payment:
    name: str
    student: str
    status: str = "initiated"
    published: bool = False  # its PURCHASE_CONFIRMED is surely on the topic (a settle ran since)


@dataclass
class _Model:
    payments: list[_Payment] = field(default_factory=list)
    open_reads: list[list[Any]] = field(default_factory=list)  # [name, steps still to run before its finish]
    reads_begun: int = 0
    armed: list[str] = field(default_factory=list)  # crash points, in arming order
    bus_fault: bool = False  # a bus fault was armed: it may still be pending

    @property
    def maybe_down(self) -> list[str]:
        """Components that may be down now: the owners of every armed crash point."""
        return sorted({CRASH_POINT_OWNERS[p.split(".", 1)[0]] for p in self.armed})

    @property
    def invalidator_may_be_down(self) -> bool:
        """While the cache invalidator may be crashed, a read may see a stale view that only its restart
        cures; the freshness check (S3) counts that as stale, so the model reads no more from then on."""
        return "cache-invalidator" in self.maybe_down

    def reader(self, a: int) -> str:
        students = list(dict.fromkeys(p.student for p in self.payments)) or [STUDENTS[0]]
        return students[a % len(students)]

    def settled(self) -> None:
        if "payment-relay" not in self.maybe_down:
            for payment in self.payments:
                if payment.status == "succeeded":
                    payment.published = True


def compile_program(program: Sequence[Action]) -> tuple[Planned, ...]:
    """The steps a program means (see the module docstring): inapplicable actions dropped, each split
    read finished a few steps after it began, and the restarts and settles that bring every crashed
    component back appended."""
    model = _Model()
    steps: list[Planned] = []
    for kind, a, b in program:
        for planned in _compile(model, kind, a, b):
            steps.append(planned)
            steps.extend(_due_finishes(model, planned))
    steps.extend(Planned("finish_read", {"read": name}) for name, _ in model.open_reads)
    if model.armed:
        owners = model.maybe_down
        restarts = [Planned("restart", {"component": c}) for c in owners]
        steps.extend(restarts)
        for _ in model.armed:
            steps.append(Planned("settle", {}))
            steps.extend(restarts)
    return tuple(steps)


def _due_finishes(model: _Model, planned: Planned) -> list[Planned]:
    """`finish_read` steps for the split reads whose window closes with `planned`."""
    if planned.kind == "begin_read":
        return []
    due = []
    for read in model.open_reads:
        read[1] -= 1
        if read[1] <= 0:
            due.append(Planned("finish_read", {"read": read[0]}))
    model.open_reads = [read for read in model.open_reads if read[1] > 0]
    return due


def _compile(model: _Model, kind: str, a: int, b: int) -> list[Planned]:
    match kind:
        case "settle":
            model.settled()
            return [Planned("settle", {})]
        case "create_payment":
            if len(model.payments) >= MAX_PAYMENTS:
                return []
            payment = _Payment(f"p{len(model.payments) + 1}", STUDENTS[a % len(STUDENTS)])
            model.payments.append(payment)
            return [Planned("create_payment", {"as": payment.name, "student": payment.student})]
        case "confirm":
            return _confirm(model, a, b)
        case "publish":
            # A duplicate of a confirmation already published; if none is yet, a settle publishes them.
            settle = []
            if not any(p.published for p in model.payments):
                settle = _compile(model, "settle", a, b)
            candidates = [p for p in model.payments if p.published]
            if not candidates or model.bus_fault:
                return []
            args: dict[str, Any] = {"payment": candidates[a % len(candidates)].name}
            if b % 3:
                args["copies"] = 1 + b % 3
            return [*settle, Planned("publish", args)]
        case "run":
            args = {"component": COMPONENTS[a % len(COMPONENTS)]}
            if b % 3:
                args["times"] = 1 + b % 3
            return [Planned("run", args)]
        case "crash":
            point = CRASH_POINTS[a % len(CRASH_POINTS)]
            if point in model.armed or len(model.armed) >= MAX_CRASHES:
                return []
            model.armed.append(point)
            return [Planned("crash", {"at": point})]
        case "restart":
            down = model.maybe_down
            if not down:
                return []
            return [Planned("restart", {"component": down[a % len(down)]})]
        case "fail":
            resource, op = FAULTS[a % len(FAULTS)]
            model.bus_fault = model.bus_fault or resource == "bus"
            args = {"resource": resource, "op": op}
            if b % 3:
                args["times"] = 1 + b % 3
            return [Planned("fail", args)]
        case "read":
            if model.invalidator_may_be_down:
                return []
            return [Planned("read", {"student": model.reader(a)})]
        case "begin_read":
            if len(model.open_reads) >= MAX_OPEN_READS or model.invalidator_may_be_down:
                return []
            model.reads_begun += 1
            name = f"r{model.reads_begun}"
            model.open_reads.append([name, 1 + b % 3])  # finished after the next 1-3 steps
            return [Planned("begin_read", {"student": model.reader(a), "as": name})]
        case "advance_clock":
            if model.open_reads:  # a read that stalls for minutes would answer a hit older than the TTL
                return []
            return [Planned("advance_clock", {"seconds": CLOCK_STEPS[a % len(CLOCK_STEPS)]})]
    raise ValueError(f"unknown action kind {kind!r}")


def _confirm(model: _Model, a: int, b: int) -> list[Planned]:
    """A legal confirmation only (P4's 409s would need an explicit expect): succeeded from initiated or
    succeeded (a gateway retry), failed from initiated or failed; or an unsigned one, which is a 401.
    With no payment yet it creates one first: nearly every bug needs a confirmed payment."""
    created = []
    if not model.payments:
        created = _compile(model, "create_payment", a, b)
    payment = model.payments[a % len(model.payments)]
    variant = b % 4
    if variant == 2:
        return [*created, Planned("confirm", {"payment": payment.name, "signed": False}, {"status": 401})]
    if variant == 3:
        if payment.status not in ("initiated", "failed"):
            return created
        payment.status = "failed"
        return [*created, Planned("confirm", {"payment": payment.name, "status": "failed"})]
    if payment.status not in ("initiated", "succeeded"):
        return created
    payment.status = "succeeded"
    args: dict[str, Any] = {"payment": payment.name}
    times = 1 + (b // 4) % 3
    if times > 1:
        args["times"] = times
    return [*created, Planned("confirm", args)]


# --- Planned steps -> the Scenario the loader would build from the same file --------------------------


def to_scenario(steps: Sequence[Planned], *, name: str = "explore", title: str = "explored schedule",
                covers: Sequence[str] = ("I1",), path: str = "<explore>", first_line: int = 1) -> Scenario:
    """The Scenario the loader builds from these steps written as a file, built directly (no YAML, no
    schema validation: the compiler's output is valid by construction, and a test holds the two equal)."""
    built = tuple(_step(planned, i, first_line + i) for i, planned in enumerate(steps))
    return Scenario(name=name, title=title, description=None, covers=tuple(covers), tags=("explore",),
                    requires=(), freshness_bound=None, steps=built, path=path)


def _step(planned: Planned, index: int, line: int) -> Step:
    # The arguments and expectation a step is built with depend on the planned step alone, and the same few
    # recur in every schedule: built once each (frozen, so sharing them between steps is safe).
    # the values' types are part of the key: True == 1 and hash alike, but `quiet: true` is not `count: 1`
    key = (planned.kind, tuple((k, type(v), v) for k, v in planned.args.items()),
           tuple((k, type(v), v) for k, v in planned.expect.items()) if planned.expect is not None else None)
    try:
        built = _BUILT.get(key)
    except TypeError:  # an unhashable argument (a mapping or list given by hand): built, not remembered
        built = _built(planned)
    else:
        if built is None:
            if len(_BUILT) >= _BUILT_LIMIT:
                _BUILT.clear()
            built = _BUILT[key] = _built(planned)
    args, expect = built
    return Step(kind=planned.kind, args=args, line=line, col=5, expect=expect, number=index + 1)


def _built(planned: Planned) -> tuple[Any, Any]:
    args = _with_defaults(dict(planned.args), _step_schema(planned.kind))
    if planned.kind in ("read", "begin_read"):
        args.setdefault("by", args["student"])
        args.setdefault("role", "admin" if args["by"] == "admin" else "student")
    if planned.kind == "crash":
        args.setdefault("component", CRASH_POINT_OWNERS[args["at"].split(".", 1)[0]])
    expect = freeze(dict(planned.expect)) if planned.expect is not None else None
    return freeze(args), expect


_BUILT: dict[tuple[Any, ...], tuple[Any, Any]] = {}
_BUILT_LIMIT = 4096


_SCHEMAS: dict[str, dict[str, Any]] = {}


def _step_schema(kind: str) -> dict[str, Any]:
    if kind not in _SCHEMAS:
        ref = contracts.schema(SCENARIO_SCHEMA)["$defs"]["step"]["properties"][kind]
        _SCHEMAS[kind] = _resolve(ref)
    return _SCHEMAS[kind]


def _resolve(node: Any) -> dict[str, Any]:
    while isinstance(node, dict) and str(node.get("$ref", "")).startswith("#/$defs/"):
        node = contracts.schema(SCENARIO_SCHEMA)["$defs"][str(node["$ref"]).removeprefix("#/$defs/")]
    return node if isinstance(node, dict) else {}


def _with_defaults(value: dict[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema's declared defaults filled in, as the loader does (expect/note are not arguments)."""
    for key, prop in schema.get("properties", {}).items():
        if key not in value and isinstance(prop, dict) and "default" in prop and key not in ("expect", "note"):
            value[key] = prop["default"]
    return value


# --- editing compiled steps (the explorer's own shrink pass) -------------------------------------------


def well_formed(steps: Sequence[Planned]) -> bool:
    """True when every name a step uses is bound by an earlier step, each read is finished once, and a
    `publish` of a payment follows a settle after its confirmation: the loader's cross-step rules and
    the compiler's own, which deleting a step can break (e.g. the `create_payment` of a `confirm`)."""
    payments: set[str] = set()
    confirmed: set[str] = set()
    published: set[str] = set()
    reads: set[str] = set()
    for step in steps:
        payment = step.args.get("payment")
        if payment is not None and payment not in payments:
            return False
        match step.kind:
            case "create_payment":
                payments.add(step.args["as"])
            case "confirm" if step.args.get("signed", True) and step.args.get("status", "succeeded") == "succeeded":
                confirmed.add(step.args["payment"])
            case "settle":
                published |= confirmed
            case "publish" if step.args["payment"] not in published:
                return False
            case "begin_read":
                reads.add(step.args["as"])
            case "finish_read":
                if step.args["read"] not in reads:
                    return False
                reads.discard(step.args["read"])
    return True


def renamed(steps: Sequence[Planned]) -> tuple[Planned, ...]:
    """The same steps with payments and reads renamed p1, p2, ... and r1, r2, ... in binding order, so a
    shrunk scenario reads naturally after its early steps were deleted. Names do not reach the system."""
    names: dict[str, str] = {}
    counts = {"p": 0, "r": 0}
    out = []
    for step in steps:
        args = dict(step.args)
        if step.kind in ("create_payment", "begin_read"):
            prefix = "p" if step.kind == "create_payment" else "r"
            counts[prefix] += 1
            names[args["as"]] = f"{prefix}{counts[prefix]}"
        for key in ("as", "payment", "read"):
            if key in args:
                args[key] = names.get(args[key], args[key])
        out.append(Planned(step.kind, args, step.expect))
    return tuple(out)


def simpler_variants(step: Planned) -> list[Planned]:
    """Simpler forms of one step to try while shrinking: repetitions (times, copies) down to one."""
    variants = []
    for key in ("times", "copies"):
        if step.args.get(key, 1) != 1:
            args = {k: v for k, v in step.args.items() if k != key}
            variants.append(Planned(step.kind, args, step.expect))
    return variants
