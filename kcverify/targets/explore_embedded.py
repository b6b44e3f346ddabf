"""The explorer's target: the embedded reference, observed and called a little more directly
(`kcverify explore` hands it to the explorer, which knows only its protocol, explore.ObservingTarget).

`ObservedTarget` is the `EmbeddedTarget` (same system, same bootstrap, same ASGI apps) with two
differences, both for the explorer's sake:
- it keeps a digest of everything a schedule observed (every HTTP exchange, every answered split read,
  the final snapshot with every record and trace) and what its crash points and faults did, for the
  exploration's history digest (determinism) and its coverage table;
- it calls the ASGI apps directly instead of through httpx: one scope and one body message per request,
  on one private event loop. httpx's request building and URL parsing cost a schedule more than the
  apps themselves; the apps see the same method, path, headers and body, and the replay of every
  finding (`kcverify run`, through httpx) confirms the result does not depend on the difference;
- it builds the two apps once and keeps them across schedules: each app calls the service of whichever
  system runs now (`_Current`), so a schedule's requests go through the same routes, middleware and
  handlers as a freshly built app's, without building routes and middleware again per schedule."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Coroutine, Generator, Mapping, MutableMapping
from typing import Any, cast

from kcverify.core.clock import ManualClock
from kcverify.core.errors import SimulatedCrash
from kcverify.reference import payment_api, student_api
from kcverify.reference.adapters.embedded_bus import EmbeddedBus
from kcverify.reference.adapters.memory_cache import MemoryCache
from kcverify.reference.adapters.sqlite_store import SqliteCourseStore, SqlitePaymentStore
from kcverify.reference.bootstrap import System, bootstrap
from kcverify.reference.payment_service import PaymentService
from kcverify.reference.settings import Settings
from kcverify.reference.student_service import StudentService
from kcverify.targets.base import HttpReply, Snapshot
from kcverify.targets.embedded import EmbeddedTarget


class DirectAsgi:
    """Calls an ASGI app in this process with a hand-built scope: no client library, no sockets."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._app = app
        self._loop = loop

    def request(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> HttpReply:
        raw_headers = [(b"host", b"embedded")]
        raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        if body or method in ("POST", "PUT", "PATCH"):
            raw_headers.append((b"content-length", str(len(body)).encode()))
        path_only, _, query = path.partition("?")
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": "http", "path": path_only, "raw_path": path_only.encode(), "root_path": "",
                 "query_string": query.encode(), "headers": raw_headers, "server": ("embedded", 80),
                 "client": ("127.0.0.1", 50000)}
        messages: list[MutableMapping[str, Any]] = []
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            messages.append(message)

        _drive(self._app(scope, receive, send), self._loop)
        status = 500
        reply_headers: dict[str, str] = {}
        chunks: list[bytes] = []
        for message in messages:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for key, value in message.get("headers", []):
                    name, text = key.decode("latin-1").lower(), value.decode("latin-1")
                    reply_headers[name] = f"{reply_headers[name]}, {text}" if name in reply_headers else text
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
        return HttpReply(status, reply_headers, b"".join(chunks))


def _drive(coro: Coroutine[Any, Any, None], loop: asyncio.AbstractEventLoop) -> None:
    """Run an app call to its end. The embedded apps call their services inline and await only the
    request's own `receive`/`send`, which never suspend: stepping the coroutine once finishes it, with no
    task and no event-loop round. Should an app ever really suspend, the rest of the call runs on `loop`."""
    try:
        pending = coro.send(None)
    except StopIteration:
        return
    loop.run_until_complete(_Resumed(coro, pending).run())


