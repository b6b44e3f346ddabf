"""The processes target when something dies under a run that no scenario step asked for.

- A component process SIGKILLed from outside mid-scenario: that scenario ends as ERROR naming the
  process, the signal and the step, the process is restarted, and the next scenario passes.
- The Kafka broker SIGKILLed mid-run: `kcverify run --target processes` stops within a bounded time
  with exit 2 and one line naming the broker and `kcverify stack up`, instead of timing out step by step.

One stack for the module: the one in $KCVERIFY_STATE_DIR when set, else one brought up in a temporary
directory (and down at the end). The broker test kills the stack's broker and brings it back after."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kcverify import stack
from kcverify.checks import select
from kcverify.core.status import Status
from kcverify.engine.runner import Runner, RunOptions
from kcverify.evidence.events import Event, ScenarioStarted, StepFinished
from kcverify.scenario.loader import load_scenarios
from kcverify.stack.state import read_state
from kcverify.targets.processes import ProcessesTarget

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
STOP_BOUND = 30.0  # seconds from the broker's death to the run's exit


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    given = os.environ.get(stack.ENV_STATE_DIR)
    if given:
        yield Path(given)
        return
    directory = tmp_path_factory.mktemp("stack-death") / "state"
    try:
        stack.up(directory, timeout=180)
        yield directory
    finally:
        stack.down(directory, purge=True)


def _wait_dead(pid: int, timeout: float = 10.0) -> None:
    """Until `pid` is a zombie (or gone), without reaping it: its parent must see how it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.01)
    raise AssertionError(f"pid {pid} still alive {timeout} s after SIGKILL")


class _KillAfterStep:
    """A Runner handler: SIGKILLs the target's worker process right after step `step` of the first
    scenario, from outside the target (as the OOM killer or an operator would)."""

    def __init__(self, target: ProcessesTarget, step: int) -> None:
        self.target, self.step, self.killed_pid, self.next_pid = target, step, 0, 0

    def handle(self, event: Event) -> None:
        if isinstance(event, ScenarioStarted) and event.index == 2:
            popen = self.target.process("worker").popen  # the worker the second scenario runs with
            self.next_pid = popen.pid if popen is not None else 0
        if isinstance(event, StepFinished) and event.step.index == self.step and not self.killed_pid:
            popen = self.target.process("worker").popen
            assert popen is not None
            os.kill(popen.pid, signal.SIGKILL)
            _wait_dead(popen.pid)
            self.killed_pid = popen.pid


def test_worker_killed_from_outside_is_an_error_of_that_scenario_and_is_restarted(state_dir: Path) -> None:
    scenarios = load_scenarios([SCENARIOS / "happy-path.yaml", SCENARIOS / "transient-then-success.yaml"])
    with ProcessesTarget.from_state(state_dir) as target:
        killer = _KillAfterStep(target, step=3)  # after the confirm; step 4 settles
        run = Runner(target, [killer], RunOptions(target_name="processes"), checks=select()).run(scenarios)
    first, second = run.scenarios
    assert killer.killed_pid, "the handler never ran"
    assert first.status == Status.ERROR, (first.status, first.reason)
    assert first.reason == "the purchase-worker process exited (signal 9) during step 4; restarted", first.reason
    assert [s.status for s in first.steps] == [Status.PASSED] * 3 + [Status.ERROR]
    assert killer.next_pid and killer.next_pid != killer.killed_pid
    assert second.status == Status.PASSED, (second.reason, [f.message for f in second.failures])
    assert run.exit_code == 3  # an ERROR scenario: the verdict of the run is unknown


def test_broker_killed_mid_run_stops_the_run_with_exit_2_naming_it(state_dir: Path) -> None:
    env = {**os.environ, stack.ENV_STATE_DIR: str(state_dir), "PYTHONUNBUFFERED": "1"}
    # four scenarios, in this order: the broker dies when the first has finished
    chosen = ("happy-path", "many-students", "transient-then-success", "triple-delivery")
    cmd = [sys.executable, "-m", "kcverify", "run", str(SCENARIOS), "--target", "processes", "--no-color",
           *(word for name in chosen for word in ("-k", name))]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _read_until(proc, "happy-path", timeout=240)
        broker = read_state(state_dir)["pids"]["kafka"]  # type: ignore[index]
        os.kill(broker, signal.SIGKILL)
        killed = time.monotonic()
        try:
            rc = proc.wait(STOP_BOUND + 30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the run did not stop within {STOP_BOUND + 30:.0f} s of the broker's death")
        took = time.monotonic() - killed
        stderr = proc.stderr.read() if proc.stderr else ""
        print(f"\nrun stopped {took:.1f} s after the broker's SIGKILL: {stderr.strip()}")
        assert rc == 2, (rc, stderr)
        assert took <= STOP_BOUND, (took, stderr)
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1, stderr
        assert "the Kafka broker at 127.0.0.1:" in lines[0] and "is gone" in lines[0], lines[0]
        assert "run `kcverify stack up" in lines[0], lines[0]
        assert "the run stopped early, in scenario 2 of 4: many-students" in lines[0], lines[0]
        assert "Traceback" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stack.up(state_dir, timeout=180)  # the broker back, for whoever uses the stack next
    assert all(s.up for s in stack.status(state_dir))


def _read_until(proc: subprocess.Popen[str], needle: str, timeout: float) -> str:
    """The run's stdout up to the first line containing `needle` (the run must still be going)."""
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=1.0):
                continue
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if needle in line:
                return "".join(seen)
    raise AssertionError(f"no {needle!r} in the run's output within {timeout:.0f} s:\n{''.join(seen)}"
                         f"\nstderr: {proc.stderr.read() if proc.stderr and proc.poll() is not None else ''}")
