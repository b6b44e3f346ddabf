"""Bus conformance: the Kafka semantics the flow depends on. Per-key ordering (partition by key), topics
that must exist, consumer groups sharing partitions, committed offsets that survive a crash with the
uncommitted messages redelivered (W1, W6), `earliest`/`latest` reset for a new group (W1).

Every wait goes through the kit: `join` waits until the group has settled around the new member,
`drain` polls with the kit's timeout and waits up to the kit's `settle_timeout` for records it expects,
so the same tests run on a real broker. Tests marked `needs_trait` check promises that not every
adapter gives (factories.TRAITS)."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import pytest

from kcverify.core.clock import ManualClock
from kcverify.core.errors import BusUnavailable
from kcverify.reference.adapters.embedded_bus import partition_for_key
from kcverify.reference.membership import GroupMember
from kcverify.reference.ports import Bus, Consumer, Message
from tests.adapters.factories import BusKit

PARTITIONS = 3


# --- helpers ----------------------------------------------------------------------------------------


def drain(kit: BusKit, *consumers: Consumer, expect: int | None = None,
          max_rounds: int = 100_000) -> list[list[Message]]:
    """Poll the consumers in turn; stop once `expect` records arrived in all, or when every consumer
    has been idle for `kit.idle_polls` rounds (and, when records are expected, `kit.settle_timeout`
    has passed). Returns each consumer's records, in arrival order. While records flow, polls do not
    wait (one consumer's empty poll must not slow down another's stream); a round that finds nothing
    is repeated with `kit.poll_timeout`, and only such waiting rounds count as idle."""
    got: list[list[Message]] = [[] for _ in consumers]
    total = idle = 0
    flowing = False
    deadline = time.monotonic() + (kit.settle_timeout if expect is not None else 0.0)
    for _ in range(max_rounds):
        progressed = False
        for index, consumer in enumerate(consumers):
            message = consumer.poll(0.0 if flowing else kit.poll_timeout)
            if message is not None:
                got[index].append(message)
                total += 1
                progressed = True
        if expect is not None and total >= expect:
            break
        if progressed or flowing:
            flowing, idle = progressed, 0
            continue
        idle += 1
        if idle >= kit.idle_polls and time.monotonic() >= deadline:
            break
    return got


def join(kit: BusKit, group: str, topics: list[str], reset: str = "earliest") -> Consumer:
    consumer = kit.bus.consumer(group, topics, reset=reset)
    kit.ready(consumer)
    return consumer


def crash(consumer: Consumer) -> None:
    """A process dying: gone from the group, nothing more committed."""
    getattr(consumer, "crash", consumer.close)()


def end_offsets(bus: Bus, topic: str) -> dict[int, int]:
    result: dict[int, int] = _extra(bus).end_offsets(topic)
    return result


def committed(bus: Bus, group: str, topic: str) -> dict[int, int | None]:
    result: dict[int, int | None] = _extra(bus).committed(group, topic)
    return result


def _extra(bus: Bus) -> Any:
    """The helpers every bus adapter offers beyond the port (end_offsets, committed)."""
    return bus


def values(messages: list[Message]) -> list[bytes]:
    return [m.value for m in messages]


def publish_keys(bus: Bus, topic: str, keys: list[str], rounds: int) -> list[bytes]:
    """Publish `rounds` records for each key, interleaved; returns the values in publish order."""
    sent = []
    for n in range(rounds):
        for key in keys:
            value = f"{key}#{n}".encode()
            bus.publish(topic, key, value)
            sent.append(value)
    return sent


@pytest.fixture
def topic(bus: Bus, unique: str) -> str:
    name = f"topic-{unique}"
    bus.create_topic(name, PARTITIONS)
    return name


@pytest.fixture
def group(unique: str) -> str:
    return f"group-{unique}"


# --- topics and partitions ----------------------------------------------------------------------------


def test_publishing_to_an_unknown_topic_raises(bus: Bus, unique: str) -> None:
    """Auto-create is off, as on the real broker: a typo never silently creates a topic."""
    with pytest.raises(BusUnavailable):
        bus.publish(f"no-such-topic-{unique}", "k", b"v")


def test_create_topic_is_idempotent(bus: Bus, unique: str) -> None:
    name = f"topic-{unique}"
    bus.create_topic(name, PARTITIONS)
    bus.create_topic(name, PARTITIONS)
    assert end_offsets(bus, name) == {p: 0 for p in range(PARTITIONS)}


def test_offsets_count_from_zero_in_each_partition(bus: Bus, topic: str) -> None:
    delivered = [bus.publish(topic, f"student-{n % 7}", str(n).encode()) for n in range(30)]
    by_partition: dict[int, list[int]] = defaultdict(list)
    for receipt in delivered:
        assert receipt.topic == topic and 0 <= receipt.partition < PARTITIONS
        by_partition[receipt.partition].append(receipt.offset)
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets)))
    assert end_offsets(bus, topic) == {p: len(by_partition.get(p, [])) for p in range(PARTITIONS)}


def test_same_key_always_same_partition_in_publish_order(bus: Bus, topic: str) -> None:
    """Per-student ordering: key = studentId, so one student's events keep their order."""
    keys = [f"student-{n}" for n in range(12)]
    publish_keys(bus, topic, keys, rounds=5)
    records = bus.read_all(topic)
    partitions_of: dict[str | None, set[int]] = defaultdict(set)
    for record in records:
        partitions_of[record.key].add(record.partition)
    assert all(len(found) == 1 for found in partitions_of.values())
    assert len({p for found in partitions_of.values() for p in found}) > 1  # keys do spread
    for key in keys:
        mine = [r for r in records if r.key == key]
        assert values(mine) == [f"{key}#{n}".encode() for n in range(5)]
        assert [r.offset for r in mine] == sorted(r.offset for r in mine)


