"""A consumer group's committed offsets, read the way a member reads them, not with the admin API.

`AdminClient.list_consumer_group_offsets` crashes the whole process when the group's coordinator answers
with a coordinator error (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS): librdkafka's admin path hands
the answer to the consumer-group code of a client that has no consumer group (SIGSEGV in
`rd_kafka_cgrp_op`, called from `rd_kafka_handle_OffsetFetch`, on librdkafka's own thread, so Python's
faulthandler prints nothing). Coordinators answer so for seconds after a broker starts and while a
group rebalances after a member died: exactly when a verifier reads offsets. A consumer carrying the
group's id asks the same coordinator the same OffsetFetch through code that handles those errors (it
finds the coordinator again and retries within the timeout). It never subscribes, so it never joins the
group, and it never commits.

One reader consumer per group, kept until `close()`: making a consumer costs threads and a coordinator
lookup, and a settle asks often."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # confluent-kafka is imported when a reader is used (core/ itself needs only the standard library)
    from confluent_kafka import Consumer


class GroupOffsetsError(RuntimeError):
    """The coordinator did not answer in time, or answered with an error: the message says which."""


class GroupOffsets:
    """Committed offsets of any group on one broker. `config`: the client settings (bootstrap.servers,
    logger, ...) the readers share; group.id and the no-commit settings are added per group."""

    def __init__(self, config: Mapping[str, Any], client_id: str) -> None:
        self._config = dict(config)
        self._client_id = client_id
        self._lock = threading.Lock()
        self._readers: dict[str, Consumer] = {}
        self._closed = False

    def committed(self, group: str, topic: str, partitions: list[int], timeout: float, *,
                  strict: bool = True) -> dict[int, int | None]:
        """Per partition, the offset `group` committed (the next one it will read), or None. A partition
        answered with an error raises, unless not `strict`: then it reads as None."""
        from confluent_kafka import KafkaException, TopicPartition

        reader = self._reader(group)
        try:
            answered = reader.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout)
        except KafkaException as exc:
            raise GroupOffsetsError(f"committed offsets of group {group!r}: {exc}") from None
        offsets: dict[int, int | None] = {p: None for p in partitions}
        for tp in answered:
            if tp.error is not None and strict:
                raise GroupOffsetsError(f"committed offset of group {group!r} {topic}[{tp.partition}]: {tp.error}")
            offsets[tp.partition] = tp.offset if tp.error is None and tp.offset >= 0 else None
        return offsets

    def _reader(self, group: str) -> Consumer:
        from confluent_kafka import Consumer

        with self._lock:
            if self._closed:
                raise RuntimeError("the group offsets reader is closed")
            reader = self._readers.get(group)
            if reader is None:
                reader = self._readers[group] = Consumer({
                    **self._config, "group.id": group, "client.id": f"{self._client_id}-offsets",
                    "enable.auto.commit": False, "enable.auto.offset.store": False,
                })
            return reader

    def close(self) -> None:
        """Closes every reader (none of them is a member: nothing is committed, no group is left)."""
        with self._lock:
            self._closed = True
            readers, self._readers = list(self._readers.values()), {}
        for reader in readers:
            reader.close()
