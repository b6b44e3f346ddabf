"""What the services of the other system share: topic and key names, the flaw switches, the answer
shapes (successes wrapped `{success, message, data}`, errors `{success: false, message}` in plain JSON, as
production services answer; its profile says so with `conventions.errors: json`)."""

from __future__ import annotations

import os
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

CONFIRMED_TOPIC = "payments.confirmed"
CREATED_TOPIC = "enrollments.created"
DEAD_LETTER_TOPIC = "dead-letter-queue"
WORKER_GROUP = "enrollment-worker"
WORKER_NAME = "enrollment-worker"
CACHE_KEY = "learning:v1:{studentId}"
CACHE_TTL = 300

# Each a real way of getting this flow wrong; switched on by name in OTHERSYS_FLAWS (comma-separated).
FLAWS = {
    "unsigned-callback": "the callback is accepted when it carries no signature at all",
    "no-timestamp-tolerance": "a signature's timestamp is not checked against the clock (replays of old callbacks)",
    "stale-cache": "the worker never invalidates the student's cached learning view",
    "stringified-session-count": "the worker stores sessionCount as text (a form value passed on as a string)",
    "view-ignores-owner": "any valid token reads any student's learning view",
    "store-before-validate": "the payment row is inserted before its metadata is validated (a 422 leaves a row)",
    "dedupe-by-course": "the worker skips an event when the student already owns the course (a repurchase is lost)",
    "event-wins": "the worker merges the event's metadata over the payment row's",
    "no-idempotency-guard": "the worker does not consult processed_events (a redelivery buys twice)",
    "key-by-payment": "confirmations are keyed by payment id: a student's confirmations lose their order",
    "cache-forever": "the learning view is cached with no expiry (SET without EX): a missed invalidation is forever",
    # Found by `kcverify fuzz` (tests/integration/test_fuzz_other_system.py) rather than by a scenario:
    "html-500-on-bad-id": "the student id is checked by a parser whose ValueError nothing maps to a 400: a malformed "
                          "id is answered by the web app's HTML error page, status 500",
    "callback-accepts-extra-fields": "the callback drops fields it does not know instead of refusing them: a body "
                                     "the gateway never sends still changes the payment",
    "worker-dies-on-bad-event": "the worker reads the tier from the raw event before validating it: a non-numeric "
                                "sessionCount raises, nothing catches it, and the consumer thread dies",
    "poison-blocks": "an event the worker cannot parse is retried forever instead of dead-lettered: its partition "
                     "stops behind it",
}
# The flaws `kcverify fuzz` finds (tests/integration/test_fuzz_other_system.py); a scenario finds each other one
# (tests/integration/test_external_other_system.py).
FOUND_BY_FUZZ = frozenset({"html-500-on-bad-id", "callback-accepts-extra-fields", "worker-dies-on-bad-event",
                           "poison-blocks"})
Flaws = frozenset[str]


def flaws_from_env(environ: dict[str, str] | None = None) -> Flaws:
    words = {w.strip() for w in (environ if environ is not None else os.environ).get("OTHERSYS_FLAWS", "").split(",")}
    chosen = frozenset(w for w in words if w)
    unknown = chosen - set(FLAWS)
    if unknown:
        raise ValueError(f"unknown flaws {sorted(unknown)}; known: {sorted(FLAWS)}")
    return chosen


def wrapped(data: Any, message: str, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"success": True, "message": message, "data": data}, status_code=status, headers=headers)


def problem(status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """An error in the system's own shape: not an RFC 9457 problem, a plain JSON object."""
    body = {"success": False, "message": detail, **extra}
    return JSONResponse(body, status_code=status, headers=headers)


async def _framework_error(request: Request, exc: Exception) -> Response:
    """The framework's own refusals (an unknown path, a method the path does not have) in that shape too:
    Starlette answers them in text/plain by default."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    return problem(status, str(detail), headers=dict(exc.headers or {}) if isinstance(exc, HTTPException) else None)


# Starlette(exception_handlers=...) of every service.
PROBLEM_HANDLERS: dict[Any, Any] = {HTTPException: _framework_error}
