"""What the lifecycle needs from each service: one small protocol, three implementations
(postgres.py, redis.py, kafka.py). Keeping the orchestration generic keeps crash recovery, port reuse
and cleanup-on-failure in one place (lifecycle.py) instead of three."""

from __future__ import annotations

import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol


class Service(Protocol):
    """One local server process, owned by a state directory."""

    name: str
    #: names of the ports it needs, e.g. ("kafka", "kafka_controller"); the first is its main port
    port_names: tuple[str, ...]
    #: the signal for a graceful stop, and how long to wait before SIGKILL
    stop_signal: signal.Signals
    stop_grace: float

    @property
    def log_path(self) -> Path: ...

    def marker(self, ports: Mapping[str, int]) -> str:
        """A string found in the running process's command line (guards against pid reuse)."""
        ...

    def has_valid_data(self) -> bool:
        """True when a data directory from an earlier start exists and can be reused."""
        ...

    def prepare(self) -> None:
        """Create or validate the data directory (initdb, Kafka storage format, ...)."""
        ...

    def launch(self, ports: Mapping[str, int], timeout: float) -> int:
        """Start the process detached from the caller and return its pid. May wait for the process
        to come up when the service's own tool does (pg_ctl -w)."""
        ...

    def wait_ready(self, pid: int, ports: Mapping[str, int], deadline: float) -> None:
        """Block until the service answers real requests; raise ServiceStartError (with the log
        tail) on timeout or when the process exits."""
        ...

    def healthy(self, ports: Mapping[str, int]) -> bool:
        """A quick probe (a few seconds at most) used by `status` and by `up` on a running stack."""
        ...

    def reset(self) -> None:
        """Remove the data directory, so the next prepare() starts fresh."""
        ...
