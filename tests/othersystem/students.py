"""The student service: a JWT-protected learning view (HS256, claims `{uid, scope, iat, exp}`) wrapped
`{success, data: {studentId, generatedAt, courses: [{courseId, purchase}]}}`, cached in Redis under
`learning:v1:{studentId}` for 300 s (Age and Cache-Status say how), and an admin invalidation. The
purchase table has no payment id: the view names the payment by matching student, course and time."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any

import jwt
import psycopg
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tests.othersystem.common import CACHE_KEY, CACHE_TTL, PROBLEM_HANDLERS, Flaws, problem, wrapped

ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
# The payment a purchase came from: the latest succeeded payment of that student and course confirmed
# before the purchase was made.
VIEW_SQL = """
SELECT e.enrollment_id, e.student_ref, e.course_ref, e.tier, e.meta, e.meta_origin, e.active, e.enrolled_at,
       (SELECT p.payment_id FROM billing.payments p WHERE p.student_ref = e.student_ref
          AND p.course_ref = e.course_ref AND p.state IN ('succeeded', 'refunded') AND p.confirmed_at <= e.enrolled_at
          ORDER BY p.confirmed_at DESC LIMIT 1) AS payment_id
FROM learning.course_enrollments e WHERE e.student_ref = %s AND e.active ORDER BY e.enrolled_at, e.enrollment_id
"""


def _parse_student_id(sid: str) -> str:
    if not ID.fullmatch(sid):
        raise ValueError(f"malformed student id {sid!r}")
    return sid


async def _html_error_page(request: Request, exc: Exception) -> Response:
    """The web app's generic error page, shared by mistake with the API (html-500-on-bad-id)."""
    return HTMLResponse("<!doctype html><html><body><h1>Something went wrong</h1></body></html>", status_code=500)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class StudentService:
    def __init__(self, dsn: str, redis_url: str, secret: str, flaws: Flaws) -> None:
        self.dsn, self.secret, self.flaws = dsn, secret, flaws
        self.cache = redis.Redis.from_url(redis_url)
        handlers = dict(PROBLEM_HANDLERS)
        if "html-500-on-bad-id" in flaws:
            handlers[Exception] = _html_error_page
        self.app = Starlette(exception_handlers=handlers, routes=[
            Route("/health", lambda r: JSONResponse({"status": "ok"})),
            Route("/v2/students/{sid}/learning", self.learning, methods=["GET"]),
            Route("/v2/admin/students/{sid}/learning-cache", self.invalidate, methods=["DELETE"]),
        ])

    def _claims(self, request: Request) -> dict[str, Any] | Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return problem(401, "bearer token required", headers={"WWW-Authenticate": "Bearer"})
        try:
            claims: dict[str, Any] = jwt.decode(token, self.secret, algorithms=["HS256"], options={"require": ["exp"]})
        except jwt.PyJWTError:
            return problem(401, "invalid token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return claims

    def _malformed(self, sid: str) -> bool:
        """Whether the id is malformed (answered 400). With html-500-on-bad-id the check is a parser that
        raises ValueError, which no handler maps to a 400."""
        if "html-500-on-bad-id" in self.flaws:
            _parse_student_id(sid)
            return False
        return not ID.fullmatch(sid)

    async def learning(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        if self._malformed(sid):
            return problem(400, "malformed student id")
        claims = self._claims(request)
        if isinstance(claims, Response):
            return claims
        if claims.get("scope") != "admin" and claims.get("uid") != sid and "view-ignores-owner" not in self.flaws:
            return problem(403, "not your learning view")
        key = CACHE_KEY.format(studentId=sid)
        cached = self.cache.get(key)
        if cached is not None:
            entry = json.loads(cached)
            age = max(0, int(time.time() - entry["loadedAt"]))
            return wrapped(entry["view"], "ok", headers={"Age": str(age), "Cache-Status": "student-service; hit"})
        view = self._load(sid)
        expiry = None if "cache-forever" in self.flaws else CACHE_TTL
        self.cache.set(key, json.dumps({"loadedAt": time.time(), "view": view}), ex=expiry)
        return wrapped(view, "ok", headers={"Age": "0", "Cache-Status": "student-service; fwd=miss; stored"})

    def _load(self, sid: str) -> dict[str, Any]:
        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute(VIEW_SQL, (sid,)).fetchall()
        courses = [{"courseId": course, "purchase": {
            "id": str(eid), "paymentId": str(pid) if pid else None, "studentId": student, "tier": tier,
            "metadata": meta, "metadataSource": origin, "active": active, "purchasedAt": _iso(at)}}
            for eid, student, course, tier, meta, origin, active, at, pid in rows]
        return {"studentId": sid, "generatedAt": _iso(datetime.now(UTC)), "courses": courses}

    async def invalidate(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        if self._malformed(sid):
            return problem(400, "malformed student id")
        claims = self._claims(request)
        if isinstance(claims, Response):
            return claims
        if claims.get("scope") != "admin":
            return problem(403, "admins only")
        self.cache.delete(CACHE_KEY.format(studentId=sid))
        return wrapped(None, "cache cleared")
