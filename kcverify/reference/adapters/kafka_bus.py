"""The real bus (`KafkaBus`, `KafkaConsumer`): Apache Kafka through confluent-kafka (librdkafka), the
twin of embedded_bus.py, held to the same conformance suite. How each semantic the flow depends on
maps onto Kafka:

- Topics must exist (the stack's broker runs with `auto.create.topics.enable=false`, and the producer
  is told not to ask for auto-creation): `create_topic` uses the AdminClient (an existing topic is
  fine) and waits until every partition has a leader; publishing to a topic the broker does not list
  raises `UnknownTopic` at once, instead of librdkafka's queue-then-time-out.
- Per-key ordering: records are keyed by studentId and placed by librdkafka's `consistent_random`
  partitioner, CRC-32(key) % partitions, the very function the embedded bus uses (the Java client's
  murmur2 would place keys elsewhere: keep Java producers off these topics, or configure both alike).
  The producer is idempotent (`enable.idempotence=true`, `acks=all`), so librdkafka's retries can
  neither duplicate nor reorder records within a partition. `publish` is synchronous: it returns the
  broker's offset once the delivery report arrives, or raises BusUnavailable after `publish_timeout`
  (`message.timeout.ms`); a record reported late may still land: at least once, as the relay expects.
- Record timestamps are the bus clock's `now()` (CreateTime), as in the embedded bus: with the system
  clock that is what librdkafka would stamp anyway. The broker applies time retention to them, so a
  manual clock far in the past needs topics with `retention.ms=-1` (`topic_config`).
- Consumer groups: one `confluent_kafka.Consumer` per member with `group.id`, the `range` assignor and
  the eager protocol, like the embedded bus: every rebalance revokes everything and each member
  restarts each partition it is given at the group's committed offset. Members are named
  `{group}-member-NNNN` in join order, so the range assignor (which orders members by id) hands out
  partitions in the embedded bus's order among the members of one process.
- Committed offsets: `enable.auto.commit=false`; `commit(message)` synchronously commits
  `offset + 1` for the message's partition, nothing else. A member that does not own the partition
  (it was revoked in a rebalance) gets `CommitFailed` without asking the broker (Kafka's classic group
  protocol would accept such a commit from a live member), and a commit the broker rejects for a stale
  generation (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS, ...) is CommitFailed too.
- Redelivery of uncommitted messages: `close()` leaves the group at once (LeaveGroup) without
  committing; the other members rebalance within a heartbeat and resume from the committed offsets.
  `crash()` is the same call (nothing is ever committed implicitly); a process that really dies is
  noticed only after `session.timeout.ms` (6 s here).
- Static membership (opt-in, `group_instance`): a process that a supervisor restarts in its slot (the
  processes target's workers under `kcverify chaos`) gives its members `group.instance.id`
  `{group_instance}.{group}`. A SIGKILLed member restarted in time rejoins with its old member's
  assignment and no rebalance: the other members keep fetching, and its partitions only wait for its
  restart. The price, as with Kafka's static membership anywhere: a static member's `close()` sends no
  LeaveGroup, so its partitions stay with it until it comes back or `static_session_timeout_ms` passes
  (longer than a restart takes: otherwise every kill would still cost two rebalances). Held scenario runs
  keep dynamic members, whose partitions move to the survivor at once.
- Earliest/latest reset: `auto.offset.reset`. For `latest` the end offset is resolved when the
  partition is assigned (in the assignment callback: no committed offset -> the high watermark then),
  as in the embedded bus; librdkafka would otherwise resolve it lazily at the first fetch, and records
  published in between would silently be skipped or not.
- Rebalance callbacks and records both arrive through `poll`, so a member that is not polled holds up
  its group's rebalance. `serve()` runs the group protocol without handing out a record (records
  fetched meanwhile are kept, in order, for the next `poll`), for drivers that own several members in
  one thread (tests); `assignment()` and `assignments` tell when a member has settled.
- Subscribing to a topic that does not exist yet works: it is assigned once it exists
  (`topic.metadata.refresh.interval.ms`, 1 s by default here).

Not like the embedded bus (and nothing in the flow depends on it): records without a key go wherever
librdkafka's sticky partitioner puts them, not round robin; `poll` returns records in fetch batches,
not one partition at a time in turn; rebalances take a heartbeat or two, not zero time."""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka import Message as KafkaMessage
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec
from confluent_kafka.cimpl import NewTopic

