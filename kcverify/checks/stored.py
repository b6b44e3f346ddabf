"""Stored: what the payment API answered against what payments_db holds after the step.

The API's answer is a claim; the row is the fact. Judged per step, from the payments rows before and
after it and the HTTP exchanges in between (the components are held between steps, and only the
payment service writes payment rows):
- P1: a create answered 4xx stores nothing; a create answered 201 stores exactly one row, with the
  student, course, amount, currency and metadata that were sent, and the answer shows that row.
- P1/P3: the moments it stamps are the moments it acted: a payment's createdAt falls within its create
  request, the confirmedAt a confirmation set within that confirmation (give or take CLOCK_SKEW: a local
  time written as UTC is off by a time zone).
- P2/P4: a confirmation answered 4xx (unsigned, invalid, illegal transition) changes nothing: status,
  course, amount, metadata, provider ids, confirmedAt; an accepted one stores what it answered; a
  repeat of the current status changes nothing.
An answer that never came, or a 5xx, is indeterminate: a row may or may not exist, so neither is
required."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from kcverify.checks.base import MISSING, Check, same, same_moment, show
from kcverify.core.clock import parse_rfc3339, rfc3339
from kcverify.evidence.evidence import Exchange
from kcverify.spec import names
from kcverify.spec.policy import CLOCK_SKEW

# The payment as the API and a snapshot show it (contracts/openapi/payment-service.yaml, schema Payment).
FIELDS = ("studentId", "courseId", "amountCents", "currency", "status", "provider", "providerPaymentId",
          "metadata", "createdAt", "confirmedAt")
# What a create request sets, field for field.
CREATE_FIELDS = ("studentId", "courseId", "amountCents", "currency", "metadata")
TIMES = ("createdAt", "confirmedAt")
CONFIRM_PREFIX = "/api/v1/payments/"


class StoredCheck(Check):
    name = "stored"
    rules = ("P1", "P2", "P3", "P4")
    needs = frozenset({"read_db"})
    description = "what the payment API answered is what payments_db stored; a refused request stores nothing"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.metrics.update(creates=0, confirmations=0)

    def after_step(self, step: int) -> None:
        if not self.evidence.snapshots or self.evidence.snapshots[-1][0] != step:
            return
        # rows by id from the evidence's index of the last snapshot and the rows changed in the step
        exchanges = self.evidence.exchanges_of(step)
        creates = [e for e in exchanges if e.kind == "create_payment"]
        confirms = [e for e in exchanges if e.kind == "confirm"]
        if creates:
            self._creates(step, creates)
        if confirms:
            self._confirms(step, confirms)

    def finish(self) -> None:
        self.notes.append(f"{self.metrics['creates']} create(s), {self.metrics['confirmations']} confirmation(s) "
                          "compared with the rows stored")

    # --- creates -------------------------------------------------------------------------------

    def _creates(self, step: int, creates: list[Exchange]) -> None:
        new_rows = [c.new for c in self.evidence.row_changes("payments") if c.old is None and c.new is not None]
        accepted: set[str] = set()
        for exchange in creates:
            status = exchange.reply.status
            if status != 201:
                continue
            self.metrics["creates"] += 1
            try:
                answer = exchange.reply.json()
                sent = json.loads(exchange.request_body)
            except ValueError:
                continue  # the contract check reports a body that is not JSON
            if not isinstance(answer, dict) or not isinstance(answer.get("id"), str) or not isinstance(sent, dict):
                continue
            payment_id = answer["id"]
            accepted.add(payment_id)
            found = self.evidence.row("payments", payment_id)
            rows = [] if found is None else [found]
            if len(rows) != 1:
                self.fail(f"create-rows:{payment_id}", f"a create answered 201 with id {payment_id[:8]}…, but "
                          f"payments_db holds {len(rows)} row(s) with that id", rules=("P1",), step=step)
                continue
            row = rows[0]
            for field in CREATE_FIELDS:
                if field in sent and not same(row.get(field, MISSING), sent[field]):
                    self.fail(f"create-sent:{payment_id}:{field}", f"a create answered 201 stored {field} "
                              f"{show(row.get(field, MISSING))}, but {show(sent[field])} was sent and accepted",
                              rules=("P1",), step=step, field=field)
            if row.get("status") != "initiated":
                self.fail(f"create-status:{payment_id}", f"a new payment was stored with status "
                          f"{show(row.get('status'))} (a created payment is initiated)", rules=("P1", "P4"), step=step)
            self._answer_is_row(step, f"create {payment_id[:8]}…", answer, row, ("P1",))
            self._stamped_during(step, exchange, row, "createdAt", f"the payment {payment_id[:8]}…", ("P1",))
        refused = [e for e in creates if e.reply.status is not None and 400 <= e.reply.status < 500]
        if not refused:
            return
        unexplained = [p for p in new_rows if p["id"] not in accepted]
        for exchange in refused:
            student = _sent_student(exchange)
            stored = [p for p in unexplained if student is None or p.get("studentId") == student]
            if stored:
                self.fail(f"create-refused:{step}:{exchange.start_seq}", f"a create answered "
                          f"{exchange.reply.status} stored a payment anyway (row {stored[0]['id'][:8]}… of "
                          f"{stored[0].get('studentId')}, course {stored[0].get('courseId')}): a refused "
                          "request must store nothing", rules=("P1",), step=step)

    # --- confirmations -------------------------------------------------------------------------

    def _confirms(self, step: int, confirms: list[Exchange]) -> None:
        by_payment: dict[str, list[Exchange]] = defaultdict(list)
        for exchange in confirms:
            payment_id = exchange.path.removeprefix(CONFIRM_PREFIX).removesuffix("/confirm")
            by_payment[payment_id].append(exchange)
        for payment_id, exchanges in by_payment.items():
            self.metrics["confirmations"] += len(exchanges)
            name = self.evidence.payment_name(payment_id)
            old = self.evidence.row("payments", payment_id, previous=True)
            new = self.evidence.row("payments", payment_id)
            statuses = [e.reply.status for e in exchanges]
            if any(s is None or s >= 500 for s in statuses):
                continue  # indeterminate: the confirmation may or may not have been applied
            accepted = [e for e in exchanges if e.reply.status is not None and 200 <= e.reply.status < 300]
            if not accepted:
                if old is not None and new is not None:
                    changed = [f for f in FIELDS if not same(old.get(f, MISSING), new.get(f, MISSING))]
                    if changed:
                        answered = ", ".join(str(s) for s in sorted({s for s in statuses if s is not None}))
                        self.fail(f"confirm-refused:{step}:{payment_id}", f"{name}: a confirmation answered "
                                  f"{answered} changed the stored payment: "
                                  + _changes(changed, old, new) + "; a refused confirmation must change nothing",
                                  rules=_refusal_rules(statuses), step=step, payment=name)
                continue
            if new is None:
                self.fail(f"confirm-row:{step}:{payment_id}", f"{name}: a confirmation was answered "
                          f"{accepted[-1].reply.status} but payments_db holds no such payment", rules=("P2",),
                          step=step, payment=name)
                continue
            try:
                answer = accepted[-1].reply.json()
            except ValueError:
                answer = None
            if isinstance(answer, dict):
                self._answer_is_row(step, f"{name}: the confirmation", answer, new, ("P2", "P4"))
            if old is not None:
                self._moved_forward(step, name, old, new)
                if old.get("confirmedAt") is None and new.get("status") == "succeeded":
                    self._stamped_during(step, accepted[0], new, "confirmedAt", name, ("P3",), exchanges[-1])
            requested = _requested_status(accepted[0])
            if old is not None and requested is not None and old.get("status") == requested:
                changed = [f for f in FIELDS if not same(old.get(f, MISSING), new.get(f, MISSING))]
                if changed:
                    self.fail(f"confirm-repeat:{step}:{payment_id}", f"{name}: repeating status {requested} "
                              "changed the stored payment: " + _changes(changed, old, new) + "; a repeat is a no-op",
                              rules=("P4",), step=step, payment=name)

    def _stamped_during(self, step: int, first: Exchange, row: dict[str, Any], field: str, name: str,
                        rules: tuple[str, ...], last: Exchange | None = None) -> None:
        """The row's `field` is a moment between the request that set it starting and (the last of the
        step's requests) answering, within CLOCK_SKEW."""
        value = row.get(field)
        if not isinstance(value, str):
            return  # absent or ill-typed: the contract check's
        try:
            moment = parse_rfc3339(value)
        except ValueError:
            return
        start, end = first.started_at, (last or first).finished_at
        if start - CLOCK_SKEW <= moment <= end + CLOCK_SKEW:
            return
        off = moment - (start if moment < start else end)
        self.fail(f"moment:{step}:{row.get('id')}:{field}", f"{name}: {field} {value} is {abs(off) / 60:.0f} min "
                  f"{'before' if off < 0 else 'after'} the request that set it ({rfc3339(start)} to {rfc3339(end)}): "
                  "a moment stamped in local time and labelled UTC, or taken from the wrong clock",
                  rules=rules, step=step, field=field)

    def _moved_forward(self, step: int, name: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        """P4: an accepted confirmation moves the stored status only along the contract's transitions
        (initiated -> succeeded | failed | cancelled; succeeded -> refunded), whatever the scenario expected.
        A status outside the contract's is left to the contract check."""
        was, now = old.get("status"), new.get("status")
        before, after = old.get("confirmedAt"), new.get("confirmedAt")
        if was != now and now != "succeeded" and "confirmedAt" in new and (before is not None or after is not None) \
                and not (same_moment(before, after) if isinstance(before, str) and isinstance(after, str)
                         else same(before, after)):
            self.fail(f"confirmed-at:{step}:{new.get('id')}", f"{name}: moving the payment from {was} to {now} "
                      f"changed its confirmedAt ({before!r} -> {after!r}): only a "
                      "confirmation that succeeds it sets when it was confirmed (P2: a callback changes only "
                      "status and provider ids)", rules=("P2",), step=step, payment=name)
        allowed = names.PAYMENT_TRANSITIONS.get(was) if isinstance(was, str) else None
        if was == now or allowed is None or now not in names.PAYMENT_TRANSITIONS:
            return
        if now not in allowed:
            self.fail(f"confirm-backwards:{step}:{new.get('id')}", f"{name}: a confirmation was accepted that "
                      f"moved the stored payment from {was} to {now}; statuses only move forward ({was} may "
                      f"become {' | '.join(sorted(allowed)) or 'nothing'})", rules=("P4",), step=step, payment=name)

    # --- shared --------------------------------------------------------------------------------

    def _answer_is_row(self, step: int, what: str, answer: dict[str, Any], row: dict[str, Any],
                       rules: tuple[str, ...]) -> None:
        """The answer says what was stored: every field it shows must be what the row holds."""
        differ = []
        for field in FIELDS:
            if field not in answer:
                continue  # a missing field is the contract check's to report
            said, stored = answer[field], row.get(field, MISSING)
            if field in TIMES and isinstance(said, str) and isinstance(stored, str) and same_moment(said, stored):
                continue
            if not same(said, stored):
                differ.append(field)
        if differ:
            shown = "; ".join(f"{f}: answered {show(answer[f])}, stored {show(row.get(f, MISSING))}" for f in differ)
            self.fail(f"answer:{step}:{row.get('id')}", f"{what} answered what was not stored ({shown})",
                      rules=rules, step=step, fields=differ)


def _sent_student(exchange: Exchange) -> str | None:
    try:
        sent = json.loads(exchange.request_body)
    except ValueError:
        return None
    student = sent.get("studentId") if isinstance(sent, dict) else None
    return student if isinstance(student, str) else None


def _requested_status(exchange: Exchange) -> str | None:
    try:
        sent = json.loads(exchange.request_body)
    except ValueError:
        return None
    status = sent.get("status") if isinstance(sent, dict) else None
    return status if isinstance(status, str) else None


def _refusal_rules(statuses: list[int | None]) -> tuple[str, ...]:
    return ("P4",) if statuses and all(s == 409 for s in statuses) else ("P2",)


def _changes(fields: list[str], old: dict[str, Any], new: dict[str, Any]) -> str:
    return ", ".join(f"{f} {show(old.get(f, MISSING))} -> {show(new.get(f, MISSING))}" for f in fields)
