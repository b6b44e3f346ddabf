"""Hooks of the whole suite.

The integration tests' process holds real Kafka clients (confluent-kafka). A client that Python's cyclic
garbage collector frees is destroyed on whatever thread the collection starts on, and a collection can
start on one of librdkafka's own threads whenever that thread runs Python code (an admin request's
callback completing its future); a client destroyed there can take the whole process down
(kcverify/core/admin_calls.py). kcverify lets go of its own clients in `close()`, but a failed test, a
test's own helper or a library can still leave one in a reference cycle. So while an integration test
runs (its fixtures' set-up and tear-down included), the automatic collector is off: a thread of our own
collects every few seconds (so a long test's garbage stays bounded), and a full collection runs after
the test on the main thread. Destroying a client on either is safe."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

COLLECT_EVERY = 5.0  # seconds


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if item.get_closest_marker("integration") is None:
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    done = threading.Event()
    collector = threading.Thread(target=_collect_until, args=(done,), name="test-collector", daemon=True)
    collector.start()
    try:
        yield
    finally:
        done.set()
        collector.join()
        gc.collect()
        if was_enabled:
            gc.enable()


def _collect_until(done: threading.Event) -> None:
    while not done.wait(COLLECT_EVERY):
        gc.collect()
