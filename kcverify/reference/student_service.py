"""The student service: the cached learning view (S1-S5) and the PURCHASE_CREATED cache invalidator.

Freshness (S3) needs more than a single invalidation at payment confirmation, which runs
BEFORE the purchase exists: the invalidator deletes the key again when PURCHASE_CREATED arrives, and
the read path stores only if the key's version is unchanged since before it loaded, so a read that
loaded old rows cannot re-cache them after an invalidation (the stale-set race).

The read is split in two (`begin_read` loads, `finish_read` stores and answers) so a scheduler can
run a purchase and an invalidation between the two halves."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from kcverify import contracts
from kcverify.core.clock import Clock, rfc3339
from kcverify.core.errors import BusUnavailable, CacheUnavailable, StoreUnavailable
from kcverify.reference import domain
from kcverify.reference.auth import InvalidToken, principal_from_header, unverified_principal
from kcverify.reference.defects import Defects
from kcverify.reference.domain import Purchase
from kcverify.reference.instrument import CrashPoints, Tracer
from kcverify.reference.membership import GroupMember
from kcverify.reference.ports import Bus, Cache, Consumer, CourseStore, Message
from kcverify.reference.problems import Problem, bad_request, forbidden, unauthorized, unavailable
from kcverify.reference.settings import Settings
from kcverify.spec import names

COMPONENT = "student-service"
CACHE_NAME = names.CACHE_STATUS_NAME
STUDENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"


@dataclass(frozen=True)
class LearningResponse:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class PendingRead:
    """The first half of a read: a cache hit, or rows loaded (or a load error) and the key's version
    as it was BEFORE the load."""

    student_id: str
    started_at: float
    hit: bytes | None = None
    hit_stored_at: float = 0.0
    rows: tuple[Purchase, ...] = ()
    loaded_at: float = 0.0
    version: int | None = None  # None: the cache was unavailable
    error: str | None = None


def render_view(student_id: str, rows: tuple[Purchase, ...], generated_at: float) -> bytes:
    view = {
        "studentId": student_id,
        "purchases": [p.to_json() for p in rows],
        "generatedAt": rfc3339(generated_at),
    }
    return json.dumps(view, separators=(",", ":")).encode()


class StudentService:
    def __init__(self, *, courses: CourseStore, cache: Cache, clock: Clock, settings: Settings,
                 defects: Defects, tracer: Tracer) -> None:
        self._courses = courses
        self._cache = cache
        self._clock = clock
        self._settings = settings
        self._defects = defects
        self._tracer = tracer
        # Test-only pause point between the two halves of a served read (rows loaded and version taken,
        # nothing stored yet). The real stack's control endpoint sets it to hold one student's read
        # there, which is what the embedded target's begin_read/finish_read do in-process. None: off.
        self.between_halves: Callable[[PendingRead], None] | None = None

    def crashes_on(self, student_id: str) -> bool:
        """The malformed-student-id-html-500 defect: a malformed id is not checked first, the lookup raises,
        and the framework's default error page answers (student_api)."""
        return self._defects.on("malformed-student-id-html-500") and not re.fullmatch(STUDENT_ID_PATTERN, student_id)

    def authorize(self, authorization: str | None, student_id: str, *, admin_only: bool = False) -> None:
        """S1/S4: 401 without a valid bearer token; 403 for anyone but the student (or an admin)."""
        _check_student_id(student_id)
        if not authorization and self._defects.on("learning-view-anonymous-allowed"):
            return  # "the guard runs when a token is sent": no token, no check
        try:
            if self._defects.on("token-signature-unverified"):  # "the gateway verified it already"
                principal = unverified_principal(authorization)
            else:
                expiry_clock = -math.inf if self._defects.on("token-expiry-ignored") else self._clock.now()
                principal = principal_from_header(self._settings.auth_secret, authorization, now=expiry_clock)
        except InvalidToken as exc:
            raise unauthorized(f"bearer token required: {exc}") from exc
        if admin_only:
            if principal.role != "admin":
                raise forbidden("only an admin may invalidate the cache")
        elif not (principal.may_read(student_id) or self._defects.on("learning-view-ignores-authz")
                  or (self._defects.on("authz-ignores-case") and principal.subject.lower() == student_id.lower())):
            raise forbidden(f"{principal.subject} may not read the learning view of {student_id}")

    def read(self, student_id: str) -> LearningResponse:
        pending = self.begin_read(student_id)
        if self.between_halves is not None:
            self.between_halves(pending)
        return self.finish_read(pending)

    def begin_read(self, student_id: str) -> PendingRead:
        _check_student_id(student_id)
        key = domain.cache_key(student_id)
        now = self._clock.now()
        version: int | None
        try:
            entry = self._cache.get(key)
            if entry is not None:
                return PendingRead(student_id, now, hit=entry.value, hit_stored_at=entry.stored_at)
            version = self._cache.version(key)
        except CacheUnavailable as exc:  # S5: fall back to the database, never an error
            if self._defects.on("cache-lookup-error-503"):  # "the cache is part of the read path"
                raise unavailable(f"cache unavailable: {exc}") from exc
            self._tracer.emit(COMPONENT, "cache_unavailable", studentId=student_id, error=str(exc))
            version = None
        try:
            rows = tuple(self._courses.purchases_for_student(student_id))
            if self._defects.on("view-query-ignores-case"):  # WHERE student_id ILIKE %s
                rows = tuple(sorted((p for p in self._courses.all_purchases()
                                     if p.student_id.lower() == student_id.lower() and p.is_active),
                                    key=lambda p: (p.created_at, p.id)))
            if self._defects.on("view-first-page-only"):  # the query's page size, never a second page
                rows = rows[:10]
        except StoreUnavailable as exc:
            return PendingRead(student_id, now, version=version, error=str(exc), loaded_at=self._clock.now())
        return PendingRead(student_id, now, rows=rows, loaded_at=self._clock.now(), version=version)

    def finish_read(self, pending: PendingRead) -> LearningResponse:
        now = self._clock.now()
        key = domain.cache_key(pending.student_id)
        if pending.hit is not None:
            age = 0 if self._defects.on("hit-age-always-zero") else max(0, math.floor(now - pending.hit_stored_at))
            return self._respond(pending, 200, pending.hit, {"Age": str(age), "Cache-Status": f"{CACHE_NAME}; hit"})
        if pending.error is not None:
            if self._defects.on("errors-cached") and pending.version is not None:
                empty = render_view(pending.student_id, (), pending.loaded_at)
                self._store(key, empty, pending.version)
            raise unavailable(f"courses database unavailable: {pending.error}")  # S2: errors are never cached
        rows = pending.rows
        if self._defects.on("view-created-at-is-read-time"):  # the template's `now()` where `createdAt` was meant
            rows = tuple(replace(p, created_at=pending.loaded_at) for p in rows)
        body = render_view(pending.student_id, rows, pending.loaded_at)
        stored = pending.version is not None and self._store(key, body, pending.version)
        stored = stored or self._defects.on("cache-status-always-stored")  # "we always cache a miss"
        status = f"{CACHE_NAME}; fwd=miss" + ("; stored" if stored else "")
        return self._respond(pending, 200, body, {"Age": "0", "Cache-Status": status})

    def _store(self, key: str, body: bytes, version: int) -> bool:
        try:
            if self._defects.on("stale-set-race"):
                self._cache.set(key, body, self._settings.cache_ttl, self._clock.now())
                return True
            return self._cache.set_if_version(key, body, self._settings.cache_ttl, version, self._clock.now())
        except CacheUnavailable:
            if self._defects.on("cache-store-error-500"):  # the lookup's fallback was written; the store's was not
                raise
            return False

    def _respond(self, pending: PendingRead, status: int, body: bytes, headers: dict[str, str]) -> LearningResponse:
        self._tracer.emit(COMPONENT, "learning_read", studentId=pending.student_id, startedAt=pending.started_at,
                          loadedAt=pending.loaded_at, cacheStatus=headers["Cache-Status"])
        return LearningResponse(status, body, {"Content-Type": "application/json", **headers})

    def invalidate(self, student_id: str) -> None:
        """S4: at once. A down cache is an error here: the caller asked for this and must know."""
        _check_student_id(student_id)
        key = student_id.strip().lower() if self._defects.on("admin-invalidate-lowercases-id") else student_id
        try:
            self._cache.delete(domain.cache_key(key))
        except CacheUnavailable as exc:
            if not self._defects.on("admin-invalidate-ignores-cache-down"):  # "nothing is cached if it is down"
                raise unavailable(f"cache unavailable: {exc}") from exc
            self._tracer.emit(COMPONENT, "cache_invalidation_failed", studentId=student_id, error=str(exc))
        self._tracer.emit(COMPONENT, "cache_invalidated", studentId=student_id, by="admin")