def test_partition_of_a_key_is_stable_across_topics_of_the_same_size(bus: Bus, unique: str) -> None:
    first, second = f"first-{unique}", f"second-{unique}"
    bus.create_topic(first, PARTITIONS)
    bus.create_topic(second, PARTITIONS)
    for n in range(10):
        key = f"student-{n}"
        assert bus.publish(first, key, b"a").partition == bus.publish(second, key, b"b").partition


def test_a_key_lands_where_the_embedded_bus_puts_it(bus: Bus, topic: str) -> None:
    """The twins agree on placement (CRC-32 of the key, librdkafka's default), so a scenario that
    reasons about partitions means the same on both."""
    for n in range(20):
        key = f"student-{n}"
        assert bus.publish(topic, key, b"x").partition == partition_for_key(key, PARTITIONS)


def test_records_carry_key_value_headers_and_timestamp(bus: Bus, topic: str) -> None:
    headers = (("eventId", "e-1"), ("type", "PURCHASE_CONFIRMED"), ("type", "repeated"))
    receipt = bus.publish(topic, "student-1", b"\x00\xffpayload", headers)
    unkeyed = bus.publish(topic, None, b"no key")
    records = {(r.partition, r.offset): r for r in bus.read_all(topic)}
    record = records[(receipt.partition, receipt.offset)]
    assert (record.topic, record.key, record.value, record.headers) == (
        topic, "student-1", b"\x00\xffpayload", headers)
    assert isinstance(record.timestamp, float) and record.timestamp > 0
    assert records[(unkeyed.partition, unkeyed.offset)].key is None


def test_read_all_is_partition_by_partition_in_offset_order(bus: Bus, topic: str) -> None:
    for n in range(20):
        bus.publish(topic, f"student-{n % 5}", str(n).encode())
    records = bus.read_all(topic)
    assert len(records) == 20
    assert [(r.partition, r.offset) for r in records] == sorted((r.partition, r.offset) for r in records)


# --- consumer groups -------------------------------------------------------------------------------------


def test_w1_new_group_with_earliest_reads_what_was_published_before_it(
        bus_kit: BusKit, topic: str, group: str) -> None:
    """W1: events published before the worker's first start are not skipped."""
    sent = publish_keys(bus_kit.bus, topic, ["s1", "s2", "s3", "s4"], rounds=3)
    consumer = join(bus_kit, group, [topic], reset="earliest")
    [got] = drain(bus_kit, consumer, expect=len(sent))
    assert sorted(values(got)) == sorted(sent)
    assert drain(bus_kit, consumer) == [[]]


