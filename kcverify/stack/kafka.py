"""A single-node Apache Kafka broker in KRaft mode (broker and controller in one JVM), started with
`java` from the jars kafka_libs.py caches, as docs/stack.md describes.

- Storage is formatted once with a random cluster id; a later start reuses it (topics survive `down`).
- Listeners are 127.0.0.1 only (never `localhost`: it may resolve to ::1 while the broker is IPv4).
- Readiness is a real request: AdminClient.list_topics() until the broker is in the metadata; topics
  are created with AdminClient and polled until every partition has a leader.
- The Python client's own logging is silenced while polling: librdkafka prints a line per refused
  connection otherwise, burying the one message that matters."""

from __future__ import annotations

import base64
import contextlib
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewPartitions, NewTopic

from kcverify.core.admin_calls import all_done, collector_paused, outcome_error
from kcverify.stack import daemons
from kcverify.stack.errors import ServiceStartError, StackError
from kcverify.stack.network import HOST, is_listening, wait_listening

DEFAULT_TOPICS: Mapping[str, int] = {
    "purchase-confirmed": 3,
    "purchase-created": 3,
    "purchase-confirmed.dlq": 1,
}
HEAP = ("-Xms128m", "-Xmx512m")

_SERVER_PROPERTIES = """\
# written by kcverify stack on every start (ports may change); see docs/stack.md
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{host}:{cport}
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}
advertised.listeners=PLAINTEXT://{host}:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
# the default 128 MB dedupe buffer is allocated at start; too much for a small heap
log.cleaner.dedupe.buffer.size=16777216
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500
"""

_LOG4J2 = """\
# kcverify stack: broker logs at WARN to stdout (kafka.log)
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.console.ref = STDOUT
"""


def bootstrap(port: int) -> str:
    return f"{HOST}:{port}"


