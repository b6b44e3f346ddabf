"""Fixtures of the conformance suites: each port's fixture is parametrized over its factories in
factories.py, so every test runs on every adapter of the port.

Real services are never skipped. A factory that needs one gets its address from the service's
variable (KCVERIFY_TEST_POSTGRES_DSN, KCVERIFY_TEST_KAFKA_BOOTSTRAP, KCVERIFY_TEST_REDIS_URL) or, when
that is unset, from a local stack (`kcverify.stack.up`) started here once per session, in a temporary
directory, and stopped (purged) at its end. If that stack cannot start, the tests that need it FAIL
with the reason, locally and in CI alike: a green run always means the real adapters were tested.
To run only the embedded adapters, deselect the others: `pytest tests/adapters -m "not integration"`."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from kcverify.core.clock import ManualClock
from kcverify.reference.ports import Bus, Cache, CourseStore, OutboxStore, PaymentStore
from tests.adapters.factories import (
    BUSES,
    CACHES,
    COURSE_STORES,
    PAYMENT_STORES,
    SERVICE_ENV,
    TRAITS,
    BusKit,
    CacheKit,
    Context,
    Factory,
)

T = TypeVar("T")

# service -> the key of kcverify.stack's settings holding its address
STACK_SETTING = {"postgres": "payments_dsn", "kafka": "kafka_bootstrap", "redis": "redis_url"}


class Services:
    """The address of each service: its variable when set, else a stack started on first need."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._state_dir: Path | None = None
        self._settings: dict[str, Any] | None = None
        self._failure: str | None = None

    def address(self, service: str) -> str:
        variable = SERVICE_ENV[service]
        given = os.environ.get(variable)
        if given:
            return given
        return str(self._stack(variable)[STACK_SETTING[service]])

    def _stack(self, variable: str) -> dict[str, Any]:
        if self._failure is not None:  # tried once this session: fail fast, same reason
            pytest.fail(self._failure, pytrace=False)
        if self._settings is None:
            from kcverify import stack

            self._state_dir = self._tmp.mktemp("kcverify-stack")
            try:
                self._settings = stack.up(self._state_dir, timeout=180).settings
            except Exception as exc:
                self._failure = (
                    f"{variable} is unset and a local stack could not be started for the real adapters:\n"
                    f"{exc}\nSet KCVERIFY_TEST_POSTGRES_DSN, KCVERIFY_TEST_KAFKA_BOOTSTRAP and "
                    "KCVERIFY_TEST_REDIS_URL to running services, install the prerequisites, or deselect "
                    "the real adapters with -m 'not integration'.")
                pytest.fail(self._failure, pytrace=False)
        return self._settings

    def close(self) -> None:
        if self._state_dir is not None:
            from kcverify import stack

            stack.down(self._state_dir, purge=True)


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """Session-wide: a stack, if one is started, serves every test and is stopped once at the end."""
    found = Services(tmp_path_factory)
    try:
        yield found
    finally:
        found.close()


def _params(factories: list[Factory[Any]], prefix: str = "") -> list[Any]:
    return [pytest.param(f, id=prefix + f.id, marks=[pytest.mark.integration] if f.needs else [])
            for f in factories]


@pytest.fixture
def clock() -> ManualClock:
    """The one manual clock every embedded adapter of a test shares."""
    return ManualClock()


@pytest.fixture
def unique() -> str:
    """A suffix for names that must not collide on a shared server (topics, groups, keys, schemas).
    The factories get the same one (Context.unique), so they can clean up what the test named."""
    return uuid.uuid4().hex[:10]


def _build(request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path, unique: str) -> Iterator[Any]:
    factory: Factory[Any] = request.param
    service = None
    if factory.needs is not None:
        # requested lazily: a run that selects no real adapter starts no stack
        services: Services = request.getfixturevalue("services")
        service = services.address(factory.needs)
    ctx = Context(clock=clock, tmp_path=tmp_path, unique=unique, service=service)
    try:
        yield factory.make(ctx)
    finally:
        for cleanup in reversed(ctx.cleanups):
            cleanup()


@pytest.fixture(params=_params(PAYMENT_STORES))
def payment_store(request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path,
                  unique: str) -> Iterator[PaymentStore]:
    yield from _build(request, clock, tmp_path, unique)


@pytest.fixture(params=_params(COURSE_STORES))
def course_store(request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path,
                 unique: str) -> Iterator[CourseStore]:
    yield from _build(request, clock, tmp_path, unique)


@pytest.fixture(params=_params(PAYMENT_STORES, "payments_db-") + _params(COURSE_STORES, "courses_db-"))
def outbox_store(request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path,
                 unique: str) -> Iterator[OutboxStore]:
    """Both databases' outboxes, on every store adapter."""
    yield from _build(request, clock, tmp_path, unique)


@pytest.fixture(params=_params(BUSES))
def bus_kit(request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path, unique: str) -> Iterator[BusKit]:
    yield from _build(request, clock, tmp_path, unique)


@pytest.fixture
def bus(bus_kit: BusKit) -> Bus:
    return bus_kit.bus


@pytest.fixture(params=_params(CACHES))
def cache_kit(request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path,
              unique: str) -> Iterator[CacheKit]:
    yield from _build(request, clock, tmp_path, unique)


@pytest.fixture
def cache(cache_kit: CacheKit) -> Cache:
    return cache_kit.cache


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_trait(*names): run only on adapters that promise the trait")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test of a trait an adapter does not promise (e.g. an exact TTL boundary on a manual clock) is
    not a test of that adapter at all: it is deselected at collection, never collected and skipped,
    so a skip in this suite could only ever mean something went wrong."""
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("needs_trait")
        callspec = getattr(item, "callspec", None)
        factories = [v for v in callspec.params.values() if isinstance(v, Factory)] if callspec else []
        if marker is not None:
            for trait in marker.args:
                assert trait in TRAITS, f"unknown trait {trait!r}"
        if marker is not None and any(t not in f.traits for f in factories for t in marker.args):
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
