"""Test instrumentation built into the reference: named crash points, injected store faults and a
trace of what each component did. Off by default and free when off; the verifier switches them on
through the target (embedded: directly; real stack: a test-only endpoint/setting of the process)."""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

from kcverify.core.clock import Clock
from kcverify.core.errors import BusUnavailable, CacheUnavailable, SimulatedCrash, StoreUnavailable

# Every crash point the components expose. A scenario naming another one is an input error.
CRASH_POINTS: dict[str, str] = {
    "payment.after_commit": "payment confirmed and committed, nothing after it ran",
    "payment-relay.after_publish": "payments_db outbox rows published, not yet marked published",
    "course-relay.after_publish": "courses_db outbox rows published, not yet marked published",
    "worker.after_poll": "event received, nothing handled, offset not committed",
    "worker.after_marker": "processed marker committed apart from the purchase (a defect's window)",
    "worker.after_commit": "purchase transaction committed, offset not committed",
    "worker.after_dead_letter": "dead letter published, offset not committed",
    "invalidator.after_poll": "PURCHASE_CREATED received, cache not yet invalidated",
}


class CrashPoints:
    """Arms named points; a component calls `hit(point)` and dies there (SimulatedCrash) if armed."""

    def __init__(self) -> None:
        self._armed: Counter[str] = Counter()
        self.hits: Counter[str] = Counter()
        # Called with the point just before SimulatedCrash is raised. A real-stack process sets it to
        # die on the spot (os._exit, as SIGKILL would) instead of unwinding through the caller.
        self.on_crash: Callable[[str], None] | None = None

    def arm(self, point: str, times: int = 1) -> None:
        if point not in CRASH_POINTS:
            raise KeyError(point)
        self._armed[point] += times

    def disarm_all(self) -> None:
        self._armed.clear()

    def hit(self, point: str) -> None:
        self.hits[point] += 1
        if self._armed[point] > 0:
            self._armed[point] -= 1
            if self.on_crash is not None:
                self.on_crash(point)
            raise SimulatedCrash(point)

    def die(self, point: str) -> None:
        """The component dies of its own failure at `point`, armed or not (an uncaught error ends the
        process): the same death as an armed crash point, so every target sees it the same way."""
        if self.on_crash is not None:
            self.on_crash(point)
        raise SimulatedCrash(point)


@dataclass
class _Rule:
    op: str | None
    remaining: int
    skip: int = 0  # matching calls that still work before the first that fails


class Faults:
    """Injected failures: "the next N calls to payments_db fail". Rules per resource, optionally
    narrowed to one operation (a port method name)."""

    def __init__(self) -> None:
        self._rules: dict[str, list[_Rule]] = {}
        self.injected: Counter[str] = Counter()

    def fail_next(self, resource: str, times: int, op: str | None = None, after: int = 0) -> None:
        """The `times` calls after the next `after` ones fail."""
        self._rules.setdefault(resource, []).append(_Rule(op, times, after))

    def clear(self) -> None:
        self._rules.clear()

    def should_fail(self, resource: str, op: str) -> bool:
        """Every matching rule still letting calls through (`after`) counts this one; the first matching rule
        that lets none through any more fails it."""
        failing = None
        for rule in self._rules.get(resource, []):
            if rule.remaining <= 0 or rule.op not in (None, op):
                continue
            if rule.skip > 0:
                rule.skip -= 1  # one of the calls it lets through
            elif failing is None:
                failing = rule
        if failing is None:
            return False
        failing.remaining -= 1
        self.injected[f"{resource}.{op}"] += 1
        return True

    def pending(self) -> dict[str, int]:
        return {r: sum(x.remaining for x in rules) for r, rules in self._rules.items()
                if any(x.remaining for x in rules)}


T = TypeVar("T")

_ERRORS: dict[str, type[Exception]] = {"cache": CacheUnavailable, "bus": BusUnavailable}


def with_faults(adapter: T, resource: str, faults: Faults) -> T:
    """Wrap an adapter so that injected faults raise the port's transient error before the real call.
    The real adapter is untouched: the failure looks exactly like a dropped connection."""
    return cast(T, _Faulty(adapter, resource, faults, _ERRORS.get(resource, StoreUnavailable)))


class _Faulty:
    """The wrapper `with_faults` returns: every public method of the adapter, behind the fault rules. One
    class for every wrapper (a class built per call cost a system's bootstrap more than the rest of it);
    its own attributes have names no adapter uses, so every other name reaches the adapter."""

    def __init__(self, adapter: Any, resource: str, faults: Faults, error: type[Exception]) -> None:
        self._faulty_adapter = adapter
        self._faulty_resource = resource
        self._faulty_rules = faults
        self._faulty_error = error

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._faulty_adapter, name)
        if not callable(target) or name.startswith("_"):
            return target
        resource, faults, error = self._faulty_resource, self._faulty_rules, self._faulty_error

        def call(*args: Any, **kwargs: Any) -> Any:
            if faults.should_fail(resource, name):
                raise error(f"injected fault: {resource}.{name}")
            return target(*args, **kwargs)

        return call


class Tracer(Protocol):
    def emit(self, component: str, event: str, **fields: Any) -> None: ...


@dataclass
class MemoryTracer:
    """Keeps every trace record in order (embedded target's evidence)."""

    clock: Clock
    records: list[dict[str, Any]] = field(default_factory=list)
    listeners: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)

    def emit(self, component: str, event: str, **fields: Any) -> None:
        record = {"at": self.clock.now(), "component": component, "event": event, **fields}
        self.records.append(record)
        for listener in self.listeners:
            listener(record)


class LogTracer:
    """One JSON line per record on stderr (real-stack processes); the stack target tails them."""

    def __init__(self, clock: Clock, stream: Any = None) -> None:
        self._clock = clock
        self._stream = stream or sys.stderr
        self._log = logging.getLogger("kcverify.trace")

    def emit(self, component: str, event: str, **fields: Any) -> None:
        record = {"at": self._clock.now(), "component": component, "event": event, **fields}
        self._stream.write(json.dumps(record, default=str) + "\n")
        self._stream.flush()
