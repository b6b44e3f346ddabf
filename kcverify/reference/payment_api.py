"""The payment service's HTTP face (contracts/openapi/payment-service.yaml)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kcverify.reference.http import Caller, health, json_body, json_response, make_app
from kcverify.reference.payment_service import PaymentService


def create_app(service: PaymentService, *, threaded: bool = False) -> Starlette:
    call = Caller(threaded)

    async def create_payment(request: Request) -> Response:
        payment = await call(service.create, await json_body(request))
        return json_response(payment.to_json(), 201, {"Location": f"/api/v1/payments/{payment.id}"})

    async def get_payment(request: Request) -> Response:
        payment = await call(service.get, request.path_params["payment_id"])
        return json_response(payment.to_json())

    async def confirm_payment(request: Request) -> Response:
        raw = await json_body(request)
        payment = await call(service.confirm, request.path_params["payment_id"], raw,
                             request.headers.get("x-signature"))
        return json_response(payment.to_json())

    return make_app(call, [
        Route("/api/v1/payments", create_payment, methods=["POST"]),
        Route("/api/v1/payments/{payment_id}", get_payment, methods=["GET"]),
        Route("/api/v1/payments/{payment_id}/confirm", confirm_payment, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
    ])
