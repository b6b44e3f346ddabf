"""Delivery: nothing lost, poison never blocks, retries as W7 says. Judged by outcomes anyone can see
(records, offsets, rows); the components' traces, where a target has them, only add failures they
prove wrong and explanations to a failure, never a pass.

- P3: a succeeded payment's PURCHASE_CONFIRMED is published promptly (by the next settle, or within
  the bound on a real stack), not only when the reconciler notices it was lost.
- W1/I3: every PURCHASE_CONFIRMED record whose offset the worker group committed ends as a purchase for
  its payment (processed, or a recognised duplicate of one that was), or as a dead letter actually on
  the dead-letter topic that names the record and carries its original event (W8: replayable). A
  committed offset with neither is an event lost, whatever the worker says it did.
- W2: a schema-invalid event is dead-lettered on its first attempt, never retried.
- W7: at most `retry_attempts` attempts, spaced by the backoff of the conventions the system is judged by
  (spec.policy: 3, 1 s then 2 s; never the system's own settings), from traces where a target has them;
  events dead-lettered for a transient cause were tried exactly `retry_attempts` times (from the dead
  letter itself)."""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from itertools import pairwise
from typing import Any

from kcverify.checks.base import MISSING, Check, same
from kcverify.contracts import dead_letters
from kcverify.core.clock import parse_rfc3339
from kcverify.evidence.evidence import decode
from kcverify.spec import names

WORKER = "purchase-worker"  # the component whose traces explain retries
# How much earlier than the backoffs allow two of a letter's moments may be (they are written to the millisecond).
TIMESTAMP_SLACK = 0.05
TRANSIENT_REASONS = (names.DLQ_RETRIES_EXHAUSTED, names.DLQ_PAYMENT_NOT_SUCCEEDED)
# On a real stack, a retry may come this much later than its backoff (poll loop, scheduling).
STACK_SLACK = 1.5
PUBLISH_BOUND_STACK = 5.0


