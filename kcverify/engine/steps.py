"""What each scenario step does to a target, and the expectations a step carries. One function per
step kind; each records its operations in the evidence and returns the failures of its `expect`."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from kcverify.core.clock import rfc3339
from kcverify.core.errors import TargetUnreachable
from kcverify.core.ids import event_id_for
from kcverify.evidence import cache_status
from kcverify.evidence.evidence import Evidence, Exchange, PaymentRecord, Settle, decode, listed_purchases
from kcverify.evidence.results import SETTLE_BOUND, STEP_EXPECTATION, Failure
from kcverify.scenario import generate
from kcverify.scenario.model import CREDENTIAL_TITLES, UNBOUND_PAYMENT, Step
from kcverify.spec import names
from kcverify.targets.base import INJECTED_HEADER, CacheEntry, HttpReply, Target

DEFAULT_METADATA: dict[str, Any] = {
    "startDate": "2026-02-02",
    "classTime": "18:30",
    "classTypeId": "group-small",
    "scheduleType": "weekly",
    "sessionCount": 10,
    "timezone": "Europe/Berlin",
    "classTypeTitle": "Small group (max 6)",
}

# Status a step expects when its `expect` does not say.
DEFAULT_STATUS = {"create_payment": 201, "confirm": 200, "read": 200, "finish_read": 200, "invalidate_cache": 204}


# P2: the spec's default tolerance for a callback's signed timestamp; a signature older (or newer) is stale.
SIGNATURE_TOLERANCE = 300.0
# How a confirmation was signed (Exchange.signature): the gateway's own signature for this payment, made
# now; or an attempt the authority check judges (refused, or, for a replay of an applied callback, a no-op).
SIGNATURES = ("fresh", "none", "other-payment", "stale", "replay")

# The rules an unexpected status of a step refutes.
STATUS_RULES = {"create_payment": ("P1",), "confirm": ("P2", "P4"), "read": ("S1",), "finish_read": ("S1",),
                "invalidate_cache": ("S4",)}


# Who defines each dead-letter reason (a `dlq` assertion naming one cites that rule).
DLQ_RULES = {"schema_violation": ("W2",), "payment_not_succeeded": ("W3", "W7"), "retries_exhausted": ("W7", "W5"),
             "invalid_metadata": ("W4", "W2")}


def _status_rules(kind: str, wanted: tuple[int, ...], got: int) -> tuple[str, ...]:
    """The rules a wrong status breaks: the step kind's; a server error where none or another was due also
    breaks the contract's documented statuses (I4), and on a read the promise that reads never fail (S5)."""
    rules = STATUS_RULES.get(kind, ())
    if got >= 500 or any(w >= 500 for w in wanted):
        rules = (*rules, "I4", *(("S5",) if kind in ("read", "finish_read") and got >= 500 else ()))
    return rules


class StepError(Exception):
    """The step could not be carried out as written (e.g. a payment that failed to be created)."""


@dataclass
class PendingRead:
    handle: Any
    student: str
    started_at: float
    step: int
    seq: int
    principal: tuple[str, str]


