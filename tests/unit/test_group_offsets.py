"""GroupOffsets: a coordinator's transient answers are asked again until the timeout, other errors are
raised at once, and closing closes every reader even when one fails to close."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from kcverify.core.group_offsets import GroupOffsets, GroupOffsetsError


class FakeReader:
    """Answers `committed` from a script: an exception to raise or a list of offsets per call."""

    def __init__(self, script: list[Any]) -> None:
        self.script, self.calls, self.closed = list(script), 0, False

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        self.calls += 1
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        return [TopicPartition(tp.topic, tp.partition, offset) for tp, offset in zip(partitions, step, strict=True)]

    def poll(self, timeout: float) -> None:
        return None

    def close(self) -> None:
        self.closed = True


def _reading(script: list[Any], monkeypatch: pytest.MonkeyPatch) -> tuple[GroupOffsets, FakeReader]:
    offsets, reader = GroupOffsets({"bootstrap.servers": "unused:1"}, "test"), FakeReader(script)
    monkeypatch.setattr(offsets, "_reader", lambda group: reader)
    return offsets, reader


def test_a_moving_coordinator_is_asked_again_until_it_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    moving = KafkaException(KafkaError(KafkaError.NOT_COORDINATOR))
    loading = KafkaException(KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS))
    offsets, reader = _reading([moving, loading, [5, -1001]], monkeypatch)
    assert offsets.committed("g", "t", [0, 1], timeout=5) == {0: 5, 1: None}
    assert reader.calls == 3


def test_an_error_that_is_not_transient_is_raised_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    denied = KafkaException(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED))
    offsets, reader = _reading([denied], monkeypatch)
    with pytest.raises(GroupOffsetsError, match="GROUP_AUTHORIZATION_FAILED"):
        offsets.committed("g", "t", [0], timeout=5)
    assert reader.calls == 1


def test_a_coordinator_that_never_settles_ends_at_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    offsets, reader = _reading([KafkaException(KafkaError(KafkaError.COORDINATOR_NOT_AVAILABLE))], monkeypatch)
    started = time.monotonic()
    with pytest.raises(GroupOffsetsError, match="COORDINATOR_NOT_AVAILABLE"):
        offsets.committed("g", "t", [0], timeout=1.0)
    assert 0.7 <= time.monotonic() - started < 2.0 and reader.calls >= 3


def test_close_closes_every_reader_even_when_one_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    offsets = GroupOffsets({"bootstrap.servers": "unused:1"}, "test")
    failing, fine = FakeReader([[0]]), FakeReader([[0]])
    failing.close = lambda: (_ for _ in ()).throw(KafkaException(KafkaError(KafkaError._TRANSPORT)))  # type: ignore[method-assign]
    offsets._readers = {"a": failing, "b": fine}  # type: ignore[dict-item]
    offsets.close()
    assert fine.closed
    with pytest.raises(RuntimeError, match="closed"):
        offsets.committed("a", "t", [0], timeout=1)