from kcverify.core.admin_calls import Released, all_done, collector_paused, outcome_error
from kcverify.core.clock import Clock
from kcverify.core.errors import BusUnavailable
from kcverify.core.group_offsets import GroupOffsets, GroupOffsetsError
from kcverify.reference.adapters.embedded_bus import RESETS, CommitFailed, ConsumerClosed, UnknownTopic
from kcverify.reference.ports import Delivered, Message

__all__ = ["CommitFailed", "ConsumerClosed", "KafkaBus", "KafkaConsumer", "UnknownTopic"]

log = logging.getLogger(__name__)

TopicPartitionKey = tuple[str, int]

# Broker answers to a commit that mean "you are no longer (or not yet) the owner": the commit is stale.
_STALE_COMMIT = frozenset({
    KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.FENCED_INSTANCE_ID, KafkaError._ASSIGNMENT_LOST, KafkaError._STATE,
    KafkaError.STALE_MEMBER_EPOCH, KafkaError.UNKNOWN_TOPIC_OR_PART,
})
_UNKNOWN_TOPIC = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC})
_LATEST: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
_EARLIEST: OffsetSpec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]


# Answers that go away by themselves (leadership moving or settling, a coordinator loading); the admin
# client does not always flag them retriable.
_TRANSIENT = frozenset({
    KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.REQUEST_TIMED_OUT, KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError._TIMED_OUT, KafkaError._TRANSPORT,
    KafkaError._WAIT_COORD, KafkaError.FENCED_LEADER_EPOCH, KafkaError.UNKNOWN_LEADER_EPOCH,
})


def _retriable(error: KafkaError | None) -> bool:
    return error is not None and (error.retriable() or error.code() in _TRANSIENT)


def _error_of(exc: KafkaException) -> KafkaError | None:
    first = exc.args[0] if exc.args else None
    return first if isinstance(first, KafkaError) else None


