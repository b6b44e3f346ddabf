"""`up`, `down` and `status` of the local stack: the orchestration, generic over the three services.

`up` is idempotent: services that run and answer are left alone; one whose recorded pid is dead (or
that runs but does not answer) is restarted alone, on its old port when that is still free, reusing
its data directory when valid and starting fresh when the reused data will not start. Every pid is
written to stack.json the moment it exists, and a failed `up` stops what it started, so no run leaves
an orphan. The Kafka JVM is launched first and waited for last: it starts while PostgreSQL runs initdb.
The library never prints; progress goes to the `report` callback."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kcverify.stack import daemons, kafka_libs, prereqs
from kcverify.stack.errors import PrerequisiteMissing, ServiceStartError
from kcverify.stack.kafka import DEFAULT_TOPICS, KafkaService, bootstrap, ensure_topics
from kcverify.stack.network import free_ports, is_listening, port_is_free
from kcverify.stack.postgres import PostgresService, dsn
from kcverify.stack.redis import RedisService, url
from kcverify.stack.service import Service
from kcverify.stack.state import locked, read_state, resolve_state_dir, write_state

ORDER = ("postgres", "redis", "kafka")
DEFAULT_TIMEOUT = 120.0
Report = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class UpResult:
    settings: dict[str, Any]
    started: tuple[str, ...]  # services started (or restarted) by this call
    already_up: bool
    elapsed: float


@dataclass(frozen=True)
class DownResult:
    stopped: tuple[str, ...]
    forced: tuple[str, ...]  # needed SIGKILL after the grace period
    purged: bool


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    up: bool
    pid: int | None
    port: int | None
    detail: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _services(state_dir: Path, tools: prereqs.Tools | None = None,
              report: Report = _quiet) -> dict[str, Service]:
    version = kafka_libs.kafka_version()
    return {
        "postgres": PostgresService(state_dir, tools.pg_bindir if tools else None,
                                    tools.pg_version if tools else None),
        "redis": RedisService(state_dir, tools.redis_server if tools else None),
        "kafka": KafkaService(state_dir, tools.java if tools else None,
                              lambda: kafka_libs.ensure_libs(version, report)),
    }


def _ports_of(svc: Service, ports: Mapping[str, int]) -> dict[str, int] | None:
    """The service's ports from stack.json, or None when any is missing."""
    if not all(isinstance(ports.get(key), int) for key in svc.port_names):
        return None
    return {key: ports[key] for key in svc.port_names}


def _running(svc: Service, pid: object, ports: Mapping[str, int]) -> bool:
    own = _ports_of(svc, ports)
    return isinstance(pid, int) and own is not None and daemons.is_service(pid, svc.marker(own))


class _Start:
    """Launch one service, then wait for it; retry once from a fresh data directory when the reused
    one does not come up (e.g. storage left inconsistent by a crash)."""

    def __init__(self, svc: Service, ports: Mapping[str, int], timeout: float, report: Report,
                 record: Callable[[str, int | None], None]) -> None:
        self.svc, self.ports, self.timeout, self.report, self.record = svc, ports, timeout, report, record
        self.pid: int | None = None
        self.reused = False

    def launch(self) -> None:
        self.reused = self.svc.has_valid_data()
        self.svc.prepare()
        try:
            self._launch()
        except ServiceStartError:
            if not self.reused:
                raise
            self._fresh()

    def _launch(self) -> None:
        self.pid = self.svc.launch(self.ports, self.timeout)
        self.record(self.svc.name, self.pid)

    def _fresh(self) -> None:
        self.report(f"{self.svc.name}: did not start from its existing data; starting it with a fresh "
                    "data directory")
        if self.pid is not None:
            daemons.stop(self.pid, signal.SIGKILL, grace=5)
            self.record(self.svc.name, None)
            self.pid = None
        self.svc.reset()
        self.reused = False
        self.svc.prepare()
        self._launch()

    def finish(self) -> int:
        assert self.pid is not None
        try:
            self.svc.wait_ready(self.pid, self.ports, time.monotonic() + self.timeout)
        except ServiceStartError:
            if not self.reused:
                raise
            self._fresh()
            assert self.pid is not None
            self.svc.wait_ready(self.pid, self.ports, time.monotonic() + self.timeout)
        return self.pid


