"""What both ASGI apps share: problem+json rendering for every error (never an HTML 500), JSON
bodies, and running blocking service calls off the event loop when the app is served for real."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kcverify.core.errors import StoreUnavailable
from kcverify.reference.problems import Problem, unavailable

PROBLEM_JSON = "application/problem+json"
T = TypeVar("T")
log = logging.getLogger("kcverify.reference.http")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status, headers, media_type="application/json")


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(problem.to_json(), problem.status, headers, media_type=PROBLEM_JSON)


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    titles = {404: "Not Found", 405: "Method Not Allowed"}
    problem = Problem(exc.status_code, titles.get(exc.status_code, "HTTP Error"), str(exc.detail))
    return problem_response(problem, dict(exc.headers) if exc.headers else None)


async def _on_unavailable(request: Request, exc: Exception) -> Response:
    """A store outage the component did not handle itself: nothing was changed, so a 503 (retry)."""
    return problem_response(unavailable(f"a database is unavailable: {exc}"), {"Retry-After": "1"})


async def _on_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(Problem(500, "Internal Server Error", "the server failed; see its log"))


async def json_body(request: Request) -> bytes:
    """The raw body, after checking the media type (415 otherwise)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise Problem(415, "Unsupported Media Type", "send the body as application/json")
    return await request.body()


class Caller:
    """Runs a blocking service call: inline for the embedded target (deterministic, one thread),
    in a thread pool when served by uvicorn (so slow I/O does not stall the loop).

    The pool is a plain ThreadPoolExecutor behind `loop.run_in_executor`, not Starlette's
    `run_in_threadpool`: its hand-over through anyio's worker threads cost about 180 us of CPU per call,
    this one about 75 (four calls at a time, 20,000 calls, on the development machine). `THREADS` as
    anyio's default: a read held at its pause point (tests) takes one thread, not the pool."""

    THREADS = 40

    def __init__(self, threaded: bool) -> None:
        self.threaded = threaded
        self._pool: ThreadPoolExecutor | None = None

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        if not self.threaded:
            return fn(*args)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.THREADS, thread_name_prefix="kcverify-http")
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args))

    def shutdown(self) -> None:
        """Wait for the calls under way (a request uvicorn gave up on at its graceful timeout may still be
        running one) and end the threads: before the stores they use are closed."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def make_app(call: Caller, routes: list[Route]) -> Starlette:
    """The app of `routes`, errors as problem+json; `app.state.caller` is `call`, for the server's stop."""
    app = Starlette(
        routes=routes,
        exception_handlers={Problem: _on_problem, HTTPException: _on_http_exception,
                            StoreUnavailable: _on_unavailable, Exception: _on_error},
    )
    app.router.redirect_slashes = False  # an API answers a stray slash with its problem, not a 307
    app.state.caller = call
    return app


async def health(request: Request) -> Response:
    return json_response({"status": "ok"})


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket for a service, bound now so a busy port is an error before anything runs
    (uvicorn would log it and sys.exit(1) from inside the loop). Port 0 picks a free one.

    TCP_NODELAY is set here, and the connections it accepts inherit it: asyncio sets it only on sockets
    made with proto IPPROTO_TCP, which these are not. Without it uvicorn's response head and body, two
    writes, wait on Nagle's algorithm for the client's delayed acknowledgement: 40 ms on most answers
    to a client that keeps its connection (measured: a confirm took 50 ms instead of 10)."""
    sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock
