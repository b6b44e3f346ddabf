"""Kafka admin requests with Python's cyclic garbage collector paused.

confluent-kafka completes an AdminClient future from librdkafka's background thread, running Python
code there. If that code starts a cyclic collection and the collection frees an unreachable Kafka
client (a consumer, producer or admin client caught in a reference cycle, as a traceback easily makes
one), the client's `rd_kafka_destroy` runs on a librdkafka thread, and the process dies of SIGSEGV or
SIGABRT (confluent-kafka-python issues 1761 and 2129). Every admin request of kcverify is issued and
waited for inside `collector_paused()`, so the collection runs later on an ordinary thread instead.

The pause is counted, so concurrent requests on several threads keep it until the last one ends. A
request's futures are all waited for inside the pause (`all_done`) before any result is read: the
callback completes them one after the other, and reading the first one's error and leaving the block
would let the collector run while the callback is still completing the rest. A request that times out
is not covered: its callback comes later, with the collector on.

So the collector seldom has a Kafka client to free at all: owners let go of their producers and admin
clients (which have no `close`) in their own `close()`, and a request's error is read with
`outcome_error` rather than raised from the future (which would tie the caller's frame, and the client
in it, into a cycle). A client is then destroyed by reference counting, on the thread that drops it."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, wait
from contextlib import contextmanager
from typing import Any

_lock = threading.Lock()
_holders = 0
_was_enabled = True


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection while the block runs (reference counting goes on freeing as usual)."""
    global _holders, _was_enabled
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _was_enabled:
                gc.enable()


def all_done(futures: Iterable[Future[Any]], timeout: float) -> None:
    """Until every one of a request's futures is completed (or `timeout` seconds), inside the pause."""
    wait(list(futures), timeout=timeout)


def outcome_error(future: Future[Any]) -> BaseException | None:
    """A completed request's error, read without raising it (None when it succeeded); a TimeoutError when
    it has not completed. `future.result()` would raise the error the future keeps, and the traceback it
    gets then holds the caller's frame, whose locals hold the future: a reference cycle that keeps the
    caller's admin client alive until a collection, on whatever thread."""
    if not future.done():
        return TimeoutError("the request did not complete in time")
    return future.exception(timeout=0)


class Released:
    """Stands in for a Kafka client its owner let go of in `close()`: any use raises `error(message)`,
    not an AttributeError about a missing field."""

    def __init__(self, message: str, error: type[Exception] = RuntimeError) -> None:
        self._message, self._error = message, error

    def __getattr__(self, name: str) -> Any:
        raise self._error(self._message)
