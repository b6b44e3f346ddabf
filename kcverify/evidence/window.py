"""The snapshots of a run, kept so that memory and work stay proportional to what changed.

A snapshot holds every row and every record the target shows; keeping one per step made a long run
quadratic in time and memory. `SnapshotWindow` keeps the last two snapshots whole (what a check compares:
before and after a step), a small per-step history (step, time, components down) for everything older,
and the step's delta: the records new in the last snapshot (per topic) and the rows that changed in it
(per table, old and new). A check's `after_step` reads the delta, so its work is proportional to the step.

Records are found new by position where the order allows it (see `_new_records`), by identity
otherwise, which is exact whatever the order."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kcverify.targets.base import BusRecord, Snapshot

# The tables a snapshot shows and the field that identifies a row in each.
ROW_KEYS = {"payments": "id", "purchases": "purchaseId"}
KEEP = 2  # snapshots kept whole: the last and the one before it


@dataclass(frozen=True)
class StepState:
    """What is kept of every snapshot, however old: enough to say what was down when."""

    step: int
    at: float
    down: frozenset[str]


@dataclass
class RowChange:
    """A row that differs between the previous snapshot and the last: `old` None for a new row, `new`
    None for a row gone."""

    key: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None


@dataclass
class _Delta:
    records: dict[str, list[BusRecord]] = field(default_factory=dict)
    rows: dict[str, list[RowChange]] = field(default_factory=dict)


class SnapshotWindow:
    """A list-like of (step, Snapshot) that keeps only the last `KEEP` whole. Iterating, indexing and
    `len` see those; `history` has every step's `StepState`."""

    def __init__(self) -> None:
        self._kept: list[tuple[int, Snapshot]] = []
        self.history: list[StepState] = []
        self._delta = _Delta()
        self._indexes: dict[str, dict[str, dict[str, Any]]] = {}  # table -> key -> row of the last snapshot

    # --- list-like ------------------------------------------------------------------------------

    def append(self, item: tuple[int, Snapshot]) -> None:
        step, snapshot = item
        previous = self._kept[-1][1] if self._kept else Snapshot(at=0.0)
        self._delta = _Delta(
            records={topic: _new_records(previous.topics.get(topic, []), records, snapshot.ordered)
                     for topic, records in snapshot.topics.items()},
            rows={table: self._table_changes(table, previous, snapshot) for table in ROW_KEYS},
        )
        self._kept.append(item)
        del self._kept[:-KEEP]
        down = self.history[-1].down if self.history and self.history[-1].down == snapshot.down else snapshot.down
        self.history.append(StepState(step, snapshot.at, down))

    def __iter__(self) -> Iterator[tuple[int, Snapshot]]:
        return iter(self._kept)

    def __reversed__(self) -> Iterator[tuple[int, Snapshot]]:
        return reversed(self._kept)

    def __getitem__(self, index: int) -> tuple[int, Snapshot]:
        return self._kept[index]

    def __len__(self) -> int:
        return len(self._kept)

    def __bool__(self) -> bool:
        return bool(self._kept)

    # --- the last step's delta ------------------------------------------------------------------

    @property
    def previous(self) -> Snapshot:
        return self._kept[-2][1] if len(self._kept) > 1 else Snapshot(at=0.0)

    def new_records(self, topic: str) -> list[BusRecord]:
        return self._delta.records.get(topic, [])

    def row_changes(self, table: str) -> list[RowChange]:
        return self._delta.rows.get(table, [])

    def row(self, table: str, key: str) -> dict[str, Any] | None:
        """The row of the last snapshot with this key (e.g. a payment id)."""
        return self._indexes.get(table, {}).get(key)

    def previous_row(self, table: str, key: str) -> dict[str, Any] | None:
        """The row with this key as the snapshot before the last showed it."""
        for change in self._delta.rows.get(table, []):
            if change.key == key:
                return change.old
        return self.row(table, key)

    def _table_changes(self, table: str, previous: Snapshot, snapshot: Snapshot) -> list[RowChange]:
        """From the target's list of changed rows when it gives one relative to the previous snapshot kept
        here (O(changed) per step), else by comparing the two tables (O(rows) per step)."""
        hint = snapshot.changed_rows
        follows = snapshot.serial == (previous.serial + 1 if self._kept else 1)
        if hint is not None and table in hint and snapshot.serial > 0 and follows:
            rows, gone = hint[table]
            return self._hinted_changes(table, rows, gone)
        return self._row_changes(table, getattr(previous, table), getattr(snapshot, table))

    def _hinted_changes(self, table: str, rows: list[dict[str, Any]], gone: list[str]) -> list[RowChange]:
        """What `_row_changes` finds, from the rows the target says changed: the same changes in the same
        order (changed rows in the table's order, then rows gone in the index's order)."""
        field_name = ROW_KEYS[table]
        index = self._indexes.setdefault(table, {})
        changes: list[RowChange] = []
        present = set()
        for row in rows:
            key = str(row.get(field_name))
            present.add(key)
            old = index.get(key)
            if old != row:
                changes.append(RowChange(key, old, row))
            index[key] = row
        missing = {key for key in gone if key not in present and key in index}
        for key in [k for k in index if k in missing] if missing else ():
            changes.append(RowChange(key, index.pop(key), None))
        return changes

    def _row_changes(self, table: str, before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[RowChange]:
        """Rows are compared by identity first, in C (sets of `id()`): a target that reuses the dict of an
        unchanged row (the embedded one does) costs next to nothing per unchanged row; only rows that are
        new objects are compared by value. The index of the last snapshot is updated in place."""
        field_name = ROW_KEYS[table]
        index = self._indexes.setdefault(table, {})
        if before is after:
            return []
        before_ids = set(map(id, before))
        position = dict(zip(map(id, after), range(len(after)), strict=True))
        fresh = sorted(position.keys() - before_ids, key=position.__getitem__)
        changes: list[RowChange] = []
        replaced = 0
        for object_id in fresh:
            row = after[position[object_id]]
            key = str(row.get(field_name))
            old = index.get(key)
            replaced += old is not None
            if old != row:
                changes.append(RowChange(key, old, row))
            index[key] = row
        if len(before) - (len(after) - len(fresh)) > replaced:  # some rows of `before` are listed no more
            kept = {str(r.get(field_name)) for r in after}
            for key in [k for k in index if k not in kept]:
                changes.append(RowChange(key, index.pop(key), None))
        return changes


def _new_records(before: list[BusRecord], after: list[BusRecord], ordered: bool) -> list[BusRecord]:
    """The records of `after` that `before` did not have, in `after`'s order. Records only arrive (a topic
    is a log), so: when `after` starts with `before` (its first and its `len(before)`-th record are
    `before`'s first and last), the new ones are its tail; when the target lists topics sorted by
    (partition, offset) (`Snapshot.ordered`), each partition's new records are found by bisection;
    otherwise by identity, one comparison per record."""
    if not before:
        return list(after)
    if after is before:
        return []
    n = len(before)
    if len(after) >= n and _where(after[0]) == _where(before[0]) and _where(after[n - 1]) == _where(before[-1]):
        return after[n:]
    if ordered:
        return _new_by_bisection(before, after)
    known = {_where(r) for r in before}
    return [r for r in after if _where(r) not in known]


def _where(record: BusRecord) -> tuple[int, int]:
    return record.partition, record.offset


def _new_by_bisection(before: list[BusRecord], after: list[BusRecord]) -> list[BusRecord]:
    new: list[BusRecord] = []
    i = 0
    while i < len(after):
        partition = after[i].partition
        end = bisect_left(after, (partition + 1, -1), lo=i, key=_where)
        last = bisect_left(before, (partition + 1, -1), key=_where) - 1
        if last >= 0 and before[last].partition == partition:
            i = bisect_left(after, (partition, before[last].offset + 1), lo=i, hi=end, key=_where)
        new.extend(after[i:end])
        i = end
    return new
