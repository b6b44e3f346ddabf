"""The real-stack component processes: `kcverify serve payment|student|worker|relay|reconciler`.

Each process builds the reference with `bootstrap(Settings(mode="stack", ...))` (PostgreSQL, Kafka,
Redis) and runs ONE component of it, the way it would be deployed. Its secrets come from the
environment (KCVERIFY_WEBHOOK_SECRET, KCVERIFY_AUTH_SECRET); without them it refuses to start, unless
it runs in development mode (`ProcessOptions.dev`, `--dev`), which uses the published development keys.

- payment / student: the ASGI app on uvicorn, `threaded=True` (blocking service calls run in the
  thread pool). The student process also runs the cache invalidator (the PURCHASE_CREATED consumer),
  as a production student service would, in a background thread.
- worker: the purchase worker's `poll_once` in a loop, sleeping until its next retry when it waits.
- relay: the payments_db and/or courses_db outbox relay, one loop each (`outboxes`).
- reconciler: `run_once` every `reconcile_every` seconds.

Every background component is a `ComponentLoop`: one thread that calls the component's step function,
so the component's private state (the worker's in-flight retry, a relay's back-off) is only ever
touched by that thread. SIGTERM / SIGINT stop the process gracefully: open requests finish, each loop
finishes the step it is in (the worker commits the event it is handling; an event waiting for a retry
is left uncommitted and goes to the next member), consumers leave their groups, exit status 0.

Test-only control (`control_port`, never on by default) is a second small HTTP app per process, used by
the stack target (kcverify/targets/processes/__init__.py) to give the real processes the primitives the embedded
target has in-process: faults, crash points, holding and stepping the loops, and a pause point inside
a learning read. See `control_app` and docs/targets.md."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kcverify.core.clock import Clock, SystemClock
from kcverify.core.errors import SimulatedCrash
from kcverify.reference.bootstrap import System, bootstrap
from kcverify.reference.http import listen_socket
from kcverify.reference.instrument import CRASH_POINTS, Faults, LogTracer, Tracer
from kcverify.reference.purchase_worker import Step
from kcverify.reference.relay import OutboxRelay
from kcverify.reference.settings import Settings, secrets_from_environment
from kcverify.reference.student_service import PendingRead

log = logging.getLogger("kcverify.reference.component_process")

PROCESS_KINDS = ("payment", "student", "worker", "relay", "reconciler")
OUTBOXES = ("payments", "courses")

# The component a crash point kills (same table as the scenario loader's; the reference does not
# import the verifier).
CRASH_POINT_COMPONENTS = {
    "payment": "payment-service",
    "payment-relay": "payment-relay",
    "course-relay": "course-relay",
    "worker": "purchase-worker",
    "invalidator": "cache-invalidator",
}
# The components that share their process with an HTTP service: a crash kills the component (its
# thread, its consumer), not the process, as in the embedded system.
IN_PROCESS = frozenset({"cache-invalidator"})

POLL_TIMEOUT = 0.1  # a consumer's poll: short, so a hold or a stop is answered within ~0.1 s
RELAY_IDLE = (0.05, 0.2)  # a relay's pause when its outbox was empty: starts small, doubles up to the max
ERROR_PAUSE = 1.0  # after an unexpected error in a step: do not spin on a persistent bug
CRASH_EXIT = 137  # what a shell reports for SIGKILL: the crash looks like one
# An idle kept-alive connection is closed after this: longer than clients keep one (kcverify's 1.5 s,
# browsers' and most HTTP libraries' few seconds), so a client never sends on a connection the server is
# closing at that moment (kcverify/targets/http_client.py tells the race); uvicorn's default is 5 s.
KEEP_ALIVE_SECONDS = 30


@dataclass(frozen=True)
class ProcessOptions:
    kind: str
    host: str = "127.0.0.1"
    port: int = 0  # payment / student HTTP port (0: any free port)
    control_port: int | None = None  # test-only control endpoint; None: off
    trace_file: Path | None = None  # JSON lines; None: stderr
    faults_file: Path | None = None  # a fault table shared with other processes (control only)
    held: bool = False  # start with every loop held (control only)
    outboxes: tuple[str, ...] = OUTBOXES  # relay only
    reconcile_every: float = 0.5
    parent_pid: int | None = None  # exit (gracefully) when this process is gone
    access_log: bool = False
    # Development mode: without KCVERIFY_WEBHOOK_SECRET / KCVERIFY_AUTH_SECRET in the environment, use the
    # published development keys instead of refusing to start (settings.secrets_from_environment).
    dev: bool = False


# --- traces and faults ------------------------------------------------------------------------------


class JsonLinesTracer:
    """LogTracer to a file (or stderr), one JSON object per line, safe to call from every thread of
    the process. The file is opened for appending, so a restarted process continues the same file."""

    def __init__(self, clock: Clock, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._file: TextIO | None = path.open("a", encoding="utf-8") if path is not None else None
        self._inner = LogTracer(clock, self._file or sys.stderr)

    def emit(self, component: str, event: str, **fields: Any) -> None:
        with self._lock:
            self._inner.emit(component, event, **fields)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class FileFaults(Faults):
    """The fault table in one file that every process of a stack shares. "The next N calls to
    courses_db fail" then counts calls across processes exactly as the embedded system's one `Faults`
    counts them across components, whichever process makes the call: no per-process routing, no
    budget multiplied by the number of processes.

    An empty file means no rule, so a call costs one stat while no fault is pending. Changes are made
    under an flock on a separate lock file and written to a temporary file renamed over the table, so
    a reader that does not lock (the stat) never sees a half-written or momentarily empty table."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._path = path
        self._name = os.fspath(path)  # os.stat on a str: the check runs on every store, cache and bus call
        self._lock_path = path.with_name(path.name + ".lock")
        self._lock = threading.Lock()
        path.touch(exist_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[list[dict[str, Any]]]:
        with self._lock, self._lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                text = self._path.read_text(encoding="utf-8")
            except FileNotFoundError:
                text = ""
            yield json.loads(text) if text.strip() else []

    def _write(self, rules: list[dict[str, Any]]) -> None:
        """Only while `_locked`: atomically replace the table."""
        live = [r for r in rules if r["remaining"] > 0]
        tmp = self._path.with_name(f".{self._path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps(live) if live else "", encoding="utf-8")
        os.replace(tmp, self._path)

    def fail_next(self, resource: str, times: int, op: str | None = None, after: int = 0) -> None:
        with self._locked() as rules:
            rules.append({"resource": resource, "op": op, "remaining": times, "skip": after})
            self._write(rules)

    def clear(self) -> None:
        with self._locked():
            self._write([])

    def should_fail(self, resource: str, op: str) -> bool:
        try:
            if os.stat(self._name).st_size == 0:
                return False
        except FileNotFoundError:
            return False
        with self._locked() as rules:
            failing, counted = None, False
            for rule in rules:  # as Faults.should_fail: a rule still letting calls through counts this one
                if rule["resource"] != resource or rule["remaining"] <= 0 or rule["op"] not in (None, op):
                    continue
                if rule.get("skip", 0) > 0:
                    rule["skip"] -= 1
                    counted = True
                elif failing is None:
                    failing = rule
            if failing is not None:
                failing["remaining"] -= 1
                self.injected[f"{resource}.{op}"] += 1
            if failing is not None or counted:
                self._write(rules)
            return failing is not None

    def pending(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with self._locked() as rules:
            for rule in rules:
                out[rule["resource"]] = out.get(rule["resource"], 0) + rule["remaining"]
        return {k: v for k, v in out.items() if v}


# --- background loops -------------------------------------------------------------------------------

StepFn = Callable[[], float]  # one unit of work; returns how long to wait before the next one


class ComponentLoop:
    """One background component in its own thread, with the controls the stack target needs.

    Free-running, it calls `step` and waits the delay `step` returns (a hold, a step request or a stop
    cuts the wait short). Held, it takes no step unless asked to (`step_n`); `hold()` returns only once
    the step in progress (if any) has finished, so after it the component is still. `stop()` ends it as
    SIGTERM would (`close`: consumers leave their group); `kill()` as SIGKILL would, at the next step
    boundary (`abandon`: nothing committed). A SimulatedCrash raised by a step ends it like `kill()`."""

    def __init__(self, name: str, step: StepFn, *, held: bool, tracer: Tracer,
                 close: Callable[[], None] = lambda: None, abandon: Callable[[], None] = lambda: None) -> None:
        self.name = name
        self._step = step
        self._close = close
        self._abandon = abandon
        self._tracer = tracer
        self._cond = threading.Condition()
        self._held = held
        self._busy = False
        self._requested = 0
        self._completed = 0
        self._stopping = False
        self._killing = False
        self._nudged = False
        self._ended: str | None = "stopped"  # None while the thread runs; else "stopped" | "down"
        self._thread: threading.Thread | None = None

    # --- seen from other threads ---------------------------------------------------------------

    @property
    def state(self) -> str:
        """"running", "held", "stopped" (gracefully) or "down" (killed / crashed)."""
        with self._cond:
            if self._ended is not None:
                return self._ended
            return "held" if self._held else "running"

    def start(self, *, held: bool | None = None) -> None:
        with self._cond:
            if self._ended is None:
                return
            if held is not None:
                self._held = held
            self._stopping = self._killing = False
            self._requested = self._completed = 0
            self._ended = None
            self._thread = threading.Thread(target=self._run, name=f"kcverify-{self.name}", daemon=True)
            self._thread.start()

    def hold(self, timeout: float = 30.0) -> bool:
        """Stop taking steps; True once no step is in progress."""
        with self._cond:
            self._held = True
            self._cond.notify_all()
            return self._cond.wait_for(lambda: not self._busy or self._ended is not None, timeout)

    def resume(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def nudge(self) -> None:
        """Work may be waiting (e.g. an outbox row committed): a free-running loop ends its current wait
        and steps now. A held loop stays held; a nudge while a step runs makes the next wait end at once."""
        with self._cond:
            self._nudged = True
            self._cond.notify_all()

    def step_n(self, times: int, timeout: float = 30.0) -> int:
        """Take `times` steps now (held or not); returns how many were taken before the loop ended or the
        timeout passed."""
        with self._cond:
            if self._ended is not None:
                return 0
            start, goal = self._completed, self._completed + times
            self._requested += times
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._completed >= goal or self._ended is not None, timeout)
            return self._completed - start

    def stop(self, timeout: float = 30.0) -> None:
        self._end("stop", timeout)

    def kill(self, timeout: float = 30.0) -> None:
        self._end("kill", timeout)

    def _end(self, how: str, timeout: float) -> None:
        with self._cond:
            if how == "stop":
                self._stopping = True
            else:
                self._killing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # --- the thread ----------------------------------------------------------------------------

    def _turn(self, delay: float) -> bool | None:
        """Under the lock: block until a step may be taken. True: a requested step; False: a free-running
        one; None: the loop must end."""
        deadline = time.monotonic() + delay
        while True:
            if self._stopping or self._killing:
                return None
            if self._requested > 0:
                self._requested -= 1
                return True
            if self._held:
                self._cond.wait()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._nudged:
                self._nudged = False
                return False
            self._cond.wait(remaining)

    def _run(self) -> None:
        delay = 0.0
        ended = "stopped"
        try:
            while True:
                with self._cond:
                    requested = self._turn(delay)
                    if requested is None:
                        ended = "down" if self._killing else "stopped"
                        break
                    self._busy = True
                try:
                    delay = self._step()
                except SimulatedCrash:  # the crash hook already wrote the trace record
                    ended = "down"
                    break
                except Exception:  # a bug in a component must not silently end its loop
                    log.exception("%s: a step failed; the loop carries on", self.name)
                    self._tracer.emit(self.name, "step_failed")
                    delay = ERROR_PAUSE
                finally:
                    with self._cond:
                        self._busy = False
                        if requested:
                            self._completed += 1
                        self._cond.notify_all()
        finally:
            try:
                (self._abandon if ended == "down" else self._close)()
            except Exception:
                log.exception("%s: closing failed", self.name)
            if ended == "down" and self._killing:
                self._tracer.emit(self.name, "crashed", point="killed")
            elif ended == "stopped":
                self._tracer.emit(self.name, "stopped")
            with self._cond:
                self._ended = ended
                self._busy = False
                self._cond.notify_all()


class _IdlePause:
    """A relay's wait after an empty outbox: short right after work, longer while nothing comes."""

    def __init__(self, low: float, high: float) -> None:
        self._low, self._high = low, high
        self._next = low

    def reset(self) -> float:
        self._next = self._low
        return 0.0

    def wait(self) -> float:
        current, self._next = self._next, min(self._next * 2, self._high)
        return current


def _until(clock: Clock, wake: float | None, default: float) -> float:
    return default if wake is None else max(0.0, wake - clock.now())


def worker_step(system: System) -> StepFn:
    def step() -> float:
        done = system.worker.poll_once(timeout=POLL_TIMEOUT)
        if done == Step.WAITING:  # nothing else is polled while an event waits for its retry (W7)
            return _until(system.clock, system.worker.next_wakeup(), POLL_TIMEOUT)
        return 0.0  # IDLE already waited in poll

    return step


def relay_step(relay: OutboxRelay, clock: Clock) -> StepFn:
    idle = _IdlePause(*RELAY_IDLE)

    def step() -> float:
        if relay.run_once() > 0:
            return idle.reset()
        wake = relay.next_wakeup()  # rows stuck behind a failure: retry when due
        return idle.wait() if wake is None else _until(clock, wake, 0.0)

    return step


def invalidator_step(system: System) -> StepFn:
    def step() -> float:
        if system.invalidator.poll_once(timeout=POLL_TIMEOUT):
            return 0.0
        return _until(system.clock, system.invalidator.next_wakeup(), 0.0)

    return step


def reconciler_step(system: System, every: float) -> StepFn:
    def step() -> float:
        system.reconciler.run_once()
        return every

    return step


# --- the student read pause point -------------------------------------------------------------------


class ReadPauses:
    """Holds a learning read between its two halves (rows loaded, version taken; nothing stored): the
    split read of the stale-set race (S3). `request(student)` arms a one-shot pause for that student's
    next read; `held()` lists reads waiting at the point; `release(student)` lets it finish."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._wanted: set[str] = set()
        self._held: set[str] = set()

    def request(self, student: str) -> None:
        with self._cond:
            self._wanted.add(student)

    def release(self, student: str) -> None:
        with self._cond:
            self._wanted.discard(student)
            self._held.discard(student)
            self._cond.notify_all()

    def release_all(self) -> None:
        with self._cond:
            self._wanted.clear()
            self._held.clear()
            self._cond.notify_all()

    def held(self) -> list[str]:
        with self._cond:
            return sorted(self._held)

    def point(self, pending: PendingRead) -> None:
        """StudentService.between_halves: runs in the request's worker thread."""
        student = pending.student_id
        with self._cond:
            if student not in self._wanted:
                return
            self._wanted.discard(student)
            self._held.add(student)
            self._cond.notify_all()
            self._cond.wait_for(lambda: student not in self._held)


# --- the process ------------------------------------------------------------------------------------


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to the process (two servers would fight over them, and
    uvicorn re-raises a captured signal on exit, which turns a clean stop into a death by SIGTERM)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def write_ports_file(path: Path, service: socket.socket | None, control: socket.socket | None) -> None:
    """The ports this process listens on, as JSON, written atomically (a temporary file renamed), so a
    parent that started it with port 0 learns where it is. With port 0 the kernel picks a free port as it
    binds: no other program can take it between the choice and the bind, as with a port chosen free by
    the parent and bound later by the child."""

    def port(sock: socket.socket | None) -> int | None:
        return None if sock is None else int(sock.getsockname()[1])

    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"service": port(service), "control": port(control), "pid": os.getpid()}))
    os.replace(temporary, path)


