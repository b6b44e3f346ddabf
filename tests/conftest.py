"""Hooks of the whole suite.

The integration tests' process holds real Kafka clients (confluent-kafka). A client that Python's cyclic
garbage collector frees is destroyed on whatever thread the collection starts on, and a collection can
start on one of librdkafka's own threads whenever that thread runs Python code (an admin request's
callback completing its future); a client destroyed there can take the whole process down
(kcverify/core/admin_calls.py). kcverify lets go of its own clients in `close()`, but a failed test, a
test's own helper or a library can still leave one in a reference cycle. So while an integration test
runs (its fixtures' set-up and tear-down included), the automatic collector is off, and a full
collection runs after it, on the main thread, where destroying a client is safe."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if item.get_closest_marker("integration") is None:
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.collect()
        if was_enabled:
            gc.enable()
