"""The external target's view of the user's Kafka: the records of the profile's topics, their end offsets
and the declared groups' committed offsets, all translated to the canonical names and shapes the checks
judge (envelope.py), and the records a scenario injects, translated the other way.

Read-only except `publish`. Records are read incrementally from where `mark()` put the reader (a
scenario's start): each snapshot costs only the records new since the last, with `assign()` and no
group, so reading commits nothing and joins no group of the system. A scenario sees only its own records
(`records(prefix)`): those that name one of its students, those it injected, and dead letters of either."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any, cast

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from kcverify.contracts import dead_letters
from kcverify.core.admin_calls import Released, all_done, collector_paused
from kcverify.core.group_offsets import GroupOffsets, GroupOffsetsError
from kcverify.spec import names
from kcverify.targets.base import BusRecord, RecordId
from kcverify.targets.external.envelope import GROUPS, ROLES, TopicMap

READ_TIMEOUT = 10.0
REQUEST_TIMEOUT = 10.0
log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())  # librdkafka's complaints are quiet unless logging is configured


class BusError(RuntimeError):
    """The broker did not answer as expected (unreachable, an unknown topic): the message says which."""


class Bus:
    """One profile's topics and groups on one broker."""

    def __init__(self, bootstrap: str, maps: Mapping[str, TopicMap], groups: Mapping[str, str]) -> None:
        self.bootstrap = bootstrap
        self.maps = dict(maps)
        self.groups = dict(groups)  # role -> the system's group name
        self._by_name = {m.name: m for m in self.maps.values()}
        common: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": log}
        self._consumer = Consumer({**common, "group.id": f"kcverify-external-reader-{uuid.uuid4().hex}",
                                   "enable.auto.commit": False, "enable.partition.eof": False,
                                   "client.id": "kcverify-external-reader"})
        self._admin = AdminClient({**common, "client.id": "kcverify-external-admin"})
        self._group_offsets = GroupOffsets(common, "kcverify-external")
        self._producer: Producer | None = None
        self._closed = False
        self._positions: dict[tuple[str, int], int] = {}
        self._partitions: dict[str, list[int]] = {}
        self._raw: dict[str, list[BusRecord]] = {m.name: [] for m in self.maps.values()}
        self._canonical: dict[str, list[BusRecord]] = {m.canonical_name: [] for m in self.maps.values()}
        self._originals: dict[tuple[int, int], BusRecord] = {}  # (partition, offset) -> raw confirmed record
        self._known: dict[bytes, BusRecord] = {}  # canonical value -> the raw confirmed record it came from
        self.ends: dict[str, dict[int, int]] = {}
        self.injected: set[tuple[str, int, int]] = set()  # (canonical topic, partition, offset) of publish()
        self._replayed: set[tuple[int, int]] = set()  # dead letters replayed

    # --- the broker ------------------------------------------------------------------------------------

    def partitions_of_cluster(self) -> int:
        """The number of topics the cluster lists (BusError when the bootstrap servers do not answer)."""
        try:
            return len(self._admin.list_topics(timeout=REQUEST_TIMEOUT).topics)
        except KafkaException as exc:
            raise BusError(f"{self.bootstrap} did not answer: {exc}") from exc

    def partitions(self, topic: str) -> list[int]:
        """The partitions of a topic of the system (BusError when it does not exist)."""
        try:
            meta = self._admin.list_topics(topic=topic, timeout=REQUEST_TIMEOUT).topics.get(topic)
        except KafkaException as exc:
            raise BusError(f"{self.bootstrap}: {exc}") from exc
        if meta is None or meta.error is not None or not meta.partitions:
            raise BusError(f"topic {topic!r} does not exist on {self.bootstrap}")
        return sorted(meta.partitions)

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the offset the next record will get."""
        return {p: o for (_, p), o in self.ends_of([topic]).items()}

    def ends_of(self, topics: list[str]) -> dict[tuple[str, int], int]:
        """The end offsets of every partition of `topics`, in one ListOffsets request of the admin client
        (asked on the reader's connection, each question would wait behind its fetch, which the broker holds
        up to fetch.wait.max.ms: seconds per snapshot). A transient answer (a partition whose leader is being
        elected, as just after a topic is made) is asked again for a few seconds."""
        from confluent_kafka.admin._listoffsets import OffsetSpec

        latest: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        request = {TopicPartition(topic, p): latest for topic in topics for p in self._parts(topic)}
        deadline = time.monotonic() + REQUEST_TIMEOUT
        while True:
            try:
                with collector_paused():
                    futures = self._admin.list_offsets(request, request_timeout=REQUEST_TIMEOUT)
                    all_done(futures.values(), REQUEST_TIMEOUT + 1)
                    return {(tp.topic, tp.partition): int(future.result(timeout=REQUEST_TIMEOUT + 1).offset)
                            for tp, future in futures.items()}
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if not getattr(error, "retriable", lambda: False)() or time.monotonic() >= deadline:
                    raise BusError(f"end offsets of {', '.join(topics)} on {self.bootstrap}: {exc}") from exc
                time.sleep(0.2)

    def _parts(self, topic: str) -> list[int]:
        """The partitions of a topic, asked once per scenario (mark() forgets them)."""
        if topic not in self._partitions:
            self._partitions[topic] = self.partitions(topic)
        return self._partitions[topic]

    def committed(self, group: str, topic: str) -> dict[int, int | None]:
        """Per partition, the offset the system's `group` committed on its `topic`, or None. Asks the
        group's coordinator through a consumer that never joins the group (core/group_offsets.py says
        why not the admin API)."""
        try:
            return self._group_offsets.committed(group, topic, self._parts(topic), REQUEST_TIMEOUT, strict=False)
        except GroupOffsetsError as exc:
            raise BusError(f"{exc} on {self.bootstrap}") from None

    def group_exists(self, group: str) -> bool:
        """Whether the broker knows the group (it has members or committed offsets)."""
        try:
            with collector_paused():
                listed = self._admin.list_consumer_groups(request_timeout=REQUEST_TIMEOUT).result(REQUEST_TIMEOUT + 1)
        except KafkaException as exc:
            raise BusError(f"consumer groups on {self.bootstrap}: {exc}") from exc
        return any(g.group_id == group for g in listed.valid)

    # --- reading ---------------------------------------------------------------------------------------

    def mark(self) -> None:
        """Read from the current end of every topic on; forget what was read before (a scenario begins)."""
        self._partitions.clear()
        highs = self.ends_of([m.name for m in self.maps.values()])
        self._positions = dict(highs)
        self._consumer.assign([TopicPartition(t, p, o) for (t, p), o in highs.items()])
        self._raw = {m.name: [] for m in self.maps.values()}
        self._canonical = {m.canonical_name: [] for m in self.maps.values()}
        self._originals.clear()
        self._known.clear()
        self.injected.clear()
        self._replayed.clear()
        self._note_ends(highs)

    def _note_ends(self, highs: Mapping[tuple[str, int], int]) -> None:
        self.ends = {m.canonical_name: {} for m in self.maps.values()}
        for (topic, partition), high in highs.items():
            self.ends[self._by_name[topic].canonical_name][partition] = high

    def read_new(self) -> None:
        """Read every topic up to its end offsets as they are now, and translate what is new."""
        highs = self.ends_of([m.name for m in self.maps.values()])
        self._note_ends(highs)
        new = [tp for tp in highs if tp not in self._positions]
        if new:  # a partition added since mark(): read it from its start
            for tp in new:
                self._positions[tp] = 0
            self._consumer.incremental_assign([TopicPartition(t, p, 0) for t, p in new])
        pending = {tp: high for tp, high in highs.items() if self._positions[tp] < high}
        fresh: dict[str, list[BusRecord]] = {m.name: [] for m in self.maps.values()}
        deadline = time.monotonic() + READ_TIMEOUT
        while pending:
            if time.monotonic() >= deadline:
                raise BusError(f"topics not read to their end in {READ_TIMEOUT:.0f} s: {sorted(pending)}")
            raw = self._consumer.poll(0.2)
            if raw is None:  # gaps (compaction, transaction markers): the position may pass the end
                for position in self._consumer.position([TopicPartition(t, p) for t, p in pending]):
                    where = (position.topic, position.partition)
                    if position.offset >= 0:
                        self._positions[where] = max(self._positions[where], position.offset)
                    if self._positions[where] >= pending[where]:
                        del pending[where]
                continue
            if raw.error() is not None:
                continue
            topic, partition, offset = raw.topic(), raw.partition(), raw.offset()
            assert topic is not None and partition is not None and offset is not None
            where = (topic, partition)
            self._positions[where] = offset + 1
            key = raw.key()
            _, millis = raw.timestamp()
            fresh[topic].append(BusRecord(
                topic, partition, offset,
                None if key is None else (key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)),
                bytes(raw.value() or b""), _headers(raw.headers()), millis / 1000.0 if millis > 0 else 0.0))
            if where in pending and self._positions[where] >= pending[where]:
                del pending[where]
        # the confirmed topic first: a dead letter's original event is translated from its record
        for role in ("confirmed", "created", "dead_letter"):
            topic_map = self.maps.get(role)
            if topic_map is None:
                continue
            for record in sorted(fresh[topic_map.name], key=lambda r: (r.partition, r.offset)):
                self._raw[topic_map.name].append(record)
                self._canonical[topic_map.canonical_name].append(self.translate(record))

    def translate(self, record: BusRecord) -> BusRecord:
        """The canonical record of one of the system's records."""
        topic_map = self._by_name[record.topic]
        if topic_map.role == "confirmed":
            canonical = topic_map.canonical(record)
            self._originals[(record.partition, record.offset)] = record
            self._known[canonical.value] = record
            return canonical
        if topic_map.role == "dead_letter":
            letter = _object(record.value)
            if letter is not None and topic_map.fields:
                return topic_map.canonical(record, value=self._letter(topic_map, record, letter))
        return topic_map.canonical(record)

    def _letter(self, dlq: TopicMap, record: BusRecord, letter: dict[str, Any]) -> dict[str, Any]:
        """A dead letter's canonical value. Its original event becomes the canonical value of the original
        record when the letter carries that record's value as it was (what the delivery check compares);
        otherwise it is translated by the confirmed topic's fields, or kept as it is."""
        flat = dlq.flat(letter, record.key, record.headers)
        system_topic = flat.get("originalTopic")
        if isinstance(system_topic, str) and system_topic in self._by_name:
            flat["originalTopic"] = self._by_name[system_topic].canonical_name
        elif "originalTopic" not in flat and "confirmed" in self.maps:
            flat["originalTopic"] = names.TOPIC_CONFIRMED  # the flow dead-letters only confirmations
        original = flat.get("originalEvent")
        offset = flat.get("offset")
        if "partition" not in flat and isinstance(offset, int):
            matches = [p for (p, o), r in self._originals.items()
                       if o == offset and dead_letters.carries(original, r.value)]
            if len(matches) == 1:
                flat["partition"] = matches[0]
            elif len(self.ends.get(names.TOPIC_CONFIRMED, {})) == 1:
                flat["partition"] = next(iter(self.ends[names.TOPIC_CONFIRMED]))
        confirmed = self.maps.get("confirmed")
        source = self._originals.get((flat.get("partition"), offset))  # type: ignore[arg-type]
        if confirmed is not None:
            if source is not None and dead_letters.carries(original, source.value):
                flat["originalEvent"] = json.loads(confirmed.canonical(source).value) \
                    if isinstance(_object(source.value), dict) else original
            elif isinstance(original, dict) and confirmed.fields:
                flat["originalEvent"] = confirmed.envelope(confirmed.flat(original, record.key, record.headers))
        return dlq.envelope(flat)

    def records(self, prefix: str) -> dict[str, list[BusRecord]]:
        """The canonical records of the scenario whose students' ids start with `prefix`, per canonical topic,
        sorted by (partition, offset)."""
        ours_confirmed: set[tuple[int, int]] = set()
        out: dict[str, list[BusRecord]] = {}
        for topic in (names.TOPIC_CONFIRMED, names.TOPIC_CREATED, names.TOPIC_DLQ):
            if topic not in self._canonical:
                continue
            kept = []
            for record in self._canonical[topic]:
                if self._ours(record, prefix, ours_confirmed):
                    kept.append(record)
                    if topic == names.TOPIC_CONFIRMED:
                        ours_confirmed.add((record.partition, record.offset))
            out[topic] = kept
        return out

    def _ours(self, record: BusRecord, prefix: str, confirmed: set[tuple[int, int]]) -> bool:
        if (record.topic, record.partition, record.offset) in self.injected:
            return True
        value = _object(record.value)
        if value is not None:
            # A dead letter of one of the scenario's records is the scenario's, whatever student its original
            # names (an injected event may name a foreign one): it is found by the partition and offset it names.
            if record.topic == names.TOPIC_DLQ and (value.get("partition"), value.get("offset")) in confirmed:
                return True
            student = _student(value)
            if student is not None:
                return student.startswith(prefix)
        return (record.key or "").startswith(prefix)

    # --- producing -------------------------------------------------------------------------------------

    def publish(self, topic: str, key: str | None, value: bytes, headers: tuple[tuple[str, str], ...]) -> RecordId:
        """Produce a canonical record as the system's: `topic` a canonical name. A copy of a record the
        target read goes out with that record's own bytes; anything else is written by the profile's
        fields (raw, non-JSON bytes as given). Returns where the broker put it, canonical topic name."""
        topic_map = next((m for m in self.maps.values() if m.canonical_name == topic), None)
        if topic_map is None:
            raise BusError(f"the profile names no topic for {topic} (kafka.topics.{_role(topic)})")
        system_key, system_value, system_headers = topic_map.system(key, value, headers)
        original = self._known.get(value) if topic_map.role == "confirmed" else None
        if original is not None:
            system_value = original.value
            if key == topic_map.canonical(original).key:
                system_key = original.key
        produced = self._produce(topic_map.name, system_key, system_value, system_headers)
        canonical = RecordId(topic, produced.partition, produced.offset)
        self.injected.add((topic, canonical.partition, canonical.offset))
        return canonical

    def _produce(self, topic: str, key: str | None, value: bytes, headers: tuple[tuple[str, str], ...]) -> RecordId:
        if self._closed:
            raise BusError(f"the Kafka reader of {self.bootstrap} is closed")
        if self._producer is None:
            self._producer = Producer({"bootstrap.servers": self.bootstrap, "logger": log,
                                       "client.id": "kcverify-external-producer", "enable.idempotence": True})
        landed: list[Any] = []

        def delivered(error: Any, message: Any) -> None:
            landed.append((error, message))

        self._producer.produce(topic, value, key, headers=list(headers), on_delivery=delivered)
        self._producer.flush(REQUEST_TIMEOUT)
        if not landed or landed[0][0] is not None:
            raise BusError(f"publish to {topic!r} on {self.bootstrap} failed: "
                           f"{landed[0][0] if landed else 'no acknowledgement'}")
        message = landed[0][1]
        return RecordId(topic, int(message.partition()), int(message.offset()))

    def replay(self, prefix: str) -> int:
        """W8 for one scenario, done by the verifier as the processes target does it (a system's own replay
        tool is not reachable through a profile): every dead letter of the scenario not replayed yet goes
        back to the confirmed topic, its original event as the system wrote it, with the letter's key and
        headers. Returns how many."""
        dlq, confirmed = self.maps.get("dead_letter"), self.maps.get("confirmed")
        if dlq is None or confirmed is None:
            raise BusError("replaying dead letters needs kafka.topics.dead_letter and kafka.topics.confirmed")
        self.read_new()
        ours = {(r.partition, r.offset) for r in self.records(prefix).get(names.TOPIC_DLQ, [])}
        count = 0
        for record in self._raw[dlq.name]:
            if (record.partition, record.offset) not in ours or (record.partition, record.offset) in self._replayed:
                continue
            letter = _object(record.value) or {}
            flat = dlq.flat(letter, record.key, record.headers)
            original = flat.get("originalEvent")
            source = self._originals.get((flat.get("partition"), flat.get("offset")))  # type: ignore[arg-type]
            if source is not None and dead_letters.carries(original, source.value):
                raw = source.value
            elif isinstance(original, str):
                raw = original.encode()
            else:
                raw = json.dumps(original, separators=(",", ":")).encode()
            self._produce(confirmed.name, record.key, raw, record.headers)
            self._replayed.add((record.partition, record.offset))
            count += 1
        return count

    def close(self) -> None:
        """Closes the reader and lets go of the producer and admin client (destroyed here, on the closing
        thread, not at a later collection on another: see core/admin_calls.py). Nothing else after it.
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._consumer.close()
            if self._producer is not None:
                self._producer.flush(REQUEST_TIMEOUT)
        finally:
            self._group_offsets.close()
            self._producer = None
            self._admin = cast(Any, Released(f"the Kafka reader of {self.bootstrap} is closed", BusError))


def group_offsets(bus: Bus) -> dict[str, dict[int, int | None]]:
    """Canonical "group/topic" -> committed offsets, for every group the profile declares whose topic it
    configures."""
    out: dict[str, dict[int, int | None]] = {}
    for role, group in bus.groups.items():
        canonical_group, canonical_topic = GROUPS[role]
        topic_map = next((m for m in bus.maps.values() if m.canonical_name == canonical_topic), None)
        if topic_map is not None:
            out[names.group_topic(canonical_group, canonical_topic)] = bus.committed(group, topic_map.name)
    return out


def _role(topic: str) -> str:
    return next((r for r, t in ROLES.items() if t == topic), topic)


def _headers(raw: Any) -> tuple[tuple[str, str], ...]:
    pairs = list(raw.items()) if isinstance(raw, dict) else list(raw or [])
    return tuple((str(name), value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or ""))
                 for name, value in pairs)


def _object(value: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _student(value: Mapping[str, Any]) -> str | None:
    payload = value.get("payload")
    if isinstance(payload, dict) and isinstance(payload.get("studentId"), str):
        return str(payload["studentId"])
    original = value.get("originalEvent")
    if isinstance(original, dict):
        return _student(original)
    return None
