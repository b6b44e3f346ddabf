"""The pieces of the real-stack component processes that need no stack: the shared fault table, the
held/stepped background loop, and the read pause point (kcverify/reference/component_process.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kcverify.core.errors import SimulatedCrash
from kcverify.reference.component_process import ComponentLoop, FileFaults, ReadPauses
from kcverify.reference.student_service import PendingRead


class Recorder:
    def __init__(self) -> None:
        self.records: list[tuple[str, str]] = []

    def emit(self, component: str, event: str, **fields: Any) -> None:
        self.records.append((component, event))


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


# --- FileFaults -------------------------------------------------------------------------------------


def test_file_faults_are_one_budget_for_every_process(tmp_path: Path) -> None:
    one, other = FileFaults(tmp_path / "faults.json"), FileFaults(tmp_path / "faults.json")
    one.fail_next("courses_db", 2, "record_purchase")
    assert not other.should_fail("courses_db", "is_processed")  # another operation
    assert not other.should_fail("payments_db", "record_purchase")  # another resource
    assert other.should_fail("courses_db", "record_purchase")
    assert one.should_fail("courses_db", "record_purchase")
    assert not other.should_fail("courses_db", "record_purchase")  # spent, whoever called
    assert (tmp_path / "faults.json").stat().st_size == 0  # no rule left: the fast path again


@pytest.mark.parametrize("shared", [True, False], ids=["file", "embedded"])
def test_a_fault_after_n_lets_that_many_matching_calls_work_first(tmp_path: Path, shared: bool) -> None:
    """`fail: {after: 1}`: the second publish of a batch is refused, not the first; in the one table every
    process shares as in the embedded system's."""
    from kcverify.reference.instrument import Faults

    one, other = (FileFaults(tmp_path / "f.json"), FileFaults(tmp_path / "f.json")) if shared else (Faults(),) * 2
    one.fail_next("bus", 1, "publish", after=1)
    assert not other.should_fail("bus", "read_all")  # another operation: neither works through nor fails
    assert [other.should_fail("bus", "publish") for _ in range(3)] == [False, True, False]
    one.fail_next("bus", 1, "publish", after=2)  # a rule letting calls through does not hide a later one
    one.fail_next("bus", 1, "publish")
    assert [other.should_fail("bus", "publish") for _ in range(4)] == [True, False, True, False]


def test_an_adapter_wrapped_with_file_faults_fails_on_a_rule_another_process_wrote(tmp_path: Path) -> None:
    from kcverify.core.errors import StoreUnavailable
    from kcverify.reference.instrument import with_faults

    class Store:
        def read(self) -> str:
            return "row"

    here, elsewhere = FileFaults(tmp_path / "faults.json"), FileFaults(tmp_path / "faults.json")
    store = with_faults(Store(), "courses_db", here)
    assert store.read() == "row"  # the wrapper's first call, before any rule exists
    elsewhere.fail_next("courses_db", 1, "read")  # the scenario's process arms the fault in the shared file
    with pytest.raises(StoreUnavailable):
        store.read()
    assert store.read() == "row"


