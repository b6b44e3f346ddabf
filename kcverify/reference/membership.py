"""Consumer-group membership shared by the components that consume (worker, cache invalidator):
join lazily on first use, leave cleanly on a graceful stop, vanish without committing on a crash, and
commit offsets once per polled batch.

Batched commits: a component tells its member which records it has finished (`handled`); their
offsets are committed when the member has nothing more to hand out at once (`poll` finds no record
already fetched), before a wait (`flush`, e.g. while an event waits for its retry) and on a graceful
stop. So an offset is still committed only after its record was handled (W1), each commit is still the
Consumer port's synchronous one, and a record arriving alone (low load) is committed before the next
wait, as it was committed one by one before; under load one commit per partition covers every record
of a batch instead of a broker round trip each. A crash loses the commits not yet made: those records
come again, and the components' idempotency absorbs them, as for a crash between handling and commit.

A rebalance does not lose them: the bus calls the member's `_commit_before_revoke` with the partitions
it is about to take, while they are still the member's (librdkafka's revoke callback; the embedded bus
before it reassigns), and what was handled on them is committed then. Their next owner starts after
them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kcverify.core.errors import BusUnavailable
from kcverify.reference.ports import Bus, Consumer, Message

# Told of each commit made (error None) or refused (the BusUnavailable); `note` is what `handled` was given.
CommitReport = Callable[[Message, str, BusUnavailable | None], None]


def _ignore(message: Message, note: str, error: BusUnavailable | None) -> None:
    return None


class GroupMember:
    BATCH = 64  # at most this many handled records wait for their commit
    def __init__(self, bus: Bus, group: str, topics: Sequence[str], reset: str = "earliest",
                 on_commit: CommitReport = _ignore) -> None:
        self._bus = bus
        self._group = group
        self._topics = list(topics)
        self._reset = reset
        self._on_commit = on_commit
        self._consumer: Consumer | None = None
        # (topic, partition) -> the last record handled there and not committed yet, and its note
        self._handled: dict[tuple[str, int], tuple[Message, str, int | None]] = {}
        self._since_flush = 0  # records handled since the last flush

    @property
    def consumer(self) -> Consumer:
        """Joins the group on first use: a component that never started consumes nothing (W1)."""
        if self._consumer is None:
            self._consumer = self._bus.consumer(self._group, self._topics, reset=self._reset)
            if hasattr(self._consumer, "before_revoke"):  # both buses: commit on revoke
                self._consumer.before_revoke = self._commit_before_revoke
        return self._consumer

    def start(self) -> None:
        _ = self.consumer

    def poll(self, timeout: float = 0.0) -> Message | None:
        """The next record. While handled records wait for their commit, a record fetched already is
        handed out at once; when there is none, or `BATCH` records were handled since the last commit
        (a backlog drained after an outage would otherwise commit nothing until its end, and a crash then
        hand all of it out again), the handled ones are committed before waiting up to `timeout` for more."""
        if self._handled:
            if self._since_flush < self.BATCH:
                message = self.consumer.poll(0.0)
                if message is not None:
                    return message
            self.flush()
        return self.consumer.poll(timeout)

    def handled(self, message: Message, note: str = "") -> None:
        """`message` is finished with: its offset is committed at the next `flush` (records of a partition
        are handled in order, so the last one's offset covers the ones before it). Remembered with the
        member's assignment it came with: after a rebalance it is not committed (its partition may have
        been another member's meanwhile, who committed further; the record comes again, at least once)."""
        self._handled[(message.topic, message.partition)] = (message, note, self._assignment())
        self._since_flush += 1

    def _assignment(self) -> int | None:
        """Which assignment the member is in, when its consumer counts them (the Kafka adapter's
        `assignments`); the embedded bus refuses a stale member's commit itself."""
        count = getattr(self._consumer, "assignments", None)
        return count if isinstance(count, int) else None

    def pending_commits(self) -> int:
        """Partitions with a handled record whose offset is not committed yet."""
        return len(self._handled)

    def flush(self) -> None:
        """Commit the offsets of the handled records now (synchronously, one commit per partition). A
        refused commit (the partition lost in a rebalance, the broker away) is reported, not raised: its
        records go to the partition's next owner again, at least once."""
        pending, self._handled, self._since_flush = self._handled, {}, 0
        now = self._assignment()
        for message, note, assignment in pending.values():
            if assignment != now:  # handed out before a rebalance: not ours to commit any more
                self._on_commit(message, note, BusUnavailable(
                    f"not committed: {message.topic}[{message.partition}] was reassigned since offset "
                    f"{message.offset} was handed out"))
                continue
            try:
                self.consumer.commit(message)
            except BusUnavailable as exc:
                self._on_commit(message, note, exc)
            else:
                self._on_commit(message, note, None)

    def _commit_before_revoke(self, revoked: set[tuple[str, int]]) -> None:
        """A rebalance takes `revoked` away once this returns; until then they are this member's, so what
        was handled on them is committed now (Kafka's commit-on-revoke). Without it, a record handled
        while the member did not poll (an event waiting for its retries, W7) was handed to the
        partition's next owner again and handled a second time: its dead letter undone by a purchase
        made once the faults were spent. A record handled under an earlier assignment is not committed
        (as in `flush`: another member may have committed further)."""
        consumer = self._consumer
        if consumer is None or getattr(consumer, "closed", False):
            return
        now = self._assignment()
        for key in [k for k in self._handled if k in revoked]:
            message, note, assignment = self._handled.pop(key)
            if assignment != now:
                self._on_commit(message, note, BusUnavailable(
                    f"not committed: {message.topic}[{message.partition}] was reassigned since offset "
                    f"{message.offset} was handed out"))
                continue
            try:
                consumer.commit(message)
            except BusUnavailable as exc:
                self._on_commit(message, note, exc)
            else:
                self._on_commit(message, note, None)
        if not self._handled:
            self._since_flush = 0

    def forget(self) -> None:
        """Drop the handled records without committing them, and commit nothing on a later revoke: the
        first half of a crash. A group whose members all crash forgets in every member first, so that
        one member's departure does not make another commit on its way down."""
        self._handled, self._since_flush = {}, 0
        if self._consumer is not None and hasattr(self._consumer, "before_revoke"):
            self._consumer.before_revoke = None

    def close(self) -> None:
        """Graceful stop (SIGTERM): commit what was handled, then leave the group; what was not committed
        goes to the next member."""
        if self._consumer is not None:
            self.flush()
            self._consumer.close()
            self._consumer = None

    def abandon(self) -> None:
        """After a crash: gone without a word; uncommitted offsets are redelivered to the next member."""
        self.forget()
        consumer, self._consumer = self._consumer, None
        crash = getattr(consumer, "crash", None)
        if callable(crash):
            crash()
        elif consumer is not None:
            consumer.close()