def test_w1_new_group_with_latest_skips_what_was_published_before_it(
        bus_kit: BusKit, topic: str, group: str) -> None:
    """The seed's production bug (KC facts #3): `latest` on a new group loses the backlog."""
    publish_keys(bus_kit.bus, topic, ["s1", "s2", "s3"], rounds=2)
    consumer = join(bus_kit, group, [topic], reset="latest")
    assert drain(bus_kit, consumer) == [[]]
    later = publish_keys(bus_kit.bus, topic, ["s1", "s2", "s3"], rounds=1)
    [got] = drain(bus_kit, consumer, expect=len(later))
    assert sorted(values(got)) == sorted(later)


def test_a_committed_offset_wins_over_the_reset_policy(bus_kit: BusKit, topic: str, group: str) -> None:
    bus = bus_kit.bus
    first = publish_keys(bus, topic, ["s1", "s2", "s3"], rounds=2)
    consumer = join(bus_kit, group, [topic])
    [got] = drain(bus_kit, consumer, expect=len(first))
    for message in got:
        consumer.commit(message)
    consumer.close()
    second = publish_keys(bus, topic, ["s1", "s2", "s3"], rounds=1)
    for reset in ("earliest", "latest"):
        again = join(bus_kit, group, [topic], reset=reset)
        [resumed] = drain(bus_kit, again, expect=len(second))
        assert sorted(values(resumed)) == sorted(second)
        again.close()


def test_polling_within_one_partition_follows_offsets(bus_kit: BusKit, topic: str, group: str) -> None:
    publish_keys(bus_kit.bus, topic, [f"s{n}" for n in range(6)], rounds=4)
    consumer = join(bus_kit, group, [topic])
    [got] = drain(bus_kit, consumer, expect=24)
    seen: dict[int, list[int]] = defaultdict(list)
    for message in got:
        seen[message.partition].append(message.offset)
    for offsets in seen.values():
        assert offsets == list(range(len(offsets)))


def test_a_second_group_reads_everything_independently(bus_kit: BusKit, topic: str, unique: str) -> None:
    bus = bus_kit.bus
    sent = publish_keys(bus, topic, ["s1", "s2", "s3", "s4"], rounds=2)
    worker = join(bus_kit, f"worker-{unique}", [topic])
    [by_worker] = drain(bus_kit, worker, expect=len(sent))
    for message in by_worker:
        worker.commit(message)
    invalidator = join(bus_kit, f"invalidator-{unique}", [topic])
    [by_invalidator] = drain(bus_kit, invalidator, expect=len(sent))
    assert sorted(values(by_worker)) == sorted(values(by_invalidator)) == sorted(sent)
    assert set(committed(bus, f"invalidator-{unique}", topic).values()) == {None}


def test_members_of_a_group_share_the_partitions(bus_kit: BusKit, topic: str, group: str) -> None:
    """Each record goes to one member of the group, each partition is served by one member."""
    first = join(bus_kit, group, [topic])
    second = join(bus_kit, group, [topic])
    sent = publish_keys(bus_kit.bus, topic, [f"student-{n}" for n in range(12)], rounds=3)
    got_first, got_second = drain(bus_kit, first, second, expect=len(sent))
    assert sorted(values(got_first + got_second)) == sorted(sent)
    assert got_first and got_second
    assert not {m.partition for m in got_first} & {m.partition for m in got_second}


def test_w1_crash_redelivers_uncommitted_messages_from_the_committed_offset(
        bus_kit: BusKit, unique: str, group: str) -> None:
    """W1/W6: a worker that dies after handling but before committing leaves its messages to the next
    member, starting at the committed offset: at least once, never lost."""
    bus = bus_kit.bus
    topic = f"single-{unique}"
    bus.create_topic(topic, 1)
    for n in range(5):
        bus.publish(topic, "student-1", str(n).encode())
    doomed = join(bus_kit, group, [topic])
    [got] = drain(bus_kit, doomed, expect=3)
    assert values(got) == [b"0", b"1", b"2"]
    doomed.commit(got[1])  # handled 0 and 1; 2 was in flight
    crash(doomed)
    assert committed(bus, group, topic) == {0: 2}

    successor = join(bus_kit, group, [topic])
    [redelivered] = drain(bus_kit, successor, expect=3)
    assert values(redelivered) == [b"2", b"3", b"4"]
    assert [m.offset for m in redelivered] == [2, 3, 4]


