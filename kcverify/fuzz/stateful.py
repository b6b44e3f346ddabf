"""The `flow` pass of `kcverify fuzz`: stateful sequences across the purchase flow, judged by the flow's
own rules at the end of each sequence.

A Hypothesis state machine (RuleBasedStateMachine) draws sequences of: create a payment (checkout
metadata drawn from the metadata contract: extra keys, nulls, text outside the BMP, any tier), confirm
one of the sequence's payments as the gateway would (signed through `Target.sign`; succeeded, failed or
cancelled; sometimes the same callback delivered twice, as a gateway retry), settle the flow, read the
student's learning view (a bearer from `Target.token`). Every call goes through the target's `http()`
primitive, so the pass runs on every target `kcverify run` drives, an external one through its profile.

Why our own state machine and not Schemathesis' stateful phase (OpenAPI links): the sequence crosses
two documents (the payment service creates and confirms, the student service shows the purchase), the
flow must be settled between calls (the purchase appears asynchronously, through the bus and the
worker), and the verdict is the flow's end state (rows and the learning view), not one answer.

At the end of each sequence the flow is settled (bounded) and, for every payment of the sequence, judged
by what anyone can observe, with expectations from the rules (kcverify.spec.oracle), never from a system:

- P4: a repeated confirmation of the current status is 200, an illegal transition a 409; the payment's
  final status (GET) is the one its first accepted confirmation set;
- W6, W3: exactly one purchase per succeeded payment, none for a failed or cancelled one, in the
  learning view and (with `read_db`) in the rows;
- W4, W5, F1: the purchase's metadata is `oracle.merge` of the payment's metadata and its event's (the
  payment's complete metadata, P3), and the five values the student sees are `oracle.display` of it.

A failing sequence is shrunk by Hypothesis; the steps of the shrunk one are reported with the messages."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from kcverify.scenario import generate
from kcverify.spec import oracle
from kcverify.targets.base import HttpReply, Target

OPERATION = "flow"  # the --operations word that selects the pass
MODE = "positive"  # the sequences are valid calls; the --modes word that selects the pass
SERVICE = "purchase-flow"
RULES = ("P4", "W3", "W4", "W5", "W6", "F1")
BOUND = 30.0  # seconds a settle may take (as the consumer passes)
STEPS = 8  # calls a sequence makes at most
# Sequences run while shrinking a failure, at most: each is a fresh system and real calls, and on a real-time
# target real settles, so the shrinking is bounded by a count (reproducible for a seed, unlike a time budget);
# what is reported is the smallest failing sequence found within it.
SHRINK_CASES = 40
PAYMENTS = "payment-service"
STUDENTS = "student-service"
CREATE = "/api/v1/payments"
COURSES = ("flow-course-a", "flow-course-b")
FINAL = ("succeeded", "failed", "cancelled")  # what a confirmation sets, from initiated (P4)
# Drawn for a confirmation: mostly succeeded, so most sequences end with purchases to judge.
CONFIRMS = ("succeeded", "succeeded", "succeeded", "failed", "cancelled")


def budget(max_examples: int) -> int:
    """Sequences of the flow pass for the run's `--max-examples`: a tenth (at least 2): each sequence is a
    fresh system and up to `STEPS` calls with settles, not one request (the default 500 gives 50)."""
    return max(2, max_examples // 10)


class Violation(AssertionError):
    """The flow broke a rule in one sequence (raised inside the Hypothesis run, so it shrinks)."""


class ShrinkBudgetSpent(BaseException):
    """Raised to end the shrinking after `SHRINK_CASES` sequences: a BaseException, so that Hypothesis does
    not take it for a failure of the sequence; the smallest failing sequence so far is kept in the result."""


class SetUpFailed(Exception):
    """A call every sequence needs got no answer or was refused: the pass cannot judge the flow (ERROR)."""


@dataclass
class Paid:
    """One payment of a sequence as the model knows it."""

    name: str  # p1, p2, ... in the sequence
    id: str
    course: str
    metadata: dict[str, Any]
    status: str = "initiated"


@dataclass
class FlowPassResult:
    cases: int = 0
    failing_cases: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    messages: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()  # the shrunk failing sequence
    first_failure: int = 0  # the sequence (1-based) that failed first
    duration: float = 0.0
    error: str = ""

    @property
    def operation(self) -> str:
        return OPERATION

    @property
    def mode(self) -> str:
        return MODE


Progress = Callable[[FlowPassResult], None]


@dataclass(frozen=True)
class FlowFuzzOptions:
    max_examples: int = 10
    seed: int = 0


class FlowFuzzer:
    """Runs the flow pass against one target; `start` is called for every sequence."""

    def __init__(self, target: Target, options: FlowFuzzOptions, progress: Progress | None = None) -> None:
        self.target = target
        self.options = options
        self.progress = progress

    def run(self) -> list[FlowPassResult]:
        result = self._pass()
        if self.progress is not None:
            self.progress(result)
        return [result]

    def _pass(self) -> FlowPassResult:
        result = FlowPassResult()
        machine = machine_for(self.target, self.options.seed, result)
        settings = hypothesis.settings(
            max_examples=self.options.max_examples, stateful_step_count=STEPS, deadline=None, database=None,
            derandomize=False, print_blob=False, phases=(Phase.generate, Phase.shrink),
            report_multiple_bugs=False, suppress_health_check=list(HealthCheck))
        started = time.monotonic()
        try:
            hypothesis.seed(self.options.seed)(lambda: run_state_machine_as_test(machine, settings=settings))()
        except (Violation, ShrinkBudgetSpent):
            pass  # the last failing sequence (Hypothesis runs the shrunk one last) is in `result`
        except hypothesis.errors.Flaky:  # the shrunk sequence passed when run again (a real-time target)
            if not result.messages:
                result.error = "a failing sequence passed when run again"
        except SetUpFailed as exc:
            result.error = str(exc)
        result.duration = time.monotonic() - started
        return result


def machine_for(target: Target, seed: int, result: FlowPassResult) -> type[RuleBasedStateMachine]:
    """The state machine class bound to one target and one pass's result."""

    class Flow(RuleBasedStateMachine):
        payments = Bundle("payments")

        def __init__(self) -> None:
            super().__init__()
            if result.first_failure and result.cases - result.first_failure >= SHRINK_CASES:
                raise ShrinkBudgetSpent()
            result.cases += 1
            target.start(seed=seed + result.cases)
            self.student = target.student_id("flow-student")
            self.paid: list[Paid] = []
            self.log: list[str] = []
            self.problems: list[str] = []

        @initialize(target=payments, metadata=generate.strategy(), course=st.sampled_from(COURSES),
                    status=st.sampled_from(CONFIRMS), deliveries=st.integers(1, 2))
        def first(self, metadata: dict[str, Any], course: str, status: str, deliveries: int) -> Paid:
            """Every sequence starts with a payment and its confirmation: there is always a flow to judge."""
            paid = self._create(metadata, course)
            self._confirm(paid, status, deliveries)
            return paid

        @rule(target=payments, metadata=generate.strategy(), course=st.sampled_from(COURSES))
        def create(self, metadata: dict[str, Any], course: str) -> Paid:
            return self._create(metadata, course)

        def _create(self, metadata: dict[str, Any], course: str) -> Paid:
            body = {"studentId": self.student, "courseId": course, "amountCents": 4900, "currency": "EUR",
                    "metadata": metadata}
            reply = _call(target, PAYMENTS, "POST", CREATE, body)
            if reply.status != 201:
                raise SetUpFailed(f"creating a payment answered {reply.status or reply.error}: {_text(reply)}")
            paid = Paid(f"p{len(self.paid) + 1}", str(reply.json()["id"]), course, metadata)
            self.paid.append(paid)
            self.log.append(f"create {paid.name} ({course}, metadata {_short(metadata)})")
            return paid

        @rule(paid=payments, status=st.sampled_from(CONFIRMS), deliveries=st.integers(1, 2))
        def confirm(self, paid: Paid, status: str, deliveries: int) -> None:
            self._confirm(paid, status, deliveries)

        def _confirm(self, paid: Paid, status: str, deliveries: int) -> None:
            raw = json.dumps({"status": status, "providerPaymentId": f"pi_{paid.name}"}).encode()
            headers = {"Content-Type": "application/json", "X-Signature": target.sign(paid.id, raw)}
            self.log.append(f"confirm {paid.name} {status}" + (" (delivered twice)" if deliveries > 1 else ""))
            for _ in range(deliveries):
                before = paid.status
                reply = target.http(PAYMENTS, "POST", f"{CREATE}/{paid.id}/confirm", body=raw, headers=headers)
                result.outcomes[f"confirm {reply.status}"] += 1
                if before == "initiated" and reply.status == 200:
                    paid.status = status
                elif before == status and reply.status != 200:
                    self.problems.append(f"confirming {paid.name} {status} again answered {reply.status}, "
                                         "expected 200 (a gateway retry is idempotent, P4)")
                elif before not in ("initiated", status) and reply.status != 409:
                    self.problems.append(f"confirming {paid.name} {status} after {before} answered "
                                         f"{reply.status}, expected 409 (an illegal transition, P4)")
                elif before == "initiated" and reply.status != 200:
                    self.problems.append(f"confirming the initiated {paid.name} {status} answered {reply.status}, "
                                         f"expected 200 (P2): {_text(reply)}")

        @rule()
        def settle(self) -> None:
            self.log.append("settle")
            target.settle(BOUND)

        @rule()
        def read_view(self) -> None:
            self.log.append("read the learning view")
            _view(target, self.student)

        def teardown(self) -> None:
            if not self.paid:
                return
            self.log.append("settle, then judge")
            quiet = target.settle(BOUND)
            problems = list(self.problems)
            if not quiet:
                problems.append(f"the flow did not settle within {BOUND:g} s (I3)")
            problems += judge(target, self.student, self.paid, result.outcomes)
            if problems:
                result.failing_cases += 1
                result.first_failure = result.first_failure or result.cases
                result.messages = tuple(problems)
                result.steps = tuple(self.log)
                raise Violation(problems[0])

    return Flow


