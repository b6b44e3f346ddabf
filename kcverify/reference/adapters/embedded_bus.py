"""The embedded log (`EmbeddedBus`, `EmbeddedConsumer`): an in-process twin of Kafka wherever the flow
depends on Kafka's semantics.

- Topics have N partitions and must be created first (the real broker runs with
  `auto.create.topics.enable=false`): publishing to an unknown topic raises `UnknownTopic`.
- A keyed record goes to partition `crc32(key) % N`, librdkafka's default (`consistent_random`)
  partitioner, so the embedded bus places a key where the Kafka adapter with default settings does;
  a record without a key goes round-robin. Offsets count from 0 in each partition.
- Consumer groups: members split the partitions of the topics they subscribe to (Kafka's range
  assignor), and every join or leave rebalances the group eagerly: every member's position restarts
  at the committed offset of each partition it is assigned, so uncommitted messages are redelivered.
  With no committed offset a member starts at 0 (`earliest`) or at the partition's end at assignment
  time (`latest`). Offsets are committed only explicitly (W1).
- Deterministic: no threads, no randomness, timestamps from the injected Clock. `poll` never waits:
  in a single process nothing can arrive while it would, so `timeout` is accepted and ignored.
A lock makes each call atomic, since the HTTP app may publish from a worker thread."""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kcverify.core.clock import Clock
from kcverify.core.errors import BusUnavailable
from kcverify.reference.ports import Delivered, Message

RESETS = ("earliest", "latest")


class UnknownTopic(BusUnavailable):
    """The topic does not exist (auto-create is off). A BusUnavailable, as for the real broker: the
    producer cannot deliver, so outbox rows stay pending until the topic exists."""


class CommitFailed(BusUnavailable):
    """The member no longer owns the message's partition: a rebalance gave it to another member, or the
    consumer was never assigned it. Kafka rejects such a commit (stale generation); the message will be
    redelivered to the partition's owner, which idempotent handling (W6) absorbs."""


class ConsumerClosed(RuntimeError):
    """poll or commit on a consumer that was closed or crashed."""


def partition_for_key(key: str, partitions: int) -> int:
    """The partition of a keyed record: CRC-32 of the UTF-8 key modulo the partition count."""
    return zlib.crc32(key.encode("utf-8")) % partitions


TopicPartition = tuple[str, int]


@dataclass
class _Topic:
    logs: list[list[Message]]
    round_robin: int = 0


@dataclass
class _Group:
    members: list[EmbeddedConsumer] = field(default_factory=list)
    generation: int = 0


class EmbeddedBus:
    """The Bus port in process. Public helpers beyond the port: `end_offsets`, `committed`,
    `partitions`, `topics`, `members`."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._topics: dict[str, _Topic] = {}
        self._groups: dict[str, _Group] = {}
        self._committed: dict[tuple[str, str, int], int] = {}
        self._next_member = 0
        # Counts every change an observer can see through `end_offsets`, `committed`, `read_from` (a topic
        # created, a record published, an offset committed): an observer that saw the same count has
        # nothing new to read (the target's snapshot after every step).
        self.changes = 0

    # --- Bus ----------------------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int) -> None:
        """Idempotent: an existing topic keeps its partitions (whatever `partitions` says now)."""
        if partitions < 1:
            raise ValueError(f"a topic needs at least one partition, got {partitions}")
        with self._lock:
            if name in self._topics:
                return
            self._topics[name] = _Topic([[] for _ in range(partitions)])
            self.changes += 1
            # Kafka's consumers pick up a subscribed topic once it exists (metadata refresh).
            for group_name, group in self._groups.items():
                if any(name in member.topics for member in group.members):
                    self._rebalance(group_name)

    def publish(self, topic: str, key: str | None, value: bytes,
                headers: Sequence[tuple[str, str]] = ()) -> Delivered:
        with self._lock:
            log = self._topic(topic)
            if key is None:
                partition = log.round_robin % len(log.logs)
                log.round_robin += 1
            else:
                partition = partition_for_key(key, len(log.logs))
            records = log.logs[partition]
            offset = len(records)
            records.append(Message(
                topic=topic, partition=partition, offset=offset, key=key, value=bytes(value),
                headers=tuple((str(name), str(val)) for name, val in headers),
                timestamp=self._clock.now(),
            ))
            self.changes += 1
            return Delivered(topic, partition, offset)

    def consumer(self, group: str, topics: Sequence[str], *, reset: str = "earliest") -> EmbeddedConsumer:
        """Joins `group` (a rebalance). Topics not yet created are assigned when they are."""
        if reset not in RESETS:
            raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
        if isinstance(topics, str):
            raise TypeError("topics is a sequence of topic names, not one name")
        with self._lock:
            self._next_member += 1
            member = EmbeddedConsumer(self, group, tuple(topics), reset,
                                      f"{group}-member-{self._next_member:04d}")
            self._groups.setdefault(group, _Group()).members.append(member)
            self._rebalance(group)
            return member

    def read_all(self, topic: str) -> list[Message]:
        """Partition by partition, each in offset order."""
        with self._lock:
            return [message for log in self._topic(topic).logs for message in log]

    def read_from(self, topic: str, partition: int, offset: int) -> list[Message]:
        """The records of one partition from `offset` on: what an observer that already has the earlier
        ones needs (a snapshot after every step would otherwise copy the whole topic each time)."""
        with self._lock:
            logs = self._topic(topic).logs
            return list(logs[partition][offset:]) if partition < len(logs) else []

    # --- helpers beyond the port (the Kafka adapter offers them too) ---------------------------------

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the offset the next record will get (the high watermark)."""
        with self._lock:
            return {p: len(log) for p, log in enumerate(self._topic(topic).logs)}

    def committed(self, group: str, topic: str) -> dict[int, int | None]:
        """Per partition of `topic`, the offset `group` committed (the next one it will read), or None."""
        with self._lock:
            count = len(self._topic(topic).logs)
            return {p: self._committed.get((group, topic, p)) for p in range(count)}

    def partitions(self, topic: str) -> int:
        with self._lock:
            return len(self._topic(topic).logs)

    def topics(self) -> dict[str, int]:
        """Every topic and its partition count."""
        with self._lock:
            return {name: len(t.logs) for name, t in sorted(self._topics.items())}

    def members(self, group: str) -> dict[str, list[TopicPartition]]:
        """The live members of a group (by member id) and their assignments."""
        with self._lock:
            group_ = self._groups.get(group)
            if group_ is None:
                return {}
            return {m.member_id: m.assignment() for m in group_.members}

    # --- internals, called by EmbeddedConsumer under the lock ----------------------------------------

    def _topic(self, name: str) -> _Topic:
        try:
            return self._topics[name]
        except KeyError:
            raise UnknownTopic(f"unknown topic {name!r} (topics are not auto-created)") from None

    def _leave(self, member: EmbeddedConsumer) -> None:
        group = self._groups[member.group]
        group.members.remove(member)
        self._rebalance(member.group)

    def _commit(self, member: EmbeddedConsumer, message: Message) -> None:
        self._committed[(member.group, message.topic, message.partition)] = message.offset + 1
        self.changes += 1

    def _rebalance(self, group_name: str) -> None:
        """Eager rebalance with the range assignor: for each topic, its subscribers sorted by member id
        get consecutive partitions, the first ones one more when the count does not divide."""
        group = self._groups[group_name]
        for member in group.members:  # eager: every member gives up all it owns, after committing (Kafka's revoke)
            if member.before_revoke is not None and member._positions:
                try:
                    member.before_revoke(set(member._positions))
                except Exception:  # as librdkafka's callback: the rebalance happens anyway, the records come again
                    logging.getLogger(__name__).exception("%s: committing before a revoke failed", member.member_id)
        group.generation += 1
        members = sorted(group.members, key=lambda m: m.member_id)
        assignment: dict[str, list[TopicPartition]] = {m.member_id: [] for m in members}
        for topic_name in sorted({t for m in members for t in m.topics}):
            topic = self._topics.get(topic_name)
            subscribers = [m for m in members if topic_name in m.topics]
            if topic is None or not subscribers:
                continue
            count = len(topic.logs)
            share, extra = divmod(count, len(subscribers))
            start = 0
            for index, member in enumerate(subscribers):
                size = share + (1 if index < extra else 0)
                assignment[member.member_id].extend((topic_name, p) for p in range(start, start + size))
                start += size
        for member in members:
            positions = {}
            for topic_name, partition in assignment[member.member_id]:
                committed = self._committed.get((group_name, topic_name, partition))
                if committed is None:
                    committed = 0 if member.reset == "earliest" else len(
                        self._topics[topic_name].logs[partition])
                positions[(topic_name, partition)] = committed
            member._assign(positions, group.generation)