@dataclass
class Context:
    target: Target
    evidence: Evidence
    step: int = 0
    reads: dict[str, PendingRead] = field(default_factory=dict)
    # the last confirmation sent to each payment (by name): body, headers, how it was signed; for `replay`
    callbacks: dict[str, tuple[bytes, dict[str, str], str]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    # what generated metadata is drawn from, with the step's number (scenario.generate.seed_for)
    seed: int = 0
    scenario: str = ""

    def expect_failure(self, message: str, rules: tuple[str, ...] = ()) -> None:
        self.failures.append(Failure(STEP_EXPECTATION, rules, message, self.step, self.evidence.step_title(self.step),
                                     source="step"))

    def http(self, kind: str, service: str, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None, student: str | None = None,
             principal: tuple[str, str] | None = None, signature: str | None = None,
             credential: str | None = None) -> HttpReply:
        started, seq = self.target.now(), self.evidence.tick()
        reply = self.target.http(service, method, path, body=body, headers=headers)
        cache = observe_cache(self.target, student, reply) if kind == "read" else None
        shown = observe_display(self.target, reply) if kind == "read" else None
        self.evidence.exchanges.append(Exchange(self.step, kind, service, method, path, body or b"", started,
                                                self.target.now(), reply, student, seq, principal, signature,
                                                cache, credential, shown))
        return reply

    def student(self, name: str) -> str:
        """The id the target gives a scenario's student (a shared real stack keeps scenarios apart)."""
        return self.target.student_id(name)

    def payment(self, name: str) -> PaymentRecord:
        record = self.evidence.payments.get(name)
        if record is None:
            raise StepError(f"payment {name!r} was not created (its create_payment step failed)")
        return record


def _metadata(args: Mapping[str, Any], generated: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The document a step sends: given, generated, or the default one; then `metadata_patch`."""
    if "metadata" in args:
        metadata = dict(args["metadata"])
    else:
        metadata = dict(generated if generated is not None else DEFAULT_METADATA)
    for key, value in (args.get("metadata_patch") or {}).items():
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = value
    return metadata


def _check_status(ctx: Context, step: Step, reply: HttpReply, what: str,
                  default: tuple[int, ...] | None = None) -> None:
    """The step's expected status, or its kind's default; `default` overrides the kind's (any of them)."""
    expect = step.expect or {}
    wanted = (expect["status"],) if "status" in expect else default or (
        (DEFAULT_STATUS[step.kind],) if step.kind in DEFAULT_STATUS else None)
    if wanted is None:
        return
    shown = " or ".join(str(w) for w in wanted)
    if reply.status is None:
        ctx.expect_failure(f"{what}: expected {shown}, got no response ({reply.error})",
                           rules=STATUS_RULES.get(step.kind, ()))
    elif reply.status not in wanted:
        ctx.expect_failure(f"{what}: expected status {shown}, got {reply.status}: {_brief(reply)}",
                           rules=_status_rules(step.kind, wanted, reply.status))


def _brief(reply: HttpReply) -> str:
    text = reply.body[:200].decode(errors="replace")
    return text.replace("\n", " ")


def create_payment(ctx: Context, step: Step) -> None:
    a = step.args
    student, course = ctx.student(a.get("student", "s1")), a.get("course", "c1")
    generated = None
    if "generate" in a:
        sold = tuple(count for count, _ in ctx.evidence.conventions.tiers)
        options = generate.Options.from_args(a["generate"]).sold_only(sold)
        generated = generate.draw(options, generate.seed_for(ctx.seed, ctx.scenario, ctx.step))
    metadata = _metadata(a, generated)
    body = {"studentId": student, "courseId": course, "amountCents": a.get("amount_cents", 4900),
            "currency": a.get("currency", "EUR"), "metadata": metadata}
    raw = json.dumps(body).encode()
    reply = ctx.http("create_payment", "payment-service", "POST", "/api/v1/payments", raw,
                     {"Content-Type": "application/json"}, student)
    what = f"create_payment {a['as']}"
    if generated is not None:  # a failure must show the document the seed drew
        what += f" (generated metadata {json.dumps(metadata, sort_keys=True, ensure_ascii=False)})"
    _check_status(ctx, step, reply, what)
    if reply.status == 201:
        ctx.evidence.payments[a["as"]] = PaymentRecord(a["as"], reply.json()["id"], student, course, metadata,
                                                       ctx.step, generated=generated is not None)


def confirm(ctx: Context, step: Step) -> None:
    a = step.args
    unknown = a["payment"] == UNBOUND_PAYMENT
    record = _unknown_payment(ctx) if unknown else ctx.payment(a["payment"])
    if "replay" in a:
        raw, headers, signature = _replayed(ctx, record, a["replay"])
    else:
        raw, headers, signature = _callback(ctx, record, a)
    if not unknown:
        ctx.callbacks[record.name] = (raw, headers, signature)
    for attempt in range(1, a.get("times", 1) + 1):
        reply = ctx.http("confirm", "payment-service", "POST", f"/api/v1/payments/{record.id}/confirm", raw,
                         headers, record.student, signature=signature)
        _check_status(ctx, step, reply, f"confirm {record.name} (call {attempt})",
                      _unknown_status(ctx) if unknown else None)
        wanted = (step.expect or {}).get("payment_status")
        if wanted and reply.status == 200:
            shown = _answered_status(reply)
            if shown is None:  # an answer without the payment (a 204 the profile declares): read it back
                shown = _answered_status(ctx.http("read_payment", "payment-service", "GET",
                                                  f"/api/v1/payments/{record.id}", student=record.student))
            if shown != wanted:
                ctx.expect_failure(f"confirm {record.name}: payment status {shown}, expected {wanted}")


def _answered_status(reply: HttpReply) -> str | None:
    """The payment status an answer shows; None when it shows no payment (an empty 204 a profile declares
    a success, or a body that is not a JSON object)."""
    try:
        answer = reply.json()
    except ValueError:
        return None
    status = answer.get("status") if isinstance(answer, dict) else None
    return status if isinstance(status, str) else None


def _unknown_payment(ctx: Context) -> PaymentRecord:
    """A payment that does not exist: a well-formed id nobody created, for s1 and c1, signed for as any
    other (the gateway may call back for a payment this system never stored). Not kept in the evidence."""
    return PaymentRecord(UNBOUND_PAYMENT, _unknown_payment_id(ctx), ctx.student("s1"), "c1", {}, ctx.step)


def _unknown_status(ctx: Context) -> tuple[int, ...]:
    """What a confirmation of a payment nobody created is answered: 404; a system whose ids are not UUIDs
    (`ids: opaque`) may also refuse the UUID-shaped id as malformed (400)."""
    return (404,) if ctx.evidence.conventions.uuid_ids else (400, 404)


def _unknown_payment_id(ctx: Context) -> str:
    """A well-formed payment id nobody created. Drawn per step from the run's seed, the scenario and the
    step (a generator seeded with the run's seed alone would draw the embedded target's ids: p1's first)."""
    drawn = random.Random(f"unknown-payment:{generate.seed_for(ctx.seed, ctx.scenario, ctx.step)}")
    return str(uuid.UUID(int=drawn.getrandbits(128), version=4))


def _callback(ctx: Context, record: PaymentRecord, a: Mapping[str, Any]) -> tuple[bytes, dict[str, str], str]:
    """A new callback: signed by the gateway for this payment now, or as `signed`/`signature` ask."""
    body = {"status": a.get("status", "succeeded"), "providerPaymentId": f"pi_{record.name}", **(a.get("body") or {})}
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if not a.get("signed", True):
        return raw, headers, "none"
    spec = a.get("signature") or {}
    signer = ctx.payment(spec["payment"]) if "payment" in spec else record
    age = float(spec.get("age", 0))
    headers["X-Signature"] = ctx.target.sign(signer.id, raw, ctx.target.now() - age)
    if signer.id != record.id:
        return raw, headers, "other-payment"
    return raw, headers, "stale" if abs(age) > SIGNATURE_TOLERANCE else "fresh"


def _replayed(ctx: Context, record: PaymentRecord, source: str) -> tuple[bytes, dict[str, str], str]:
    """The exact body and headers of the last confirmation sent to payment `source`, sent again."""
    sent = ctx.callbacks.get(source)
    if sent is None:
        raise StepError(f"nothing to replay: no confirmation of {source!r} was sent before")
    raw, headers, signature = sent
    if ctx.payment(source).id != record.id:
        return raw, dict(headers), "other-payment" if "X-Signature" in headers else "none"
    return raw, dict(headers), "replay" if signature == "fresh" else signature


def publish(ctx: Context, step: Step) -> None:
    """Every copy carries the INJECTED_HEADER, and its identity is kept in the evidence so the checks
    judge only what the system produced (`Evidence.genuine`). A `key` is a student id like the others."""
    a = step.args
    key = ctx.student(a["key"]) if "key" in a else None
    if "raw" in a:
        value = str(a["raw"]).encode()
        key = key or ctx.student("s1")
    elif "payment" in a:
        record = ctx.payment(a["payment"])
        value = _genuine_confirmation(ctx.evidence, record.id, record.name)
        key = key or record.student
    else:
        value, student = _forged(ctx, dict(a["forged"]))
        key = key or student
    for copy in range(1, a.get("copies", 1) + 1):
        produced = ctx.target.publish(names.TOPIC_CONFIRMED, key, value,
                                      ((INJECTED_HEADER, f"step-{ctx.step}-copy-{copy}"),))
        ctx.evidence.injected.append(produced)


def _genuine_confirmation(evidence: Evidence, payment_id: str, name: str) -> bytes:
    for record in evidence.genuine(names.TOPIC_CONFIRMED):
        payload = (decode(record) or {}).get("payload")
        if isinstance(payload, dict) and payload.get("paymentId") == payment_id:
            return record.value
    raise StepError(f"{name}'s PURCHASE_CONFIRMED has not been published yet (settle or run payment-relay first)")


def _forged(ctx: Context, spec: dict[str, Any]) -> tuple[bytes, str]:
    name = spec.get("payment", UNBOUND_PAYMENT)
    if name == UNBOUND_PAYMENT:
        payment_id, student, course = _unknown_payment_id(ctx), ctx.student("s1"), "c1"
    else:
        record = ctx.payment(name)
        payment_id, student, course = record.id, record.student, record.course
    student = ctx.student(spec["student"]) if "student" in spec else student
    course = spec.get("course", course)
    key = names.confirmed_key(payment_id)
    event = {  # the envelope of contracts/events/envelope.schema.json, as a forger would write it
        "eventId": event_id_for(key), "type": names.EVENT_CONFIRMED, "version": names.EVENT_VERSION,
        "occurredAt": rfc3339(ctx.target.now()), "correlationId": payment_id, "idempotencyKey": key,
        "source": "scenario",
        "payload": {"paymentId": payment_id, "studentId": student, "courseId": course, "amountCents": 4900,
                    "currency": "EUR", "metadata": _metadata(spec)},
    }
    return json.dumps(event, separators=(",", ":"), sort_keys=True).encode("utf-8"), student


def _token(ctx: Context, a: Mapping[str, Any], default_by: str | None = None) -> tuple[str, tuple[str, str]]:
    """The Authorization header for the step's caller ("" for none), and who that caller is (subject, role)."""
    by = a.get("by", default_by or a.get("student", "s1"))
    role = a.get("role", "admin" if by == "admin" else "student")
    by = by if by == "admin" else ctx.student(by)
    credential = a.get("credential")
    if credential == "none":
        return "", (by, role)
    if credential == "expired":
        return "Bearer " + ctx.target.expired_token(by, role), (by, role)
    token = ctx.target.token(by, role)
    return "Bearer " + (_tampered(token) if credential == "forged" else token), (by, role)


def _tampered(token: str) -> str:
    """The token with one character of its last part changed: a JWT whose signature no longer matches its
    claims, or a static token that is not the one issued. The change is in the middle, where every bit of a
    base64url character counts."""
    head, dot, last = token.rpartition(".")
    if not last:
        return token + "x"
    i = len(last) // 2
    return head + dot + last[:i] + ("A" if last[i] != "A" else "B") + last[i + 1:]


def _auth_headers(authorization: str) -> dict[str, str]:
    return {"Authorization": authorization} if authorization else {}


# A read or an invalidation whose credential is broken (`credential:`) must be refused: 401, or 403.
REFUSED_CREDENTIAL = (401, 403)


def _check_view(ctx: Context, step: Step, reply: HttpReply, what: str, cached_before: bool | None = None,
                default_status: tuple[int, ...] | None = None) -> None:
    _check_status(ctx, step, reply, what, default_status)
    expect = step.expect or {}
    if reply.status != 200:
        return
    try:
        view = reply.json()
        found = "" if isinstance(view, dict) and isinstance(view.get("purchases"), list) else (
            f"purchases: {json.dumps(view.get('purchases'))[:40]}" if isinstance(view, dict) else json.dumps(view)[:40])
    except ValueError:
        found = "not JSON"
    if found:
        ctx.expect_failure(f"{what}: the body is not a learning view with a list of purchases ({found})", ("S1",))
        return
    items = listed_purchases(view)
    shown = {i.get("paymentId") for i in items}
    for name in expect.get("shows", []):
        if ctx.payment(name).id not in shown:
            ctx.expect_failure(f"{what}: {name} is not shown (the view lists {len(items)} purchase(s))", ("S1", "S3"))
    if "shows" in expect:
        wanted = {ctx.payment(name).id for name in expect["shows"]}
        others = [ctx.evidence.payment_name(str(p)) if p is not None else "a purchase of no payment of this scenario"
                  for p in shown - wanted]
        if others:
            ctx.expect_failure(f"{what}: shows {', '.join(sorted(others))} besides {', '.join(expect['shows'])}",
                               ("S1", "W6"))
    for name in expect.get("lacks", []):
        if name in ctx.evidence.payments and ctx.payment(name).id in shown:
            ctx.expect_failure(f"{what}: {name} is shown but should not be")
    if "purchases" in expect and len(items) != expect["purchases"]:
        ctx.expect_failure(f"{what}: {len(items)} purchase(s) shown, expected {expect['purchases']}", ("S1",))
    if "cache" in expect and not ctx.evidence.conventions.cache_headers:
        if cached_before is not None and ("hit" if cached_before else "miss") != expect["cache"]:
            ctx.expect_failure(f"{what}: the cache key was {'there' if cached_before else 'absent'} before the "
                               f"read (a {'hit' if cached_before else 'miss'}), expected a {expect['cache']}",
                               _cache_rules(expect["cache"]))
    elif "cache" in expect:
        status = {k.lower(): v for k, v in reply.headers.items()}.get("cache-status", "")
        got = "hit" if cache_status.is_hit(status, ctx.evidence.conventions.cache_status_name) else "miss"
        if got != expect["cache"]:
            ctx.expect_failure(f"{what}: Cache-Status {status!r} is a {got}, expected a {expect['cache']}",
                               _cache_rules(expect["cache"]))


def _cache_rules(expected: str) -> tuple[str, ...]:
    """A miss where a hit was expected breaks S2 (cached for the TTL); a hit where a miss was expected
    means the entry should have gone: expired (S2) or invalidated (P5 at a confirmation, S4 by an admin)."""
    return ("S2",) if expected == "hit" else ("S2", "P5", "S4")


def observe_cache(target: Target, student: str | None, reply: HttpReply) -> CacheEntry | None:
    """After a learning read answered 200, the student's key as the cache holds it now, on a target that
    can look (`read_cache`). None when it cannot: a cache that does not answer is S5's matter (reads fall
    back to the database), not a verdict on the key's expiry."""
    if reply.status != 200 or student is None or "read_cache" not in target.info.capabilities:
        return None
    try:
        entry: CacheEntry = target.cache_entry(student)  # type: ignore[attr-defined]
    except TargetUnreachable:
        raise
    except Exception:  # an unobservable key is no evidence either way
        return None
    return entry


def observe_display(target: Target, reply: HttpReply) -> dict[str, dict[str, Any]] | None:
    """After a learning read answered 200, on a target that runs a frontend model of its own (`display`):
    what its app shows for each listed purchase, by paymentId. None elsewhere: the metadata check then
    applies the app's rules itself (F1)."""
    display = getattr(target, "display", None)
    if display is None or reply.status != 200:
        return None
    try:
        view = reply.json()
    except ValueError:
        return None
    return {item["paymentId"]: display(item) for item in listed_purchases(view)
            if isinstance(item, dict) and isinstance(item.get("paymentId"), str)}


def _path_id(a: Mapping[str, Any], student: str) -> str:
    """The student path segment: the student's id, or `path_id` as given (percent-encoded), which is how a
    scenario sends a malformed id (it must be refused with a problem, I4)."""
    return quote(str(a["path_id"]), safe="") if "path_id" in a else student


def read(ctx: Context, step: Step) -> None:
    a = step.args
    student = ctx.student(a.get("student", "s1"))
    authorization, principal = _token(ctx, a)
    cached_before = _key_before_read(ctx, step, student)
    reply = ctx.http("read", "student-service", "GET", f"/api/v1/students/{_path_id(a, student)}/learning",
                     headers=_auth_headers(authorization), student=student, principal=principal,
                     credential=a.get("credential"))
    _check_view(ctx, step, reply, f"read {student}", cached_before,
                REFUSED_CREDENTIAL if a.get("credential") else None)


def _key_before_read(ctx: Context, step: Step, student: str) -> bool | None:
    """For a system whose answers carry no Cache-Status (its profile says so): whether the student's key
    was in the cache just before the read, which is what makes the read a hit; None when the step expects
    nothing of the cache or the target cannot see it."""
    if "cache" not in (step.expect or {}) or ctx.evidence.conventions.cache_headers \
            or "read_cache" not in ctx.target.info.capabilities:
        return None
    try:
        entry: CacheEntry = ctx.target.cache_entry(student)  # type: ignore[attr-defined]
    except TargetUnreachable:
        raise
    except Exception:  # a cache that cannot be seen now: the expectation is not judged for this read
        return None
    return entry.present


def begin_read(ctx: Context, step: Step) -> None:
    a = step.args
    student = ctx.student(a.get("student", "s1"))
    started, seq = ctx.target.now(), ctx.evidence.tick()
    authorization, principal = _token(ctx, a)
    ctx.reads[a["as"]] = PendingRead(ctx.target.begin_read(student, authorization), student, started, ctx.step, seq,
                                     principal)


def finish_read(ctx: Context, step: Step) -> None:
    pending = ctx.reads.pop(step.args["read"])
    reply = ctx.target.finish_read(pending.handle)
    path = f"/api/v1/students/{pending.student}/learning"
    ctx.evidence.exchanges.append(Exchange(ctx.step, "finish_read", "student-service", "GET", path, b"",
                                           pending.started_at, ctx.target.now(), reply, pending.student,
                                           pending.seq, pending.principal,
                                           cache=observe_cache(ctx.target, pending.student, reply),
                                           shown=observe_display(ctx.target, reply)))
    _check_view(ctx, step, reply, f"read {step.args['read']} of {pending.student}")


def invalidate_cache(ctx: Context, step: Step) -> None:
    a = step.args
    student = ctx.student(a.get("student", "s1"))
    authorization, principal = _token(ctx, a, default_by="admin")
    reply = ctx.http("invalidate_cache", "student-service", "DELETE",
                     f"/api/v1/students/{_path_id(a, student)}/learning/cache",
                     headers=_auth_headers(authorization), student=student, principal=principal,
                     credential=a.get("credential"))
    _check_status(ctx, step, reply, f"invalidate_cache {student}", REFUSED_CREDENTIAL if a.get("credential") else None)


def settle(ctx: Context, step: Step) -> None:
    """`expect: {quiet: false}` states that the settle must hit its bound with work pending (e.g. while the
    broker is down); otherwise a settle that is not quiet fails with I3."""
    started = ctx.target.now()
    quiet = ctx.target.settle(step.args.get("timeout"))
    ctx.evidence.settles.append(Settle(ctx.step, started, ctx.target.now(), quiet, ctx.evidence.tick()))
    if not (step.expect or {}).get("quiet", True):
        if quiet:
            ctx.expect_failure("settle: the flow became quiet, expected its bound to be hit with work still pending")
        return
    limit = _settle_limit(ctx)
    if not quiet and limit is not None:
        # the harness ran out of room, the system did not misbehave: no verdict on I3, the scenario errors
        raise StepError(f"kcverify's own settle limit was reached, not a defect of the system: {limit}. Give the "
                        "work a settle of its own right after the step that makes it (the cap grows with the work "
                        "in the system when a settle starts), or split it over several steps, each followed by "
                        "`settle: {}`")
    if not quiet:
        ctx.failures.append(Failure(SETTLE_BOUND, ("I3",), "the flow did not become quiet: work was still pending "
                                    "when the settle bound was reached (a blocked partition or an endless retry)",
                                    ctx.step, ctx.evidence.step_title(ctx.step), source="step"))


def _settle_limit(ctx: Context) -> str | None:
    """A target may say its last settle ended at a limit of kcverify's own (`settle_limit()`, optional)."""
    probe = getattr(ctx.target, "settle_limit", None)
    return probe() if callable(probe) else None


def replay_dlq(ctx: Context, step: Step) -> None:
    replayed = ctx.target.replay_dlq()
    wanted = (step.expect or {}).get("replayed")
    if wanted is not None and replayed != wanted:
        ctx.expect_failure(f"replay_dlq: replayed {replayed}, expected {wanted}", ("W8",))


def expect(ctx: Context, step: Step) -> None:
    """Its assertions are in `step.expect`, which the runner checks after every step without a response."""


def assert_state(ctx: Context, a: Mapping[str, Any]) -> None:
    """State assertions: of an `expect` step, or the `expect` of a step that has no response."""
    snapshot = ctx.target.snapshot()
    if "purchases" in a:
        spec = a["purchases"]
        if "payment" in spec:
            payment_id = ctx.payment(spec["payment"]).id
            count = sum(1 for p in snapshot.purchases if p["paymentId"] == payment_id)
        else:
            count = len(snapshot.purchases)
        if count != spec["count"]:
            ctx.expect_failure(f"{spec.get('payment', 'all payments')}: {count} purchase(s), expected {spec['count']}",
                               ("W6", "I1"))
    if "payment" in a:
        spec = a["payment"]
        payment_id = ctx.payment(spec["payment"]).id
        status = next((p["status"] for p in snapshot.payments if p["id"] == payment_id), None)
        if status != spec["status"]:
            ctx.expect_failure(f"{spec['payment']}: status {status}, expected {spec['status']}", ("P2", "P4"))
    if "dlq" in a:
        spec = a["dlq"]
        letters = [d for d in (decode(r) for r in snapshot.topics.get(names.TOPIC_DLQ, [])) if d is not None]
        if "reason" in spec:
            letters = [d for d in letters if d.get("reason") == spec["reason"]]
        if "attempts" in spec:
            letters = [d for d in letters if d.get("attempts") == spec["attempts"]]
        if "count" in spec and len(letters) != spec["count"]:
            ctx.expect_failure(f"dead letters matching {dict(spec)}: {len(letters)}, expected {spec['count']}",
                               DLQ_RULES.get(str(spec.get("reason")), ("W2", "W7")))
    if "created_events" in a:
        spec = a["created_events"]
        wanted_id = ctx.payment(spec["payment"]).id if "payment" in spec else None
        ids = {e.get("eventId") for e in (decode(r) for r in snapshot.topics.get(names.TOPIC_CREATED, []))
               if e and wanted_id in (None, (e.get("payload") or {}).get("paymentId"))}
        if len(ids) != spec["count"]:
            ctx.expect_failure(f"{spec.get('payment', 'all payments')}: {len(ids)} PURCHASE_CREATED event(s), "
                               f"expected {spec['count']}", ("W6",))


def _component(fn: Callable[[Target, Mapping[str, Any]], None]) -> Callable[[Context, Step], None]:
    def run(ctx: Context, step: Step) -> None:
        fn(ctx.target, step.args)
    return run


STEPS: dict[str, Callable[[Context, Step], None]] = {
    "create_payment": create_payment,
    "confirm": confirm,
    "publish": publish,
    "run": _component(lambda t, a: t.step_component(a["component"], a.get("times", 1))),
    "crash": _component(lambda t, a: t.arm_crash(a["at"])),
    "kill": _component(lambda t, a: t.kill(a["component"])),
    "stop": _component(lambda t, a: t.stop_component(a["component"])),
    "restart": _component(lambda t, a: t.restart(a["component"])),
    "fail": _component(lambda t, a: t.fail(a["resource"], a["times"], a.get("op"), a.get("after", 0))),
    "read": read,
    "begin_read": begin_read,
    "finish_read": finish_read,
    "advance_clock": _component(lambda t, a: t.advance_clock(float(a["seconds"]))),
    "wait": _component(lambda t, a: t.wait(float(a["seconds"]))),
    "settle": settle,
    "invalidate_cache": invalidate_cache,
    "replay_dlq": replay_dlq,
    "expect": expect,
}


def title(step: Step) -> str:
    """One line naming the step and its main arguments."""
    a = step.args
    main = [str(a[k]) for k in ("as", "payment", "component", "at", "resource", "student", "read", "seconds")
            if k in a and not isinstance(a[k], dict)]
    extra = []
    if a.get("times", 1) != 1:
        extra.append(f"x{a['times']}")
    if a.get("copies", 1) != 1:
        extra.append(f"x{a['copies']}")
    if "signed" in a and not a["signed"]:
        extra.append("unsigned")
    if "signature" in a:
        signature = a["signature"]
        extra.append("signed" + (f" for {signature['payment']}" if "payment" in signature else "")
                     + (f" {signature['age']} s ago" if "age" in signature else ""))
    if "replay" in a:
        extra.append(f"replaying {a['replay']}'s callback")
    if "raw" in a:
        extra.append("raw")
    if "forged" in a:
        extra.append("forged")
    if "generate" in a:
        extra.append("with generated metadata")
    if "credential" in a:
        extra.append(CREDENTIAL_TITLES[a["credential"]])
    return " ".join([step.kind, *main, *extra])