def test_committing_a_later_offset_covers_the_earlier_ones(bus_kit: BusKit, unique: str, group: str) -> None:
    bus = bus_kit.bus
    topic = f"single-{unique}"
    bus.create_topic(topic, 1)
    for n in range(4):
        bus.publish(topic, "student-1", str(n).encode())
    consumer = join(bus_kit, group, [topic])
    [got] = drain(bus_kit, consumer, expect=4)
    consumer.commit(got[2])
    assert committed(bus, group, topic) == {0: 3}
    crash(consumer)
    successor = join(bus_kit, group, [topic])
    [rest] = drain(bus_kit, successor, expect=1)
    assert values(rest) == [b"3"]


def test_commit_sets_the_offset_even_backwards(bus_kit: BusKit, unique: str, group: str) -> None:
    """As Kafka does: a commit stores `offset + 1`, it is not a maximum."""
    bus = bus_kit.bus
    topic = f"single-{unique}"
    bus.create_topic(topic, 1)
    for n in range(4):
        bus.publish(topic, "student-1", str(n).encode())
    consumer = join(bus_kit, group, [topic])
    [got] = drain(bus_kit, consumer, expect=4)
    consumer.commit(got[3])
    consumer.commit(got[0])
    assert committed(bus, group, topic) == {0: 1}


def test_commit_does_not_move_the_position(bus_kit: BusKit, unique: str, group: str) -> None:
    bus = bus_kit.bus
    topic = f"single-{unique}"
    bus.create_topic(topic, 1)
    for n in range(3):
        bus.publish(topic, "student-1", str(n).encode())
    consumer = join(bus_kit, group, [topic])
    [first] = drain(bus_kit, consumer, expect=1)
    consumer.commit(first[0])
    [rest] = drain(bus_kit, consumer, expect=2)
    assert values(first + rest) == [b"0", b"1", b"2"]


def test_close_hands_the_partitions_to_the_remaining_member(bus_kit: BusKit, topic: str, group: str) -> None:
    """A member leaving (rebalance): its partitions go on from the committed offsets."""
    stays = join(bus_kit, group, [topic])
    leaves = join(bus_kit, group, [topic])
    sent = publish_keys(bus_kit.bus, topic, [f"student-{n}" for n in range(12)], rounds=2)
    by_stays, by_leaves = drain(bus_kit, stays, leaves, expect=len(sent))
    assert by_leaves
    for message in by_stays:
        stays.commit(message)
    leaves.close()  # nothing committed by it
    [taken_over] = drain(bus_kit, stays, expect=len(by_leaves))
    assert sorted(values(taken_over)) == sorted(values(by_leaves))
    assert drain(bus_kit, stays) == [[]]


def test_committed_and_end_offsets_describe_the_lag(bus_kit: BusKit, topic: str, group: str) -> None:
    bus = bus_kit.bus
    assert committed(bus, group, topic) == {p: None for p in range(PARTITIONS)}
    receipts = [bus.publish(topic, f"student-{n}", b"x") for n in range(9)]
    ends = end_offsets(bus, topic)
    assert sum(ends.values()) == 9
    consumer = join(bus_kit, group, [topic])
    [got] = drain(bus_kit, consumer, expect=9)
    for message in got:
        consumer.commit(message)
    touched = {r.partition for r in receipts}
    assert committed(bus, group, topic) == {p: (ends[p] if p in touched else None) for p in range(PARTITIONS)}


def test_a_closed_consumer_cannot_poll(bus_kit: BusKit, topic: str, group: str) -> None:
    consumer = join(bus_kit, group, [topic])
    consumer.close()
    consumer.close()  # idempotent
    with pytest.raises(RuntimeError):
        consumer.poll(0)


def test_an_unknown_reset_policy_is_refused(bus: Bus, topic: str, group: str) -> None:
    with pytest.raises(ValueError):
        bus.consumer(group, [topic], reset="sideways")