class KafkaBus:
    """The Bus port on Kafka (see the module docstring). Helpers beyond the port, as on the embedded
    bus: `end_offsets`, `committed`, `partitions`, `topics`; and `close()`.

    `publish_timeout`: seconds a publish may take before BusUnavailable; `request_timeout`: admin and
    metadata requests, `read_all`; `topic_config`: configuration of the topics `create_topic` makes;
    `replication_factor`: -1 = the broker's default; the `*_ms` settings tune group membership."""

    def __init__(self, bootstrap: str, clock: Clock, *, publish_timeout: float = 10.0,
                 request_timeout: float = 10.0, topic_config: Mapping[str, str] | None = None,
                 replication_factor: int = -1, session_timeout_ms: int = 6000,
                 heartbeat_interval_ms: int = 500, max_poll_interval_ms: int = 30000,
                 metadata_refresh_ms: int = 1000, client_id: str = "kcverify",
                 group_instance: str | None = None, static_session_timeout_ms: int = 30000) -> None:
        self.bootstrap = bootstrap
        self._clock = clock
        self._publish_timeout = publish_timeout
        self._request_timeout = request_timeout
        self._topic_config = dict(topic_config or {})
        self._replication_factor = replication_factor
        self._client_id = client_id
        self._common: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "logger": log,  # librdkafka's log lines go to Python logging, not straight to stderr
            "topic.metadata.refresh.interval.ms": metadata_refresh_ms,
        }
        self._consumer_config: dict[str, Any] = {
            **self._common,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "partition.assignment.strategy": "range",
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": heartbeat_interval_ms,
            "max.poll.interval.ms": max_poll_interval_ms,
            "allow.auto.create.topics": False,
        }
        self._group_instance = group_instance
        self._static_session_timeout_ms = static_session_timeout_ms
        self._lock = threading.Lock()
        self._known: set[str] = set()
        self._consumers: list[KafkaConsumer] = []
        self._members = itertools.count(1)
        # Created now: the idempotent producer acquires its producer id in the background (about half
        # a second on a fresh connection), before the first publish needs it.
        self._producer = self._new_producer()
        self._admin = AdminClient({**self._common, "client.id": f"{client_id}-admin"})
        self._group_offsets = GroupOffsets(self._common, client_id)
        self._closed = False

    # --- Bus ----------------------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int) -> None:
        """Idempotent: an existing topic keeps its partitions (whatever `partitions` says now). Returns
        once every partition has a leader."""
        if partitions < 1:
            raise ValueError(f"a topic needs at least one partition, got {partitions}")
        topic = NewTopic(name, num_partitions=partitions, replication_factor=self._replication_factor,
                         config=dict(self._topic_config))
        try:
            with collector_paused():
                futures = self._admin.create_topics([topic], request_timeout=self._request_timeout)
                all_done(futures.values(), self._request_timeout + 1)
                failed = outcome_error(futures[name])
        except KafkaException as exc:  # the request itself refused
            raise BusUnavailable(f"cannot create topic {name!r} on {self.bootstrap}: {exc}") from exc
        if isinstance(failed, TimeoutError):  # not completed in time
            raise BusUnavailable(f"creating topic {name!r} on {self.bootstrap} timed out")
        if failed is not None:
            error = _error_of(failed) if isinstance(failed, KafkaException) else None
            if error is None or error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BusUnavailable(f"cannot create topic {name!r} on {self.bootstrap}: {failed}")
        deadline = time.monotonic() + self._request_timeout
        while True:
            meta = self._metadata().topics.get(name)
            if (meta is not None and meta.error is None and meta.partitions
                    and all(p.leader >= 0 for p in meta.partitions.values())):
                self._offsets(name, len(meta.partitions), _LATEST)  # every leader answers, too
                with self._lock:
                    self._known.add(name)
                return
            if time.monotonic() >= deadline:
                raise BusUnavailable(f"topic {name!r} created but not ready on {self.bootstrap} in time")
            time.sleep(0.02)

    def publish(self, topic: str, key: str | None, value: bytes,
                headers: Sequence[tuple[str, str]] = ()) -> Delivered:
        self._check_topic(topic)
        done = threading.Event()
        outcome: list[tuple[KafkaError | None, KafkaMessage]] = []

        def report(error: KafkaError | None, message: KafkaMessage) -> None:
            outcome.append((error, message))
            done.set()

        producer = self._producer
        deadline = time.monotonic() + self._publish_timeout + 2.0  # message.timeout.ms fires first
        while True:
            try:
                producer.produce(topic, value=bytes(value), key=None if key is None else key.encode("utf-8"),
                                 headers=[(str(name), str(val)) for name, val in headers],
                                 timestamp=round(self._clock.now() * 1000), on_delivery=report)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                if time.monotonic() >= deadline:
                    raise BusUnavailable(f"publish to {topic!r}: the producer queue stays full") from None
                producer.poll(0.05)
            except KafkaException as exc:
                raise BusUnavailable(f"publish to {topic!r} on {self.bootstrap}: {exc}") from exc
        # Any thread's poll serves every delivery report; ours may be served by another publisher.
        while not done.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BusUnavailable(f"publish to {topic!r}: no delivery report in {self._publish_timeout}s "
                                     "(the record may still be delivered)")
            producer.poll(min(remaining, 0.05))
        error, message = outcome[0]
        if error is not None:
            if error.code() in _UNKNOWN_TOPIC:
                with self._lock:
                    self._known.discard(topic)
                raise UnknownTopic(f"unknown topic {topic!r} on {self.bootstrap}: {error}")
            if error.fatal():  # an idempotent producer that hit a fatal error is unusable: start over
                self._replace_producer(producer)
            raise BusUnavailable(f"publish to {topic!r} on {self.bootstrap} failed: {error}")
        partition, offset = message.partition(), message.offset()
        assert partition is not None and offset is not None
        return Delivered(topic, partition, offset)

    def consumer(self, group: str, topics: Sequence[str], *, reset: str = "earliest") -> KafkaConsumer:
        """Subscribes a new member to `group`. It joins in the background; assignments arrive through
        its `poll` (or `serve`). Topics not yet created are assigned once they exist."""
        if reset not in RESETS:
            raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
        if isinstance(topics, str):
            raise TypeError("topics is a sequence of topic names, not one name")
        with self._lock:
            if self._closed:
                raise ConsumerClosed("the bus is closed")
            client_id = f"{group}-member-{next(self._members):04d}"
            config = {**self._consumer_config, "group.id": group, "client.id": client_id,
                      "auto.offset.reset": reset}
            if self._group_instance is not None and not any(m.group == group for m in self._consumers):
                # one static member per group and process slot: a second would fence the first
                config["group.instance.id"] = f"{self._group_instance}.{group}"
                config["session.timeout.ms"] = self._static_session_timeout_ms
            member = KafkaConsumer(self, group, tuple(topics), reset, client_id, config,
                                   self._request_timeout)
            self._consumers.append(member)
            return member

    def read_all(self, topic: str) -> list[Message]:
        """Partition by partition, each in offset order, up to the end offsets when called. A throwaway
        consumer reads with `assign()`: it joins no group and commits nothing."""
        count = self.partitions(topic)
        ends = self._offsets(topic, count, _LATEST)
        starts = self._offsets(topic, count, _EARLIEST)
        pending = {p: end for p, end in ends.items() if end > starts[p]}
        if not pending:
            return []
        reader = Consumer({**self._consumer_config, "group.id": f"{self._client_id}-reader-{uuid.uuid4().hex}",
                           "client.id": f"{self._client_id}-reader"})
        records: list[Message] = []
        try:
            reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(pending)])
            deadline = time.monotonic() + self._request_timeout
            while pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BusUnavailable(f"read_all({topic!r}): partitions {sorted(pending)} not read to "
                                         f"their end in {self._request_timeout}s")
                raw = reader.poll(min(remaining, 0.2))
                if raw is None:
                    # gaps (compaction, transaction markers): the position may pass the end without a record
                    for tp in reader.position([TopicPartition(topic, p) for p in list(pending)]):
                        if tp.offset >= pending[tp.partition]:
                            del pending[tp.partition]
                    continue
                error = raw.error()
                if error is not None:
                    if error.fatal():
                        raise BusUnavailable(f"read_all({topic!r}): {error}")
                    continue
                record = _message(raw)
                if record.partition in pending and record.offset < pending[record.partition]:
                    records.append(record)
                    if record.offset + 1 >= pending[record.partition]:
                        del pending[record.partition]
        except KafkaException as exc:
            raise BusUnavailable(f"read_all({topic!r}) on {self.bootstrap}: {exc}") from exc
        finally:
            reader.close()
        records.sort(key=lambda m: (m.partition, m.offset))
        return records

    # --- helpers beyond the port (the embedded bus offers them too) ----------------------------------

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the offset the next record will get (the high watermark)."""
        return self._offsets(topic, self.partitions(topic), _LATEST)

    def committed(self, group: str, topic: str) -> dict[int, int | None]:
        """Per partition of `topic`, the offset `group` committed (the next one it will read), or None.
        Asks the group's coordinator through a consumer that never joins the group (core/group_offsets.py
        says why not the admin API)."""
        count = self.partitions(topic)
        try:
            return self._group_offsets.committed(group, topic, list(range(count)), self._request_timeout)
        except GroupOffsetsError as exc:
            raise BusUnavailable(f"{exc} on {self.bootstrap}") from None

    def partitions(self, topic: str) -> int:
        meta = self._metadata().topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise UnknownTopic(f"unknown topic {topic!r} on {self.bootstrap} (topics are not auto-created)")
        return len(meta.partitions)

    def topics(self) -> dict[str, int]:
        """Every topic (Kafka's internal ones aside) and its partition count."""
        return {name: len(meta.partitions) for name, meta in sorted(self._metadata().topics.items())
                if not name.startswith("__") and meta.error is None}

    def close(self) -> None:
        """Closes every member still open (each leaves its group), delivers what is queued, and lets go of
        the producer and the admin client, so that they are destroyed here, on the closing thread (a bus is
        in reference cycles with its members: left to the collector, its clients would be destroyed at
        some later collection, on whatever thread runs it; see core/admin_calls.py). Nothing but `close`
        may be called after it. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            members = list(self._consumers)
        try:
            for member in members:
                member.close()
            self._producer.flush(self._publish_timeout)
        finally:
            self._group_offsets.close()
            self._producer = self._admin = cast(Any, Released(f"the Kafka bus of {self.bootstrap} is closed"))

    # --- internals ----------------------------------------------------------------------------------

    def _new_producer(self) -> Producer:
        return Producer({
            **self._common,
            "client.id": f"{self._client_id}-producer",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 0,  # every publish waits for its report: nothing to batch, no reason to linger
            "message.timeout.ms": max(1, round(self._publish_timeout * 1000)),
            "partitioner": "consistent_random",
            "allow.auto.create.topics": False,
        })

    def _replace_producer(self, broken: Producer) -> None:
        with self._lock:
            if self._producer is broken:
                log.warning("kafka producer hit a fatal error; starting a new one")
                self._producer = self._new_producer()

    def _metadata(self) -> Any:
        try:
            return self._admin.list_topics(timeout=self._request_timeout)
        except KafkaException as exc:
            raise BusUnavailable(f"no metadata from {self.bootstrap}: {exc}") from exc

    def _check_topic(self, topic: str) -> None:
        with self._lock:
            if topic in self._known:
                return
        self.partitions(topic)  # raises UnknownTopic
        with self._lock:
            self._known.add(topic)

    def _offsets(self, topic: str, count: int, spec: OffsetSpec) -> dict[int, int]:
        """ListOffsets, retried while the answer is retriable: a partition whose leader the metadata
        already shows may still answer NOT_LEADER_FOR_PARTITION for a moment after its creation."""
        request = {TopicPartition(topic, p): spec for p in range(count)}
        deadline = time.monotonic() + self._request_timeout
        while True:
            try:
                with collector_paused():
                    futures = self._admin.list_offsets(request, request_timeout=self._request_timeout)
                    all_done(futures.values(), self._request_timeout + 1)
                    return {tp.partition: future.result(timeout=self._request_timeout + 1).offset
                            for tp, future in futures.items()}
            except KafkaException as exc:
                error = _error_of(exc)
                if not _retriable(error) or time.monotonic() >= deadline:
                    raise BusUnavailable(f"offsets of {topic!r} on {self.bootstrap}: {exc}") from exc
            time.sleep(0.02)

    def _forget(self, member: KafkaConsumer) -> None:
        with self._lock:
            if member in self._consumers:
                self._consumers.remove(member)


class KafkaConsumer:
    """One member of a consumer group on Kafka (the Consumer port). Beyond the port: `crash()`,
    `serve()`, `assignment()`, `assignments`, `member_id`, `group`, `topics`, `closed`."""

    def __init__(self, bus: KafkaBus, group: str, topics: tuple[str, ...], reset: str, client_id: str,
                 config: dict[str, Any], request_timeout: float) -> None:
        self._bus = bus
        self.group = group
        self.topics = topics
        self.reset = reset
        self.client_id = client_id
        self.closed = False
        self._request_timeout = request_timeout
        self._lock = threading.RLock()
        self._buffer: deque[Message] = deque()
        self._owned: set[TopicPartitionKey] = set()
        self._assignments = 0
        # Called with the partitions about to be revoked, while this member still owns them (librdkafka
        # hands them over only after the revoke callback returns): the place to commit what was handled
        # on them (GroupMember). Errors are logged, never raised into librdkafka's callback.
        self.before_revoke: Callable[[set[TopicPartitionKey]], None] | None = None
        self._consumer = Consumer(config)
        self._consumer.subscribe(list(topics), on_assign=self._on_assign, on_revoke=self._on_revoke,
                                 on_lost=self._on_lost)

    # --- Consumer -----------------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0) -> Message | None:
        """The next record of the assigned partitions, waiting up to `timeout` seconds; None when none
        came. Partition-EOF and other non-fatal events (an unknown subscribed topic, a broker
        reconnecting) are skipped: librdkafka recovers from them by itself."""
        with self._lock:
            self._check_open()
            if self._buffer:
                return self._buffer.popleft()
            return self._next(timeout)

    def commit(self, message: Message) -> None:
        """Synchronously commits `message.offset + 1` for its partition (even backwards, as Kafka
        does). CommitFailed when this member does not own the partition or the broker says the
        member's generation is stale; BusUnavailable when the broker cannot be reached."""
        with self._lock:
            self._check_open()
            if (message.topic, message.partition) not in self._owned:
                raise CommitFailed(f"{self.client_id} does not own {message.topic}[{message.partition}]"
                                   " (revoked in a rebalance, or never assigned): the commit is rejected")
            offsets = [TopicPartition(message.topic, message.partition, message.offset + 1)]
            try:
                result = self._consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                raise _commit_error(self.client_id, message, _error_of(exc), exc) from exc
            for tp in result or []:
                if tp.error is not None:
                    raise _commit_error(self.client_id, message, tp.error, tp.error)

    def close(self) -> None:
        """Leaves the group at once (its partitions go to the other members, from the committed
        offsets). Commits nothing. Idempotent."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._buffer.clear()
            try:
                self._consumer.close()
            except (KafkaException, RuntimeError) as exc:  # leaving is best effort; the session expires
                log.warning("closing %s: %s", self.client_id, exc)
            self._owned.clear()
        self._bus._forget(self)

    # --- helpers beyond the port --------------------------------------------------------------------

    def crash(self) -> None:
        """A process dying, as far as the group can tell quickly: gone without committing anything
        more. (Same call as `close`: with explicit commits nothing is committed on close either. It
        leaves the group at once instead of letting the session time out, so successors need not wait
        6 s.)"""
        self.close()

    def serve(self, timeout: float = 0.0) -> None:
        """Run the group protocol (join, rebalance callbacks) for up to `timeout` seconds without
        handing out a record: a record fetched meanwhile is kept for the next `poll`, in order."""
        with self._lock:
            self._check_open()
            record = self._next(timeout)
            if record is not None:
                self._buffer.append(record)

    def assignment(self) -> list[TopicPartitionKey]:
        """The (topic, partition) pairs this member owns, sorted (as of its last poll or serve)."""
        with self._lock:
            return sorted(self._owned)

    @property
    def assignments(self) -> int:
        """How many assignments this member has received (0: it has not completed a join yet)."""
        return self._assignments

    @property
    def member_id(self) -> str:
        """The broker's member id once joined, else the client id."""
        try:
            return self._consumer.memberid() or self.client_id
        except RuntimeError:  # closed
            return self.client_id

    # --- internals ----------------------------------------------------------------------------------

    def _next(self, timeout: float) -> Message | None:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            try:
                raw = self._consumer.poll(max(0.0, deadline - time.monotonic()))
            except KafkaException as exc:
                raise BusUnavailable(f"{self.client_id}: {exc}") from exc
            if raw is None:
                return None
            error = raw.error()
            if error is None:
                return _message(raw)
            if error.fatal():
                raise BusUnavailable(f"{self.client_id}: fatal consumer error: {error}")
            log.debug("%s: skipping consumer event %s", self.client_id, error)
            if time.monotonic() >= deadline:
                return None

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self.reset == "latest":
            self._resolve_latest(consumer, partitions)
        consumer.assign(partitions)
        self._owned = {(tp.topic, tp.partition) for tp in partitions}
        self._assignments += 1

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        if self.before_revoke is not None and revoked & self._owned:
            try:
                self.before_revoke(revoked & self._owned)
            except Exception:  # never into librdkafka's callback: the records come again
                log.exception("%s: committing before a revoke failed", self.client_id)
        self._drop(revoked)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Lost, not revoked (the session expired): another member may own them already, so nothing is
        committed for them (Kafka's rule for onPartitionsLost); their records come again."""
        self._drop({(tp.topic, tp.partition) for tp in partitions})

    def _drop(self, revoked: set[TopicPartitionKey]) -> None:
        self._owned -= revoked
        # records fetched but not handed out belong to the next owner now
        self._buffer = deque(m for m in self._buffer if (m.topic, m.partition) not in revoked)

    def _resolve_latest(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """`latest` means the end at assignment time, as in the embedded bus: pin it now."""
        if not partitions:
            return
        try:
            committed = consumer.committed(partitions, timeout=self._request_timeout)
            for tp, known in zip(partitions, committed, strict=True):
                if known.offset < 0:
                    _, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition),
                                                             timeout=self._request_timeout, cached=False)
                    tp.offset = high
        except KafkaException as exc:  # fall back to librdkafka's lazy `latest`
            log.warning("%s: could not pin the latest offsets at assignment: %s", self.client_id, exc)

    def _check_open(self) -> None:
        if self.closed:
            raise ConsumerClosed(f"{self.client_id} is closed")


def _commit_error(client_id: str, message: Message, error: KafkaError | None, cause: object) -> BusUnavailable:
    where = f"{message.topic}[{message.partition}]@{message.offset + 1}"
    if error is not None and error.code() in _STALE_COMMIT:
        return CommitFailed(f"{client_id}: commit of {where} rejected: {cause} (lost the partition in a rebalance)")
    return BusUnavailable(f"{client_id}: commit of {where} failed: {cause}")


def _text(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    return raw if isinstance(raw, str) else raw.decode("utf-8", "replace")


def _pairs(headers: list[tuple[str, bytes | str | None]] | dict[str, bytes | str | None] | None,
           ) -> list[tuple[str, bytes | str | None]]:
    if headers is None:
        return []
    return list(headers.items()) if isinstance(headers, dict) else list(headers)


def _message(raw: KafkaMessage) -> Message:
    topic, partition, offset = raw.topic(), raw.partition(), raw.offset()
    assert topic is not None and partition is not None and offset is not None
    key = raw.key()
    _, millis = raw.timestamp()
    return Message(
        topic=topic, partition=partition, offset=offset,
        key=None if key is None else _text(key),
        value=bytes(raw.value() or b""),
        headers=tuple((str(name), _text(value)) for name, value in _pairs(raw.headers())),
        timestamp=millis / 1000.0 if millis > 0 else 0.0,
    )
