"""The external target: a user's own running services, described by a profile (docs/external.md).

Built from `TargetOptions.settings["profile"]` (`kcverify run --target external --profile FILE`, or
`[run] profile` in kcverify.toml). What it does in this version:
- HTTP: the engine's canonical operations are sent through the profile's templates with credentials
  made per call, and the answers translated back into the canonical shapes (http.py).
- Databases: `snapshot()` reads the payments and purchases of the scenario's students through the
  profile's named queries (db.py): capability `read_db` when both queries are configured.
- Time is real: no clock control. A settle waits until the observed rows stop changing and every
  succeeded payment has its purchase (or the bound is hit).
- Namespaces: the system is shared and never wiped, so each scenario gets fresh student ids
  (`{run}{n}-{name}`) and sees only the rows of its own students.
- Preconditions: the profile's statements and calls that make a student's and a course's rows before
  the first payment of each pair, and its cleanup when a scenario stops (preconditions.py).
- Kafka (bus.py, envelope.py): `snapshot()` also shows the records of the profile's topics since the
  scenario began, translated to the canonical topics, envelopes and keys (`read_bus`), the end offsets and
  the declared groups' committed offsets under the canonical group names; `publish` writes a canonical
  event in the system's envelope (`produce_events`); `replay_dlq` re-publishes the scenario's dead letters.
- The cache (cache.py): a student's key, its presence and TTL (`cache_entry`).
- Conventions (conventions.py): `conventions` is what the checks judge the system by (the profile's
  declarations over the rules' defaults); the CLI hands it to the Runner.
- Control (control.py): with pause, resume, stop, kill and start commands for every component a scenario
  can name, `control_components`: the components are held (paused) between steps as on the processes
  target; `settle` resumes them until the rows are quiet and pauses them again, `run` does that for one
  component, `kill`/`stop` run those commands and `restart` starts a component a step left down.
- Faults (control.py): a `control.faults` command, the system's own fault hook, gives `inject_faults`.

Crash points are the reference's instrumentation: the target never declares crash_components, so the
scenarios and checks that need them are skipped with the reason, never passed."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kcverify.core.clock import SystemClock
from kcverify.core.errors import InputError, TargetUnreachable
from kcverify.spec import names, policy
from kcverify.targets.base import HttpReply, RecordId, Snapshot, TargetInfo
from kcverify.targets.external.auth import Credentials
from kcverify.targets.external.control import Control, ControlError
from kcverify.targets.external.conventions import conventions_of
from kcverify.targets.external.db import Databases
from kcverify.targets.external.http import CANONICAL_STATUS, HttpSide, recognise
from kcverify.targets.external.preconditions import PreconditionError, Preconditions
from kcverify.targets.external.profile import Profile, load_profile
from kcverify.targets.http_client import http_client

if TYPE_CHECKING:
    from kcverify.targets.base import CacheEntry
    from kcverify.targets.external.bus import Bus
    from kcverify.targets.external.cache import Cache
    from kcverify.targets.registry import TargetOptions

SETTLE_QUIET = 1.0
SETTLE_TIMEOUT = 30.0
SETTLE_POLL = 0.1
HTTP_TIMEOUT = 30.0
# The components without which a succeeded payment may stay without its purchase: a settle does not wait
# for the purchase while one of them is down (as on the processes target).
PURCHASE_MAKERS = frozenset({"payment-relay", "purchase-worker", "reconciler"})
# The consumer group each consuming component works in, and the topic it consumes: a settle waits until the
# group has committed the topic's end (a worker between two attempts changes nothing for seconds).
CONSUMERS = {"purchase-worker": names.group_topic(names.WORKER_GROUP, names.TOPIC_CONFIRMED),
             "cache-invalidator": names.group_topic(names.INVALIDATOR_GROUP, names.TOPIC_CREATED)}


class ExternalTarget:
    """A user's running services, described by a profile (--profile FILE)."""

    # What the registry lists without building one (kcverify.targets.registry): at most these; the
    # instance's `info` says what its profile configures.
    description = "your own running services, described by a profile (--profile FILE, docs/external.md)"
    capabilities = frozenset({"http", "read_db", "read_bus", "produce_events", "control_components", "inject_faults",
                              "read_cache"})
    isolated = False  # one shared system

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        conventions = profile.section("conventions")
        self.info = TargetInfo(
            name="external",
            capabilities=profile.capabilities,
            freshness_bound=float(conventions.get("freshness_bound", policy.FRESHNESS_BOUND_REAL)),
        )
        self._quiet = float(conventions.get("settle_quiet", SETTLE_QUIET))
        self._settle_timeout = float(conventions.get("settle_timeout", SETTLE_TIMEOUT))
        self._clock = SystemClock()
        self._credentials = Credentials(profile)
        self._client = http_client(HTTP_TIMEOUT)
        self._http = HttpSide(profile, self._credentials, self._client)
        self._db = Databases(profile) if "read_db" in self.info.capabilities else None
        self.conventions = conventions_of(profile)  # what the checks judge by (cli/run.py hands it on)
        self._bus: Bus | None = None
        self._cache: Cache | None = None
        self._preconditions = Preconditions(profile, self._client, {
            name: self._http.base_url(name) for name in profile.section("http", "services")})
        self._cleanup_error: PreconditionError | None = None
        self._control = Control(profile) if {"control_components", "inject_faults"} & self.info.capabilities \
            else None
        self._created: list[tuple[str, str, str]] = []  # (paymentId, studentId, courseId), this scenario's
        view = profile.operation("learning_view") or {}
        self._view_lacks_payment_ids = bool(view.get("fields")) and "paymentId" not in view["fields"]
        self._run = f"x{uuid.uuid4().hex[:6]}-"
        self._scenario = 0
        self._prefix = f"{self._run}0-"

    @classmethod
    def from_options(cls, options: TargetOptions) -> ExternalTarget:
        """The registry's factory: the profile comes from the setting `profile` (a path)."""
        path = options.settings.get("profile")
        if not path:
            raise InputError("the external target needs a profile",
                             hint="kcverify run --target external --profile FILE, or `profile` in [run] of "
                                  "kcverify.toml; docs/external.md")
        return cls(load_profile(Path(str(path))))

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self, *, seed: int) -> None:
        """A fresh namespace (the seed does not apply: the system makes its own ids); the topics are read
        from their current end on."""
        self._scenario += 1
        self._prefix = f"{self._run}{self._scenario}-"
        if self._scenario == 1:
            self._require_reachable()
        failed, self._cleanup_error = self._cleanup_error, None
        if failed is not None:
            raise failed  # the previous scenario's cleanup: the runner reports it on this one
        self._preconditions.begin(self._prefix)
        self._created = []
        if self._control is not None:  # what the last scenario left down comes back; everything held
            for component in sorted(self._control.down):
                self._control.start(component)
            self._control.pause([c for c in self._control.pausable() if c not in self._control.held])
        if self._bus_wanted():
            with self._bus_errors():
                self._kafka().mark()

    def _require_reachable(self, services: list[str] | None = None) -> None:
        """TargetUnreachable naming every part of the system that does not answer (all of them, or only
        the HTTP `services` after a call to one got no answer)."""
        from kcverify.targets.external.reachability import missing_parts

        base_urls = {name: self._http.base_url(name) for name in self.profile.section("http", "services")}
        parts = missing_parts(self.profile, self._client, base_urls, services)
        if parts:
            raise TargetUnreachable(f"the system of {self.profile.file} is not reachable: {'; '.join(parts)}; "
                                    f"`kcverify profile check {self.profile.file}` probes every part")

    def _bus_wanted(self) -> bool:
        return bool({"read_bus", "produce_events"} & self.info.capabilities)

    def _kafka(self) -> Bus:
        if self._bus is None:
            from kcverify.targets.external.bus import Bus
            from kcverify.targets.external.envelope import topic_maps

            groups = {role: str(name) for role, name in self.profile.section("kafka", "groups").items()}
            self._bus = Bus(self.profile.secret("kafka", "bootstrap"), topic_maps(self.profile), groups)
        return self._bus

    @contextmanager
    def _bus_errors(self) -> Iterator[None]:
        """The broker gone or a topic missing ends the run (exit 2) with what failed."""
        from kcverify.targets.external.bus import BusError

        try:
            yield
        except BusError as exc:
            raise TargetUnreachable(f"Kafka ({self.profile.file}): {exc}") from exc

    def stop(self) -> None:
        """Nothing to stop: the system is the user's and keeps running. The profile's cleanup runs."""
        try:
            self._preconditions.cleanup()
        except PreconditionError as exc:
            self._cleanup_error = exc

    def close(self) -> None:
        """The system is left as it was found: every component a step left down started, all resumed. A
        command that fails here ends the run loudly (exit 2): the user's system may be left held."""
        try:
            if self._control is not None:
                for component in sorted(self._control.down):
                    self._control.start(component)
                self._control.resume(self._control.pausable())
        except ControlError as exc:
            raise TargetUnreachable(f"could not leave the components running at the end of the run: {exc}") from exc
        finally:
            self._close_clients()

    def _close_clients(self) -> None:
        self._preconditions.close()
        self._client.close()
        if self._bus is not None:
            self._bus.close()
        if self._cache is not None:
            self._cache.close()
        if self._db is not None:
            self._db.close()

    def now(self) -> float:
        return self._clock.now()

    def student_id(self, name: str) -> str:
        return f"{self._prefix}{name}"

    # --- HTTP ----------------------------------------------------------------------------------------

    def http(self, service: str, method: str, path: str, *, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> HttpReply:
        if self._preconditions.configured and (recognise(method, path) or ("",))[0] == "create_payment":
            fields = _json_object(body)
            student, course = fields.get("studentId"), fields.get("courseId")
            try:
                if isinstance(student, str) and isinstance(course, str):
                    self._preconditions.before_payment(student, course)
            except PreconditionError as exc:
                return HttpReply(None, {}, b"", error=str(exc))
        reply = self._http.send(method, path, body=body, headers=dict(headers or {}),
                                token=lambda subject, role: self.token(subject, role))
        if reply.status is None and reply.error.startswith("no response from"):
            self._unanswered(method, path)
        found = recognise(method, path)
        if found is not None and reply.status == CANONICAL_STATUS[found[0]]:
            if found[0] == "create_payment":
                payment = _json_object(reply.body)
                self._created.append((str(payment.get("id")), str(payment.get("studentId")),
                                      str(payment.get("courseId"))))
            elif found[0] == "learning_view" and self._view_lacks_payment_ids:
                reply = self._matched(reply, str(found[1].get("studentId")))
        return reply

    def _matched(self, reply: HttpReply, student: str) -> HttpReply:
        """The view's purchases matched to their payments (view_match.py): the profile maps no paymentId."""
        from kcverify.targets.external.view_match import with_payment_ids

        by_purchase: dict[str, str] = {}
        if self._db is not None:
            with self._db_errors():
                rows = self._db.canonical("purchases", {"prefix": self._prefix})
            by_purchase = {str(r["purchaseId"]): str(r["paymentId"]) for r in rows if r.get("paymentId")}
        return with_payment_ids(reply, student, self._created, by_purchase)

    def _unanswered(self, method: str, path: str) -> None:
        """A call got no answer. Unless a step stopped the component that serves it, the run stops when its
        service no longer accepts connections at all; a service that is there but did not answer this one
        call (a crash inside the request, a timeout) is the scenario's evidence."""
        operation = (recognise(method, path) or ("",))[0]
        op = self.profile.operation(operation) if operation else None
        if op is None:
            return
        component = "payment-service" if operation in ("create_payment", "confirm", "read_payment") \
            else "student-service"
        if self._control is not None and component in self._control.down:
            return
        self._require_reachable([str(op["service"])])

    def sign(self, payment_id: str, body: bytes, at: float | None = None) -> str:
        """Signed over the bytes the system will receive (the confirm body template applied)."""
        sent = self._http.translated_body("confirm", {"paymentId": payment_id}, body)
        return self._credentials.sign(payment_id, sent, self.now() if at is None else at)

    def token(self, subject: str, role: str) -> str:
        return self._credentials.token(subject, role, self.now())

    def expired_token(self, subject: str, role: str) -> str:
        return self._credentials.token(subject, role, self.now(), expired=True)

    # --- state ---------------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        down = frozenset(self._control.down) if self._control is not None else frozenset()
        snapshot = Snapshot(at=self.now(), down=down)
        # The system runs while this reads: committed offsets first, then the records, then the rows, so
        # that nothing the snapshot shows committed is newer than the records and rows it shows (a purchase
        # made and its offset committed between reading the rows and the offsets would look lost).
        if "read_bus" in self.info.capabilities:
            from kcverify.targets.external.bus import group_offsets

            bus = self._kafka()
            with self._bus_errors():
                snapshot.committed = group_offsets(bus)
                bus.read_new()
                snapshot.topics = bus.records(self._prefix)
                snapshot.end_offsets = {t: dict(ends) for t, ends in bus.ends.items()}
        if self._db is not None:
            params = {"prefix": self._prefix}
            with self._db_errors():
                snapshot.payments = self._db.canonical("payments", params)
                snapshot.purchases = self._db.canonical("purchases", params)
        return snapshot

    @contextmanager
    def _db_errors(self) -> Iterator[None]:
        """A database that is gone, or a query the database refuses, ends the run (exit 2) with what failed:
        no scenario can be judged without its rows."""
        from kcverify.targets.external.db import QueryError

        try:
            yield
        except QueryError as exc:
            self._require_reachable()
            raise TargetUnreachable(f"{self.profile.file}: {exc} (`kcverify profile check {self.profile.file}` "
                                    f"runs every query)") from exc

    def cache_entry(self, student_id: str) -> CacheEntry:
        """The student's cache key: present or not, and its TTL (profile `cache`)."""
        if self._cache is None:
            from kcverify.targets.external.cache import Cache

            spec = self.profile.section("cache")
            if not spec:
                raise self._lacks("observe the cache (the profile has no cache section)")
            self._cache = Cache(self.profile.secret("cache", "url"), str(spec["key"]))
        return self._cache.observe(student_id)

    def run_free(self) -> None:
        """Let every component run on its own (`kcverify bench`): those the profile's control commands can
        pause are resumed; a system without control commands always runs free."""
        if self._control is not None:
            self._control.resume(self._control.pausable())

    def hold_all(self) -> None:
        """Hold again what `run_free` let go (the components the control commands can pause)."""
        if self._control is not None:
            self._control.pause(self._control.pausable())

    def settle(self, timeout: float | None) -> bool:
        """Real time: wait until the observed rows have not changed for `settle_quiet` seconds and every
        succeeded payment has its purchase (unless a component that makes purchases is down); False when
        the bound is hit first. Without queries there is nothing to observe: it waits `settle_quiet`
        seconds and reports quiet. Held components run meanwhile, and are held again after."""
        if self._control is None:
            return self._until_quiet(timeout, complete=True, consumers=set(CONSUMERS))
        running = self._control.pausable()
        self._control.resume(running)
        try:
            return self._until_quiet(timeout, complete=not PURCHASE_MAKERS & self._control.down,
                                     consumers=set(CONSUMERS) - self._control.down)
        finally:
            self._control.pause(running)

    def _until_quiet(self, timeout: float | None, *, complete: bool, consumers: Collection[str] = ()) -> bool:
        """Quiet: nothing observed changed for `settle_quiet` seconds, every succeeded payment has its purchase
        (when `complete`), and the groups of `consumers` have committed their topics' ends (when the bus is
        read)."""
        if self._db is None and "read_bus" not in self.info.capabilities:
            time.sleep(self._quiet)
            return True
        deadline = time.monotonic() + (timeout if timeout is not None else self._settle_timeout)
        last: Any = None
        since = time.monotonic()
        while True:
            snap = self.snapshot()
            state = (snap.payments, snap.purchases, {t: len(r) for t, r in snap.topics.items()}, snap.committed)
            now = time.monotonic()
            if state != last:
                last, since = state, now
            bought = {p.get("paymentId") for p in snap.purchases}
            done = not complete or all(p["id"] in bought for p in snap.payments if p.get("status") == "succeeded")
            if done and now - since >= self._quiet and _caught_up(snap, [CONSUMERS[c] for c in consumers]):
                return True
            if now >= deadline:
                return False
            time.sleep(SETTLE_POLL)

    # --- what this target does not have (its capabilities say so; the engine never calls these) -------

    def _lacks(self, what: str) -> NotImplementedError:
        return NotImplementedError(f"the external target does not {what} yet (see docs/external.md)")

    def publish(self, topic: str, key: str | None, value: bytes,
                headers: tuple[tuple[str, str], ...] = ()) -> RecordId:
        """A canonical record, produced in the system's shape to the system's topic (bus.Bus.publish)."""
        if "produce_events" not in self.info.capabilities:
            raise self._lacks("produce events (the profile configures no kafka.bootstrap and confirmed topic)")
        with self._bus_errors():
            return self._kafka().publish(topic, key, value, headers)

    # --- control (control.py; only with control_components) ---------------------------------------

    def _controlled(self) -> Control:
        if self._control is None:
            raise self._lacks("control components")
        return self._control

    def step_component(self, component: str, times: int) -> None:
        """`run`: that component alone resumed until the rows are quiet, then held again. A command cannot
        count steps: the component does all the work it has, `times` or more (docs/external.md)."""
        control = self._controlled()
        if component in control.down:
            return  # a component that is down does nothing, as on the processes target
        control.resume([component])
        try:
            self._until_quiet(None, complete=False, consumers={component} & set(CONSUMERS))
        finally:
            control.pause([component])

    def kill(self, component: str) -> None:
        self._controlled().kill(component)

    def stop_component(self, component: str) -> None:
        self._controlled().stop(component)

    def restart(self, component: str) -> None:
        """Brings back a component a step stopped or killed (started, ready, held); one that runs is left
        as it is, as on the processes target."""
        control = self._controlled()
        if component in control.down:
            control.start(component)
            if component in control.pausable():
                control.pause([component])

    def arm_crash(self, point: str) -> None:
        raise self._lacks("crash components")

    def fail(self, resource: str, times: int, op: str | None, after: int = 0) -> None:
        """The profile's `control.faults` command (control.py): the system's own hook breaks the next calls."""
        if self._control is None or "inject_faults" not in self.info.capabilities:
            raise self._lacks("inject faults (the profile's control section has no faults command)")
        self._control.fault(resource, times, op, after)

    def begin_read(self, student: str, authorization: str) -> Any:
        raise self._lacks("split reads")

    def finish_read(self, handle: Any) -> HttpReply:
        raise self._lacks("split reads")

    def advance_clock(self, seconds: float) -> None:
        raise self._lacks("control the clock")

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    def replay_dlq(self) -> int:
        if "read_bus" not in self.info.capabilities or "dead_letter" not in self.profile.section("kafka", "topics"):
            raise self._lacks("replay dead letters (the profile configures no kafka.topics.dead_letter)")
        with self._bus_errors():
            return self._kafka().replay(self._prefix)


def _caught_up(snap: Snapshot, group_topics: list[str]) -> bool:
    """Every one of `group_topics` ("group/topic") that the snapshot shows has committed its topic's end."""
    for key in group_topics:
        committed = snap.committed.get(key)
        if committed is None:
            continue  # a group the profile does not declare, or no bus read
        ends = snap.end_offsets.get(key.split("/", 1)[1], {})
        if any((committed.get(partition) or 0) < end for partition, end in ends.items()):
            return False
    return True


def _json_object(body: bytes | None) -> dict[str, Any]:
    try:
        value = json.loads(body or b"")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


__all__ = ["ExternalTarget"]
