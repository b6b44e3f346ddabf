"""Fixtures of the conformance suites: each port's fixture is parametrized over its factories in
factories.py, so every test runs on every adapter of the port."""

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


def _params(factories: list[Factory[Any]], prefix: str = "") -> list[Any]:
    return [pytest.param(f, id=prefix + f.id, marks=[pytest.mark.integration] if f.needs else [])
            for f in factories]


@pytest.fixture
def clock() -> ManualClock:
    """The one manual clock every embedded adapter of a test shares."""
    return ManualClock()


def _build(request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path) -> Iterator[Any]:
    factory: Factory[Any] = request.param
    service = None
    if factory.needs is not None:
        variable = SERVICE_ENV[factory.needs]
        service = os.environ.get(variable)
        if not service:
            pytest.skip(f"{factory.id} needs {factory.needs}: set {variable}")
    marker = request.node.get_closest_marker("needs_trait")
    if marker is not None:
        for trait in marker.args:
            assert trait in TRAITS, f"unknown trait {trait!r}"
            if trait not in factory.traits:
                pytest.skip(f"{factory.id} does not promise {trait!r}: {TRAITS[trait]}")
    ctx = Context(clock=clock, tmp_path=tmp_path, unique=uuid.uuid4().hex[:10], service=service)
    try:
        yield factory.make(ctx)
    finally:
        for cleanup in reversed(ctx.cleanups):
            cleanup()


@pytest.fixture(params=_params(PAYMENT_STORES))
def payment_store(request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path) -> Iterator[PaymentStore]:
    yield from _build(request, clock, tmp_path)


@pytest.fixture(params=_params(COURSE_STORES))
def course_store(request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path) -> Iterator[CourseStore]:
    yield from _build(request, clock, tmp_path)


@pytest.fixture(params=_params(PAYMENT_STORES, "payments_db-") + _params(COURSE_STORES, "courses_db-"))
def outbox_store(request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path) -> Iterator[OutboxStore]:
    """Both databases' outboxes, on every store adapter."""
    yield from _build(request, clock, tmp_path)


@pytest.fixture(params=_params(BUSES))
def bus_kit(request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path) -> Iterator[BusKit]:
    yield from _build(request, clock, tmp_path)


@pytest.fixture
def bus(bus_kit: BusKit) -> Bus:
    return bus_kit.bus


@pytest.fixture(params=_params(CACHES))
def cache_kit(request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path) -> Iterator[CacheKit]:
    yield from _build(request, clock, tmp_path)


@pytest.fixture
def cache(cache_kit: CacheKit) -> Cache:
    return cache_kit.cache


@pytest.fixture
def unique() -> str:
    """A suffix for names that must not collide on a shared server (topics, groups, keys)."""
    return uuid.uuid4().hex[:10]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_trait(*names): run only on adapters that promise the trait")
