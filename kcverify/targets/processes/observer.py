"""What the stack target sees of the real stack: rows of one namespace in PostgreSQL, the records the
topics received since the run began (read incrementally, never the whole topic again), offsets, and
the components' trace files. Read-only: nothing here changes the system under test."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Consumer, TopicPartition
from psycopg.rows import dict_row

from kcverify.reference import domain
from kcverify.targets.base import BusRecord

READ_TIMEOUT = 10.0
# librdkafka's complaints of the target's own reader ("connect to ... failed" every 50 ms while a broker
# is down) go to Python logging, where they are quiet unless the user configures logging: the target's
# stack watch reports a broker that is gone, in one line.
log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _like(prefix: str) -> str:
    """A LIKE pattern for ids starting with `prefix` (its own wildcards escaped)."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class Databases:
    """payments_db and courses_db, one autocommit connection each, reconnected after a failure."""

    def __init__(self, payments_dsn: str, courses_dsn: str) -> None:
        self._dsns = {"payments": payments_dsn, "courses": courses_dsn}
        self._conns: dict[str, psycopg.Connection[dict[str, Any]]] = {}

    def _query(self, db: str, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        for attempt in (1, 2):
            conn = self._conns.get(db)
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self._dsns[db], autocommit=True, row_factory=dict_row, connect_timeout=10)
                    self._conns[db] = conn
                return conn.execute(sql, tuple(params)).fetchall()
            except psycopg.OperationalError:
                if conn is not None:
                    conn.close()
                self._conns.pop(db, None)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def payments(self, prefix: str) -> list[dict[str, Any]]:
        rows = self._query("payments", "SELECT * FROM payments WHERE student_id LIKE %s "
                           "ORDER BY created_at, id COLLATE \"C\"", [_like(prefix)])
        return [domain.Payment(
            id=r["id"], student_id=r["student_id"], course_id=r["course_id"], amount_cents=r["amount_cents"],
            currency=r["currency"], status=domain.PaymentStatus(r["status"]), provider=r["provider"],
            provider_payment_id=r["provider_payment_id"], metadata=_json(r["metadata"]),
            created_at=r["created_at"].timestamp(), confirmed_at=_epoch(r["confirmed_at"]),
        ).to_json() for r in rows]

    def purchases(self, prefix: str) -> list[dict[str, Any]]:
        rows = self._query("courses", "SELECT * FROM student_course_purchases WHERE student_id LIKE %s "
                           "ORDER BY created_at, id COLLATE \"C\"", [_like(prefix)])
        return [domain.Purchase(
            id=r["id"], payment_id=r["payment_id"], student_id=r["student_id"], course_id=r["course_id"],
            purchase_tier=r["purchase_tier"], metadata=_json(r["metadata"]), metadata_source=r["metadata_source"],
            is_active=r["is_active"], created_at=r["created_at"].timestamp(),
        ).to_json() for r in rows]

    def pending_outbox(self, db: str) -> int:
        """Unpublished outbox rows of the whole database (a relay publishes every namespace's rows)."""
        rows = self._query(db, "SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")
        return int(rows[0]["n"])

    def orphans(self, prefix: str) -> list[str]:
        """Succeeded payments of the namespace that have no purchase (I1's work for the reconciler)."""
        paid = {r["id"] for r in self._query("payments", "SELECT id FROM payments WHERE student_id LIKE %s "
                                             "AND status = 'succeeded'", [_like(prefix)])}
        if not paid:
            return []
        bought = {r["payment_id"] for r in self._query(
            "courses", "SELECT payment_id FROM student_course_purchases WHERE student_id LIKE %s", [_like(prefix)])}
        return sorted(paid - bought)

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()


def _headers(raw: Any) -> tuple[tuple[str, str], ...]:
    pairs = list(raw.items()) if isinstance(raw, dict) else list(raw or [])
    return tuple((str(name), value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or ""))
                 for name, value in pairs)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


class TopicReader:
    """Every record written to the flow's topics since `mark()`, read incrementally with `assign()`
    (no group, nothing committed), so a snapshot after every step costs only the new records."""

    def __init__(self, bootstrap: str, end_offsets: Callable[[str], dict[int, int]],
                 topics: Iterable[str] = domain.TOPICS) -> None:
        self._topics = tuple(topics)
        self._end_offsets = end_offsets  # the broker's high watermarks (AdminClient.list_offsets: one round trip)
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"kcverify-target-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False, "enable.partition.eof": False, "client.id": "kcverify-target-reader",
            "logger": log,
        })
        self._positions: dict[tuple[str, int], int] = {}
        self.records: dict[str, list[BusRecord]] = {t: [] for t in self._topics}
        self.ends: dict[str, dict[int, int]] = {t: {} for t in self._topics}

    def _high_watermarks(self) -> dict[tuple[str, int], int]:
        return {(topic, partition): high for topic in self._topics
                for partition, high in self._end_offsets(topic).items()}

    def mark(self) -> None:
        """Start reading at the current end of every partition; forget what was read before."""
        highs = self._high_watermarks()
        self._positions = dict(highs)
        self._consumer.assign([TopicPartition(t, p, o) for (t, p), o in highs.items()])
        self.records = {t: [] for t in self._topics}
        self._note_ends(highs)

    def _note_ends(self, highs: dict[tuple[str, int], int]) -> None:
        self.ends = {t: {} for t in self._topics}
        for (topic, partition), high in highs.items():
            self.ends[topic][partition] = high

    def read_new(self) -> None:
        """Read up to the end offsets as they are now."""
        highs = self._high_watermarks()
        self._note_ends(highs)
        new = [tp for tp in highs if tp not in self._positions]
        if new:  # a partition that appeared since mark(): read it from its start
            for tp in new:
                self._positions[tp] = 0
            self._consumer.incremental_assign([TopicPartition(t, p, 0) for t, p in new])
        pending = {tp: high for tp, high in highs.items() if self._positions[tp] < high}
        deadline = time.monotonic() + READ_TIMEOUT
        while pending:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"topics not read to their end in {READ_TIMEOUT:.0f} s: {sorted(pending)}")
            raw = self._consumer.poll(0.2)
            if raw is None:
                # gaps (compaction, transaction markers): the position may pass the end without a record
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
            raw_key = raw.key()
            _, millis = raw.timestamp()
            headers = _headers(raw.headers())
            self.records[topic].append(BusRecord(
                topic, partition, offset,
                None if raw_key is None else (raw_key.decode("utf-8", "replace")
                                              if isinstance(raw_key, bytes) else str(raw_key)),
                bytes(raw.value() or b""), headers, millis / 1000.0 if millis > 0 else 0.0))
            if where in pending and self._positions[where] >= pending[where]:
                del pending[where]

    def close(self) -> None:
        self._consumer.close()


class TraceFiles:
    """The components' trace records, read incrementally from every `*.trace.jsonl` in a directory
    (a restarted process appends to its file). Only complete lines are taken."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._offsets: dict[Path, int] = {}
        self.records: list[dict[str, Any]] = []

    def read_new(self) -> None:
        for path in sorted(self._directory.glob("*.trace.jsonl")):
            start = self._offsets.get(path, 0)
            try:
                with path.open("rb") as fh:
                    fh.seek(start)
                    chunk = fh.read()
            except OSError:
                continue
            end = chunk.rfind(b"\n")
            if end < 0:
                continue
            self._offsets[path] = start + end + 1
            for line in chunk[: end + 1].splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    self.records.append(record)

    def mark(self) -> None:
        """Forget what was read so far (a new scenario begins)."""
        self.read_new()
        self.records = []
