"""The external target's settle waits for the consumer groups: a worker between two attempts of a retry
changes nothing observable for seconds, so rows and records alone would call the flow quiet too early."""

from __future__ import annotations

from kcverify.spec import names
from kcverify.targets.base import Snapshot
from kcverify.targets.external import CONSUMERS, _caught_up

WORKER = CONSUMERS["purchase-worker"]


def snapshot(committed: dict[int, int | None], ends: dict[int, int]) -> Snapshot:
    return Snapshot(at=0.0, committed={WORKER: committed}, end_offsets={names.TOPIC_CONFIRMED: ends})


def test_a_group_behind_its_topic_end_is_not_quiet() -> None:
    assert not _caught_up(snapshot({0: 3, 1: 5}, {0: 4, 1: 5}), [WORKER])
    assert not _caught_up(snapshot({0: None}, {0: 1}), [WORKER])  # nothing committed yet, one record waits


def test_a_group_at_its_topic_end_is_quiet() -> None:
    assert _caught_up(snapshot({0: 4, 1: 5}, {0: 4, 1: 5}), [WORKER])
    assert _caught_up(snapshot({0: None}, {0: 0}), [WORKER])  # an empty partition


def test_groups_not_asked_for_or_not_declared_do_not_hold_the_settle() -> None:
    assert _caught_up(snapshot({0: 3}, {0: 4}), [])  # the worker is down: nobody waits for it
    assert _caught_up(Snapshot(at=0.0), [WORKER])  # no bus read, no group declared
