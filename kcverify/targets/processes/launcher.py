"""The stack target's component processes: how each is started (`kcverify serve COMPONENT` with the
test-only control endpoint), waited for, signalled and talked to. One `ManagedProcess` per process;
the target owns them and stops them at the end of a run.

Every process is started held (`--held`: its loops take no step until told), shares one fault table
(`--faults-file`), writes its trace to its own JSON-lines file, and stops by itself when the target
that started it is gone (`--parent-pid`), so a target that died cannot leave a worker behind that takes
partitions from the next run's worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from kcverify.stack.network import HOST, free_ports

READY_TIMEOUT = 60.0  # a process imports the reference and connects to PostgreSQL, Kafka and Redis
STOP_TIMEOUT = 30.0  # SIGTERM, then SIGKILL
POLL = 0.05


@dataclass(frozen=True)
class ProcessSpec:
    name: str  # the target's name for the process
    kind: str  # `kcverify serve KIND`
    components: tuple[str, ...]  # the scenario components it hosts (loops), or the service it is
    service: bool = False  # payment / student: an HTTP service on its own port
    args: tuple[str, ...] = ()


# The processes of the stack target: each component its own process, both relays included (a crash or
# a stop of one relay must not take the other down, as in the embedded system). The purchase worker runs
# as two processes, two members of its consumer group that split the partitions, so that per-student
# order is exercised across members and rebalances, as on the embedded system. The cache invalidator
# runs inside the student service, as a production student service would consume PURCHASE_CREATED.
SPECS: tuple[ProcessSpec, ...] = (
    ProcessSpec("payment", "payment", ("payment-service",), service=True),
    ProcessSpec("student", "student", ("student-service", "cache-invalidator"), service=True,
                args=("--invalidator-retry", "0.1")),
    ProcessSpec("worker", "worker", ("purchase-worker",)),
    ProcessSpec("worker-2", "worker", ("purchase-worker",)),
    ProcessSpec("payment-relay", "relay", ("payment-relay",), args=("--outbox", "payments")),
    ProcessSpec("course-relay", "relay", ("course-relay",), args=("--outbox", "courses")),
    ProcessSpec("reconciler", "reconciler", ("reconciler",), args=("--reconcile-grace", "5")),
)
BY_NAME = {spec.name: spec for spec in SPECS}
# scenario component -> the processes that run it (a scenario's run, crash, kill, stop and restart of the
# worker act on every worker process), and the first of them
OWNERS: dict[str, tuple[str, ...]] = {}
for _spec in SPECS:
    for _component in _spec.components:
        OWNERS[_component] = (*OWNERS.get(_component, ()), _spec.name)
OWNER = {component: owners[0] for component, owners in OWNERS.items()}
# components that share their process: stopped, killed and restarted through the control endpoint
IN_PROCESS = frozenset({"cache-invalidator"})


class ProcessFailed(RuntimeError):
    """A component process exited while starting, or did not answer in time; carries its log's tail."""


