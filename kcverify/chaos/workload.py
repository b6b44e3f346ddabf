"""The workload of `kcverify chaos`, the run's phases, and the final observed state.

Load phase: purchase i starts at `t0 + i / rate` (open loop, as `kcverify bench`: a slow system shows
its queueing, the generator never waits for it). Each purchase creates a payment and confirms it, seeded
per purchase: a share is confirmed `failed`, a share confirmed twice (the gateway's retry), a share has
its confirmed event delivered again (`Target.publish` of the same event: same id, same idempotency key),
and a share is followed by a poison event (a confirmed event the schema refuses). Courses come from a
small set, so students buy the same course again. A reader polls the learning views of students with
recent purchases (the staleness windows). Meanwhile the nemesis applies its faults.

Recovery: faults healed (every service up, every process running free), then the target settles (quiet:
outboxes empty, both groups at the end, no succeeded payment without its purchase), bounded. Final state:
rows, records, offsets, and every student's learning view, read after recovery."""

from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kcverify.bench.load import METADATA
from kcverify.chaos.faults import FaultSpec, Planned, plan
from kcverify.chaos.history import FINAL, HISTORY, History
from kcverify.chaos.nemesis import Nemesis
from kcverify.core.clock import rfc3339
from kcverify.core.errors import TargetUnreachable
from kcverify.core.ids import event_id_for
from kcverify.spec import names
from kcverify.targets.base import HttpReply, Snapshot

COURSES = ("chaos-a", "chaos-b", "chaos-c")
READ_INTERVAL = 0.05
FINAL_READERS = 8  # threads reading the learning views after recovery


