"""`collector_paused`: no cyclic collection while an admin request is in flight, on any thread, and the
collector's state is given back as found once the last concurrent holder is done."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from concurrent.futures import Future

import pytest

from kcverify.core.admin_calls import collector_paused, outcome_error


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


def test_a_requests_error_is_read_without_raising_it_and_ties_no_frame_to_the_future() -> None:
    failed: Future[int] = Future()
    failed.set_exception(ValueError("topic exists"))
    error = outcome_error(failed)
    assert isinstance(error, ValueError) and str(error) == "topic exists"
    assert error.__traceback__ is None  # raised, it would hold this frame, and the frame the future
    succeeded: Future[int] = Future()
    succeeded.set_result(1)
    assert outcome_error(succeeded) is None


def test_a_request_not_completed_reads_as_timed_out_at_once() -> None:
    pending: Future[int] = Future()
    assert isinstance(outcome_error(pending), TimeoutError)
