"""The student service's HTTP face (contracts/openapi/student-service.yaml)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from kcverify.reference.http import Caller, health, make_app
from kcverify.reference.student_service import StudentService


class AnyText(Convertor[str]):
    """Every path segment text, slashes and newlines included (the `path` convertor stops at a newline),
    so that whatever id a client sends reaches the id check: a malformed one is the documented 400,
    never a 404 for want of a route."""

    regex = "[\\s\\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("any_text", AnyText())


# What a web framework's debug-less default error page looks like (the malformed-student-id-html-500 defect).
ERROR_PAGE = "<!DOCTYPE html><html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server " \
             "Error</h1><p>The server encountered an internal error.</p></body></html>"


def create_app(service: StudentService, *, threaded: bool = False) -> Starlette:
    call = Caller(threaded)

    async def learning(request: Request) -> Response:
        student_id = request.path_params["student_id"]
        if service.crashes_on(student_id):
            return HTMLResponse(ERROR_PAGE, 500)
        service.authorize(request.headers.get("authorization"), student_id)
        answer = await call(service.read, student_id)
        return Response(answer.body, answer.status, answer.headers)

    async def invalidate(request: Request) -> Response:
        student_id = request.path_params["student_id"]
        if service.crashes_on(student_id):
            return HTMLResponse(ERROR_PAGE, 500)
        service.authorize(request.headers.get("authorization"), student_id, admin_only=True)
        await call(service.invalidate, student_id)
        return Response(status_code=204)

    return make_app(call, [
        Route("/api/v1/students/{student_id:any_text}/learning", learning, methods=["GET"]),
        Route("/api/v1/students/{student_id:any_text}/learning/cache", invalidate, methods=["DELETE"]),
        Route("/health", health, methods=["GET"]),
    ])
