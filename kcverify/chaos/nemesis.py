"""The nemesis of `kcverify chaos`: applies the planned faults to the processes target and its stack, each
written to the history with its start and end (healed).

- worker-kill / relay-kill: SIGKILL of one component process, then its restart as a supervisor does it
  (a start that fails, say while the broker is away, is tried again), running free;
- pause: SIGSTOP of a worker process for the outage's length, then SIGCONT;
- broker-restart: SIGKILL of the Kafka broker (a crash), then `kcverify stack up`, which restarts only it;
- postgres-restart: PostgreSQL stopped with its own shutdown signal (connections dropped), then `stack up`;
- redis-outage: SIGSTOP of Redis for the outage's length (connections hang, then time out), then SIGCONT."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from kcverify.chaos.faults import Planned
from kcverify.chaos.history import History

WORKERS = ("worker", "worker-2")
SUPERVISE_EVERY = 1.0
SUPERVISE_FOR = 180.0
RELAY = "payment-relay"


class ChaosTarget(Protocol):
    """What the nemesis needs of the processes target."""

    def process(self, name: str) -> Any: ...
    def respawn_free(self, name: str) -> None: ...
    def stack_recovered(self) -> None: ...


class Nemesis:
    def __init__(self, target: ChaosTarget, state_dir: Path, history: History, plan: list[Planned],
                 stop: threading.Event) -> None:
        self._target = target
        self._state_dir = state_dir
        self._history = history
        self._plan = plan
        self._stop = stop
        self._kills = 0
        self._lock = threading.Lock()
        self._busy: set[str] = set()  # processes killed and not running again yet
        self.applied: list[str] = []
        self._mono0 = 0.0
        # One thread per kind of fault: a broker restart that takes its time does not hold back the worker
        # kills planned meanwhile (faults overlap, as in production); one kind's faults come in order.
        kinds = sorted({f.kind for f in plan})
        self.threads = [threading.Thread(target=self._run, args=([f for f in plan if f.kind == kind],),
                                         name=f"kcverify-chaos-{kind}", daemon=True) for kind in kinds]

    def start(self, mono0: float) -> None:
        self._mono0 = mono0
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join()

    def _run(self, faults: list[Planned]) -> None:
        """A kill does not wait for the restart it causes: the next kill takes the other worker process
        while the first one starts again (a process start takes seconds here), so kills come at their
        period; a kill whose every process is still restarting waits for one."""
        restarts: list[threading.Thread] = []
        for fault in faults:
            delay = self._mono0 + fault.at - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            if fault.kind in ("worker-kill", "relay-kill"):
                thread = threading.Thread(target=self.apply, args=(fault,), daemon=True)
                thread.start()
                restarts.append(thread)
            else:
                self.apply(fault)
        for thread in restarts:
            thread.join()

    def _pick(self, names: tuple[str, ...]) -> str:
        """The next process of `names` in turn that is not restarting after an earlier kill."""
        while True:
            with self._lock:
                for _ in names:
                    name = names[self._kills % len(names)]
                    self._kills += 1
                    if name not in self._busy:
                        self._busy.add(name)
                        return name
            time.sleep(0.05)

    def apply(self, fault: Planned) -> None:
        kind = fault.kind
        if kind in ("worker-kill", "pause"):
            name = self._pick(WORKERS)
        elif kind == "relay-kill":
            name = self._pick((RELAY,))
        else:
            name = {"broker-restart": "kafka", "postgres-restart": "postgres", "redis-outage": "redis"}[kind]
        try:
            self._apply(kind, name, fault)
        finally:
            with self._lock:
                self._busy.discard(name)
                self.applied.append(kind)

    def _apply(self, kind: str, name: str, fault: Planned) -> None:
        with self._history.fault(kind, name) as line:
            if kind in ("worker-kill", "relay-kill"):
                self._target.process(name).kill()
                line["restarts"] = self._supervise(name)
            elif kind == "pause":
                self._signal_hold(self._target.process(name).popen.pid, fault.hold)
            elif kind == "redis-outage":
                self._signal_hold(self._pid("redis"), fault.hold)
            else:
                line["detail"] = self._restart_service(name)

    def _supervise(self, name: str) -> int:
        """Start the process again as a supervisor does: a start that fails (a worker exits when the broker
        it must reach is away) is tried again every SUPERVISE_EVERY seconds, up to SUPERVISE_FOR. The
        number of starts it took."""
        deadline = time.monotonic() + SUPERVISE_FOR
        starts = 0
        while True:
            starts += 1
            try:
                self._target.respawn_free(name)
                return starts
            except RuntimeError:  # the launcher's ProcessFailed
                if time.monotonic() >= deadline:
                    raise
                time.sleep(SUPERVISE_EVERY)

    def _signal_hold(self, pid: int, seconds: float) -> None:
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def _pid(self, service: str) -> int:
        from kcverify.stack import load_settings

        return int(load_settings(self._state_dir)["pids"][service])

    def _restart_service(self, service: str) -> str:
        """Down (Kafka: SIGKILL, a crash; PostgreSQL: its fast shutdown), then `stack up` restarts it alone."""
        from kcverify.stack import daemons, up

        pid = self._pid(service)
        began = time.monotonic()
        if service == "kafka":
            daemons.stop(pid, signal.SIGKILL, grace=10.0)
        else:
            daemons.stop(pid, signal.SIGINT, grace=20.0)
        down = time.monotonic()
        result = up(self._state_dir)
        self._target.stack_recovered()
        return (f"down in {down - began:.1f} s, back in {time.monotonic() - down:.1f} s "
                f"(restarted: {', '.join(result.started) or 'nothing'})")

    def heal(self) -> None:
        """After the load: every service of the stack up (restarted if a fault left it down) and every
        component process running free."""
        from kcverify.stack import up

        for name in ("redis",):
            with contextlib.suppress(Exception):
                os.kill(self._pid(name), signal.SIGCONT)
        up(self._state_dir)
        self._target.stack_recovered()
        for name in self._target_processes():
            self._supervise(name)

    def _target_processes(self) -> tuple[str, ...]:
        names: tuple[str, ...] = getattr(self._target, "process_names", lambda: ())()
        return names
