"""`collector_paused`: no cyclic collection while an admin request is in flight, on any thread, and the
collector's state is given back as found once the last concurrent holder is done."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from kcverify.core.admin_calls import collector_paused


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_the_collector_is_off_inside_and_on_again_after() -> None:
    gc.enable()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_overlapping_holder_keeps_it_off_until_the_last_ends() -> None:
    gc.enable()
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with collector_paused():
            inside.set()
            release.wait(5)

    other = threading.Thread(target=hold)
    other.start()
    assert inside.wait(5)
    with collector_paused():
        pass
    assert not gc.isenabled(), "the first holder to finish turned the collector back on"
    release.set()
    other.join(5)
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_it_is_given_back_when_the_request_raises() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("broker gone")
    assert gc.isenabled()


def test_all_done_returns_once_every_future_is_completed_or_at_the_timeout() -> None:
    from concurrent.futures import Future

    from kcverify.core.admin_calls import all_done

    first, second = Future[int](), Future[int]()
    first.set_exception(RuntimeError("NOT_LEADER_FOR_PARTITION"))  # the first failed: its error is readable
    completer = threading.Timer(0.2, lambda: second.set_result(7))  # the callback is still completing the rest
    completer.start()
    all_done([first, second], timeout=5)
    assert second.done() and second.result() == 7
    late = Future[int]()
    all_done([late], timeout=0.05)  # never completed: gives up at the timeout
    assert not late.done()
