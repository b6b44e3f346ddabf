"""The embedded reference served for real: both ASGI apps on uvicorn and the background components
driven by wall-clock time, in one process and one thread (`kcverify serve embedded`).

Design: ONE event loop thread does everything. The apps are built with `threaded=False`, so every
service call runs inline on the loop, and a driver task on the same loop steps the components
(`System.step`) every `interval` seconds. Nothing ever runs concurrently, so none of the components'
private state (the worker's in-flight retry, the invalidator's pending event, the relays' back-off,
the id source, the tracer) needs a lock. The adapters do have locks (bus, cache, SQLite), but the
components do not, and `threaded=True` plus a driver thread would race on exactly that state. The cost
is that a slow SQLite call blocks the loop for its duration, which does not matter for a local server
that one person clicks through.

Why not `System.settle()`: it is meant for a manual clock. With a SystemClock it returns as soon as
only timed waits (retry back-off, reconcile grace) remain, and before returning it computes the next
wake-up, which scans every payment. The driver instead runs the flow components in settle's order until
none does any work, lets the reconciler look at most once per `reconcile_every` seconds, and leaves
timed waits to real time: a component whose retry is not yet due simply does nothing on that tick.

Signals are the caller's: the uvicorn servers here do not install handlers (two servers would fight
over them, and uvicorn re-raises a captured signal on exit, which would turn a clean stop into a
death by SIGTERM). `request_stop()` is the one way to stop: servers drain, the driver stops, a last
bounded pass lets in-flight work finish, every component stops gracefully, the stores are closed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import uvicorn
from starlette.applications import Starlette

from kcverify.core.clock import SystemClock
from kcverify.core.ids import RandomIds
from kcverify.reference.bootstrap import COMPONENTS, System, bootstrap
from kcverify.reference.http import listen_socket
from kcverify.reference.instrument import Tracer
from kcverify.reference.settings import Settings, secrets_from_environment

PAYMENTS_FILE = "payments.sqlite3"
COURSES_FILE = "courses.sqlite3"
# The components that carry a payment to a visible purchase, in settle()'s order.
FLOW = tuple(name for name in COMPONENTS if name != "reconciler")

log = logging.getLogger("kcverify.reference.embedded_server")


class ConsoleTracer:
    """One short line per trace record, so a person watching the console sees each hop happen."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def emit(self, component: str, event: str, **fields: Any) -> None:
        stamp = datetime.now().strftime("%H:%M:%S.%f")[:-3]
        details = " ".join(f"{key}={value}" for key, value in fields.items())
        stream = self._stream or sys.stderr
        stream.write(f"{stamp} {component:<17} {event} {details}".rstrip() + "\n")
        stream.flush()


class SilentTracer:
    """Drops every record: a long-running server must not keep them all in memory (MemoryTracer)."""

    def emit(self, component: str, event: str, **fields: Any) -> None:
        return None