def _check_student_id(student_id: str) -> None:
    if not re.fullmatch(STUDENT_ID_PATTERN, student_id):
        raise bad_request(f"student id {student_id!r} is malformed")


class CacheInvalidator:
    """Consumes PURCHASE_CREATED and deletes the student's learning key (S3's second invalidation).
    A malformed event is logged and skipped (the consumer keeps going); a cache outage is retried."""

    def __init__(self, *, bus: Bus, cache: Cache, clock: Clock, defects: Defects, crash: CrashPoints,
                 tracer: Tracer, retry_after: float = 1.0) -> None:
        self._bus = bus
        self._cache = cache
        self._clock = clock
        self._defects = defects
        self._crash = crash
        self._tracer = tracer
        self._retry_after = retry_after
        self._member = GroupMember(bus, domain.INVALIDATOR_GROUP, [domain.TOPIC_CREATED], on_commit=self._committed)
        self._pending: tuple[Any, float] | None = None

    @property
    def consumer(self) -> Consumer:
        return self._member.consumer

    def start(self) -> None:
        self._member.start()

    def close(self) -> None:
        self._member.close()

    def abandon(self) -> None:
        self._pending = None
        self._member.abandon()

    def next_wakeup(self) -> float | None:
        return self._pending[1] if self._pending else None

    def poll_once(self, timeout: float = 0.0) -> bool:
        """True when it did something."""
        if self._pending is not None:
            message, due = self._pending
            if self._clock.now() < due:
                return False
        else:
            try:
                message = self._member.poll(timeout)  # commits the handled records before it waits
            except BusUnavailable as exc:  # joining or polling failed (the broker away): try again at a later step
                self._tracer.emit(COMPONENT, "poll_failed", error=str(exc))
                return False
            if message is None:
                return False
            if self._defects.on("invalidator-commits-before-delete"):  # "acknowledge early, deleting is cheap"
                self._member.handled(message)
                self._member.flush()
            self._crash.hit("invalidator.after_poll")
        try:
            event = json.loads(message.value)
            problems = [str(v) for v in contracts.validate("events/purchase-created", event)]
        except (ValueError, UnicodeDecodeError) as exc:
            event, problems = None, [str(exc)]
        if problems or not isinstance(event, dict):
            self._tracer.emit(COMPONENT, "invalid_event_skipped", offset=message.offset,
                              error="; ".join(str(p) for p in problems[:3]))
        elif not self._defects.on("invalidate-at-confirm-only"):
            student_id = event["payload"]["studentId"]
            try:
                key = student_id.lower() if self._defects.on("invalidator-lowercases-key") else student_id
                self._cache.delete(domain.cache_key(key))
            except CacheUnavailable as exc:
                if self._defects.on("invalidator-gives-up-on-cache-error"):  # "the TTL will clean it up"
                    self._tracer.emit(COMPONENT, "invalidation_failed", studentId=student_id, error=str(exc))
                    self._member.handled(message)
                    return True
                self._pending = (message, self._clock.now() + self._retry_after)
                self._tracer.emit(COMPONENT, "invalidation_retry", studentId=student_id, error=str(exc))
                self._member.flush()  # nothing else is polled while this one waits: commit what was handled
                return True
            self._tracer.emit(COMPONENT, "cache_invalidated", studentId=student_id, by="purchase-created",
                              eventId=event["eventId"])
        self._pending = None
        self._member.handled(message)  # committed with the rest of its batch (membership.py)
        return True

    def _committed(self, message: Message, note: str, error: BusUnavailable | None) -> None:
        if error is not None:  # redelivered to the partition's new owner: deleting twice is harmless
            self._tracer.emit(COMPONENT, "commit_failed", offset=message.offset, error=str(error))


__all__ = ["CacheInvalidator", "LearningResponse", "PendingRead", "Problem", "StudentService"]