def _check_tools(need_mvn: bool, install: bool, report: Report) -> prereqs.Tools:
    try:
        return prereqs.check(need_mvn=need_mvn)
    except PrerequisiteMissing as exc:
        if not install:
            raise
        report(f"installing {' '.join(exc.packages)} with apt-get")
        prereqs.install(exc.packages)
        return prereqs.check(need_mvn=need_mvn)


def prepare(install: bool = False, report: Report = _quiet) -> prereqs.Tools:
    """Everything `up` needs that is not a running service: the programs (installed with apt-get when
    asked and missing) and the Kafka jars (resolved from Maven Central once, then cached). CI calls
    this first, so a slow first download is not mistaken for a broker that will not start."""
    version = kafka_libs.kafka_version()
    need_mvn = not kafka_libs.is_complete(kafka_libs.libs_dir(version))
    tools = _check_tools(need_mvn, install, report)
    kafka_libs.ensure_libs(version, report)
    return tools


def up(state_dir: str | os.PathLike[str] | None = None, topics: Mapping[str, int] = DEFAULT_TOPICS,
       timeout: float = DEFAULT_TIMEOUT, install: bool = False, report: Report = _quiet) -> UpResult:
    """Start (or repair) the stack and return its settings, also written to <state_dir>/stack.json."""
    began = time.monotonic()
    directory = resolve_state_dir(state_dir)
    version = kafka_libs.kafka_version()
    with locked(directory):
        need_mvn = not kafka_libs.is_complete(kafka_libs.libs_dir(version))
        tools = _check_tools(need_mvn, install, report)
        services = _services(directory, tools, report)
        state: dict[str, Any] = read_state(directory) or {}
        pids: dict[str, int] = {k: v for k, v in dict(state.get("pids") or {}).items() if k in ORDER}
        ports: dict[str, int] = dict(state.get("ports") or {})

        to_start: list[str] = []
        for name in ORDER:
            svc, pid = services[name], pids.get(name)
            if _running(svc, pid, ports):
                own = _ports_of(svc, ports)
                assert own is not None and pid is not None
                if svc.healthy(own):
                    continue
                try:  # busy or still starting? give it a moment before calling it hung
                    svc.wait_ready(pid, own, time.monotonic() + min(timeout, 15.0))
                    continue
                except ServiceStartError:
                    pass
                report(f"{name}: pid {pid} runs but does not answer; restarting it")
                daemons.stop(pid, svc.stop_signal, grace=5.0)  # hung: a long graceful wait is futile
            elif pid is not None:
                report(f"{name}: pid {pid} is not running; restarting {name}")
            pids.pop(name, None)
            to_start.append(name)

        # ports: keep the old ones when free, so the settings other processes hold stay valid
        taken = {ports[key] for name in ORDER if name not in to_start
                 for key in services[name].port_names if key in ports}
        for name in to_start:
            for key in services[name].port_names:
                old = ports.get(key)
                if isinstance(old, int) and old not in taken and port_is_free(old):
                    chosen = old
                else:
                    chosen = free_ports(1, avoid=taken)[0]
                    if old is not None:
                        report(f"{key}: port {old} is taken; using {chosen}")
                ports[key] = chosen
                taken.add(chosen)

        def record(name: str, pid: int | None) -> None:
            if pid is None:
                pids.pop(name, None)
            else:
                pids[name] = pid
            state["pids"], state["ports"] = dict(pids), dict(ports)
            write_state(directory, state)

        starts = {name: _Start(services[name], _ports_of(services[name], ports) or {}, timeout, report,
                               record) for name in to_start}
        try:
            # Kafka's JVM first, waited for last: it boots while PostgreSQL runs initdb
            for name in ("kafka", "redis", "postgres"):
                if name in starts:
                    starts[name].launch()
            for name in ORDER:
                if name in starts:
                    starts[name].finish()
            ensure_topics(bootstrap(ports["kafka"]), topics, time.monotonic() + timeout)
        except BaseException:
            for name in reversed(ORDER):
                pid = pids.get(name)
                if name in starts and pid is not None:
                    daemons.stop(pid, services[name].stop_signal, grace=10)
                    pids.pop(name, None)
            state["pids"] = dict(pids)
            write_state(directory, state)
            raise

        kafka = services["kafka"]
        assert isinstance(kafka, KafkaService) and isinstance(services["postgres"], PostgresService)
        state.update({
            "payments_dsn": dsn(ports["postgres"], "payments_db"),
            "courses_dsn": dsn(ports["postgres"], "courses_db"),
            "kafka_bootstrap": bootstrap(ports["kafka"]),
            "redis_url": url(ports["redis"]),
            "pids": dict(pids),
            "ports": dict(ports),
            "topics": {**dict(state.get("topics") or {}), **dict(topics)},
            "state_dir": str(directory),
            "postgres_dir": str(services["postgres"].home),
            "kafka_cluster_id": kafka.cluster_id(),
            "logs": {name: str(services[name].log_path) for name in ORDER},
            "versions": {"postgres": tools.pg_version, "redis": tools.redis_version, "kafka": version,
                         "java": tools.java_version},
        })
        state.pop("stopped_at", None)
        if to_start or "started_at" not in state:
            state["started_at"] = _now()
        write_state(directory, state)
        return UpResult(state, tuple(to_start), not to_start, time.monotonic() - began)


