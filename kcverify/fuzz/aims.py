"""What a generated case is aimed at: real ids and real credentials instead of the generated ones, in
rotation, so that 200, 204, 403 and 409 are exercised as well as 400, 401 and 404.

Known parameter names of the purchase flow's API get real values through the target's primitives only
(HTTP, `sign`, `token`, `settle`): `paymentId` names, in turn, a payment moved through each status (or
keeps the generated id: a 404), `studentId` a student with purchases; a bearer token is for an admin,
the student of the path, another student, or the generated garbage. A part of the case that was
generated to break the contract (a negative path, header or body) is left as generated: that is the
point of the case."""

from __future__ import annotations

import json
from typing import Any

from schemathesis.core.parameters import ParameterLocation

from kcverify.contracts import schema as contract
from kcverify.core.errors import TargetUnreachable
from kcverify.fuzz.transport import SIGN_ME, SIGNATURE_HEADER
from kcverify.targets.base import HttpReply, Target

PAYMENTS = "payment-service"
CREATE_PATH = "/api/v1/payments"
STUDENT = "fuzz-student"  # the student with purchases (the target may prefix it: Target.student_id)
OWNER = "fuzz-owner"  # the student of the payments the confirmations are aimed at

# What a case with a valid payment id is aimed at, in rotation: a payment moved through these
# statuses, or (None) the generated id, which names no payment (404).
PAYMENT_TARGETS: tuple[tuple[str, ...] | None, ...] = (
    (), ("succeeded",), (), ("failed",), None, ("cancelled",), ("succeeded", "refunded"), None)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # requests that change nothing may share a payment
# Credentials in rotation: None keeps the generated token, "self" is the student of the path.
TOKENS: tuple[str | None, ...] = ("admin", "self", "admin", "other", None, "admin")


def negative_parts(case: Any) -> set[ParameterLocation]:
    """The parts of the case generated to break the contract. A negative coverage case breaks one part
    on purpose (its `parameter_location`) and fills the others with placeholders such as "0" that may
    break them too: only the part it is about counts, the others are aimed like a positive case's."""
    if case.meta is None:
        return set()
    data = case.meta.phase.data
    if case.meta.phase.name.value == "coverage" and hasattr(data, "parameter_location"):
        if not case.meta.generation.mode.is_negative:
            return set()
        return {data.parameter_location} if data.parameter_location is not None else set()
    return {location for location, info in case.meta.components.items() if info.mode.is_negative}


class SetUpFailed(TargetUnreachable):
    """The target did not do what every run needs (create or confirm a payment): nothing can be fuzzed."""


class Aims:
    """Real ids on one started target, made through its primitives."""

    def __init__(self, target: Target, signature_headers: frozenset[str] = frozenset({SIGNATURE_HEADER})) -> None:
        """`signature_headers`: the headers a gateway signature goes in (the documents' own names)."""
        self.target = target
        self.signature_headers = signature_headers
        self.student = target.student_id(STUDENT)
        self.owner = target.student_id(OWNER)
        self.admin = target.student_id("fuzz-admin")
        self.other = target.student_id("fuzz-other")
        self._kept: dict[tuple[str, ...], str] = {}  # statuses -> a payment reads are aimed at
        # The student with purchases, so the learning view has rows (and both cache paths run).
        for course in ("course-a", "course-b"):
            self.payment("succeeded", student=self.student, course=course)
        target.settle(None)

    def _http(self, method: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None,
              sign_for: str | None = None) -> HttpReply:
        raw = json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **(headers or {})}
        if sign_for is not None:
            sent[SIGNATURE_HEADER] = self.target.sign(sign_for, raw)
        reply = self.target.http(PAYMENTS, method, path, body=raw, headers=sent)
        if reply.status is None or reply.status >= 300:
            raise SetUpFailed(f"{method} {path} answered {reply.status or reply.error}: "
                              f"{reply.body[:200].decode(errors='replace')}")
        return reply

    def payment(self, *statuses: str, student: str | None = None, course: str = "fuzz-course") -> str:
        """A new payment moved through `statuses`, so confirm meets every transition."""
        example = dict(contract("schemas/payment-create")["examples"][0])
        body = {**example, "studentId": student or self.owner, "courseId": course}
        payment_id = str(self._http("POST", CREATE_PATH, body).json()["id"])
        for status in statuses:
            self._http("POST", f"{CREATE_PATH}/{payment_id}/confirm", {"status": status}, sign_for=payment_id)
        return payment_id

    def prepare(self, case: Any, turn: int) -> None:
        """Aim `case` (the `turn`-th of its operation and mode) at real ids and credentials."""
        negative = negative_parts(case)
        path = case.operation.path
        if "{paymentId}" in path and ParameterLocation.PATH not in negative:
            # A broken body or credential is aimed at a payment that would accept a valid one (a fresh,
            # initiated payment), so the only reason left to refuse it is what the case broke.
            statuses = PAYMENT_TARGETS[turn % len(PAYMENT_TARGETS)] if not negative else ()
            if statuses is not None:
                case.path_parameters["paymentId"] = self._aimed(case, statuses)
        if ParameterLocation.HEADER in negative:
            return  # the generated (broken) credential is the point of this case
        for header in self.signature_headers:
            if _has_header(case, header):
                case.headers[header] = SIGN_ME
        if "{studentId}" in path:
            if ParameterLocation.PATH not in negative and turn % 3 == 0:
                case.path_parameters["studentId"] = self.student
            if _secured(case):
                who = TOKENS[turn % len(TOKENS)]
                if who is not None:
                    case.headers["Authorization"] = f"Bearer {self._token(who, str(case.path_parameters['studentId']))}"

    def _aimed(self, case: Any, statuses: tuple[str, ...]) -> str:
        """A payment in that state: a new one for a request that may change it, else one made once."""
        if str(case.method).upper() not in SAFE_METHODS:
            return self.payment(*statuses)
        if statuses not in self._kept:
            self._kept[statuses] = self.payment(*statuses)
        return self._kept[statuses]

    def _token(self, who: str, student: str) -> str:
        subject, role = {"admin": (self.admin, "admin"), "self": (student, "student"),
                         "other": (self.other, "student")}[who]
        return self.target.token(subject, role)


def _has_header(case: Any, name: str) -> bool:
    headers = case.operation.headers
    return any(str(p.name).lower() == name.lower() for p in headers) if headers else False


def _secured(case: Any) -> bool:
    """Whether the operation needs credentials: a non-empty security requirement of its own or the
    document's."""
    operation = case.operation
    security = operation.definition.raw.get("security", operation.schema.raw_schema.get("security", []))
    return bool(security) and any(requirement for requirement in security)


def guarded(operation: Any) -> bool:
    """Whether a broken credential header of `operation` must be refused: it has a required header
    parameter (a signature) or a security requirement. (An extra header on /health is harmless.)"""
    headers = operation.headers
    if headers and any(p.is_required for p in headers):
        return True
    security = operation.definition.raw.get("security", operation.schema.raw_schema.get("security", []))
    return any(requirement for requirement in security)