class DeliveryCheck(Check):
    name = "delivery"
    rules = ("P3", "W1", "W2", "W7", "I3")
    needs = frozenset({"read_db", "read_bus"})
    description = "confirmations published promptly; no event lost; poison dead-lettered at once; W7 retries"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # Kept up to date from each step's new records and changed rows: records not yet committed (each is
        # judged once, when its offset is first seen committed), payments with a purchase, dead letters.
        self._uncommitted: dict[tuple[int, int], Any] = {}
        self._purchased: Counter[str] = Counter()
        self._letters: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)

    def after_step(self, step: int) -> None:
        # Judged at every step, not only at the end: the worker commits only once the outcome exists, so a
        # committed record without one is lost at that moment, even if the reconciler heals its payment later.
        self._outcomes(step)

    def finish(self) -> None:
        worker = self._worker_traces()
        self._published_promptly()
        self._outcomes(None)
        if "read_traces" in self.evidence.target.capabilities:
            self._retries(worker)
        else:
            self.notes.append("retry spacing (W7) not judged: the target shows no traces of attempts")
        self._dead_letters()

    def _published_promptly(self) -> None:
        first_seen: dict[str, float] = {}
        for record in self.evidence.genuine(names.TOPIC_CONFIRMED):
            payload = (decode(record) or {}).get("payload")
            if isinstance(payload, dict) and isinstance(payload.get("paymentId"), str):
                first_seen.setdefault(payload["paymentId"], record.timestamp)
        bound = self.evidence.freshness_bound
        traces = self.evidence.last.traces
        # Lost: every publication of the payment's confirmation came from a reconciler re-publish, so
        # the original was never published at all (the outbox's original row, or the direct publish of
        # a dual write). Counted by rows, not by time: the manual clock ties, and a late original is
        # judged by the latency rule below, not here.
        if "read_traces" not in self.evidence.target.capabilities:
            self.notes.append("a confirmation published only by the reconciler's re-publish (P3) not told apart: the "
                              "target shows no traces; the publication latency is judged")
        republished = Counter(t["paymentId"] for t in traces
                              if t.get("component") == "reconciler" and t.get("event") == "republished")
        records = {(r.partition, r.offset): r for r in self.evidence.last.topics.get(names.TOPIC_CONFIRMED, [])}
        rows: dict[str, set[Any]] = defaultdict(set)  # paymentId -> outbox rows the relay published
        relayed: set[tuple[int, int]] = set()
        for t in traces:
            if t.get("component") == "payment-relay" and t.get("event") == "published" \
                    and (t.get("partition"), t.get("offset")) in records:
                relayed.add((t["partition"], t["offset"]))
                payload = (decode(records[(t["partition"], t["offset"])]) or {}).get("payload")
                if isinstance(payload, dict) and isinstance(payload.get("paymentId"), str):
                    rows[payload["paymentId"]].add(t.get("outboxId"))
        for record in self.evidence.genuine(names.TOPIC_CONFIRMED):
            payload = (decode(record) or {}).get("payload")
            if (record.partition, record.offset) not in relayed and isinstance(payload, dict):
                rows[str(payload.get("paymentId"))].add(("direct", record.partition, record.offset))
        earlier = {pid for pid, count in republished.items() if len(rows[pid]) > count}
        for payment_id in republished:
            if payment_id not in earlier:
                name = self.evidence.payment_name(payment_id)
                self.fail(f"lost:{payment_id}", f"{name}: its PURCHASE_CONFIRMED was never published after the "
                          "payment succeeded; only the reconciler's re-publish delivered it (a lost confirmation)",
                          rules=("P3",), payment=name)
        if self.evidence.ever_down("payment-relay"):
            self.notes.append("publication latency not judged: the scenario took the payment relay down")
            return
        for payment in self.evidence.last.payments:
            if payment["status"] != "succeeded" or not payment.get("confirmedAt"):
                continue
            confirmed_at = parse_rfc3339(payment["confirmedAt"])
            published = first_seen.get(payment["id"])
            if bound is None:
                # the first settle that ended quiet after the confirmation (the manual clock ties, so order
                # by seq); one that hit its bound with work pending, e.g. while the broker is down, is no deadline
                deadline = self._first_quiet_settle(confirmed_at, self._confirm_seq(payment["id"]))
            else:
                released = self._released_at(confirmed_at)
                deadline = None if released is None else released + PUBLISH_BOUND_STACK
            if deadline is None:
                continue
            if published is None or published > deadline:
                name = self.evidence.payment_name(payment["id"])
                when = "never" if published is None else f"only {published - confirmed_at:.1f} s later"
                self.fail(f"publish:{payment['id']}", f"{name}: succeeded at {payment['confirmedAt']} but its "
                          f"PURCHASE_CONFIRMED was published {when} (the confirmation was lost in between)",
                          rules=("P3",), payment=name)

    def _released_at(self, confirmed_at: float) -> float | None:
        """On real time, when the relay was free to publish a confirmation made at `confirmed_at`: at once,
        unless the target holds its components between steps (control_components), where the relay runs only
        in a settle or a `run` step. Then the clock starts with the first settle that began after the
        confirmation; None (not judged) when the scenario let the relay run only by `run` steps, whose start
        the evidence does not time."""
        if "control_components" not in self.evidence.target.capabilities:
            return confirmed_at
        later = [s.started_at for s in self.evidence.settles if s.started_at >= confirmed_at]
        return max(confirmed_at, min(later)) if later else None

    def _first_quiet_settle(self, confirmed_at: float, after: int) -> float | None:
        """The earliest end of a quiet settle that ended at or after `confirmed_at` and after operation
        `after`. Settles are recorded in order, so both their ends and their sequence numbers only grow:
        two bisections instead of a scan of every settle for every payment (quadratic over a long run).
        Should the ends not be in order (a real-time clock stepped back), the scan it stands for."""
        if not hasattr(self, "_quiet"):
            quiet = [s for s in self.evidence.settles if s.quiet]
            ends, seqs = [s.finished_at for s in quiet], [s.end_seq for s in quiet]
            ordered = all(a <= b for a, b in pairwise(ends)) and all(a < b for a, b in pairwise(seqs))
            self._quiet = (ends, seqs, ordered)
        ends, seqs, ordered = self._quiet
        if not ordered:
            found = [end for end, seq in zip(ends, seqs, strict=True) if end >= confirmed_at and seq > after]
            return min(found) if found else None
        first = max(bisect_left(ends, confirmed_at), bisect_right(seqs, after))
        return ends[first] if first < len(ends) else None

    def _confirm_seq(self, payment_id: str) -> int:
        """Where in the order of operations the payment's first accepted confirmation started (0: unseen)."""
        if not hasattr(self, "_confirm_seqs"):
            self._confirm_seqs: dict[str, int] = {}
            for e in self.evidence.exchanges:
                if e.reply.status == 200:
                    self._confirm_seqs[e.path] = min(e.start_seq, self._confirm_seqs.get(e.path, e.start_seq))
        return self._confirm_seqs.get(f"/api/v1/payments/{payment_id}/confirm", 0)

    def _worker_traces(self) -> list[dict[str, Any]]:
        return [t for t in self.evidence.last.traces if t.get("component") == WORKER]

    def _outcomes(self, step: int | None) -> None:
        """Every committed PURCHASE_CONFIRMED record has an outcome anyone can see in the same snapshot.
        Each record is judged once, at the first snapshot where its offset is committed: rows with a
        purchase and dead letters only accumulate, so a verdict once reached would not change."""
        snapshot = self.evidence.last
        committed = snapshot.committed.get(names.group_topic(names.WORKER_GROUP, names.TOPIC_CONFIRMED), {})
        for change in self.evidence.row_changes("purchases"):
            if change.old is not None:
                self._purchased[change.old["paymentId"]] -= 1
            if change.new is not None:
                self._purchased[change.new["paymentId"]] += 1
        purchased = self._purchased
        for where, letters_of in _dead_letters_by_origin(self.evidence.new_records(names.TOPIC_DLQ)).items():
            self._letters[where].extend(letters_of)
        letters = self._letters
        for record in self.evidence.new_records(names.TOPIC_CONFIRMED):
            self._uncommitted[(record.partition, record.offset)] = record
        done = []
        for where, record in self._uncommitted.items():
            upto = committed.get(record.partition)
            if upto is None or record.offset >= upto:
                continue  # not committed: the invariants check judges what is left unconsumed (I3)
            done.append(where)
            event = decode(record)
            payload = (event or {}).get("payload")
            payment_id = payload.get("paymentId") if isinstance(payload, dict) else None
            if isinstance(payment_id, str) and purchased[payment_id] > 0:
                continue  # processed, or a duplicate of an event that was
            found = letters.get(where, [])
            if any(_carries(letter, record) for letter in found):
                continue
            name = f"purchase-confirmed[{record.partition}]@{record.offset}"
            about = f" ({self.evidence.payment_name(payment_id)})" if isinstance(payment_id, str) else ""
            if found:
                seen = f"the dead letter naming it does not carry its original event {_brief(record.value)}"
            else:
                seen = f"no purchase for its payment and no dead letter of it on {names.TOPIC_DLQ}"
            self.fail(f"lost:{where}", f"{name}{about} was committed by {names.WORKER_GROUP}, but {seen}: the "
                      f"event is lost{_claimed(self._worker_traces(), where)}",
                      rules=("W1", "I3") if not found else ("W8", "I3"),
                      step=step, partition=record.partition, offset=record.offset)
        for where in done:
            del self._uncommitted[where]

    def _retries(self, worker: list[dict[str, Any]]) -> None:
        conventions = self.evidence.conventions
        attempts: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
        for trace in worker:
            if trace.get("event") == "attempt":
                attempts[(trace["partition"], trace["offset"])].append(trace)
            if trace.get("event") == "retry_scheduled" and trace.get("reason") == "schema_violation":
                self.fail(f"poison-retried:{trace['partition']}:{trace['offset']}",
                          f"purchase-confirmed[{trace['partition']}]@{trace['offset']} is schema-invalid but was "
                          "retried instead of dead-lettered at once", rules=("W2",))
        exact = self.evidence.freshness_bound is None
        for (partition, offset), tries in attempts.items():
            runs = _split_runs(tries)
            for run in runs:
                if len(run) > conventions.retry_attempts:
                    self.fail(f"too-many:{partition}:{offset}", f"purchase-confirmed[{partition}]@{offset} was "
                              f"attempted {len(run)} times (at most {conventions.retry_attempts})", rules=("W7",))
                for i in range(1, len(run)):
                    gap = run[i]["at"] - run[i - 1]["at"]
                    want = conventions.backoff(i)
                    ok = abs(gap - want) < 1e-6 if exact else want * 0.9 <= gap <= want + STACK_SLACK
                    if not ok:
                        self.fail(f"backoff:{partition}:{offset}:{i}", f"purchase-confirmed[{partition}]@{offset}: "
                                  f"attempt {i + 1} came {gap:.3f} s after attempt {i}; backoff is {want:g} s",
                                  rules=("W7",))

    def _dead_letters(self) -> None:
        conventions = self.evidence.conventions
        for record in self.evidence.genuine(names.TOPIC_DLQ):
            letter = decode(record)
            if letter is None:
                continue  # the contract check reports it
            reason, attempts = letter.get("reason"), letter.get("attempts")
            where = f"dead letter of purchase-confirmed[{letter.get('partition')}]@{letter.get('offset')}"
            if reason == "schema_violation" and attempts != 1:
                self.fail(f"dlq-poison:{record.offset}", f"{where}: schema_violation after {attempts} attempts "
                          "(must be dead-lettered at once)", rules=("W2",))
            if reason in TRANSIENT_REASONS and attempts != conventions.retry_attempts:
                self.fail(f"dlq-attempts:{record.offset}", f"{where}: {reason} after {attempts} attempt(s); W7 "
                          f"requires {conventions.retry_attempts}", rules=("W7",))
            if reason in TRANSIENT_REASONS and isinstance(attempts, int) and attempts >= 2:
                self._retries_took_their_time(record.offset, where, letter, attempts)

    def _retries_took_their_time(self, offset: int, where: str, letter: dict[str, Any], attempts: int) -> None:
        """W7: `attempts` tries spaced by the backoff take at least the backoffs between them, from the first
        failure to the letter: a firstFailedAt stamped at the last try, or a deadLetteredAt at the first,
        says the retries took no time."""
        first, last = letter.get("firstFailedAt"), letter.get("deadLetteredAt")
        if not isinstance(first, str) or not isinstance(last, str):
            return  # absent or ill-typed: the contract check's
        try:
            span = parse_rfc3339(last) - parse_rfc3339(first)
        except ValueError:
            return
        backoff = self.evidence.conventions.retry_backoff[:attempts - 1]
        least = sum(backoff)
        if span < least - TIMESTAMP_SLACK:
            self.fail(f"dlq-span:{offset}", f"{where}: firstFailedAt {first} and deadLetteredAt {last} are "
                      f"{span:.3f} s apart, but {attempts} attempts spaced by the backoff "
                      f"({', '.join(f'{b:g} s' for b in backoff)}) take at least {least:g} s: the letter does not "
                      "say when its event first failed and when it was given up", rules=("W7",))