def test_file_faults_count_exactly_under_concurrency(tmp_path: Path) -> None:
    tables = [FileFaults(tmp_path / "faults.json") for _ in range(2)]
    tables[0].fail_next("cache", 50)
    hits: list[bool] = []
    lock = threading.Lock()

    def call(table: FileFaults) -> None:
        for _ in range(40):
            failed = table.should_fail("cache", "get")
            with lock:
                hits.append(failed)

    threads = [threading.Thread(target=call, args=(tables[i % 2],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(hits) == 50 and len(hits) == 240


def test_file_faults_clear_and_pending(tmp_path: Path) -> None:
    table = FileFaults(tmp_path / "faults.json")
    table.fail_next("bus", 2, "publish")
    table.fail_next("cache", 1)
    assert table.pending() == {"bus": 2, "cache": 1}
    table.clear()
    assert table.pending() == {} and not table.should_fail("bus", "publish")


# --- ComponentLoop ----------------------------------------------------------------------------------


def make_loop(step: Any, *, held: bool = True) -> tuple[ComponentLoop, list[str], Recorder]:
    calls: list[str] = []
    tracer = Recorder()
    loop = ComponentLoop("purchase-worker", step, held=held, tracer=tracer,
                         close=lambda: calls.append("close"), abandon=lambda: calls.append("abandon"))
    return loop, calls, tracer


def test_a_held_loop_takes_only_the_steps_it_is_asked_for() -> None:
    steps: list[int] = []
    loop, calls, _ = make_loop(lambda: steps.append(1) or 0.0)
    loop.start()
    time.sleep(0.05)  # a held loop must not move on its own: give it the chance
    assert steps == [] and loop.state == "held"
    assert loop.step_n(3) == 3 and len(steps) == 3
    loop.stop()
    assert loop.state == "stopped" and calls == ["close"]


def test_a_nudge_ends_a_free_running_loops_wait_at_once_and_a_held_loop_stays_still() -> None:
    """A relay waits up to its idle pause between empty polls; a committed outbox row nudges it instead."""
    steps: list[float] = []
    loop, _, _ = make_loop(lambda: steps.append(time.monotonic()) or 30.0, held=False)  # a 30 s pause
    loop.start()
    wait_for(lambda: len(steps) == 1)
    time.sleep(0.05)
    nudged = time.monotonic()
    loop.nudge()
    wait_for(lambda: len(steps) == 2, timeout=2.0)  # without the nudge: 30 s
    assert steps[1] - nudged < 1.0
    assert loop.hold()
    loop.nudge()
    time.sleep(0.05)
    assert len(steps) == 2  # held: a nudge does not move it
    loop.stop()


def test_resume_runs_freely_and_hold_returns_once_still() -> None:
    inside = threading.Event()
    steps: list[int] = []

    def step() -> float:
        inside.set()
        time.sleep(0.02)
        steps.append(1)
        return 0.0

    loop, _, _ = make_loop(step)
    loop.start()
    loop.resume()
    inside.wait(2)
    assert loop.hold()
    count = len(steps)
    time.sleep(0.05)
    assert len(steps) == count and loop.state == "held"
    loop.kill()
    assert loop.state == "down"


def test_a_simulated_crash_ends_the_loop_like_a_kill() -> None:
    def step() -> float:
        raise SimulatedCrash("invalidator.after_poll")

    loop, calls, tracer = make_loop(step, held=False)
    loop.start()
    wait_for(lambda: loop.state == "down")
    assert calls == ["abandon"]
    assert ("purchase-worker", "stopped") not in tracer.records
    loop.start(held=True)  # restart
    assert loop.state == "held"
    loop.stop()


def test_a_failing_step_does_not_end_the_loop() -> None:
    attempts: list[int] = []

    def step() -> float:
        attempts.append(1)
        raise RuntimeError("bug")

    loop, _, tracer = make_loop(step)
    loop.start()
    assert loop.step_n(2) == 2
    assert loop.state == "held" and ("purchase-worker", "step_failed") in tracer.records
    loop.stop()


# --- ReadPauses ---------------------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_a_read_is_held_between_its_halves_until_released() -> None:
    pauses = ReadPauses()
    pauses.request("s1")
    done = threading.Event()

    def read(student: str) -> None:
        pauses.point(PendingRead(student, 0.0))
        done.set()

    pauses.point(PendingRead("s2", 0.0))  # not asked for: passes straight through
    thread = threading.Thread(target=read, args=("s1",))
    thread.start()
    wait_for(lambda: pauses.held() == ["s1"])
    assert not done.is_set()
    pauses.release("s1")
    thread.join(5)
    assert done.is_set() and pauses.held() == []
