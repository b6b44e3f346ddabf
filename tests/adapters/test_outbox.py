"""OutboxStore conformance, on both databases' outboxes (P3, W6): oldest first by id, a limit, marking
published, rows written alone by `enqueue_outbox` (the reconciler)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from kcverify.core.clock import MANUAL_EPOCH
from kcverify.reference.domain import OutboxMessage
from kcverify.reference.ports import OutboxStore

T0 = MANUAL_EPOCH + 0.5


def msg(n: int, **overrides: object) -> OutboxMessage:
    fields: dict[str, object] = {
        "topic": "purchase-confirmed" if n % 2 else "purchase-created",
        "key": f"student-{n % 3}",
        "value": b"\x00\xff" + str(n).encode(),  # arbitrary bytes, not only UTF-8
        "headers": (("eventId", f"e-{n}"), ("type", "T"), ("type", "again")),  # repeats kept, in order
        "created_at": T0 + n,
    }
    fields.update(overrides)
    return OutboxMessage(**fields)  # type: ignore[arg-type]


def strip_id(message: OutboxMessage) -> OutboxMessage:
    return dataclasses.replace(message, id=None)


def test_enqueue_then_pending_round_trips_every_field(outbox_store: OutboxStore) -> None:
    outbox_store.enqueue_outbox(msg(1))
    [row] = outbox_store.pending_outbox(10)
    assert isinstance(row.id, int)
    assert strip_id(row) == msg(1)


def test_pending_is_oldest_first_by_id_and_limited(outbox_store: OutboxStore) -> None:
    # created_at deliberately out of order: the order is the insertion order (id), not the timestamp
    for n in (5, 1, 3, 2):
        outbox_store.enqueue_outbox(msg(n))
    pending = outbox_store.pending_outbox(10)
    assert [strip_id(m) for m in pending] == [msg(5), msg(1), msg(3), msg(2)]
    ids = [m.id for m in pending if m.id is not None]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert outbox_store.pending_outbox(2) == pending[:2]
    assert outbox_store.pending_outbox(0) == []


def test_mark_published_removes_rows_from_pending(outbox_store: OutboxStore) -> None:
    for n in range(4):
        outbox_store.enqueue_outbox(msg(n))
    pending = outbox_store.pending_outbox(10)
    ids = [m.id for m in pending if m.id is not None]
    outbox_store.mark_published(ids[:2], T0 + 100)
    assert outbox_store.pending_outbox(10) == pending[2:]
    # at least once: marking again (a relay that crashed before it recorded the marking) is harmless
    outbox_store.mark_published(ids[:3], T0 + 200)
    assert outbox_store.pending_outbox(10) == pending[3:]
    outbox_store.mark_published([], T0 + 300)
    assert outbox_store.pending_outbox(10) == pending[3:]


def test_rows_enqueued_after_publication_get_later_ids(outbox_store: OutboxStore) -> None:
    outbox_store.enqueue_outbox(msg(1))
    [first] = outbox_store.pending_outbox(10)
    assert first.id is not None
    outbox_store.mark_published([first.id], T0)
    outbox_store.enqueue_outbox(msg(2))
    [second] = outbox_store.pending_outbox(10)
    assert second.id is not None and second.id > first.id


def test_a_committed_outbox_write_wakes_a_listener_until_it_stops(outbox_store: OutboxStore) -> None:
    """The relays wake on commit instead of waiting out their idle pause (LISTEN/NOTIFY on PostgreSQL, an
    in-process signal on SQLite): every store adapter offers `listen_outbox(wake) -> stop`."""
    listen: Callable[[Callable[[], None]], Callable[[], None]] = outbox_store.listen_outbox  # type: ignore[attr-defined]
    woken = threading.Event()
    stop = listen(woken.set)
    try:
        if type(outbox_store).__name__.startswith("Postgres"):
            assert woken.wait(10.0)  # it wakes once when it starts listening (for what came before)
            woken.clear()
        assert not woken.wait(0.3)  # nothing written: nothing to wake for
        outbox_store.enqueue_outbox(msg(1))
        assert woken.wait(5.0)
    finally:
        stop()
    woken.clear()
    outbox_store.enqueue_outbox(msg(2))
    assert not woken.wait(0.5)
