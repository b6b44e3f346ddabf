"""The load of `kcverify bench`: open loop at a constant arrival rate, coordinated-omission safe.

Purchase i of a step has the intended start `t0 + i / rate`, fixed before the step begins. A scheduler
thread hands each purchase to a sender pool at its intended start, whether or not earlier ones have
finished; every latency counts from the intended start (as wrk2 and k6's constant-arrival-rate do), so a
system that falls behind shows its queueing instead of slowing the generator down and hiding it.

A sender creates the payment, confirms it (signed through the target's `sign`), and hands the purchase
to a reader, who polls that student's learning view every `poll_interval` seconds until the purchase is
listed (or `visible_timeout` passes). The readers' own requests are counted: they are load too.

The target is driven through its public methods only (`http`, `sign`, `token`, `now`, `student_id`,
`snapshot`, and `run_free` / `hold_all` of a target whose components can run on their own)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from kcverify.bench.results import Integrity, MaxThroughput, Purchase, Step
from kcverify.core.clock import parse_rfc3339
from kcverify.core.errors import InputError, TargetUnreachable
from kcverify.targets.base import HttpReply, Snapshot

# The purchase every bench student makes: a valid document (contracts/schemas/purchase-metadata.schema.json).
METADATA = {"startDate": "2026-05-04", "classTime": "19:15", "classTypeId": "group-small", "scheduleType": "weekly",
            "sessionCount": 12}
COURSE = "bench-course"
START_DELAY = 0.2  # seconds between planning a step and its first intended start
DRAIN_POLL = 1.0  # seconds between two snapshots while the last purchases are on their way
# In the closed loop, a worker's polls for its purchase grow by this factor, up to this many poll intervals.
MAX_POLL_GROWTH = 1.5
MAX_POLL_BACKOFF = 10


class FreeRunningTarget(Protocol):
    """What the bench needs of a target: the primitives every target has, plus free-running components."""

    def now(self) -> float: ...
    def student_id(self, name: str) -> str: ...
    def http(self, service: str, method: str, path: str, *, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> HttpReply: ...
    def sign(self, payment_id: str, body: bytes, at: float | None = None) -> str: ...
    def token(self, subject: str, role: str) -> str: ...
    def snapshot(self) -> Snapshot: ...
    def run_free(self) -> None: ...
    def hold_all(self) -> None: ...


@dataclass(frozen=True)
class Ramp:
    """Rates rising by `factor` from the first of `rates` until a step does not keep up (`kept_up`), at
    most `steps` steps: the last rate that kept up is the system's sustainable rate."""

    factor: float = 1.5
    steps: int = 8
    p99_limit_ms: float = 1000.0  # confirm_to_visible p99 above this: not keeping up (the freshness bound)

    def kept_up(self, step: Step) -> tuple[bool, str]:
        """Whether the step kept up, and why not: achieved under 90 % of offered, a purchase that failed or
        was not visible in time, or confirm_to_visible p99 over the limit."""
        s = step.summary()
        if s["achievedRate"] < 0.9 * s["offeredRate"]:
            return False, f"achieved {s['achievedRate']:g}/s of {s['offeredRate']:g}/s offered"
        if s["errors"]:
            return False, "errors: " + ", ".join(f"{k}: {v}" for k, v in s["errors"].items())
        p99 = s["latencyMs"]["confirm_to_visible"]["p99"]
        if p99 is not None and p99 > self.p99_limit_ms:
            return False, f"confirm_to_visible p99 {p99:g} ms > {self.p99_limit_ms:g} ms"
        return True, ""


@dataclass(frozen=True)
class BenchOptions:
    rates: tuple[float, ...] = (50.0,)
    duration: float = 30.0
    students: int = 100
    poll_interval: float = 0.02
    visible_timeout: float = 30.0
    senders: int = 32
    readers: int = 16
    drain_timeout: float = 120.0
    ramp: Ramp | None = None  # rates rising from rates[0] instead of the listed rates
    warmup: float = 0.0  # seconds of load at rates[0] before the first step, not counted in its latencies

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rates": list(self.rates), "duration": self.duration, "students": self.students,
                               "pollInterval": self.poll_interval, "visibleTimeout": self.visible_timeout,
                               "drainTimeout": self.drain_timeout, "warmup": self.warmup}
        if self.ramp is not None:
            out["ramp"] = {"factor": self.ramp.factor, "steps": self.ramp.steps,
                           "p99LimitMs": self.ramp.p99_limit_ms}
        return out