def judge(target: Target, student: str, paid: list[Paid], outcomes: Counter[str]) -> list[str]:
    """Every payment of the sequence against the rules, after the final settle."""
    problems: list[str] = []
    view = _view(target, student)
    rows = target.snapshot().purchases if "read_db" in target.info.capabilities else None
    for payment in paid:
        reply = target.http(PAYMENTS, "GET", f"{CREATE}/{payment.id}")
        status = reply.json().get("status") if reply.status == 200 and isinstance(reply.json(), dict) else None
        if status != payment.status:
            problems.append(f"{payment.name} is {status!r} (GET answered {reply.status}), its first accepted "
                            f"confirmation made it {payment.status!r} (P4)")
        wanted = 1 if payment.status == "succeeded" else 0
        mine = [p for p in view if p.get("paymentId") == payment.id]
        outcomes[f"purchase in the view ({payment.status})"] += len(mine)
        if len(mine) != wanted:
            problems.append(f"{payment.name} ({payment.status}) has {len(mine)} purchase(s) in the learning view, "
                            f"expected {wanted} (W6, W3)")
        if rows is not None:
            stored = [r for r in rows if r.get("paymentId") == payment.id]
            if len(stored) != wanted:
                problems.append(f"{payment.name} ({payment.status}) has {len(stored)} purchase row(s), "
                                f"expected {wanted} (W6, W3)")
            mine += [r for r in stored if r.get("metadata") is not None]
        expected = oracle.merge(payment.metadata, payment.metadata)  # the event carries it complete (P3)
        for item in mine[:2] if wanted else ():
            if item.get("metadata") != expected:
                problems.append(f"{payment.name}'s purchase has metadata {_short(item.get('metadata'))}, the W4 "
                                f"merge is {_short(expected)} (W4, W5)")
                break
            shown = oracle.display(item)
            should = oracle.display({"metadata": expected, "purchaseTier": oracle.purchase_tier(expected)})
            if shown != should:
                problems.append(f"{payment.name}'s purchase shows {_short(shown)}, F1 of the merged metadata is "
                                f"{_short(should)} (F1)")
                break
    return problems


def _view(target: Target, student: str) -> list[dict[str, Any]]:
    """The student's learning view (the student's own bearer): its purchases."""
    reply = target.http(STUDENTS, "GET", f"/api/v1/students/{student}/learning",
                        headers={"Authorization": f"Bearer {target.token(student, 'student')}"})
    if reply.status != 200:
        raise SetUpFailed(f"reading the learning view answered {reply.status or reply.error}: {_text(reply)}")
    body = reply.json()
    purchases = body.get("purchases") if isinstance(body, dict) else None
    return [p for p in purchases if isinstance(p, dict)] if isinstance(purchases, list) else []


def _call(target: Target, service: str, method: str, path: str, body: dict[str, Any]) -> HttpReply:
    return target.http(service, method, path, body=json.dumps(body).encode(),
                       headers={"Content-Type": "application/json"})


def _text(reply: HttpReply) -> str:
    return reply.body[:200].decode(errors="replace")


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "..."
