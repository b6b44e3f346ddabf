"""Fixtures for the reference's unit tests: an embedded system whose bus asserts that every event
published conforms to its contract (I4), and a `Flow` helper that drives it over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from kcverify import contracts
from kcverify.reference import domain
from kcverify.reference.auth import issue_token, sign_callback
from kcverify.reference.bootstrap import System, bootstrap
from kcverify.reference.ports import Bus, Consumer, Delivered, Message
from kcverify.reference.settings import Settings
from kcverify.targets.asgi import AsgiClient

METADATA: dict[str, Any] = {
    "startDate": "2026-02-02",
    "classTime": "18:30",
    "classTypeId": "group-small",
    "scheduleType": "weekly",
    "sessionCount": 10,
    "timezone": "Europe/Berlin",
    "classTypeTitle": "Small group",
}


class ContractCheckingBus:
    """Wraps the bus under test: every publish to a contract topic must validate (I4)."""

    def __init__(self, inner: Bus) -> None:
        self.inner = inner
        self.checked = 0

    def create_topic(self, name: str, partitions: int) -> None:
        self.inner.create_topic(name, partitions)

    def publish(self, topic: str, key: str | None, value: bytes,
                headers: Sequence[tuple[str, str]] = ()) -> Delivered:
        schema = contracts.EVENT_SCHEMAS.get(topic)
        if schema is not None and getattr(self, "enforce", True):
            violations = contracts.validate(schema, json.loads(value))
            assert not violations, f"event on {topic} breaks {schema}: {violations}"
            self.checked += 1
        return self.inner.publish(topic, key, value, headers)

    def consumer(self, group: str, topics: Sequence[str], *, reset: str = "earliest") -> Consumer:
        return self.inner.consumer(group, topics, reset=reset)

    def read_all(self, topic: str) -> list[Message]:
        return self.inner.read_all(topic)


class Flow:
    """Drives an embedded system the way its users do: HTTP for the services, steps for the rest."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.payments = AsgiClient(system.payment_app())
        self.students = AsgiClient(system.student_app())
        self.secret = system.settings.webhook_secret

    def create(self, student: str = "s1", course: str = "c1", metadata: dict[str, Any] | None = None,
               **overrides: Any) -> dict[str, Any]:
        body = {"studentId": student, "courseId": course, "amountCents": 4900, "currency": "EUR",
                "metadata": METADATA if metadata is None else metadata, **overrides}
        response = self.payments.post("/api/v1/payments", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def confirm_raw(self, payment_id: str, body: dict[str, Any], *, signed: bool = True):  # type: ignore[no-untyped-def]
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if signed:
            headers["X-Signature"] = self.sign(payment_id, raw)
        return self.payments.post(f"/api/v1/payments/{payment_id}/confirm", content=raw, headers=headers)

    def confirm(self, payment_id: str, status: str = "succeeded") -> dict[str, Any]:
        response = self.confirm_raw(payment_id, {"status": status, "providerPaymentId": "pi_1"})
        assert response.status_code == 200, response.text
        confirmed: dict[str, Any] = response.json()
        return confirmed

    def buy(self, student: str = "s1", course: str = "c1", metadata: dict[str, Any] | None = None) -> str:
        payment = self.create(student, course, metadata)
        self.confirm(payment["id"])
        return str(payment["id"])

    def sign(self, payment_id: str, raw: bytes, at: float | None = None) -> str:
        """The gateway's X-Signature for this payment's callback, made now on the system's clock (or `at`)."""
        return sign_callback(self.secret, payment_id, raw, self.system.clock.now() if at is None else at)

    def token(self, subject: str, role: str = "student") -> str:
        return issue_token(self.system.settings.auth_secret, subject, role, now=self.system.clock.now())

    def learning(self, student: str = "s1", as_: str | None = None, role: str = "student"):  # type: ignore[no-untyped-def]
        token = self.token(as_ or student, role)
        return self.students.get(f"/api/v1/students/{student}/learning",
                                 headers={"Authorization": f"Bearer {token}"})

    def settle(self) -> None:
        result = self.system.settle()
        assert result.quiet, result

    def topic(self, name: str) -> list[dict[str, Any]]:
        return [json.loads(m.value) for m in self.system.bus.read_all(name)]

    def publish_confirmed(self, event: dict[str, Any] | bytes, key: str = "s1") -> None:
        raw = event if isinstance(event, bytes) else domain.encode(event)
        bus = self.system.bus
        inner = getattr(bus, "inner", bus)
        inner.publish(domain.TOPIC_CONFIRMED, key, raw)

    def close(self) -> None:
        self.payments.close()
        self.students.close()


def make_system(**settings: Any) -> System:
    from kcverify.core.clock import ManualClock
    from kcverify.reference.adapters.embedded_bus import EmbeddedBus
    from kcverify.reference.adapters.memory_cache import MemoryCache
    from kcverify.reference.adapters.sqlite_store import SqliteCourseStore, SqlitePaymentStore

    clock = ManualClock()
    bus = ContractCheckingBus(EmbeddedBus(clock))
    return bootstrap(Settings(**settings), clock=clock,
                     adapters=(SqlitePaymentStore(None), SqliteCourseStore(None), bus, MemoryCache(clock)))


@pytest.fixture
def flow() -> Iterator[Flow]:
    f = Flow(make_system())
    yield f
    f.close()


@pytest.fixture
def make_flow() -> Iterator[Any]:
    made: list[Flow] = []

    def factory(**settings: Any) -> Flow:
        f = Flow(make_system(**settings))
        made.append(f)
        return f

    yield factory
    for f in made:
        f.close()
