"""The payment service: creates payments (P1) and applies the gateway's signed confirmation (P2-P5).

On `succeeded` the status change and the PURCHASE_CONFIRMED outbox row commit in one transaction
(P3); the relay publishes later. Publishing straight after the commit instead would be a dual write (
a crash or a broker outage in between loses the event); that path survives only as a named defect."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, cast

from kcverify import contracts
from kcverify.core.clock import Clock
from kcverify.core.errors import BusUnavailable, CacheUnavailable, StoreUnavailable
from kcverify.core.ids import IdSource, event_id_for, is_uuid
from kcverify.reference import domain
from kcverify.reference.auth import DEFAULT_TOLERANCE, parse_signature, signature_problem
from kcverify.reference.defects import Defects
from kcverify.reference.domain import Payment, PaymentStatus
from kcverify.reference.instrument import CrashPoints, Tracer
from kcverify.reference.ports import Bus, Cache, PaymentStore
from kcverify.reference.problems import (
    Problem,
    bad_request,
    conflict,
    not_found,
    unauthorized,
    validation_failed,
)

COMPONENT = "payment-service"
MAX_JSON_DEPTH = 64  # far beyond any real metadata; deeper bodies would break the stores' encoders
_SURROGATE = re.compile("[\\ud800-\\udfff]")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:32]} is out of range")
    return value


def _interop_problem(body: Any) -> str | None:
    """What would make the body unstorable (I-JSON, RFC 7493): an unpaired surrogate, or nesting too deep
    for the encoders downstream. NaN/Infinity are refused while parsing."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and _SURROGATE.search(value):
                return "request body contains an unpaired UTF-16 surrogate"
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                return f"request body is nested deeper than {MAX_JSON_DEPTH} levels"
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
    return None


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise bad_request(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    problem = _interop_problem(body)
    if problem:
        raise bad_request(problem)
    return body


# The fields a gateway callback may carry (contracts/schemas/payment-confirm.schema.json); used only by
# the confirm-ignores-unknown-fields defect, which drops the others instead of refusing them.
CONFIRM_FIELDS = frozenset({"status", "providerPaymentId", "provider"})


def require_payment_id(payment_id: str) -> None:
    if not is_uuid(payment_id):
        raise bad_request(f"payment id {payment_id!r} is not a lower-case uuid")


class PaymentService:
    def __init__(self, *, store: PaymentStore, cache: Cache, bus: Bus, clock: Clock, ids: IdSource,
                 webhook_secret: str, defects: Defects, crash: CrashPoints, tracer: Tracer,
                 signature_tolerance: float = DEFAULT_TOLERANCE) -> None:
        self._store = store
        self._cache = cache
        self._bus = bus  # used only by the dual-write defect: the reference publishes via the outbox
        self._clock = clock
        self._ids = ids
        self._secret = webhook_secret
        self._tolerance = signature_tolerance
        self._trusted: set[str] = set()  # the signature-not-bound defect's memory of verified digests
        self._defects = defects
        self._crash = crash
        self._tracer = tracer

    @contextmanager
    def _store_errors(self) -> Iterator[None]:
        """A payments_db outage reaches the HTTP layer as itself (a 503 with Retry-After there)."""
        try:
            yield
        except StoreUnavailable as exc:
            if self._defects.on("store-error-500"):  # "any database error is an internal error"
                raise RuntimeError(f"database error: {exc}") from exc
            raise

    def create(self, raw: bytes) -> Payment:
        with self._store_errors():
            return self._create(raw)

    def confirm(self, payment_id: str, raw: bytes, signature: str | None) -> Payment:
        with self._store_errors():
            return self._confirm(payment_id, raw, signature)

    def _create(self, raw: bytes) -> Payment:
        """P1: validate everything first; nothing is stored on error."""
        body = parse_json_object(raw)
        violations = contracts.validate("schemas/payment-create", body)
        if self._defects.on("create-checks-required-fields-only"):  # a hand-written check of the five fields
            violations = [v for v in violations if not v.path.startswith("$.metadata")
                          or "is a required property" in v.message or "is not of type" in v.message]
        if self._defects.on("create-skips-date-format"):  # a validator built without a format checker
            violations = [v for v in violations if "is not a 'date'" not in v.message]
        if self._defects.on("create-accepts-zero-amount"):  # "free courses are allowed"
            violations = [v for v in violations if not (v.path == "$.amountCents" and body.get("amountCents") == 0)]
        late = []
        if self._defects.on("create-validates-metadata-after-insert"):  # the metadata check came after the insert
            late = [v for v in violations if v.path.startswith("$.metadata")]
            violations = [v for v in violations if not v.path.startswith("$.metadata")]
        if violations and self._defects.on("validation-reports-first-error-only"):  # fail fast
            violations = violations[:1]
        if violations:
            raise validation_failed(violations)
        payment = Payment(
            id=self._ids.uuid(),
            student_id=body["studentId"],
            course_id=body["courseId"],
            amount_cents=body["amountCents"],
            currency=body["currency"],
            status=PaymentStatus.INITIATED,
            provider=body.get("provider", "test"),
            provider_payment_id=None,
            metadata=_bmp_only(body.get("metadata", {})) if self._defects.on("metadata-bmp-only")
            else body.get("metadata", {}),
            created_at=self._clock.now(),
        )
        self._store.insert_payment(payment)
        if late:
            raise validation_failed(late)
        self._tracer.emit(COMPONENT, "payment_created", paymentId=payment.id, studentId=payment.student_id)
        return payment

    def get(self, payment_id: str) -> Payment:
        require_payment_id(payment_id)
        payment = self._store.get_payment(payment_id)
        if payment is None:
            raise not_found(f"no payment {payment_id}")
        return payment

    def _confirm(self, payment_id: str, raw: bytes, signature: str | None) -> Payment:
        """The gateway's callback (P2): signed for this payment within the tolerance, may change only
        status and provider ids. A repeat of the current status is a no-op 200 (P4), which is also what a
        replay of an applied callback within the tolerance gets; an illegal transition is a 409."""
        require_payment_id(payment_id)
        if self._defects.on("confirm-records-provider-id-unverified"):
            self._record_provider_id(payment_id, raw)
        if self._defects.on("confirm-checks-body-before-signature"):  # "cheap checks first"
            violations = contracts.validate("schemas/payment-confirm", parse_json_object(raw))
            if violations:
                raise validation_failed(violations)
            self.get(payment_id)
        self._verify(payment_id, raw, signature)
        body = parse_json_object(raw)
        new_course = None
        if self._defects.on("confirm-mutates-course"):
            new_course = body.pop("courseId", None)
        if self._defects.on("confirm-ignores-unknown-fields"):
            body = {k: v for k, v in body.items() if k in CONFIRM_FIELDS}
        violations = contracts.validate("schemas/payment-confirm", body)
        if violations:
            raise validation_failed(violations)
        if self._defects.on("confirm-assumes-payment-exists"):  # "the gateway signed it, so we have it"
            current = cast(Payment, self._store.get_payment(payment_id))
        else:
            current = self.get(payment_id)
        requested = PaymentStatus(body["status"])
        try:
            changed = domain.transition(current.status, requested)
        except domain.IllegalTransition as exc:
            late_capture = (current.status == PaymentStatus.CANCELLED and requested == PaymentStatus.SUCCEEDED
                            and self._defects.on("cancelled-payment-can-succeed"))
            cancel_anytime = (current.status == PaymentStatus.SUCCEEDED and requested == PaymentStatus.CANCELLED
                              and self._defects.on("succeeded-payment-can-be-cancelled"))
            if not (late_capture or cancel_anytime):
                raise conflict(str(exc)) from exc
            changed = True
        if not changed:
            if self._defects.on("confirm-retry-updates-provider-id") and "providerPaymentId" in body:
                current = replace(current, provider_payment_id=body["providerPaymentId"])  # "keep the latest"
                self._store.save_status(current, None)
            if requested == PaymentStatus.SUCCEEDED and self._defects.on("confirm-retry-enqueues-again"):
                # "in case the first one was lost": a second outbox row for the same confirmation
                again = domain.purchase_confirmed(current, current.confirmed_at or self._clock.now())
                self._store.save_status(current, domain.event_message(
                    domain.TOPIC_CONFIRMED, current.student_id, again))
            self._tracer.emit(COMPONENT, "confirm_repeated", paymentId=payment_id, status=str(requested))
            return current
        now = self._clock.now()
        updated = replace(
            current,
            status=requested,
            provider=body.get("provider", current.provider),
            provider_payment_id=body.get("providerPaymentId", current.provider_payment_id),
            confirmed_at=now if requested == PaymentStatus.SUCCEEDED or (
                requested == PaymentStatus.REFUNDED and self._defects.on("refund-overwrites-confirmed-at")) or (
                requested in (PaymentStatus.FAILED, PaymentStatus.CANCELLED)
                and self._defects.on("decision-sets-confirmed-at"))  # "confirmedAt: when the gateway answered"
            else current.confirmed_at,
            course_id=new_course if isinstance(new_course, str) else current.course_id,
        )
        succeeded = requested == PaymentStatus.SUCCEEDED or (
            requested == PaymentStatus.FAILED and self._defects.on("failed-payment-announced"))
        dual_write = succeeded and self._defects.on("dual-write")
        message = None
        if succeeded:
            key = updated.id if self._defects.on("confirmed-keyed-by-payment") else updated.student_id
            event = domain.purchase_confirmed(updated, now)
            if self._defects.on("event-amount-in-major-units"):  # the event schema's "amount" read as euros
                event["payload"]["amountCents"] = updated.amount_cents // 100
            if self._defects.on("event-id-per-student"):  # "the student's confirmation event"
                event["eventId"] = event_id_for(f"{updated.student_id}:{domain.EVENT_CONFIRMED}")
            message = domain.event_message(domain.TOPIC_CONFIRMED, key, event)
        if message is not None and self._defects.on("outbox-separate-transaction"):  # "the outbox is best effort"
            self._store.save_status(updated, None)
            self._store.enqueue_outbox(message)
        else:
            self._store.save_status(updated, None if dual_write else message)
        self._tracer.emit(COMPONENT, "payment_status_saved", paymentId=payment_id, status=str(requested),
                          outbox=message is not None and not dual_write)
        self._crash.hit("payment.after_commit")
        if dual_write and message is not None:
            self._publish_directly(message.topic, message.key, message.value, message.headers)
        if succeeded:
            self._invalidate(updated.id if self._defects.on("confirm-invalidates-payment-key")
                             else updated.student_id.lower() if self._defects.on("confirm-invalidates-lowercased-key")
                             else updated.student_id)
        return updated

    def _verify(self, payment_id: str, raw: bytes, signature: str | None) -> None:
        """P2: 401 unless X-Signature is the gateway's, for this payment, within the tolerance."""
        if self._defects.on("unsigned-confirm"):
            return
        tolerance = self._tolerance
        if self._defects.on("signature-not-bound"):
            # The defect: a digest verified once is trusted again for any payment, and age is not checked.
            parsed = parse_signature(signature)
            if parsed is not None and parsed.v1 in self._trusted:
                return
            tolerance = math.inf
        problem = signature_problem(self._secret, payment_id, raw, signature, now=self._clock.now(),
                                    tolerance=tolerance)
        if problem is not None:
            raise unauthorized(problem)
        if self._defects.on("signature-not-bound"):
            parsed = parse_signature(signature)
            if parsed is not None:
                self._trusted.add(parsed.v1)

    def _record_provider_id(self, payment_id: str, raw: bytes) -> None:
        """The defect: the gateway's id is kept "to correlate callbacks", before anyone checked who sent it."""
        try:
            body = json.loads(raw)
        except ValueError:
            return
        provider_id = body.get("providerPaymentId") if isinstance(body, dict) else None
        current = self._store.get_payment(payment_id)
        if isinstance(provider_id, str) and current is not None and current.provider_payment_id is None:
            self._store.save_status(replace(current, provider_payment_id=provider_id), None)

    def _publish_directly(self, topic: str, key: str, value: bytes,
                          headers: tuple[tuple[str, str], ...]) -> None:
        try:
            self._bus.publish(topic, key, value, headers)
        except BusUnavailable as exc:  # the defect's real-world behaviour: logged, event lost
            self._tracer.emit(COMPONENT, "publish_failed", topic=topic, error=str(exc))

    def _invalidate(self, student_id: str) -> None:
        """P5 (seed step 2.3). Not sufficient on its own for freshness: see the student service (S3)."""
        try:
            self._cache.delete(domain.cache_key(student_id))
            self._tracer.emit(COMPONENT, "cache_invalidated", studentId=student_id)
        except CacheUnavailable as exc:
            self._tracer.emit(COMPONENT, "cache_invalidation_failed", studentId=student_id, error=str(exc))


__all__ = ["PaymentService", "Problem"]


def _bmp_only(value: Any) -> Any:
    """The metadata-bmp-only defect: what a utf8mb3-style column (three bytes per character at most) keeps
    of a JSON document: every character outside the Basic Multilingual Plane, in keys and values, is '?'."""
    if isinstance(value, str):
        return "".join(c if ord(c) <= 0xFFFF else "?" for c in value)
    if isinstance(value, dict):
        return {_bmp_only(k): _bmp_only(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_bmp_only(v) for v in value]
    return value