def _dead_letters_by_origin(records: list[Any]) -> dict[tuple[int, int], list[dict[str, Any]]]:
    """(partition, offset) of the purchase-confirmed record -> the dead letters that name it."""
    out: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        letter = decode(record)
        if letter is None or letter.get("originalTopic") != names.TOPIC_CONFIRMED:
            continue
        partition, offset = letter.get("partition"), letter.get("offset")
        if isinstance(partition, int) and isinstance(offset, int):
            out[(partition, offset)].append(letter)
    return out


def _carries(letter: dict[str, Any], record: Any) -> bool:
    """The letter's originalEvent is the record's value: its JSON (types included), or its text."""
    original = letter.get("originalEvent", MISSING)
    try:
        if same(original, json.loads(record.value)):
            return True
    except (ValueError, UnicodeDecodeError):
        pass
    return dead_letters.carries(original, record.value) and not isinstance(original, dict | list)


def _brief(value: bytes) -> str:
    text = value[:60].decode("utf-8", errors="replace")
    return repr(text + ("…" if len(value) > 60 else ""))


def _claimed(worker: list[dict[str, Any]], where: tuple[int, int]) -> str:
    """What the worker's own trace says it did with the record: an explanation, never a proof. A worker
    that commits once per batch traces the commit of the batch's last record only: a later committed
    offset of the same partition covers this one too."""
    partition, offset = where
    said = [t for t in worker if (t.get("partition"), t.get("offset")) == where]
    committed = [t for t in said if t.get("event") == "offset_committed"]
    received = any(t.get("event") == "attempt" for t in said)
    if committed:
        outcome = committed[-1].get("outcome", "?")
        failed = any(t.get("event") == "dead_letter_failed" for t in worker)
        extra = " after a dead-letter publish failed" if failed and outcome == "dead_lettered" else ""
        return f" (the worker's trace claims it {outcome}{extra})"
    covering = [t["offset"] for t in worker if t.get("event") == "offset_committed" and t.get("partition") == partition
                and isinstance(t.get("offset"), int) and t["offset"] > offset]
    if covering:
        return (f" (the worker's trace shows it {'received it and ' if received else ''}committed offset "
                f"{min(covering)} of partition {partition}, which covers it)")
    if received:
        return " (the worker's trace shows it was received)"
    return ""


def _split_runs(tries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """A redelivery after a crash starts counting again at attempt 1: split there."""
    runs: list[list[dict[str, Any]]] = []
    for trace in tries:
        if trace.get("attempt") == 1 or not runs:
            runs.append([])
        runs[-1].append(trace)
    return runs