def build_system(data_dir: Path | None, *, defects: Iterable[str] = (), tracer: Tracer | None = None,
                 environ: Mapping[str, str] | None = None) -> System:
    """The embedded System on real time. SQLite files in `data_dir` (created if missing), or private
    in-memory databases when it is None. Ids are random, not seeded: a seeded source would hand out the
    same payment ids again after a restart on the same files. Secrets: KCVERIFY_WEBHOOK_SECRET and
    KCVERIFY_AUTH_SECRET when set, else the development keys (the embedded server is a development
    tool: zero set-up; `settings.development_keys` says which it got)."""
    settings = Settings(defects=frozenset(defects))
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        settings = Settings(defects=frozenset(defects), payments_sqlite=str(data_dir / PAYMENTS_FILE),
                            courses_sqlite=str(data_dir / COURSES_FILE))
    settings = secrets_from_environment(settings, dev=True, environ=environ)
    return bootstrap(settings, clock=SystemClock(), ids=RandomIds(), tracer=tracer or SilentTracer())


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its owner (see the module docstring)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class EmbeddedServer:
    """Serves `system`'s two apps and drives its components until `request_stop()`."""

    def __init__(self, system: System, *, host: str = "127.0.0.1", payment_port: int = 8081,
                 student_port: int = 8082, interval: float = 0.05, reconcile_every: float = 1.0,
                 access_log: bool = False) -> None:
        self.system = system
        self.host = host
        self.interval = interval
        self.reconcile_every = reconcile_every
        self._next_reconcile = 0.0
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self._payment_sock = listen_socket(host, payment_port)
        try:
            self._student_sock = listen_socket(host, student_port)
        except OSError:
            self._payment_sock.close()
            raise
        self._servers = [
            _Server(self._config(system.payment_app(threaded=False), access_log)),
            _Server(self._config(system.student_app(threaded=False), access_log)),
        ]

    @staticmethod
    def _config(app: Starlette, access_log: bool) -> uvicorn.Config:
        return uvicorn.Config(app, lifespan="off", log_level="warning", access_log=access_log,
                              timeout_graceful_shutdown=5)

    # --- addresses -----------------------------------------------------------------------------

    @property
    def payment_url(self) -> str:
        return self._url(self._payment_sock)

    @property
    def student_url(self) -> str:
        return self._url(self._student_sock)

    def _url(self, sock: socket.socket) -> str:
        port = sock.getsockname()[1]
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    # --- running -------------------------------------------------------------------------------

    def run(self) -> None:
        """Blocks until SIGINT or SIGTERM (a second SIGINT/SIGTERM skips waiting for open connections)."""
        asyncio.run(self._main())

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            await self.serve()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def request_stop(self) -> None:
        """First call: stop accepting, finish open requests, then shut down. Second call: do not wait."""
        for server in self._servers:
            if server.should_exit:
                server.force_exit = True
            server.should_exit = True

    async def serve(self) -> None:
        # An outbox row committed wakes the driver at once (an in-process signal from the stores); the
        # `interval` pause stays as the fallback for everything else (consumers, retries).
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        self._wake = wake
        unlisten = []
        for store in self.system.unfaulted[:2]:
            listen = getattr(store, "listen_outbox", None)
            if callable(listen):
                unlisten.append(listen(lambda: loop.call_soon_threadsafe(wake.set)))
        driver = asyncio.create_task(self._drive(), name="kcverify-driver")
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._servers[0].serve(sockets=[self._payment_sock]))
                group.create_task(self._servers[1].serve(sockets=[self._student_sock]))
        finally:
            self._stopping = True
            driver.cancel()  # it is either asleep or between ticks: a step is never cut in half
            with contextlib.suppress(asyncio.CancelledError):
                await driver
            for stop in unlisten:
                stop()
            self.shutdown()

    async def _drive(self) -> None:
        while not self._stopping:
            busy = False
            try:
                busy = self.drive_once()
            except Exception:  # a bug in a component must not silently stop the whole flow
                log.exception("a component step failed; the driver carries on")
            wake = self._wake
            if busy or wake is None:
                await asyncio.sleep(0 if busy else self.interval)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.interval)
            wake.clear()

    def drive_once(self, *, max_rounds: int = 100, reconcile: bool = True) -> bool:
        """Steps the flow components in settle()'s order until none does any work, then (at most once per
        `reconcile_every` seconds) the reconciler. Returns True when `max_rounds` was hit with work left,
        so the caller yields to the HTTP servers and comes straight back."""
        now = time.monotonic()
        reconcile = reconcile and now >= self._next_reconcile
        for _ in range(max_rounds):
            worked = False
            for component in FLOW:
                worked = self.system.step(component) or worked
            if worked:
                continue
            if reconcile:
                reconcile = False
                self._next_reconcile = now + self.reconcile_every
                if self.system.step("reconciler"):
                    continue
            return False
        return True

    def shutdown(self) -> None:
        """Graceful stop: what is ready to move moves (no waiting for back-off), then each live component
        stops as on SIGTERM (consumers leave their groups), then the databases are closed. Idempotent."""
        if all(component in self.system.down for component in COMPONENTS):
            return
        try:
            self.drive_once(max_rounds=1000, reconcile=False)
        except Exception:
            log.exception("the last pass before shutdown failed")
        for component in COMPONENTS:
            if component not in self.system.down:
                self.system.stop(component)
        for store in (self.system.payment_store, self.system.course_store):
            close = getattr(store, "close", None)
            if callable(close):
                close()
        for sock in (self._payment_sock, self._student_sock):
            sock.close()
