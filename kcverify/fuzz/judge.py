"""kcverify's own checks on every fuzzed answer, besides Schemathesis' (status documented, media
type, headers and body against the contract, no 5xx, negative data refused, auth not ignored):

- `problem_json`: every 4xx and 5xx is `application/problem+json`, valid against the problem
  contract, with the response's own status (never an HTML error page) (I4); for a system whose profile
  declares `conventions.errors: json`, `json_error` instead: every 4xx and 5xx is a JSON object with a
  JSON media type (its own shape is the OpenAPI document's to judge, through Schemathesis' checks);
- `bad_input_refused`: a case whose path id or body breaks the contract, or whose credential is
  broken on an operation that needs one, gets a 4xx: neither accepted nor a 5xx (I4, P1, P2).

Schemathesis' checks are named as Schemathesis names them; their rule ids are assigned here."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from schemathesis.core.parameters import ParameterLocation

from kcverify import contracts
from kcverify.fuzz.aims import guarded, negative_parts

PROBLEM_JSON = "application/problem+json"

# Schemathesis' checks and kcverify's, as configured for every pass.
SCHEMATHESIS_CHECKS: dict[str, dict[str, bool]] = {
    "not_a_server_error": {"enabled": True},
    "status_code_conformance": {"enabled": True},
    "content_type_conformance": {"enabled": True},
    "response_schema_conformance": {"enabled": True},
    "response_headers_conformance": {"enabled": True},
    "negative_data_rejection": {"enabled": True},
    "ignored_auth": {"enabled": True},
    # Schema-valid input legitimately meets 404/409 (unknown or final payments) and 401/403 by design.
    "positive_data_acceptance": {"enabled": False},
    # Re-sends without X-Signature expecting a 400/422-style rejection; a missing signature is a 401 (P2),
    # which `bad_input_refused` asserts for every negative case whose credential header is broken.
    "missing_required_header": {"enabled": False},
}
OWN_CHECKS = ("problem_json", "json_error", "bad_input_refused")
RULES: dict[str, tuple[str, ...]] = {"ignored_auth": ("P2", "S1"), "bad_input_refused": ("I4", "P1", "P2")}


def rules_of(check: str) -> tuple[str, ...]:
    return RULES.get(check, ("I4",))


@dataclass(frozen=True)
class Verdict:
    """One check that failed on one answer."""

    check: str
    title: str
    message: str


def must_reject(case: Any) -> bool:
    """Whether the contract demands a 4xx: a broken path id or body, or a broken credential header on
    an operation that needs one."""
    negative = negative_parts(case)
    if negative & {ParameterLocation.PATH, ParameterLocation.BODY}:
        return True
    return ParameterLocation.HEADER in negative and guarded(case.operation)


def judge(case: Any, status: int, content_type: str, body: bytes, *, problem_errors: bool = True) -> list[Verdict]:
    found: list[Verdict] = []
    if must_reject(case) and not 400 <= status < 500:
        parts = ", ".join(sorted(str(p.value) for p in negative_parts(case)))
        found.append(Verdict("bad_input_refused", f"Input that breaks the contract answered {status}",
                             f"the {parts} of this request break(s) the contract: expected a 4xx, got {status}"))
    if status >= 400:
        found.extend(problem_verdicts(status, content_type, body) if problem_errors
                     else json_error_verdicts(status, content_type, body))
    return found


def json_error_verdicts(status: int, content_type: str, body: bytes) -> list[Verdict]:
    """What is wrong with an error answer of a system whose errors are plain JSON: not a JSON media type,
    not JSON, or not an object (an HTML error page, a stack trace in text/plain)."""
    error, found = _json_body("json_error", status, content_type, body,
                              lambda media: media == "application/json" or media.endswith("+json"), "JSON")
    if not found and not isinstance(error, dict):
        found = [Verdict("json_error", f"A {status} whose body is not a JSON object",
                         f"body {body[:120].decode(errors='replace')!r}")]
    return found


def _json_body(check: str, status: int, content_type: str, body: bytes, media_ok: Callable[[str], bool],
               kind: str) -> tuple[Any, list[Verdict]]:
    """The error answer's JSON body, or why it has none: a media type `media_ok` refuses, or no JSON."""
    media = content_type.split(";")[0].strip().lower()
    snippet = body[:120].decode(errors="replace")
    if not media_ok(media):
        return None, [Verdict(check, f"A {status} that is not {kind}",
                              f"Content-Type {content_type or '(none)'!r}, body {snippet!r}")]
    try:
        return json.loads(body), []
    except ValueError:
        return None, [Verdict(check, f"A {status} whose {kind} body is not JSON", f"body {snippet!r}")]


def problem_verdicts(status: int, content_type: str, body: bytes) -> list[Verdict]:
    """What is wrong with an error answer as a problem+json (nothing for a good one or a success)."""
    if status < 400:
        return []
    problem, found = _json_body("problem_json", status, content_type, body, lambda media: media == PROBLEM_JSON,
                                "problem+json")
    if found:
        return found
    snippet = body[:120].decode(errors="replace")
    violations = contracts.validate("schemas/problem", problem)
    if violations:
        return [Verdict("problem_json", f"A {status} whose problem is not valid against the problem contract",
                        "; ".join(str(v) for v in violations[:3]))]
    if isinstance(problem, dict) and problem.get("status") != status:
        return [Verdict("problem_json", f"A {status} whose problem says status {problem.get('status')!r}",
                        f"body {snippet!r}")]
    return []
