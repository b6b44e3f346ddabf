"""A consumer group's committed offsets, read the way a member reads them, not with the admin API.

`AdminClient.list_consumer_group_offsets` crashes the whole process when the group's coordinator answers
NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE: librdkafka's admin path hands the answer to the
consumer-group code of a client that has none (SIGSEGV in `rd_kafka_cgrp_op`, called from
`rd_kafka_handle_OffsetFetch`, on librdkafka's own thread, so Python's faulthandler prints nothing;
librdkafka issue 5040). Coordinators answer so for seconds after a broker starts and while a group
rebalances after a member died: exactly when a verifier reads offsets. A consumer carrying the group's
id sends the same OffsetFetch to the same coordinator through code that survives those answers. It
never subscribes, so it never joins the group, and it never commits. librdkafka gives such an answer
back as an error instead of retrying it, so `committed` asks again until its timeout while the error is
one a coordinator gives while it moves or loads.

One reader consumer per group, kept until `close()`: making a consumer costs threads and a coordinator
lookup, and a settle asks often. Calls and `close()` are serialized: closing a consumer another thread
is using crashes librdkafka too."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # confluent-kafka is imported when a reader is used (core/ itself needs only the standard library)
    from confluent_kafka import Consumer

log = logging.getLogger(__name__)

# What a coordinator answers while it moves, loads or is being looked up: worth asking again.
_TRANSIENT = frozenset({"NOT_COORDINATOR", "COORDINATOR_NOT_AVAILABLE", "COORDINATOR_LOAD_IN_PROGRESS",
                        "_WAIT_COORD", "_TRANSPORT", "UNSTABLE_OFFSET_COMMIT", "_TIMED_OUT"})
RETRY_PAUSE = 0.2  # seconds between two asks


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

        deadline = time.monotonic() + timeout
        with self._lock:
            reader = self._reader(group)
            while True:
                answered: list[Any] = []
                error: Any = None
                try:
                    answered = reader.committed([TopicPartition(topic, p) for p in partitions],
                                                timeout=max(0.1, deadline - time.monotonic()))
                    error = next((tp.error for tp in answered if tp.error is not None), None)
                    whole_request = False
                except KafkaException as exc:
                    error, whole_request = (exc.args[0] if exc.args else exc), True
                finally:
                    reader.poll(0)  # serves the reader's log lines and error events (it is never assigned)
                if error is None:
                    break
                if _transient(error) and time.monotonic() + RETRY_PAUSE < deadline:
                    time.sleep(RETRY_PAUSE)
                    continue
                if whole_request or strict:
                    raise GroupOffsetsError(f"committed offsets of group {group!r} on {topic}: {error}")
                break  # not strict: a partition answered with an error reads as None
        offsets: dict[int, int | None] = {p: None for p in partitions}
        for tp in answered:
            offsets[tp.partition] = tp.offset if tp.error is None and tp.offset >= 0 else None
        return offsets

    def _reader(self, group: str) -> Consumer:
        """Under the lock."""
        from confluent_kafka import Consumer

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
        """Closes every reader (none of them is a member: nothing is committed, no group is left), after
        any call under way. Idempotent; a reader that fails to close is logged and the others still are."""
        with self._lock:
            self._closed = True
            readers, self._readers = list(self._readers.values()), {}
            for reader in readers:
                try:
                    reader.close()
                except Exception as exc:  # a closing handle must not keep the others open
                    log.warning("closing a group offsets reader: %s", exc)


def _transient(error: Any) -> bool:
    name = error.name() if hasattr(error, "name") else ""
    return name in _TRANSIENT
