"""The embedded target's snapshot reads the bus again only when the bus changed (EmbeddedBus.changes):
a publish and a commit must show in the next snapshot; with no change the views are the same objects."""

from __future__ import annotations

from kcverify.reference import domain
from kcverify.targets.embedded import EmbeddedTarget


def test_a_snapshot_shows_every_publish_and_commit_and_reuses_unchanged_views() -> None:
    target = EmbeddedTarget()
    target.start(seed=0)
    try:
        first, again = target.snapshot(), target.snapshot()
        assert again.topics is first.topics and again.committed is first.committed
        assert first.topics[domain.TOPIC_CONFIRMED] == []

        target.publish(domain.TOPIC_CONFIRMED, "s1", b"not an event")
        published = target.snapshot()
        assert [r.value for r in published.topics[domain.TOPIC_CONFIRMED]] == [b"not an event"]
        assert sum(published.end_offsets[domain.TOPIC_CONFIRMED].values()) == 1
        key = f"{domain.WORKER_GROUP}/{domain.TOPIC_CONFIRMED}"
        assert set(published.committed[key].values()) == {None}

        target.settle(None)  # the worker dead-letters the poison and commits past it
        handled = target.snapshot()
        assert sorted(v for v in handled.committed[key].values() if v is not None) == [1]
        assert handled.topics[domain.TOPIC_DLQ] and handled.topics is not published.topics
    finally:
        target.stop()