def down(state_dir: str | os.PathLike[str] | None = None, purge: bool = False,
         report: Report = _quiet) -> DownResult:
    """Stop every service (its graceful signal, then SIGKILL after a grace period); with purge, also
    delete the state directory (data included)."""
    directory = resolve_state_dir(state_dir)
    if not directory.exists():
        return DownResult((), (), False)
    stopped: list[str] = []
    forced: list[str] = []
    with locked(directory):
        state = read_state(directory) or {}
        pids = dict(state.get("pids") or {})
        ports = dict(state.get("ports") or {})
        services = _services(directory)
        for name in reversed(ORDER):  # Kafka first: it is the slowest to stop and holds no one up
            svc, pid = services[name], pids.pop(name, None)
            if isinstance(pid, int) and _running(svc, pid, ports):
                report(f"stopping {name} (pid {pid})")
                if not daemons.stop(pid, svc.stop_signal, svc.stop_grace):
                    forced.append(name)
                stopped.append(name)
        if state:
            state["pids"] = {}
            state["stopped_at"] = _now()
            write_state(directory, state)
        pg_link = directory / "postgres"
        if purge and pg_link.is_symlink():  # data kept outside the state dir (see postgres.py)
            shutil.rmtree(pg_link.resolve(), ignore_errors=True)
    if purge:
        shutil.rmtree(directory, ignore_errors=True)
    return DownResult(tuple(stopped), tuple(forced), purge)


def status(state_dir: str | os.PathLike[str] | None = None, *, quick: bool = False) -> list[ServiceStatus]:
    """Each service: running and answering a real request, or not, with its port and pid. `quick`: a
    running process whose port accepts a connection counts as up (a few milliseconds for the three: a
    probe cheap enough to run before every scenario; a SIGKILLed server shows at once, a hung one only
    in the full probe)."""
    directory = resolve_state_dir(state_dir)
    state = read_state(directory) if directory.exists() else None
    state = state or {}
    pids = dict(state.get("pids") or {})
    ports = dict(state.get("ports") or {})
    services = _services(directory)
    result: list[ServiceStatus] = []
    for name in ORDER:
        svc, pid = services[name], pids.get(name)
        own = _ports_of(svc, ports)
        port = own[svc.port_names[0]] if own else None
        if not isinstance(pid, int):
            result.append(ServiceStatus(name, False, None, port, "not started"))
        elif not _running(svc, pid, ports):
            result.append(ServiceStatus(name, False, pid, port, f"pid {pid} is not running"))
        elif own is None or not (is_listening(own[svc.port_names[0]]) if quick else svc.healthy(own)):
            result.append(ServiceStatus(name, False, pid, port, f"pid {pid} runs but does not answer"))
        else:
            result.append(ServiceStatus(name, True, pid, port, "answering"))
    return result