def new_cluster_id() -> str:
    """16 random bytes, url-safe base64 without padding (22 chars), as StorageTool random-uuid makes;
    never starting with '-' (it would read as an option)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def admin(bootstrap_servers: str, **extra: Any) -> AdminClient:
    # log_level 0: see module docstring
    return AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0, **extra})


def ensure_topics(bootstrap_servers: str, topics: Mapping[str, int], deadline: float) -> None:
    """Create missing topics (replication 1), grow ones with too few partitions, and wait until every
    partition has a leader. Raises StackError when a topic has more partitions than asked (Kafka
    cannot shrink; `kcverify stack down --purge` starts over)."""
    client = admin(bootstrap_servers)
    last_error = ""
    while True:
        try:
            md = client.list_topics(timeout=5)
        except KafkaException as exc:
            md, last_error = None, str(exc)
        if md is not None:
            create, grow, pending = [], [], []
            for name, partitions in topics.items():
                meta = md.topics.get(name)
                if meta is None or (meta.error is not None
                                    and meta.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
                    create.append(NewTopic(name, num_partitions=partitions, replication_factor=1))
                elif meta.error is not None:
                    pending.append(name)
                    last_error = f"{name}: {meta.error}"
                elif len(meta.partitions) > partitions:
                    raise StackError(f"topic {name} has {len(meta.partitions)} partitions, {partitions} "
                                     "asked; Kafka cannot shrink it (`kcverify stack down --purge`)")
                elif len(meta.partitions) < partitions:
                    grow.append(NewPartitions(name, partitions))
                elif any(p.leader < 0 for p in meta.partitions.values()):
                    pending.append(name)
            if not (create or grow or pending):
                return
            requests: list[Any] = []
            with collector_paused():
                if create:
                    requests.append(client.create_topics(create, request_timeout=10))
                if grow:
                    requests.append(client.create_partitions(grow, request_timeout=10))
                all_done((f for futures in requests for f in futures.values()), 15)
                for futures in requests:
                    for name, future in futures.items():
                        failed = outcome_error(future)
                        if failed is None:
                            continue
                        err = failed.args[0] if isinstance(failed, KafkaException) and failed.args else failed
                        if not isinstance(err, KafkaError) or err.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                            last_error = f"{name}: {err}"
        if time.monotonic() >= deadline:
            raise StackError(f"topics {sorted(topics)} not ready on {bootstrap_servers} in time "
                             f"({last_error or 'partitions without a leader'})")
        time.sleep(0.2)


def topic_partitions(bootstrap_servers: str, timeout: float = 5.0) -> dict[str, int]:
    """Partition count of each (non-internal) topic."""
    md = admin(bootstrap_servers).list_topics(timeout=timeout)
    return {name: len(t.partitions) for name, t in md.topics.items() if not name.startswith("__")}


class KafkaService:
    """See the module docstring."""

    name = "kafka"
    port_names: tuple[str, ...] = ("kafka", "kafka_controller")
    stop_signal = signal.SIGTERM  # controlled shutdown
    stop_grace = 30.0

    def __init__(self, state_dir: Path, java: str | None = None,
                 libs: Callable[[], Path] | None = None) -> None:
        self.state_dir = state_dir
        self.java = java
        # resolved lazily: a running broker needs no jars (and no Maven) to be checked or stopped
        self._libs_factory = libs
        self._libs: Path | None = None

    @property
    def home(self) -> Path:
        return self.state_dir / "kafka"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_path(self) -> Path:
        return self.home / "kafka.log"

    @property
    def server_properties(self) -> Path:
        return self.home / "server.properties"

    @property
    def log4j2_properties(self) -> Path:
        return self.home / "log4j2.properties"

    def marker(self, ports: Mapping[str, int]) -> str:
        return str(self.server_properties)

    @property
    def libs(self) -> Path:
        if self._libs is None:
            if self._libs_factory is None:
                raise StackError("the Kafka jars were not located")
            self._libs = self._libs_factory()
        return self._libs

    def _java(self, main: str, *args: str, heap: tuple[str, ...] = ()) -> list[str]:
        if self.java is None:
            raise StackError("java was not located")
        return [self.java, *heap, "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.log4j2_properties}",
                "-cp", f"{self.libs}/*", main, *args]

    def cluster_id(self) -> str | None:
        """The cluster id in the formatted data directory, or None when it is not formatted."""
        with contextlib.suppress(OSError):
            for line in (self.data_dir / "meta.properties").read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.split("=", 1)[1].strip() or None
        return None

    def has_valid_data(self) -> bool:
        return self.cluster_id() is not None

    def reset(self) -> None:
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.log4j2_properties.write_text(_LOG4J2)
        _ = self.libs  # resolve (download) the jars before anything is started

    def _format(self) -> None:
        """Format a fresh data directory ("No meta.properties found" otherwise)."""
        self.reset()
        out = subprocess.run(self._java("kafka.tools.StorageTool", "format", "-t", new_cluster_id(),
                                        "-c", str(self.server_properties)),
                             cwd=self.home, capture_output=True, text=True, timeout=120, check=False,
                             stdin=subprocess.DEVNULL)
        if out.returncode != 0:
            raise ServiceStartError(self.name, f"kafka-storage format failed (exit {out.returncode})",
                                    (out.stdout + out.stderr)[-3000:], "StorageTool output")

    def launch(self, ports: Mapping[str, int], timeout: float) -> int:
        self.server_properties.write_text(_SERVER_PROPERTIES.format(
            host=HOST, port=ports["kafka"], cport=ports["kafka_controller"], data=self.data_dir))
        if not self.has_valid_data():
            self._format()
        with self.log_path.open("a") as log:
            log.write(f"--- kcverify stack: starting broker on {bootstrap(ports['kafka'])} "
                      f"at {time.strftime('%Y-%m-%dT%H:%M:%S')} ---\n")
        return daemons.spawn_detached(self._java("kafka.Kafka", str(self.server_properties), heap=HEAP),
                                    self.log_path, cwd=self.home)

    def _fail(self, reason: str) -> ServiceStartError:
        return ServiceStartError(self.name, reason, daemons.tail(self.log_path), str(self.log_path))

    def wait_ready(self, pid: int, ports: Mapping[str, int], deadline: float) -> None:
        port = ports["kafka"]
        # wait for the socket first: a client pointed at a closed port only retries and logs
        while not wait_listening(port, min(deadline, time.monotonic() + 1.0)):
            if not daemons.is_alive(pid):
                raise self._fail(f"broker (pid {pid}) exited while starting")
            if time.monotonic() >= deadline:
                raise self._fail(f"broker did not listen on {bootstrap(port)} in time")
        client = admin(bootstrap(port))
        while True:
            if not daemons.is_alive(pid):
                raise self._fail(f"broker (pid {pid}) exited while starting")
            with contextlib.suppress(KafkaException):
                if client.list_topics(timeout=2).brokers:
                    return
            if time.monotonic() >= deadline:
                raise self._fail(f"broker on {bootstrap(port)} listens but has not registered in time")
            time.sleep(0.1)

    def healthy(self, ports: Mapping[str, int]) -> bool:
        if not is_listening(ports["kafka"]):
            return False
        try:
            return bool(admin(bootstrap(ports["kafka"])).list_topics(timeout=3).brokers)
        except KafkaException:
            return False
