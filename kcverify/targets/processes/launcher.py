"""The stack target's component processes: how each is started (`kcverify serve COMPONENT` with the
test-only control endpoint), waited for, signalled and talked to. One `ManagedProcess` per process;
the target owns them and stops them at the end of a run.

Every process is started held (`--held`: its loops take no step until told), shares one fault table
(`--faults-file`), writes its trace to its own JSON-lines file, and stops by itself when the target
that started it is gone (`--parent-pid`), so a target that died cannot leave a worker behind that takes
partitions from the next run's worker.

Ports: every start binds port 0 (the kernel picks a free port as it binds) and reports where it listens
in a ports file (`--ports-file`), which `wait_ready` reads. Choosing a free port here and passing it
down raced with every other program on the machine: a port free when chosen could be taken before the
child bound it, and the child exited with status 2 ("cannot listen") under load."""

from __future__ import annotations

import json
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

from kcverify.stack.network import HOST
from kcverify.targets.http_client import HttpClient

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
                 client: HttpClient, env: Mapping[str, str] | None = None) -> None:
        self.spec = spec
        self.env = dict(env or {})  # added to the inherited environment: the run's secrets
        self.run_dir = run_dir
        self.state_dir = state_dir
        self.faults_file = faults_file
        self.trace_file = run_dir / f"{spec.name}.trace.jsonl"
        self.log_file = run_dir / f"{spec.name}.log"
        self.ports_file = run_dir / f"{spec.name}.ports.json"
        self._client = client
        self.service_port: int | None = None  # where the current start listens, from its ports file
        self.control_port: int | None = None
        self.popen: subprocess.Popen[bytes] | None = None
        self.defects: frozenset[str] = frozenset()
        # a worker's static group membership (its slot's name), set by a target whose processes a
        # supervisor restarts (`kcverify chaos`); None: dynamic membership
        self.group_instance: str | None = None
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
               "--state-dir", str(self.state_dir), "--control-port", "0", "--ports-file", str(self.ports_file),
               "--held", "--faults-file", str(self.faults_file), "--trace-file", str(self.trace_file),
               "--parent-pid", str(os.getpid()), *self.spec.args]
        if self.spec.service:
            cmd += ["--port", "0"]
        if self.group_instance is not None:
            cmd += ["--group-instance", self.group_instance]
        for defect in sorted(self.defects):
            cmd += ["--defect", defect]
        return cmd

    def spawn(self, defects: frozenset[str]) -> None:
        """Start the process (not waiting for it). Each start listens on ports of its own, known once
        `wait_ready` has read its ports file."""
        if self.alive():
            return
        self.ports_file.unlink(missing_ok=True)  # the previous start's ports are no one's now
        self.service_port = self.control_port = None
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
            if self._read_ports() and self._answers(self.control_url) \
                    and (not self.spec.service or self._answers(self.service_url)):
                return
            if time.monotonic() >= deadline:
                raise ProcessFailed(f"{self.spec.name} did not answer within {READY_TIMEOUT:.0f} s"
                                    f"{self.log_tail()}")
            time.sleep(POLL)

    def _read_ports(self) -> bool:
        """The ports of the current start, once its ports file is there (written whole, by a rename)."""
        if self.control_port is not None:
            return True
        try:
            ports = json.loads(self.ports_file.read_text())
        except (OSError, ValueError):
            return False
        if self.popen is None or ports.get("pid") != self.popen.pid:
            return False  # a file left by an earlier start: not this process's ports
        self.service_port, self.control_port = ports.get("service"), ports.get("control")
        return self.control_port is not None

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