class EmbeddedConsumer:
    """One member of a consumer group on the embedded log (the Consumer port). Beyond the port:
    `crash()`, `assignment()`, `position()`, `member_id`, `group`, `topics`, `closed`."""

    def __init__(self, bus: EmbeddedBus, group: str, topics: tuple[str, ...], reset: str,
                 member_id: str) -> None:
        self._bus = bus
        self.group = group
        self.topics = topics
        self.reset = reset
        self.member_id = member_id
        self.closed = False
        self._positions: dict[TopicPartition, int] = {}
        self._order: list[TopicPartition] = []
        self._cursor = 0
        self._generation = 0
        # Called with the partitions a rebalance is about to take, while this member still owns them (as
        # librdkafka's revoke callback): the place to commit what was handled on them (GroupMember).
        self.before_revoke: Callable[[set[TopicPartition]], None] | None = None

    # --- Consumer -----------------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0) -> Message | None:
        """The next record of the assigned partitions, round-robin across partitions and in offset
        order within one; None when all are read. Never waits (see the module docstring)."""
        with self._bus._lock:
            self._check_open()
            count = len(self._order)
            for step in range(count):
                index = (self._cursor + step) % count
                topic, partition = self._order[index]
                position = self._positions[(topic, partition)]
                log = self._bus._topics[topic].logs[partition]
                if position < len(log):
                    self._positions[(topic, partition)] = position + 1
                    self._cursor = (index + 1) % count
                    return log[position]
            return None

    def commit(self, message: Message) -> None:
        """Sets the group's committed offset of the message's partition to `message.offset + 1` (even
        backwards, as Kafka does). Raises CommitFailed when this member does not own the partition."""
        with self._bus._lock:
            self._check_open()
            if (message.topic, message.partition) not in self._positions:
                raise CommitFailed(
                    f"{self.member_id} does not own {message.topic}[{message.partition}]"
                    f" (generation {self._generation}): the commit is rejected")
            self._bus._commit(self, message)

    def close(self) -> None:
        """Leaves the group: its partitions go to the other members, from the committed offsets.
        Idempotent."""
        with self._bus._lock:
            if self.closed:
                return
            self.closed = True
            self._positions = {}
            self._order = []
            self._bus._leave(self)

    # --- helpers beyond the port --------------------------------------------------------------------

    def crash(self) -> None:
        """A process dying: leaves the group without committing anything more. (With explicit commits
        that is what `close` does too; the name says what a test means. The real broker notices a dead
        member only after its session timeout; here it is at once.)"""
        self.close()

    def assignment(self) -> list[TopicPartition]:
        """The (topic, partition) pairs this member owns, sorted."""
        with self._bus._lock:
            return list(self._order)

    def position(self, topic: str, partition: int) -> int | None:
        """The offset of the next record this member will read from a partition it owns, else None."""
        with self._bus._lock:
            return self._positions.get((topic, partition))

    # --- internals ----------------------------------------------------------------------------------

    def _assign(self, positions: dict[TopicPartition, int], generation: int) -> None:
        self._positions = positions
        self._order = sorted(positions)
        self._cursor = 0
        self._generation = generation

    def _check_open(self) -> None:
        if self.closed:
            raise ConsumerClosed(f"{self.member_id} is closed")
