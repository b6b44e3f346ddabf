"""What only the Kafka bus promises (the port suite covers the rest): an unreachable broker is a
BusUnavailable within the configured timeouts, never a hang; `serve` runs the group protocol without
losing a record; closed members and foreign partitions are refused locally; `close` of the bus closes
its members."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from kcverify.core.clock import SystemClock
from kcverify.core.errors import BusUnavailable
from kcverify.reference.adapters.kafka_bus import (
    CommitFailed,
    ConsumerClosed,
    KafkaBus,
    KafkaConsumer,
    UnknownTopic,
)
from kcverify.reference.ports import Message
from tests.adapters.conftest import Services
from tests.adapters.factories import SETTLE_TIMEOUT, delete_topics

pytestmark = pytest.mark.integration


@pytest.fixture
def bus(services: Services, unique: str) -> Iterator[KafkaBus]:
    made = KafkaBus(services.address("kafka"), SystemClock())
    yield made
    try:
        delete_topics(made, unique)
    finally:
        made.close()


@pytest.fixture
def topic(bus: KafkaBus, unique: str) -> str:
    name = f"kafka-only-{unique}"
    bus.create_topic(name, 2)
    return name


def _wait_assigned(consumer: KafkaConsumer, deadline: float) -> None:
    while not consumer.assignment():
        assert time.monotonic() < deadline, "never assigned"
        consumer.serve(0.05)


def test_an_unreachable_broker_is_bus_unavailable_in_time() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: refused
        bus = KafkaBus(f"127.0.0.1:{sock.getsockname()[1]}", SystemClock(), publish_timeout=0.5,
                       request_timeout=0.5)
        for call in (lambda: bus.create_topic("t", 1), lambda: bus.publish("t", "k", b"v"),
                     lambda: bus.end_offsets("t"), lambda: bus.read_all("t")):
            started = time.monotonic()
            with pytest.raises(BusUnavailable):
                call()
            assert time.monotonic() - started < 3
        bus.close()


def test_unknown_topics_are_refused_by_every_helper(bus: KafkaBus, unique: str) -> None:
    for call in (lambda: bus.read_all(f"none-{unique}"), lambda: bus.end_offsets(f"none-{unique}"),
                 lambda: bus.committed("g", f"none-{unique}"), lambda: bus.partitions(f"none-{unique}")):
        with pytest.raises(UnknownTopic):
            call()


def test_topics_lists_partition_counts(bus: KafkaBus, topic: str) -> None:
    assert bus.topics()[topic] == 2 and bus.partitions(topic) == 2
    assert not any(name.startswith("__") for name in bus.topics())


def test_serve_keeps_fetched_records_for_poll_in_order(bus: KafkaBus, topic: str, unique: str) -> None:
    for n in range(5):
        bus.publish(topic, "student-1", str(n).encode())
    consumer = bus.consumer(f"group-{unique}", [topic])
    _wait_assigned(consumer, time.monotonic() + SETTLE_TIMEOUT)
    for _ in range(10):
        consumer.serve(0.05)
    got: list[Message] = []
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while len(got) < 5 and time.monotonic() < deadline:
        if (message := consumer.poll(0.1)) is not None:
            got.append(message)
    assert [m.value for m in got] == [b"0", b"1", b"2", b"3", b"4"]


def test_a_member_refuses_foreign_partitions_and_use_after_close(bus: KafkaBus, topic: str, unique: str) -> None:
    receipt = bus.publish(topic, "student-1", b"x")
    consumer = bus.consumer(f"group-{unique}", [topic])
    foreign = Message(f"other-{unique}", 0, 0, None, b"", (), 0.0)
    with pytest.raises(CommitFailed):
        consumer.commit(foreign)
    _wait_assigned(consumer, time.monotonic() + SETTLE_TIMEOUT)
    message = None
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while message is None and time.monotonic() < deadline:
        message = consumer.poll(0.1)
    assert message is not None and (message.partition, message.offset) == (receipt.partition, receipt.offset)
    consumer.commit(message)
    assert bus.committed(f"group-{unique}", topic)[receipt.partition] == receipt.offset + 1
    consumer.crash()
    with pytest.raises(ConsumerClosed):
        consumer.commit(message)
    with pytest.raises(ConsumerClosed):
        consumer.serve(0)


def test_closing_the_bus_closes_its_members(services: Services, unique: str) -> None:
    bus = KafkaBus(services.address("kafka"), SystemClock())
    bus.create_topic(f"closing-{unique}", 1)
    members = [bus.consumer(f"group-{unique}", [f"closing-{unique}"]) for _ in range(2)]
    bus.close()
    assert all(member.closed for member in members)
    with pytest.raises(ConsumerClosed):
        bus.consumer(f"group-{unique}", [f"closing-{unique}"])
    # its producer and admin client are let go of, not left for a collection on some other thread
    with pytest.raises(RuntimeError, match="is closed"):
        bus.topics()
    with pytest.raises(RuntimeError, match="is closed"):
        bus.publish(f"closing-{unique}", "k", b"v")
    bus.close()  # idempotent
    cleaner = KafkaBus(services.address("kafka"), SystemClock())
    delete_topics(cleaner, unique)
    cleaner.close()


def test_a_static_member_restarted_in_its_slot_gets_its_partitions_back_without_a_rebalance(
        services: Services, bus: KafkaBus, topic: str, unique: str) -> None:
    """Static membership (`group_instance`): a member that dies and starts again under the same slot name
    gets the partitions it had, and the other member sees no rebalance (no new assignment)."""
    group = f"group-{unique}"
    slots = [KafkaBus(services.address("kafka"), SystemClock(), group_instance=f"{name}-{unique}") for name in "ab"]
    try:
        a, b = (slot.consumer(group, [topic]) for slot in slots)
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while not (a.assignment() and b.assignment()):  # both: a alone first holds every partition
            assert time.monotonic() < deadline, "the two static members never split the partitions"
            a.serve(0.05)
            b.serve(0.05)
        had, rounds = a.assignment(), b.assignments
        a.crash()  # a static member sends no LeaveGroup: the broker keeps its partitions for its slot
        again = slots[0].consumer(group, [topic])
        while not again.assignment():
            assert time.monotonic() < deadline, "the restarted static member got nothing back"
            again.serve(0.05)
            b.serve(0.05)
        for _ in range(10):  # a rebalance, had there been one, would reach b within these polls
            b.serve(0.05)
        assert again.assignment() == had and b.assignments == rounds
    finally:
        for slot in slots:
            slot.close()


def test_reading_a_groups_committed_offsets_never_joins_it(bus: KafkaBus, topic: str, unique: str) -> None:
    """`committed` asks the group's coordinator through a consumer carrying the group's id (not the admin
    API, which crashes librdkafka on a coordinator error): that consumer must never become a member."""
    group = f"group-{unique}"
    member = bus.consumer(group, [topic])
    _wait_assigned(member, time.monotonic() + SETTLE_TIMEOUT)
    owned = member.assignment()
    receipt = bus.publish(topic, "student-1", b"x")
    message = None
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while message is None and time.monotonic() < deadline:
        message = member.poll(0.1)
    assert message is not None
    member.commit(message)
    for _ in range(3):
        assert bus.committed(group, topic)[receipt.partition] == receipt.offset + 1
    time.sleep(1.5)  # three heartbeats: a join by the reader would have revoked and reassigned by now
    member.serve(0.2)
    assert set(member.assignment()) == set(owned) == {(topic, 0), (topic, 1)}
    assert bus.committed(f"never-{unique}", topic) == {0: None, 1: None}  # a group nobody made
    member.close()

