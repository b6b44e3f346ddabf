"""A stale read explained: what happened to one student's learning view, in time order, around the read
the freshness check failed. A stale view is a race (a read that loaded the old rows, an invalidation, a
store after it), and a race is understood from its order, not from one line: when the purchase was
committed, when each read of that student began and what it answered (Cache-Status, Age, the key's TTL
where the target sees the cache), when the cache was invalidated, when PURCHASE_CREATED (the
invalidator's trigger) was published, and which steps held or ran the invalidator. Everything here is
observable; nothing comes from a component's own account."""

from __future__ import annotations

import json

from kcverify.core.clock import rfc3339
from kcverify.evidence.evidence import Evidence, Exchange, listed_purchases
from kcverify.evidence.results import Table
from kcverify.spec import names

INVALIDATOR = "cache-invalidator"
FINAL = 1 << 30  # the final reads come after every step


def stale_read_timeline(evidence: Evidence, student: str, payment_id: str, committed_at: float, commit_step: int,
                        stale: Exchange) -> Table:
    """The rows (step, time, what) of `student`'s view over the scenario; the stale read highlighted."""
    name = evidence.payment_name(payment_id)
    # (time, step it belongs to, shown step, what, highlighted): on a manual clock many share one time,
    # and then the step order decides
    rows: list[tuple[float, int, str, str, bool]] = [
        (committed_at, commit_step, str(commit_step or "—"), f"purchase of {name} committed", False)]
    for exchange in evidence.exchanges:
        if exchange.student != student or exchange.service != "student-service":
            continue
        step = exchange.step or FINAL
        where = str(exchange.step) if exchange.step else "final"
        if exchange.method == "GET" and "/learning" in exchange.path and exchange.kind == "finish_read":
            began = _began(evidence, exchange.step)
            rows.append((exchange.started_at, began, str(began), "split read began: it loads the rows now and "
                         "stores what it loaded when it finishes", False))
            answer = _answer(exchange, payment_id, name)
            rows.append((exchange.finished_at, step, where, f"split read finished; {answer}", exchange is stale))
        elif exchange.method == "GET" and "/learning" in exchange.path:
            rows.append((exchange.started_at, step, where, f"read began; {_answer(exchange, payment_id, name)}",
                         exchange is stale))
        elif exchange.method == "DELETE":
            rows.append((exchange.started_at, step, where,
                         f"cache invalidated (DELETE answered {exchange.reply.status})", False))
    for record in evidence.last.topics.get(names.TOPIC_CREATED, []):
        if record.key == student:
            rows.append((record.timestamp, commit_step, "—",
                         "PURCHASE_CREATED published (what triggers the invalidator)", False))
    at = {state.step: state.at for state in evidence.history}
    for step, (_, args) in sorted(evidence.step_actions.items()):
        if INVALIDATOR in json.dumps(args) and step in at:
            rows.append((at[step], step, str(step), f"{evidence.step_title(step)} (the cache invalidator)", False))
    rows.sort(key=lambda row: (row[0], row[1]))
    table_rows = tuple((shown, rfc3339(t), what) for t, _, shown, what, _ in rows)
    highlight = tuple((i, 2) for i, row in enumerate(rows) if row[4])
    return Table(("step", "time", "what happened"), table_rows, title=f"the learning view of {student}",
                 highlight=highlight)


def _began(evidence: Evidence, finished: int) -> int:
    """The step of the `begin_read` that the split read finished at step `finished` began."""
    _, args = evidence.step_actions.get(finished, ("", {}))
    for step in range(finished - 1, 0, -1):
        began_kind, began_args = evidence.step_actions.get(step, ("", {}))
        if began_kind == "begin_read" and began_args.get("as") == args.get("read"):
            return step
    return finished


def _answer(exchange: Exchange, payment_id: str, name: str) -> str:
    reply = exchange.reply
    if reply.status != 200:
        return f"answered {reply.status}"
    headers = {k.lower(): v for k, v in reply.headers.items()}
    try:
        shown = {item.get("paymentId") for item in listed_purchases(reply.json())}
    except ValueError:
        shown = set()
    text = (f"answered 200 {'showing' if payment_id in shown else 'without'} {name}; "
            f"Cache-Status {headers.get('cache-status', '(none)')}, Age {headers.get('age', '(none)')}")
    if exchange.cache is not None and exchange.cache.present:
        ttl = "no expiry" if exchange.cache.ttl is None else f"expires in {exchange.cache.ttl:.0f} s"
        text += f"; the key then {ttl}"
    return text
