"""The checkout's payment service: its own `/v2/checkout/...` paths, every success wrapped
`{success, message, data: {payment}}`, errors `{success: false, message}` in plain JSON, the gateway's
callback signed with HMAC-SHA256 over `{paymentId}:{t}:{raw body}` (base64, header
`X-Checkout-Signature: ts=...;sig=...`), and a direct publish of `payment.confirmed` to
`payments.confirmed` (key: `student:{studentId}`) once the confirmation has committed."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import time
import uuid
import zoneinfo
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.othersystem.common import CONFIRMED_TOPIC, PROBLEM_HANDLERS, Flaws, problem, wrapped

ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
SCHEDULES = {"weekly", "weekdays", "weekend", "daily", "custom"}
TRANSITIONS = {"initiated": {"succeeded", "failed", "cancelled"}, "succeeded": {"refunded"}}
TOLERANCE = 300
ZONES = zoneinfo.available_timezones()


def _metadata_errors(meta: Any) -> list[dict[str, str]]:
    if not isinstance(meta, dict):
        return [{"field": "metadata", "message": "must be an object"}]
    errors = []
    def bad(field: str, message: str) -> None:
        errors.append({"field": f"metadata.{field}", "message": message})
    if not _is_date(meta.get("startDate")):
        bad("startDate", "a date, YYYY-MM-DD")
    if not isinstance(meta.get("classTime"), str) or not TIME.fullmatch(meta["classTime"]):
        bad("classTime", "HH:MM")
    if not isinstance(meta.get("classTypeId"), str) or not meta["classTypeId"]:
        bad("classTypeId", "required")
    if not isinstance(meta.get("scheduleType"), str) or meta["scheduleType"] not in SCHEDULES:
        bad("scheduleType", f"one of {sorted(SCHEDULES)}")
    count = meta.get("sessionCount")
    if type(count) is not int or not 1 <= count <= 200:
        bad("sessionCount", "an integer 1..200")
    if "timezone" in meta and (not isinstance(meta["timezone"], str) or meta["timezone"] not in ZONES):
        bad("timezone", "an IANA zone")
    schedule = meta.get("schedule")
    if "schedule" in meta and not isinstance(schedule, dict):
        bad("schedule", "an object")
    elif isinstance(schedule, dict):
        if "startDate" in schedule and not _is_date(schedule["startDate"]):
            bad("schedule.startDate", "a date, YYYY-MM-DD")
        slot = schedule.get("timeSlot")
        if "timeSlot" in schedule and not (isinstance(slot, str) and TIME.fullmatch(slot)):
            bad("schedule.timeSlot", "HH:MM")
        if "mode" in schedule and not isinstance(schedule["mode"], str):
            bad("schedule.mode", "a string")
    return errors


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _part(body: dict[str, Any], name: str) -> dict[str, Any]:
    """A nested object of the body; anything else (a list, a string, null) as an empty one, so that its
    fields are reported missing instead of failing the request."""
    value = body.get(name)
    return value if isinstance(value, dict) else {}


def create_errors(body: Any) -> list[dict[str, str]]:
    if not isinstance(body, dict):
        return [{"field": "", "message": "must be an object"}]
    student, course, amount = _part(body, "student"), _part(body, "course"), _part(body, "amount")
    errors = []
    gateway = body.get("gateway")
    if gateway is not None and (not isinstance(gateway, str) or not 1 <= len(gateway) <= 64):
        errors.append({"field": "gateway", "message": "a name, 1 to 64 characters"})
    for field, value in (("student.id", student.get("id")), ("course.id", course.get("id"))):
        if not isinstance(value, str) or not ID.fullmatch(value):
            errors.append({"field": field, "message": "an id"})
    cents = amount.get("cents")
    if type(cents) is not int or not 1 <= cents <= 2**31 - 1:
        errors.append({"field": "amount.cents", "message": "a positive integer"})
    if not isinstance(amount.get("currency"), str) or not re.fullmatch(r"[A-Z]{3}", amount["currency"]):
        errors.append({"field": "amount.currency", "message": "ISO 4217"})
    return errors + _metadata_errors(_part(body, "checkout").get("metadata"))


def _provider_id(body: dict[str, Any], field: str, limit: int) -> bool:
    value = body.get(field)
    return field not in body or (isinstance(value, str) and 1 <= len(value) <= limit)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def shown(row: dict[str, Any]) -> dict[str, Any]:
    return {"paymentId": str(row["payment_id"]), "studentRef": row["student_ref"], "courseRef": row["course_ref"],
            "amount": {"cents": row["amount_minor"], "currency": row["currency"]}, "state": row["state"],
            "gateway": {"name": row["gateway"], "reference": row["gateway_ref"]}, "checkoutMetadata": row["meta"],
            "createdAt": _iso(row["created_at"]), "confirmedAt": _iso(row["confirmed_at"])}


class PaymentService:
    def __init__(self, dsn: str, secret: str, producer: Any, flaws: Flaws) -> None:
        self.dsn, self.secret, self.producer, self.flaws = dsn, secret.encode(), producer, flaws
        self.app = Starlette(exception_handlers=PROBLEM_HANDLERS, routes=[
            Route("/health", lambda r: JSONResponse({"status": "ok"})),
            Route("/v2/checkout/payments", self.create, methods=["POST"]),
            Route("/v2/checkout/payments/{id}", self.read, methods=["GET"]),
            Route("/v2/checkout/payments/{id}/callback", self.callback, methods=["POST"]),
        ])

    def _row(self, conn: psycopg.Connection[Any], payment_id: str, lock: bool = False) -> dict[str, Any] | None:
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        cur.execute("SELECT * FROM billing.payments WHERE payment_id = %s" + (" FOR UPDATE" if lock else ""),
                    (payment_id,))
        return cur.fetchone()

    async def create(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return problem(400, "body is not JSON")
        errors = create_errors(body)
        if "store-before-validate" in self.flaws and all(e["field"].startswith("metadata") for e in errors):
            with psycopg.connect(self.dsn) as conn, contextlib.suppress(psycopg.Error):
                conn.execute("INSERT INTO billing.payments (payment_id, student_ref, course_ref, amount_minor, "
                             "currency, state, gateway, meta) VALUES (%s,%s,%s,%s,%s,'initiated','test',%s)",
                             (str(uuid.uuid4()), body["student"]["id"], body["course"]["id"], body["amount"]["cents"],
                              body["amount"]["currency"], Jsonb(_part(body, "checkout").get("metadata"))))
        if errors:
            return problem(422, "invalid payment", errors=errors)
        with psycopg.connect(self.dsn) as conn:
            known = conn.execute("SELECT (SELECT count(*) FROM learning.students WHERE student_id=%s), "
                                 "(SELECT count(*) FROM learning.courses WHERE course_id=%s AND published)",
                                 (body["student"]["id"], body["course"]["id"])).fetchone()
            if known != (1, 1):
                fields = zip(("student.id", "course.id"), known or (0, 0), strict=True)
                return problem(422, "unknown student or course",
                               errors=[{"field": f, "message": "not found"} for f, n in fields if n != 1])
            cur = conn.cursor(row_factory=psycopg.rows.dict_row)
            cur.execute("INSERT INTO billing.payments (payment_id, student_ref, course_ref, amount_minor, currency, "
                        "state, gateway, meta) VALUES (%s,%s,%s,%s,%s,'initiated',%s,%s) RETURNING *",
                        (str(uuid.uuid4()), body["student"]["id"], body["course"]["id"], body["amount"]["cents"],
                         body["amount"]["currency"], body.get("gateway") or "test",
                         Jsonb(body["checkout"]["metadata"])))
            row = cur.fetchone()
        assert row is not None
        return wrapped({"payment": shown(row)}, "payment created", 201,
                       headers={"Location": f"/v2/checkout/payments/{row['payment_id']}"})

    async def read(self, request: Request) -> Response:
        payment_id = request.path_params["id"]
        if not UUID.fullmatch(payment_id):
            return problem(400, "malformed payment id")
        with psycopg.connect(self.dsn) as conn:
            row = self._row(conn, payment_id)
        return wrapped({"payment": shown(row)}, "ok") if row else problem(404, "no such payment")

    def _signed(self, payment_id: str, raw: bytes, header: str | None) -> bool:
        if header is None:
            return "unsigned-callback" in self.flaws
        parts = dict(p.split("=", 1) for p in header.split(";") if "=" in p)
        try:
            t = int(parts["ts"])
        except (KeyError, ValueError):
            return False
        if abs(time.time() - t) > TOLERANCE and "no-timestamp-tolerance" not in self.flaws:
            return False
        mac = hmac.new(self.secret, f"{payment_id}:{t}:".encode() + raw, hashlib.sha256).digest()
        return hmac.compare_digest(base64.b64encode(mac).decode(), parts.get("sig", ""))

    async def callback(self, request: Request) -> Response:
        payment_id = request.path_params["id"]
        raw = await request.body()
        if not UUID.fullmatch(payment_id):
            return problem(400, "malformed payment id")
        if not self._signed(payment_id, raw, request.headers.get("x-checkout-signature")):
            return problem(401, "bad signature")
        try:
            body = json.loads(raw)
        except ValueError:
            return problem(400, "body is not JSON")
        unknown = set(body) - {"status", "providerPaymentId", "provider"} if isinstance(body, dict) else set()
        if "callback-accepts-extra-fields" in self.flaws:
            body = {k: v for k, v in body.items() if k not in unknown} if isinstance(body, dict) else body
            unknown = set()
        if not isinstance(body, dict) or unknown \
                or not isinstance(body.get("status"), str) \
                or body["status"] not in {"succeeded", "failed", "cancelled", "refunded"} \
                or not all(_provider_id(body, field, limit) for field, limit in (("providerPaymentId", 128),
                                                                                  ("provider", 64))):
            return problem(422, "a callback carries status and provider ids only")
        with psycopg.connect(self.dsn) as conn:
            row = self._row(conn, payment_id, lock=True)
            if row is None:
                return problem(404, "no such payment")
            if row["state"] == body["status"]:
                return wrapped({"payment": shown(row)}, "already in that state")
            if body["status"] not in TRANSITIONS.get(row["state"], set()):
                return problem(409, f"{row['state']} -> {body['status']} is not allowed")
            cur = conn.cursor(row_factory=psycopg.rows.dict_row)
            cur.execute("UPDATE billing.payments SET state=%s, gateway=COALESCE(%s, gateway), "
                        "gateway_ref=COALESCE(%s, gateway_ref), confirmed_at=CASE WHEN %s='succeeded' THEN now() "
                        "ELSE confirmed_at END WHERE payment_id=%s RETURNING *",
                        (body["status"], body.get("provider"), body.get("providerPaymentId"), body["status"],
                         payment_id))
            row = cur.fetchone()
        assert row is not None
        if row["state"] == "succeeded":
            self._publish(row)
        return wrapped({"payment": shown(row)}, "payment updated")

    def _publish(self, row: dict[str, Any]) -> None:
        event = {"eventId": str(uuid.uuid4()), "eventType": "payment.confirmed",
                 "timestamp": _iso(datetime.now(UTC)),
                 "data": {"paymentId": str(row["payment_id"]), "studentId": row["student_ref"],
                          "courseId": row["course_ref"], "amountCents": row["amount_minor"],
                          "currency": row["currency"], "metadata": row["meta"]},
                 "_metadata": {"source": "payment-service", "schemaVersion": 2}}
        key = str(row["payment_id"]) if "key-by-payment" in self.flaws else f"student:{row['student_ref']}"
        self.producer.produce(CONFIRMED_TOPIC, key=key, value=json.dumps(event).encode())
        self.producer.flush(10)