def test_a_member_that_lost_its_partition_cannot_commit(bus_kit: BusKit, topic: str, group: str) -> None:
    """A member whose partition moved in a rebalance cannot commit it (CommitFailed: Kafka refuses a
    stale generation, and the Kafka adapter checks ownership first); the new owner gets the message
    again, and W6's tracking row absorbs the duplicate."""
    bus = bus_kit.bus
    sent = publish_keys(bus, topic, [f"student-{n}" for n in range(12)], rounds=1)
    old = join(bus_kit, group, [topic])
    [got] = drain(bus_kit, old, expect=len(sent))
    new = join(bus_kit, group, [topic])
    owned_by_new = set(getattr(new, "assignment")())  # noqa: B009
    moved = [m for m in got if (m.topic, m.partition) in owned_by_new]
    assert moved
    with pytest.raises(BusUnavailable):
        old.commit(moved[0])
    [redelivered] = drain(bus_kit, new, expect=len(moved))
    assert sorted(values(redelivered)) == sorted(values(moved))


def test_what_a_member_handled_is_committed_when_a_rebalance_revokes_it(
        bus_kit: BusKit, unique: str, group: str) -> None:
    """GroupMember commits in batches; a record it handled but had not committed yet when another member
    joined (e.g. handled while it waited on retries, W7, and did not poll) is committed as its partition
    is revoked, while it is still the member's (Kafka's commit-on-revoke). Neither member gets it again:
    before, the commit came after the rebalance, was refused as stale, and the record was handled twice,
    a dead letter undone by a purchase once the faults were spent."""
    bus = bus_kit.bus
    topic = f"single-{unique}"
    bus.create_topic(topic, 1)
    receipt = bus.publish(topic, "student-1", b"handled")
    commits: list[tuple[int, BusUnavailable | None]] = []
    member = GroupMember(bus, group, [topic], on_commit=lambda m, note, error: commits.append((m.offset, error)))
    bus_kit.ready(member.consumer)
    [[message]] = drain(bus_kit, member.consumer, expect=1)
    member.handled(message)  # its commit waits for the member's next poll
    other = join(bus_kit, group, [topic])
    assert commits == [(receipt.offset, None)]
    assert committed(bus, group, topic) == {0: receipt.offset + 1}
    assert drain(bus_kit, member.consumer, other) == [[], []]


def test_a_topic_created_after_subscribing_is_assigned(bus_kit: BusKit, unique: str, group: str) -> None:
    bus = bus_kit.bus
    topic = f"late-{unique}"
    consumer = bus.consumer(group, [topic])
    assert consumer.poll(0) is None
    bus.create_topic(topic, 2)
    bus.publish(topic, "student-1", b"hello")
    [got] = drain(bus_kit, consumer, expect=1)
    assert values(got) == [b"hello"]


# --- promises not every adapter gives ---------------------------------------------------------------------


@pytest.mark.needs_trait("eager_rebalance")
def test_a_join_restarts_every_member_at_the_committed_offsets(bus_kit: BusKit, unique: str, group: str) -> None:
    bus = bus_kit.bus
    topic = f"single-{unique}"
    bus.create_topic(topic, 1)
    for n in range(3):
        bus.publish(topic, "student-1", str(n).encode())
    first = join(bus_kit, group, [topic])
    [got] = drain(bus_kit, first, expect=2)
    first.commit(got[0])
    second = join(bus_kit, group, [topic])  # one partition: the first member keeps it, from offset 1
    by_first, by_second = drain(bus_kit, first, second)
    assert values(by_first) == [b"1", b"2"] and by_second == []


@pytest.mark.needs_trait("round_robin_null_key")
def test_records_without_a_key_go_round_robin(bus: Bus, topic: str) -> None:
    assert [bus.publish(topic, None, b"x").partition for _ in range(6)] == [0, 1, 2, 0, 1, 2]


@pytest.mark.needs_trait("deterministic_poll")
def test_poll_takes_one_record_from_each_partition_in_turn(bus_kit: BusKit, topic: str, group: str) -> None:
    bus = bus_kit.bus
    for n in range(6):
        bus.publish(topic, None, str(n).encode())  # round robin: partitions 0,1,2,0,1,2
    consumer = join(bus_kit, group, [topic])
    [got] = drain(bus_kit, consumer)
    assert [(m.partition, m.offset) for m in got] == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]


@pytest.mark.needs_trait("manual_clock")
def test_record_timestamps_come_from_the_clock(bus: Bus, topic: str, clock: ManualClock) -> None:
    clock.advance(12.5)
    receipt = bus.publish(topic, "student-1", b"x")
    [record] = [r for r in bus.read_all(topic) if r.offset == receipt.offset and r.partition == receipt.partition]
    assert record.timestamp == clock.now()