class _Resumed:
    """A coroutine already started by hand, finished under a running event loop (see `_drive`)."""

    def __init__(self, coro: Coroutine[Any, Any, None], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    async def run(self) -> None:
        await self

    def __await__(self) -> Generator[Any, Any, None]:
        pending = self._pending
        while True:
            try:
                value = yield pending
            except BaseException as exc:  # thrown in by the loop: hand it to the coroutine
                try:
                    pending = self._coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    pending = self._coro.send(value)
                except StopIteration:
                    return


TOKENS_KEPT = 4096  # tokens remembered (see ObservedTarget.token); forgotten all at once when full


class _Current:
    """Stands in for one service of the system that runs now (`system.payment_service` or
    `system.student_service`), so an app built once calls each schedule's own service."""

    def __init__(self, target: EmbeddedTarget, service: str) -> None:
        self._target = target
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(getattr(self._target.system, self._service), name)


class ObservedTarget(EmbeddedTarget):
    """See the module docstring."""

    def __init__(self, *, defects: frozenset[str] = frozenset()) -> None:
        super().__init__(defects=defects)
        self.evidence = hashlib.sha256()
        self.fired: list[tuple[str, str]] = []  # (component, crash point) of every crash
        self.injected: Counter[str] = Counter()  # "resource.op" -> calls that failed
        self.left_down: frozenset[str] = frozenset()  # components down after the final settle
        self._last: Snapshot | None = None
        self._tokens: dict[tuple[str, str, str, float, float], str] = {}
        self._loop = asyncio.new_event_loop()
        payments = cast(PaymentService, _Current(self, "payment_service"))
        students = cast(StudentService, _Current(self, "student_service"))
        self._direct = {"payment-service": DirectAsgi(payment_api.create_app(payments), self._loop),
                        "student-service": DirectAsgi(student_api.create_app(students), self._loop)}
        self._stores: tuple[SqlitePaymentStore, SqliteCourseStore] | None = None  # kept across schedules

    def _bootstrap(self, settings: Settings) -> System:
        """The system of a new schedule on this target's two in-memory stores, emptied (a deserialized
        schema image) instead of opened anew: a new connection and the TEMP triggers of the snapshot's
        change tracking cost more than some schedules' steps. Everything else is new, as in
        EmbeddedTarget: the same bootstrap, clock, bus, cache, ids and components."""
        if settings.mode != "embedded" or settings.payments_sqlite or settings.courses_sqlite:
            return super()._bootstrap(settings)
        clock = ManualClock()
        if self._stores is None:
            self._stores = (SqlitePaymentStore(clock=clock), SqliteCourseStore(clock=clock))
        else:
            for store in self._stores:
                store.reset(clock)
        return bootstrap(settings, clock=clock, adapters=(*self._stores, EmbeddedBus(clock), MemoryCache(clock)))

    def reset(self) -> None:
        """Forget the previous schedule's observations."""
        self.evidence = hashlib.sha256()
        self.fired, self.injected, self.left_down, self._last = [], Counter(), frozenset(), None

    def start(self, *, seed: int) -> None:
        # EmbeddedTarget.start, without the httpx clients this target does not use: a fresh system from
        # the same settings; the two apps, called directly on one event loop, are kept for every schedule.
        self._fresh_system(seed)

    def http(self, service: str, method: str, path: str, *, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> HttpReply:
        try:
            reply = self._direct[service].request(method, path, body or b"", headers or {})
        except SimulatedCrash as crash:  # as EmbeddedTarget.http: the service died mid-request
            self.system.tracer.emit(service, "crashed", point=crash.point)
            reply = HttpReply(None, {}, b"", error=f"no response: {service} crashed at {crash.point}")
        self.evidence.update(f"{service} {method} {path} {headers!r} {body!r} {reply!r}".encode())
        return reply

    def token(self, subject: str, role: str) -> str:
        """EmbeddedTarget.token, remembered: a token is a pure function of the secret, the subject, the
        role, the clock's time and the TTL, and schedules ask for the same few at the same few times."""
        settings = self.system.settings
        key = (settings.auth_secret, subject, role, self.now(), settings.token_ttl)
        token = self._tokens.get(key)
        if token is None:
            if len(self._tokens) >= TOKENS_KEPT:
                self._tokens.clear()
            token = self._tokens[key] = super().token(subject, role)
        return token

    def finish_read(self, handle: Any) -> HttpReply:
        reply = super().finish_read(handle)
        self.evidence.update(f"finish_read {reply!r}".encode())
        return reply

    def snapshot(self) -> Snapshot:
        self._last = super().snapshot()
        return self._last

    def stop(self) -> None:
        system = self._system
        if system is not None:
            self.fired = list(system.crashed)
            self.injected = Counter(system.faults.injected)
            if self._last is not None:
                self.left_down = self._last.down
                self.evidence.update(_snapshot_bytes(self._last))
        super().stop()

    def close(self) -> None:
        """Release the event loop (the target cannot be started again)."""
        self.stop()
        self._loop.close()
        if self._stores is not None:
            for store in self._stores:
                store.close()
            self._stores = None


def _snapshot_bytes(snapshot: Snapshot) -> bytes:
    """The snapshot as stable bytes. repr() is exact and fast for its lists and dicts, whose order is the
    system's own (deterministic); only the set of down components is sorted (set order is per process)."""
    s = snapshot
    return repr((s.at, s.payments, s.purchases, s.topics, s.end_offsets, s.committed, s.traces,
                 sorted(s.down))).encode()
