"""GroupMember's batched offset commits: once per polled batch, always after handling, never lost on a
graceful stop, dropped on a crash (the records come again)."""

from __future__ import annotations

from kcverify.core.clock import ManualClock
from kcverify.core.errors import BusUnavailable
from kcverify.reference.adapters.embedded_bus import EmbeddedBus
from kcverify.reference.membership import GroupMember
from kcverify.reference.ports import Message

TOPIC = "t"


def _member(records: int) -> tuple[EmbeddedBus, GroupMember, list[tuple[int, str]]]:
    bus = EmbeddedBus(ManualClock())
    bus.create_topic(TOPIC, 1)
    for i in range(records):
        bus.publish(TOPIC, "k", str(i).encode())
    commits: list[tuple[int, str]] = []

    def report(message: Message, note: str, error: BusUnavailable | None) -> None:
        assert error is None
        commits.append((message.offset, note))

    return bus, GroupMember(bus, "g", [TOPIC], on_commit=report), commits


def test_a_batch_is_committed_once_after_its_last_record_was_handled() -> None:
    bus, member, commits = _member(3)
    for _ in range(3):
        message = member.poll()
        assert message is not None
        assert bus.committed("g", TOPIC) == {0: None}  # nothing committed before it is handled
        member.handled(message, "processed")
    assert member.pending_commits() == 1
    assert member.poll() is None  # nothing more fetched: the batch is committed before the wait
    assert commits == [(2, "processed")]
    assert bus.committed("g", TOPIC) == {0: 3}
    assert member.pending_commits() == 0


def test_a_record_polled_but_not_handled_is_not_committed() -> None:
    bus, member, commits = _member(2)
    first = member.poll()
    assert first is not None
    member.handled(first)
    second = member.poll()  # taken while the first waits for its commit
    assert second is not None and second.offset == 1
    member.flush()
    assert bus.committed("g", TOPIC) == {0: 1}  # the first only: the second is not handled yet
    assert commits == [(0, "")]


def test_a_graceful_close_commits_what_was_handled_and_a_crash_does_not() -> None:
    bus, member, _ = _member(2)
    message = member.poll()
    assert message is not None
    member.handled(message)
    member.close()
    assert bus.committed("g", TOPIC) == {0: 1}

    crashed = GroupMember(bus, "g", [TOPIC])
    again = crashed.poll()
    assert again is not None and again.offset == 1
    crashed.handled(again)
    crashed.abandon()
    assert bus.committed("g", TOPIC) == {0: 1}  # redelivered to the next member


def test_a_long_backlog_is_committed_every_batch_not_only_at_its_end() -> None:
    records = GroupMember.BATCH * 2 + 5
    bus, member, commits = _member(records)
    for _ in range(records):
        message = member.poll()
        assert message is not None
        member.handled(message)
    assert [offset for offset, _ in commits] == [GroupMember.BATCH - 1, 2 * GroupMember.BATCH - 1]
    assert member.poll() is None
    assert bus.committed("g", TOPIC) == {0: records}


class _Reassigned:
    """A consumer that counts its assignments, as the Kafka adapter's does."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.assignments = 1

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_a_record_handed_out_before_a_rebalance_is_not_committed_after_it() -> None:
    bus = EmbeddedBus(ManualClock())
    bus.create_topic(TOPIC, 1)
    bus.publish(TOPIC, "k", b"0")
    seen: list[tuple[int, str | None]] = []

    def report(message: Message, note: str, error: BusUnavailable | None) -> None:
        seen.append((message.offset, None if error is None else str(error)))

    member = GroupMember(bus, "g", [TOPIC], on_commit=report)
    member._consumer = _Reassigned(bus.consumer("g", [TOPIC]))  # type: ignore[assignment]
    message = member.poll()
    assert message is not None
    member.handled(message)
    member.consumer.assignments = 2  # type: ignore[attr-defined]  # the group rebalanced meanwhile
    member.flush()
    assert bus.committed("g", TOPIC) == {0: None}  # another member may have committed further meanwhile
    assert seen and seen[0][0] == 0 and "reassigned" in str(seen[0][1])


def test_a_group_crashing_together_commits_nothing() -> None:
    """Crash one member and the rebalance asks the other to commit what it handled (commit-on-revoke):
    a group that crashes together forgets in every member first, as SIGKILLed processes commit nothing."""
    bus = EmbeddedBus(ManualClock())
    bus.create_topic(TOPIC, 2)
    for n in range(8):  # records on both partitions
        bus.publish(TOPIC, f"student-{n}", str(n).encode())
    members = [GroupMember(bus, "g", [TOPIC]) for _ in range(2)]
    for member in members:
        member.start()
    for member in members:
        message = member.poll()
        assert message is not None
        member.handled(message)
    for member in members:
        member.forget()
    for member in members:
        member.abandon()
    assert bus.committed("g", TOPIC) == {0: None, 1: None}


def test_one_member_crashing_makes_the_other_commit_what_it_handled() -> None:
    """The same, one member alone crashing: the survivor's handled record is committed as the rebalance
    revokes its partitions, so it is not handed out again."""
    bus = EmbeddedBus(ManualClock())
    bus.create_topic(TOPIC, 2)
    for n in range(8):
        bus.publish(TOPIC, f"student-{n}", str(n).encode())
    first, second = GroupMember(bus, "g", [TOPIC]), GroupMember(bus, "g", [TOPIC])
    first.start()
    second.start()
    handled = second.poll()
    assert handled is not None
    second.handled(handled)
    first.abandon()
    assert bus.committed("g", TOPIC)[handled.partition] == handled.offset + 1
    assert second.pending_commits() == 0
