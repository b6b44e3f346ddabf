"""Problem details (RFC 9457): the one error shape of both HTTP services. Components raise `Problem`;
the ASGI apps render it as `application/problem+json`, so no error ever becomes an HTML page."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kcverify.contracts import Violation

PROBLEM_TYPE_BASE = "https://kcverify.invalid/problems/"


@dataclass
class FieldError:
    field: str
    message: str


@dataclass
class Problem(Exception):
    status: int
    title: str
    detail: str | None = None
    errors: list[FieldError] = field(default_factory=list)
    slug: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + (self.slug or self.title.lower().replace(" ", "-")),
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if self.errors:
            body["errors"] = [{"field": e.field, "message": e.message} for e in self.errors]
        return body


def bad_request(detail: str) -> Problem:
    return Problem(400, "Bad Request", detail)


def unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail)


def forbidden(detail: str) -> Problem:
    return Problem(403, "Forbidden", detail)


def not_found(detail: str) -> Problem:
    return Problem(404, "Not Found", detail)


def conflict(detail: str) -> Problem:
    return Problem(409, "Conflict", detail)


def unavailable(detail: str) -> Problem:
    return Problem(503, "Service Unavailable", detail)


def validation_failed(violations: list[Violation]) -> Problem:
    """P1: one entry per field. Several violations of one field are joined into one message."""
    by_field: dict[str, list[str]] = {}
    for v in violations:
        name = v.path.removeprefix("$").lstrip(".") or "(body)"
        by_field.setdefault(name, []).append(v.message)
    errors = [FieldError(name, "; ".join(msgs)) for name, msgs in sorted(by_field.items())]
    return Problem(422, "Unprocessable Content", f"{len(errors)} invalid field(s)", errors,
                   slug="validation-failed")
