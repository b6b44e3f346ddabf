"""Consumer-group membership shared by the components that consume (worker, cache invalidator):
join lazily on first use, leave cleanly on a graceful stop, vanish without committing on a crash."""

from __future__ import annotations

from collections.abc import Sequence

from kcverify.reference.ports import Bus, Consumer


class GroupMember:
    def __init__(self, bus: Bus, group: str, topics: Sequence[str], reset: str = "earliest") -> None:
        self._bus = bus
        self._group = group
        self._topics = list(topics)
        self._reset = reset
        self._consumer: Consumer | None = None

    @property
    def consumer(self) -> Consumer:
        """Joins the group on first use: a component that never started consumes nothing (W1)."""
        if self._consumer is None:
            self._consumer = self._bus.consumer(self._group, self._topics, reset=self._reset)
        return self._consumer

    def start(self) -> None:
        _ = self.consumer

    def close(self) -> None:
        """Graceful stop (SIGTERM): leave the group; what was not committed goes to the next member."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def abandon(self) -> None:
        """After a crash: gone without a word; uncommitted offsets are redelivered to the next member."""
        consumer, self._consumer = self._consumer, None
        crash = getattr(consumer, "crash", None)
        if callable(crash):
            crash()
        elif consumer is not None:
            consumer.close()