class ManagedProcess:
    def __init__(self, spec: ProcessSpec, run_dir: Path, state_dir: Path, faults_file: Path,
                 client: httpx.Client, env: Mapping[str, str] | None = None) -> None:
        self.spec = spec
        self.env = dict(env or {})  # added to the inherited environment: the run's secrets
        self.run_dir = run_dir
        self.state_dir = state_dir
        self.faults_file = faults_file
        self.trace_file = run_dir / f"{spec.name}.trace.jsonl"
        self.log_file = run_dir / f"{spec.name}.log"
        self._client = client
        self.service_port, self.control_port = free_ports(2)
        self.popen: subprocess.Popen[bytes] | None = None
        self.defects: frozenset[str] = frozenset()
        self.starts = 0
        # What makes the coming exit of this start the scenario's own (the target's watch reads them):
        # the target stopped or killed it, or armed a crash point in it. Reset by every spawn.
        self.exit_expected = False
        self.crash_armed = False
        self.exit_reported = False  # the watch has seen this start's exit already

    # --- addresses ---------------------------------------------------------------------------------

    @property
    def service_url(self) -> str:
        return f"http://{HOST}:{self.service_port}"

    @property
    def control_url(self) -> str:
        return f"http://{HOST}:{self.control_port}"

    # --- lifecycle ---------------------------------------------------------------------------------

    def command(self) -> list[str]:
        cmd = [sys.executable, "-c", "from kcverify.cli.main import main; main()", "serve", self.spec.kind,
               "--state-dir", str(self.state_dir), "--control-port", str(self.control_port), "--held",
               "--faults-file", str(self.faults_file), "--trace-file", str(self.trace_file),
               "--parent-pid", str(os.getpid()), *self.spec.args]
        if self.spec.service:
            cmd += ["--port", str(self.service_port)]
        for defect in sorted(self.defects):
            cmd += ["--defect", defect]
        return cmd

    def spawn(self, defects: frozenset[str]) -> None:
        """Start the process (not waiting for it). Its ports stay the same across restarts."""
        if self.alive():
            return
        self.defects = defects
        self.exit_expected = self.crash_armed = self.exit_reported = False
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"--- start {self.starts + 1}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                          cwd=str(self.run_dir), env={**os.environ, **self.env})
        self.starts += 1

    def wait_ready(self, deadline: float) -> None:
        """Until its control endpoint (and its service) answer; ProcessFailed if it exits first or the
        deadline passes."""
        while True:
            if not self.alive():
                raise ProcessFailed(f"{self.spec.name} exited with status {self.exit_status()} while starting"
                                    f"{self.log_tail()}")
            if self._answers(self.control_url) and (not self.spec.service or self._answers(self.service_url)):
                return
            if time.monotonic() >= deadline:
                raise ProcessFailed(f"{self.spec.name} did not answer within {READY_TIMEOUT:.0f} s"
                                    f"{self.log_tail()}")
            time.sleep(POLL)

    def _answers(self, base: str) -> bool:
        try:
            return self._client.get(f"{base}/health", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_exit(self, timeout: float) -> int | None:
        """The exit status once it has exited, waiting up to `timeout` (None: still running)."""
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def exit_status(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def describe_exit(self) -> str:
        """How it ended, as a person says it: "exited (signal 9)", "exited with status 1"."""
        status = self.exit_status()
        if status is None:
            return "is running"
        return f"exited (signal {-status})" if status < 0 else f"exited with status {status}"

    def kill(self) -> None:
        """SIGKILL: the component dies where it stands."""
        if self.popen is not None and self.alive():
            self.exit_expected = True
            self.popen.kill()
            self.popen.wait(STOP_TIMEOUT)

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM and wait (a graceful stop: the current step finishes, consumers leave their group);
        SIGKILL after `timeout`. Returns the exit status."""
        if self.popen is None:
            return None
        if self.alive():
            self.exit_expected = True
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(STOP_TIMEOUT)
        return self.popen.returncode

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return f"\n--- last lines of {self.log_file} ---\n" + "\n".join(text) if text else ""

    # --- control endpoint --------------------------------------------------------------------------

    def control(self, method: str, path: str, body: dict[str, Any] | None = None,
                timeout: float = 35.0) -> dict[str, Any] | None:
        """One control request; None when the process is not running or died answering it (a crash
        point it was told to reach, for instance)."""
        if not self.alive():
            return None
        try:
            response = self._client.request(method, f"{self.control_url}{path}", json=body, timeout=timeout)
        except httpx.HTTPError:
            if self.wait_exit(2.0) is None:  # the connection broke but the process lives on: a real error
                raise
            return None
        if response.status_code >= 400:
            raise RuntimeError(f"{self.spec.name} control {method} {path}: {response.status_code} {response.text}")
        data: dict[str, Any] = response.json()
        return data
