"""The student service's HTTP face (contracts/openapi/student-service.yaml)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kcverify.reference.http import Caller, health, make_app
from kcverify.reference.student_service import StudentService


def create_app(service: StudentService, *, threaded: bool = False) -> Starlette:
    call = Caller(threaded)

    async def learning(request: Request) -> Response:
        student_id = request.path_params["student_id"]
        service.authorize(request.headers.get("authorization"), student_id)
        answer = await call(service.read, student_id)
        return Response(answer.body, answer.status, answer.headers)

    async def invalidate(request: Request) -> Response:
        student_id = request.path_params["student_id"]
        service.authorize(request.headers.get("authorization"), student_id, admin_only=True)
        await call(service.invalidate, student_id)
        return Response(status_code=204)

    return make_app([
        Route("/api/v1/students/{student_id}/learning", learning, methods=["GET"]),
        Route("/api/v1/students/{student_id}/learning/cache", invalidate, methods=["DELETE"]),
        Route("/health", health, methods=["GET"]),
    ])