class ComponentProcess:
    """One component of the reference as a process. `run()` blocks until SIGTERM/SIGINT (or the parent
    named by `parent_pid` is gone) and returns the exit status."""

    def __init__(self, settings: Settings, options: ProcessOptions) -> None:
        if options.kind not in PROCESS_KINDS:
            raise ValueError(f"unknown component process {options.kind!r}")
        self.options = options
        self.control = options.control_port is not None
        settings = secrets_from_environment(settings, dev=options.dev)  # MissingSecret: refuse to start
        clock = SystemClock()
        self.tracer = JsonLinesTracer(clock, options.trace_file)
        faults = FileFaults(options.faults_file) if self.control and options.faults_file is not None else None
        self.system = bootstrap(settings, clock=clock, tracer=self.tracer, faults=faults)
        self.pauses = ReadPauses()
        self.loops = self._loops(options.held and self.control)
        self.app: Starlette | None = None
        if options.kind == "payment":
            self.app = self.system.payment_app(threaded=True)
        elif options.kind == "student":
            self.app = self.system.student_app(threaded=True)
        if self.control:
            self.system.crash_points.on_crash = self._on_crash
            if options.kind == "student":
                self.system.student_service.between_halves = self.pauses.point
        try:
            self.service_socket = listen_socket(options.host, options.port) if self.app is not None else None
            self.control_socket = (listen_socket(options.host, options.control_port)
                                   if options.control_port is not None else None)
        except OSError:
            self.close_sockets()
            self._close_stores()
            raise
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _loops(self, held: bool) -> dict[str, ComponentLoop]:
        s, kind = self.system, self.options.kind
        make: dict[str, tuple[StepFn, Callable[[], None], Callable[[], None]]] = {}
        if kind == "student":
            make["cache-invalidator"] = (invalidator_step(s), s.invalidator.close, s.invalidator.abandon)
        elif kind == "worker":
            make["purchase-worker"] = (worker_step(s), s.worker.close, s.worker.abandon)
        elif kind == "relay":
            if "payments" in self.options.outboxes:
                make["payment-relay"] = (relay_step(s.payment_relay, s.clock), _nothing, _nothing)
            if "courses" in self.options.outboxes:
                make["course-relay"] = (relay_step(s.course_relay, s.clock), _nothing, _nothing)
        elif kind == "reconciler":
            make["reconciler"] = (reconciler_step(s, self.options.reconcile_every), _nothing, _nothing)
        loops = {name: ComponentLoop(name, step, held=held, tracer=self.tracer, close=close, abandon=abandon)
                 for name, (step, close, abandon) in make.items()}
        # A relay wakes as soon as its outbox gets a committed row (LISTEN/NOTIFY on PostgreSQL, an in-process
        # signal on SQLite) instead of after its idle pause; the pause stays as the fallback.
        self._unlisten: list[Callable[[], None]] = []
        for name, store in (("payment-relay", s.unfaulted[0]), ("course-relay", s.unfaulted[1])):
            listen = getattr(store, "listen_outbox", None)
            if name in loops and callable(listen):
                self._unlisten.append(listen(loops[name].nudge))
        return loops

    # --- addresses ---------------------------------------------------------------------------------

    @staticmethod
    def _url(sock: socket.socket | None) -> str | None:
        if sock is None:
            return None
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def service_url(self) -> str | None:
        return self._url(self.service_socket)

    @property
    def control_url(self) -> str | None:
        return self._url(self.control_socket)

    # --- crash points ------------------------------------------------------------------------------

    def _on_crash(self, point: str) -> None:
        """CrashPoints.on_crash: the owning component dies where it stands. A component that is the whole
        process dies with it (os._exit: no cleanup, no commit, no goodbye to the group, like SIGKILL);
        one that shares the process with an HTTP service unwinds its thread (SimulatedCrash follows)."""
        component = CRASH_POINT_COMPONENTS.get(point.split(".", 1)[0], point)
        self.tracer.emit(component, "crashed", point=point)
        if component not in IN_PROCESS:
            os._exit(CRASH_EXIT)

    # --- running -----------------------------------------------------------------------------------

    def run(self) -> int:
        return asyncio.run(self._main())

    def request_stop(self) -> None:
        """Thread-safe: begin the graceful stop."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)

    async def _main(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._loop.add_signal_handler(sig, self._stop.set)
        if self.options.parent_pid is not None:
            threading.Thread(target=self._watch_parent, args=(self.options.parent_pid,), daemon=True,
                             name="kcverify-parent-watch").start()
        for component_loop in self.loops.values():
            component_loop.start()
        servers: list[tuple[_Server, socket.socket]] = []
        if self.app is not None and self.service_socket is not None:
            servers.append((_Server(self._config(self.app, self.options.access_log)), self.service_socket))
        if self.control_socket is not None:
            servers.append((_Server(self._config(control_app(self), False)), self.control_socket))
        tasks = [asyncio.create_task(server.serve(sockets=[sock])) for server, sock in servers]
        stopper = asyncio.create_task(self._stop.wait())
        status = 0
        try:
            done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            if stopper not in done:  # a server ended on its own: it failed to start or crashed
                log.error("an HTTP server of %s stopped unexpectedly", self.options.kind)
                status = 1
        finally:
            self.pauses.release_all()  # a held read must not keep its server from draining
            for server, _ in servers:
                server.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)
            stopper.cancel()
            await asyncio.to_thread(self._stop_loops)
            caller = getattr(self.app.state, "caller", None) if self.app is not None else None
            if caller is not None:
                await asyncio.to_thread(caller.shutdown)
            self._close_stores()
            self.close_sockets()
            self.tracer.close()
        return status

    @staticmethod
    def _config(app: Starlette, access_log: bool) -> uvicorn.Config:
        """No proxy headers: the services are not behind a proxy, and uvicorn would otherwise believe
        any local client's X-Forwarded-For (and wrap every request in a middleware to read it)."""
        return uvicorn.Config(app, lifespan="off", log_level="warning", access_log=access_log,
                              timeout_graceful_shutdown=10, timeout_keep_alive=KEEP_ALIVE_SECONDS,
                              proxy_headers=False)

    def _watch_parent(self, parent: int) -> None:
        """Test-only: a target that died without stopping its processes must not leave a worker behind
        that keeps taking partitions from the next run's worker."""
        while os.getppid() == parent:
            time.sleep(0.5)
        log.warning("parent %d is gone: stopping", parent)
        self.request_stop()

    def _stop_loops(self) -> None:
        for component_loop in self.loops.values():
            component_loop.stop()

    def _close_stores(self) -> None:
        for unlisten in getattr(self, "_unlisten", ()):
            try:
                unlisten()
            except Exception:
                log.exception("stopping an outbox listener failed")
        for resource in (self.system.payment_store, self.system.course_store, self.system.cache, self.system.bus):
            close = getattr(resource, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.exception("closing %s failed", type(resource).__name__)

    def close_sockets(self) -> None:
        for sock in (getattr(self, "service_socket", None), getattr(self, "control_socket", None)):
            if sock is not None:
                sock.close()

    def health(self) -> dict[str, Any]:
        return {
            "process": self.options.kind,
            "pid": os.getpid(),
            "components": {name: loop.state for name, loop in self.loops.items()},
            "paused": self.pauses.held(),
            "defects": sorted(self.system.settings.defects),
            "service": self.service_url,
        }


def _nothing() -> None:
    return None


# --- the control endpoint ---------------------------------------------------------------------------


def control_app(process: ComponentProcess) -> Starlette:
    """The test-only control endpoint of one process (only when started with a control port).

    GET  /health                          process, pid, each loop's state, held reads, defects
    POST /faults   {resource, times, op, after}  Faults.fail_next (shared by every process given the same file)
    POST /crash    {point}                arm a crash point this process owns
    POST /reset                           clear faults, disarm crash points, release held reads
    POST /hold     {components?}          hold loops (all by default); returns once they are still
    POST /resume   {components?}          let them run freely
    POST /step     {component, times}     take `times` steps of a loop now; answers how many were taken
    POST /components/{name}/stop|kill|restart   a loop that shares its process (the cache invalidator)
    POST /pause    {student}              hold that student's next learning read between its halves
    POST /release  {student}              let it finish
    GET  /paused                          students whose read is held"""

    async def body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        data = json.loads(raw) if raw.strip() else {}
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        return data

    def error(status: int, message: str) -> Response:
        return JSONResponse({"error": message}, status)

    def loops_named(data: dict[str, Any]) -> list[ComponentLoop] | None:
        names = data.get("components")
        if names is None:
            return list(process.loops.values())
        if any(name not in process.loops for name in names):
            return None
        return [process.loops[name] for name in names]

    async def health(request: Request) -> Response:
        return JSONResponse(process.health())

    async def faults(request: Request) -> Response:
        data = await body(request)
        process.system.faults.fail_next(str(data["resource"]), int(data.get("times", 1)), data.get("op"),
                                        int(data.get("after", 0)))
        return JSONResponse({"pending": process.system.faults.pending()})

    async def crash(request: Request) -> Response:
        point = str((await body(request))["point"])
        if point not in CRASH_POINTS:
            return error(404, f"no crash point {point!r}")
        process.system.crash_points.arm(point)
        return JSONResponse({"armed": point})

    async def reset(request: Request) -> Response:
        process.system.faults.clear()
        process.system.crash_points.disarm_all()
        process.pauses.release_all()
        return JSONResponse(process.health())

    async def hold(request: Request) -> Response:
        chosen = loops_named(await body(request))
        if chosen is None:
            return error(404, "no such component in this process")

        def hold_all() -> bool:
            return all(component_loop.hold() for component_loop in chosen)

        still = await run_in_threadpool(hold_all)
        return JSONResponse({"held": still, **process.health()}, 200 if still else 504)

    async def resume(request: Request) -> Response:
        chosen = loops_named(await body(request))
        if chosen is None:
            return error(404, "no such component in this process")
        for component_loop in chosen:
            component_loop.resume()
        return JSONResponse(process.health())

    async def step(request: Request) -> Response:
        data = await body(request)
        component_loop = process.loops.get(str(data.get("component")))
        if component_loop is None:
            return error(404, "no such component in this process")
        taken = await run_in_threadpool(component_loop.step_n, int(data.get("times", 1)))
        return JSONResponse({"steps": taken, **process.health()})

    async def component(request: Request) -> Response:
        component_loop = process.loops.get(request.path_params["name"])
        if component_loop is None:
            return error(404, "no such component in this process")
        action = request.path_params["action"]
        if action == "stop":
            await run_in_threadpool(component_loop.stop)
        elif action == "kill":
            await run_in_threadpool(component_loop.kill)
        elif action == "restart":
            component_loop.start(held=True)
            process.tracer.emit(component_loop.name, "started")
        else:
            return error(404, f"no action {action!r}")
        return JSONResponse(process.health())

    async def pause(request: Request) -> Response:
        process.pauses.request(str((await body(request))["student"]))
        return JSONResponse({"paused": process.pauses.held()})

    async def release(request: Request) -> Response:
        data = await body(request)
        if "student" in data:
            process.pauses.release(str(data["student"]))
        else:
            process.pauses.release_all()
        return JSONResponse({"paused": process.pauses.held()})

    async def paused(request: Request) -> Response:
        return JSONResponse({"paused": process.pauses.held()})

    async def bad_input(request: Request, exc: Exception) -> Response:
        return error(400, f"{type(exc).__name__}: {exc}")

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/faults", faults, methods=["POST"]),
            Route("/crash", crash, methods=["POST"]),
            Route("/reset", reset, methods=["POST"]),
            Route("/hold", hold, methods=["POST"]),
            Route("/resume", resume, methods=["POST"]),
            Route("/step", step, methods=["POST"]),
            Route("/components/{name}/{action}", component, methods=["POST"]),
            Route("/pause", pause, methods=["POST"]),
            Route("/release", release, methods=["POST"]),
            Route("/paused", paused, methods=["GET"]),
        ],
        exception_handlers={KeyError: bad_input, ValueError: bad_input, TypeError: bad_input},
    )