@dataclass(frozen=True)
class ChaosOptions:
    purchases: int = 1000
    rate: float = 20.0
    faults: tuple[FaultSpec, ...] = ()
    seed: int = 0
    students: int = 0  # 0: purchases // 4, at least 5
    duplicate_confirm: float = 0.10
    duplicate_delivery: float = 0.05
    poison: float = 0.02
    failed: float = 0.05
    senders: int = 32
    recovery_timeout: float = 120.0

    def as_dict(self) -> dict[str, Any]:
        return {"purchases": self.purchases, "rate": self.rate, "faults": [f.text() for f in self.faults],
                "seed": self.seed, "students": self.student_count(), "duplicateConfirm": self.duplicate_confirm,
                "duplicateDelivery": self.duplicate_delivery, "poison": self.poison, "failed": self.failed,
                "recoveryTimeout": self.recovery_timeout}

    def student_count(self) -> int:
        return self.students or max(5, self.purchases // 4)


class Target(Protocol):
    def now(self) -> float: ...
    def student_id(self, name: str) -> str: ...
    def http(self, service: str, method: str, path: str, *, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> HttpReply: ...
    def sign(self, payment_id: str, body: bytes, at: float | None = None) -> str: ...
    def token(self, subject: str, role: str) -> str: ...
    def publish(self, topic: str, key: str | None, value: bytes,
                headers: tuple[tuple[str, str], ...] = ()) -> Any: ...
    def snapshot(self) -> Snapshot: ...
    def settle(self, timeout: float | None) -> bool: ...
    def run_free(self) -> None: ...
    def process(self, name: str) -> Any: ...
    def respawn_free(self, name: str) -> None: ...
    def stack_recovered(self) -> None: ...


@dataclass
class RunInfo:
    load_seconds: float = 0.0
    recovery_seconds: float = 0.0
    settled: bool = False
    pending: list[str] = field(default_factory=list)
    faults_applied: list[str] = field(default_factory=list)


def _outcome(reply: HttpReply, ok: tuple[int, ...]) -> str:
    if reply.status in ok:
        return "ok"
    if reply.status is not None and 400 <= reply.status < 500:
        return "fail"
    return "unknown"  # no answer, or a 5xx: the effect may have happened


class Chaos:
    def __init__(self, target: Target, state_dir: Path, out: Path, options: ChaosOptions) -> None:
        self._t = target
        self._state_dir = state_dir
        self._out = out
        self._o = options
        self.history = History(out / HISTORY, target)
        self._students = [target.student_id(f"c{n}") for n in range(options.student_count())]
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        self._recent: list[str] = []  # students with a purchase confirmed lately (the reader's list)
        self._stop = threading.Event()

    # --- the phases -----------------------------------------------------------------------------------

    def run(self, planned: list[Planned] | None = None) -> RunInfo:
        o = self._o
        duration = o.purchases / o.rate
        faults = planned if planned is not None else plan(o.faults, duration, o.seed)
        self.history.write({"type": "run", "options": o.as_dict(), "namespace": self._t.student_id(""),
                            "planned": [{"at": f.at, "kind": f.kind, "hold": f.hold} for f in faults],
                            "at": self._t.now()})
        info = RunInfo()
        self._t.run_free()
        nemesis = Nemesis(self._t, self._state_dir, self.history, faults, self._stop)
        reader = threading.Thread(target=self._reader, name="kcverify-chaos-reader", daemon=True)
        began = time.monotonic()
        mono0 = began + 0.2
        nemesis.start(mono0)
        reader.start()
        with ThreadPoolExecutor(o.senders, thread_name_prefix="kcverify-chaos-send") as senders:
            for i in range(o.purchases):
                delay = mono0 + i / o.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                senders.submit(self._guarded, i)
        info.load_seconds = round(time.monotonic() - began, 1)
        nemesis.join()  # faults planned inside the load phase: the last one heals now
        self._stop.set()
        reader.join()
        recovery = time.monotonic()
        nemesis.heal()
        info.settled = self._t.settle(o.recovery_timeout)
        info.pending = list(getattr(self._t, "last_settle_pending", []))
        info.recovery_seconds = round(time.monotonic() - recovery, 1)
        info.faults_applied = nemesis.applied
        self.history.write({"type": "end", "at": self._t.now(), "loadSeconds": info.load_seconds,
                            "recoverySeconds": info.recovery_seconds, "settled": info.settled,
                            "pending": info.pending})
        self.history.close()
        self._final(info)
        return info

    def _final(self, info: RunInfo) -> None:
        snap = self._t.snapshot()

        def view(student: str) -> dict[str, Any]:
            reply = self._t.http("student-service", "GET", f"/api/v1/students/{student}/learning",
                                 headers={"Authorization": self._token(student)})
            body = reply.json() if reply.status == 200 else {}
            return {"status": reply.status, "purchases": body.get("purchases", [])}

        students = sorted({str(p["studentId"]) for p in snap.payments} | {str(p["studentId"]) for p in snap.purchases})
        with ThreadPoolExecutor(FINAL_READERS, thread_name_prefix="kcverify-chaos-final") as pool:
            views = dict(zip(students, pool.map(view, students), strict=True))  # thousands of views: in parallel
        final = {
            "at": snap.at, "settled": info.settled, "pending": info.pending,
            "payments": snap.payments, "purchases": snap.purchases,
            "topics": {t: [{"partition": r.partition, "offset": r.offset, "key": r.key,
                            "value": r.value.decode("utf-8", "replace"), "headers": [list(h) for h in r.headers]}
                           for r in records] for t, records in snap.topics.items()},
            "endOffsets": {t: {str(p): e for p, e in ends.items()} for t, ends in snap.end_offsets.items()},
            "committed": {g: {str(p): c for p, c in offs.items()} for g, offs in snap.committed.items()},
            "views": views,
        }
        (self._out / FINAL).write_text(json.dumps(final, indent=1, sort_keys=True) + "\n")

    # --- one purchase ---------------------------------------------------------------------------------

    def _token(self, student: str) -> str:
        with self._lock:
            if student not in self._tokens:
                self._tokens[student] = "Bearer " + self._t.token(student, "student")
            return self._tokens[student]

    def _guarded(self, i: int) -> None:
        try:
            self._purchase(i)
        except Exception as exc:  # a purchase's failure is in its history lines; the run goes on
            self.history.write({"type": "op", "id": 0, "f": "error", "invoke": self._t.now(),
                                "complete": self._t.now(), "outcome": "unknown",
                                "error": f"{type(exc).__name__}: {exc}"[:300]})

    def _http(self, f: str, ok: tuple[int, ...], service: str, method: str, path: str, body: bytes,
              headers: dict[str, str], **fields: Any) -> tuple[str, HttpReply | None]:
        invoke = self._t.now()
        try:
            reply = self._t.http(service, method, path, body=body, headers=headers)
        except TargetUnreachable as exc:  # the stack probe saw a service down (a planned fault)
            self.history.op(f, invoke, "unknown", error=str(exc)[:200], **fields)
            return "unknown", None
        outcome = _outcome(reply, ok)
        value: dict[str, Any] | None = None
        if outcome == "ok":
            data = reply.json()
            value = {"status": data.get("status"), "id": data.get("id")}
        self.history.op(f, invoke, outcome, value=value, status=reply.status,
                        error=None if outcome == "ok" else (reply.error or reply.body[:200].decode("utf-8", "replace")),
                        **fields)
        return outcome, reply

    def _purchase(self, i: int) -> None:
        o, t = self._o, self._t
        rng = random.Random(o.seed * 1_000_003 + i)
        student = self._students[i % len(self._students)]
        course = rng.choice(COURSES)
        metadata: dict[str, Any] = {**METADATA, "sessionCount": rng.choice((8, 12, 24))}
        body = {"studentId": student, "courseId": course, "amountCents": 4900, "currency": "EUR", "metadata": metadata}
        outcome, reply = self._http("create", (201,), "payment-service", "POST", "/api/v1/payments",
                                    json.dumps(body).encode(), {"Content-Type": "application/json",
                                                                "Authorization": self._token(student)},
                                    student=student, course=course, index=i)
        if outcome != "ok" or reply is None:
            return
        payment = str(reply.json()["id"])
        status = "failed" if rng.random() < o.failed else "succeeded"
        raw = json.dumps({"status": status, "providerPaymentId": f"pi_chaos_{payment}"}).encode()
        times = 2 if rng.random() < o.duplicate_confirm else 1
        confirmed = False
        for n in range(times):
            outcome, _ = self._http("confirm" if n == 0 else "confirm-dup", (200,), "payment-service", "POST",
                                    f"/api/v1/payments/{payment}/confirm", raw,
                                    {"Content-Type": "application/json", "X-Signature": t.sign(payment, raw)},
                                    student=student, payment=payment, requested=status)
            confirmed = confirmed or outcome == "ok"
        if confirmed and status == "succeeded":
            with self._lock:
                self._recent.append(student)
            if rng.random() < o.duplicate_delivery:
                self._deliver_again(student, payment, course, metadata)
        if rng.random() < o.poison:
            self._poison(student, payment, rng)

    def _publish(self, f: str, key: str, value: bytes, headers: tuple[tuple[str, str], ...], **fields: Any) -> None:
        invoke = self._t.now()
        try:
            self._t.publish(names.TOPIC_CONFIRMED, key, value, headers)
        except Exception as exc:  # a broker away: the record may or may not be on the topic
            self.history.op(f, invoke, "unknown", error=f"{type(exc).__name__}: {exc}"[:200], **fields)
            return
        self.history.op(f, invoke, "ok", **fields)

    def _deliver_again(self, student: str, payment: str, course: str, metadata: dict[str, Any]) -> None:
        """The payment's confirmed event once more: same idempotency key and event id (a redelivery)."""
        key = names.confirmed_key(payment)
        event = {"eventId": event_id_for(key), "type": names.EVENT_CONFIRMED, "version": names.EVENT_VERSION,
                 "occurredAt": rfc3339(self._t.now()), "correlationId": payment, "idempotencyKey": key,
                 "source": "payment-service",
                 "payload": {"paymentId": payment, "studentId": student, "courseId": course, "amountCents": 4900,
                             "currency": "EUR", "metadata": metadata}}
        headers = tuple((h, str(event[h])) for h in names.EVENT_HEADERS)
        self._publish("deliver-dup", student, json.dumps(event).encode(), headers, student=student, payment=payment)

    def _poison(self, student: str, payment: str, rng: random.Random) -> None:
        """A confirmed event the schema refuses: sessionCount a word, the payload without its paymentId,
        or bytes that are not JSON. Its own event id (in the header) names it in the history."""
        event_id = f"poison-{payment}"
        kind = rng.choice(("bad-field", "missing-field", "not-json"))
        key = f"poison:{payment}"
        event: dict[str, Any] = {
            "eventId": event_id, "type": names.EVENT_CONFIRMED, "version": names.EVENT_VERSION,
            "occurredAt": rfc3339(self._t.now()), "correlationId": payment, "idempotencyKey": key,
            "source": "payment-service",
            "payload": {"paymentId": payment, "studentId": student, "courseId": COURSES[0], "amountCents": 4900,
                        "currency": "EUR", "metadata": {**METADATA, "sessionCount": "ten"}}}
        if kind == "missing-field":
            del event["payload"]["paymentId"]
        raw = b'{"type": "PURCHASE_CONFIRMED", "payload": ' if kind == "not-json" else json.dumps(event).encode()
        headers = (("eventId", event_id), ("type", names.EVENT_CONFIRMED), ("correlationId", payment),
                   ("idempotencyKey", key))
        self._publish("poison", student, raw, headers, student=student, payment=payment, event=event_id, kind=kind)

    # --- the reader -----------------------------------------------------------------------------------

    def _reader(self) -> None:
        """Learning views of students with recent purchases, one read at a time (the staleness windows)."""
        while not self._stop.is_set():
            with self._lock:
                student = self._recent.pop(0) if self._recent else None
                if student is not None and len(self._recent) < 50:
                    self._recent.append(student)  # read it again later: the window ends when it shows
            if student is None:
                time.sleep(READ_INTERVAL)
                continue
            invoke = self._t.now()
            try:
                reply = self._t.http("student-service", "GET", f"/api/v1/students/{student}/learning",
                                     headers={"Authorization": self._token(student)})
            except TargetUnreachable as exc:
                self.history.op("read", invoke, "unknown", student=student, error=str(exc)[:200])
                continue
            if reply.status == 200:
                shown = [str(p.get("paymentId")) for p in reply.json().get("purchases", [])]
                self.history.op("read", invoke, "ok", student=student, value={"shown": shown})
            else:
                self.history.op("read", invoke, _outcome(reply, (200,)), student=student, status=reply.status)
            time.sleep(READ_INTERVAL)