def free_running(target: object) -> FreeRunningTarget:
    """The target, when its components can run free; else bad input naming what is missing."""
    if not (callable(getattr(target, "run_free", None)) and callable(getattr(target, "hold_all", None))):
        raise InputError("kcverify bench needs a target whose components can run on their own "
                         "(the processes target)", hint="use --target processes")
    return target  # type: ignore[return-value]


class Bench:
    """Runs the steps (one per offered rate) against a started target, components free-running."""

    def __init__(self, target: FreeRunningTarget, options: BenchOptions,
                 progress: Callable[[Step], None] | None = None) -> None:
        self._target = target
        self._options = options
        self._progress = progress  # called with each step when it is done, the warm-up's (`warmup`) too
        self._students = [target.student_id(f"b{n}") for n in range(options.students)]
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        self._fatal: BaseException | None = None
        self._shown_twice = 0
        self._pending: dict[str, list[Purchase]] = {}  # confirmed, not shown yet, by student
        self._reading: set[str] = set()  # students whose reader runs
        self.ramp_stop: str | None = None  # with a ramp: why its last step did not keep up (None: all did)
        self.warmup: Step | None = None  # the warm-up's load, when there was one: outside the steps

    def run(self) -> tuple[list[Step], Integrity]:
        """The warm-up (unless `warm_up` ran it already), one step per rate, the drain, and the integrity of
        all their purchases. The warm-up and the steps are one free-running stretch: held in between,
        a component's consumers would leave their groups after max.poll.interval.ms and rejoin in the
        first step."""
        steps: list[Step] = []
        self._target.run_free()
        try:
            if self.warmup is None and self._options.warmup > 0:
                self._warm()
            for rate in self._rates():
                step = self._step(rate)
                steps.append(step)
                if self._progress is not None:
                    self._progress(step)
                if self._options.ramp is not None:
                    kept_up, why = self._options.ramp.kept_up(step)
                    self.ramp_stop = None if kept_up else why
                    if not kept_up:
                        break
            every = steps if self.warmup is None else [self.warmup, *steps]
            snapshot, drained, _ = self._drain(every)
        finally:
            self._target.hold_all()
        return steps, self._integrity(every, snapshot, drained)

    def warm_up(self) -> Step:
        """The warm-up on its own, the components held again after it: for a system measured later, to
        warm what it shares with another (a stack's broker) before the other is measured."""
        self._target.run_free()
        try:
            return self._warm()
        finally:
            self._target.hold_all()

    def _warm(self) -> Step:
        """Load at the first rate for `warmup` seconds, then wait until its purchases are all in (a backlog
        would otherwise spill into the first step; `drained` False when `drain_timeout` passed first).
        What it warms is the system's, not the bench's: a broker's JIT compiler, the services' pools and
        caches. Its latencies are reported apart (`warmup`); its purchases still count in `run`'s
        integrity tally."""
        warm = self.warmup = self._step(self._options.rates[0], self._options.warmup)
        _, warm.drain_seconds, warm.drained = self._drain([warm])
        if self._progress is not None:
            self._progress(warm)
        return warm

    def _rates(self) -> Iterator[float]:
        """The listed rates; with a ramp, the first of them times factor^n for n < steps."""
        ramp = self._options.ramp
        if ramp is None:
            yield from self._options.rates
            return
        for n in range(ramp.steps):
            yield round(self._options.rates[0] * ramp.factor ** n, 2)

    def _drain(self, steps: list[Step]) -> tuple[Snapshot, float, bool]:
        """Components still running, wait until every confirmed payment has its purchase (a purchase the
        readers gave up on may still be on its way), at most `drain_timeout` seconds: only what is
        missing then counts as lost. The snapshot, the seconds waited, and whether every one was in."""
        confirmed = {p.payment_id for s in steps for p in s.purchases if p.confirmed_at is not None}
        started = time.monotonic()
        while True:
            snapshot = self._target.snapshot()
            complete = confirmed <= {str(r["paymentId"]) for r in snapshot.purchases}
            if complete:
                break
            left = self._options.drain_timeout - (time.monotonic() - started)
            if left <= 0:
                break
            time.sleep(min(DRAIN_POLL, left))
        return snapshot, round(time.monotonic() - started, 1), complete

    # --- one step ------------------------------------------------------------------------------------

    def _step(self, rate: float, duration: float | None = None) -> Step:
        opts = self._options
        step = Step(rate=rate, duration=opts.duration if duration is None else duration)
        count = max(1, round(rate * step.duration))
        wall0, mono0 = self._target.now() + START_DELAY, time.monotonic() + START_DELAY
        step.started = wall0
        futures: list[Future[None]] = []
        with ThreadPoolExecutor(opts.senders, thread_name_prefix="kcverify-bench-send") as senders, \
                ThreadPoolExecutor(opts.readers, thread_name_prefix="kcverify-bench-read") as readers:
            for i in range(count):
                if self._fatal is not None:
                    break
                delay = mono0 + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                purchase = Purchase(index=i, student=self._students[i % len(self._students)], intended=wall0 + i / rate)
                step.purchases.append(purchase)
                futures.append(senders.submit(self._guarded, self._purchase, purchase, step, readers, futures))
            while True:  # senders add reader futures: wait until no new one comes
                pending = [f for f in list(futures) if not f.done()]
                if not pending:
                    break
                for f in pending:
                    f.result()
        step.finished = self._target.now()
        if self._fatal is not None:
            raise self._fatal
        return step

    def _guarded(self, action: Callable[..., None], *args: Any) -> None:
        """Unreachable target: remembered and raised by the step (the bench stops there, exit 2)."""
        try:
            action(*args)
        except TargetUnreachable as exc:
            with self._lock:
                self._fatal = self._fatal or exc

    def _token(self, student: str) -> str:
        with self._lock:
            if student not in self._tokens:
                self._tokens[student] = "Bearer " + self._target.token(student, "student")
            return self._tokens[student]

    def max_throughput(self, seconds: float, workers: int) -> MaxThroughput:
        """Closed loop: `workers` threads, each creating and confirming a purchase, polling its student's
        view until it is listed, then starting the next; none starts after `seconds`, and the ones under
        way finish. Purchases made visible over the time until the last finished is the most the system
        sustains end to end (a closed loop hides latency, never throughput: every worker waits for the
        slowest hop). Components run free meanwhile."""
        done = 0
        errors: Counter[str] = Counter()
        lock = threading.Lock()
        started = time.monotonic()
        deadline = started + seconds

        def worker(n: int) -> None:
            nonlocal done
            student = self._target.student_id(f"m{n}")
            i = 0
            while time.monotonic() < deadline and self._fatal is None:
                purchase = Purchase(index=i, student=student, intended=self._target.now())
                i += 1
                ok = self._create_and_confirm(purchase) and self._until_listed(purchase)
                with lock:
                    if ok:
                        done += 1
                    elif purchase.error:
                        errors[purchase.error] += 1

        self._target.run_free()
        try:
            with ThreadPoolExecutor(workers, thread_name_prefix="kcverify-bench-max") as pool:
                for f in [pool.submit(self._guarded, worker, n) for n in range(workers)]:
                    f.result()
        finally:
            self._target.hold_all()
        elapsed = time.monotonic() - started
        if self._fatal is not None:
            raise self._fatal
        return MaxThroughput(workers=workers, seconds=elapsed, visible=done, errors=dict(errors))

    def _until_listed(self, purchase: Purchase) -> bool:
        """Poll the purchase's student's view until it lists the purchase (True) or `visible_timeout`."""
        t = self._target
        path = f"/api/v1/students/{purchase.student}/learning"
        headers = {"Authorization": self._token(purchase.student)}
        give_up = time.monotonic() + self._options.visible_timeout
        interval = self._options.poll_interval
        while time.monotonic() < give_up:
            reply = t.http("student-service", "GET", path, headers=headers)
            if reply.status == 200 and any(str(p.get("paymentId")) == purchase.payment_id
                                           for p in reply.json().get("purchases", [])):
                purchase.visible_at = t.now()
                return True
            time.sleep(interval)
            # Backing off: at a fixed interval the slower system got the more reads (32 workers polling
            # every 20 ms while its purchases took a second), and spent its capacity answering them.
            interval = min(interval * MAX_POLL_GROWTH, self._options.poll_interval * MAX_POLL_BACKOFF)
        purchase.error = f"not visible in {self._options.visible_timeout:g} s"
        return False

    def _create_and_confirm(self, purchase: Purchase) -> bool:
        """Create the purchase's payment and confirm it (signed); False with `purchase.error` set when
        either request failed."""
        t = self._target
        body = {"studentId": purchase.student, "courseId": COURSE, "amountCents": 4900, "currency": "EUR",
                "metadata": METADATA}
        reply = t.http("payment-service", "POST", "/api/v1/payments", body=json.dumps(body).encode(),
                       headers={"Content-Type": "application/json", "Authorization": self._token(purchase.student)})
        if reply.status != 201:
            purchase.error = f"create {reply.status or 'no response'}"
            return False
        purchase.payment_id = str(reply.json()["id"])
        raw = json.dumps({"status": "succeeded", "providerPaymentId": f"pi_bench_{purchase.payment_id}"}).encode()
        reply = t.http("payment-service", "POST", f"/api/v1/payments/{purchase.payment_id}/confirm", body=raw,
                       headers={"Content-Type": "application/json", "X-Signature": t.sign(purchase.payment_id, raw)})
        if reply.status != 200 or reply.json().get("status") != "succeeded":
            purchase.error = f"confirm {reply.status or 'no response'}"
            return False
        purchase.confirmed_at = t.now()
        return True

    def _purchase(self, purchase: Purchase, step: Step, readers: ThreadPoolExecutor,
                  futures: list[Future[None]]) -> None:
        if not self._create_and_confirm(purchase):
            return
        with self._lock:
            self._pending.setdefault(purchase.student, []).append(purchase)
            if purchase.student not in self._reading:  # one reader per student, for all its purchases
                self._reading.add(purchase.student)
                futures.append(readers.submit(self._guarded, self._read, purchase.student, step))

    def _read(self, student: str, step: Step) -> None:
        """Poll the student's learning view until it lists every purchase of the student confirmed so far
        (or each one's `visible_timeout` passed). One reader per student bounds the readers' own load:
        a purchase confirmed while its student's reader runs is picked up by the next poll."""
        t = self._target
        path = f"/api/v1/students/{student}/learning"
        headers = {"Authorization": self._token(student)}
        while True:
            with self._lock:
                waiting = list(self._pending.get(student, ()))
                if not waiting:
                    self._reading.discard(student)
                    return
            sent = time.monotonic()
            reply = t.http("student-service", "GET", path, headers=headers)
            received = t.now()
            shown = Counter(str(p.get("paymentId")) for p in reply.json().get("purchases", [])) \
                if reply.status == 200 else Counter[str]()
            done = []
            for purchase in waiting:
                assert purchase.confirmed_at is not None
                if shown[str(purchase.payment_id)]:
                    purchase.visible_at = received
                elif received >= purchase.confirmed_at + self._options.visible_timeout:
                    purchase.error = f"not visible in {self._options.visible_timeout:g} s"
                else:
                    continue
                done.append(purchase)
            with self._lock:
                step.readers.requests += 1
                step.readers.seconds += time.monotonic() - sent
                self._shown_twice += sum(1 for p in done if shown[str(p.payment_id)] > 1)
                self._pending[student] = [p for p in self._pending[student] if p not in done]
            if len(done) < len(waiting):
                time.sleep(self._options.poll_interval)

    # --- the tally -----------------------------------------------------------------------------------

    def _integrity(self, steps: list[Step], snapshot: Snapshot, drained: float) -> Integrity:
        """Every confirmed payment has exactly one purchase row (from the target's snapshot of this
        bench's namespace, which also gives each row's created_at for the commit hop)."""
        rows: dict[str, list[dict[str, Any]]] = {}
        for row in snapshot.purchases:
            rows.setdefault(str(row["paymentId"]), []).append(row)
        confirmed = [p for s in steps for p in s.purchases if p.confirmed_at is not None]
        for p in confirmed:
            found = rows.get(str(p.payment_id)) or []
            if found:
                stamps = [parse_rfc3339(str(r["createdAt"])) for r in found if r.get("createdAt")]
                p.created_at = min(stamps) if stamps else None  # a system that shows no createdAt: no commit hop
        lost = sorted(str(p.payment_id) for p in confirmed if not rows.get(str(p.payment_id)))
        duplicated = sorted(str(p.payment_id) for p in confirmed if len(rows.get(str(p.payment_id)) or []) > 1)
        return Integrity(confirmed=len(confirmed), purchases=len(snapshot.purchases), lost=lost,
                         duplicated=duplicated, shown_twice=self._shown_twice, drain_seconds=drained)
