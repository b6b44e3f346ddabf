"""Cache freshness (S3, S2): once a purchase is committed, every learning response that starts after
the commit plus the freshness bound must show it. On the real stack the bound is a time (default 1 s);
on the embedded one it is "after the next settle", since nothing moves there until something runs.

For each purchase it also measures the staleness window: from the commit to the start of the first
response that showed it. S2's TTL is judged twice: by the `Age` a cached answer admits to, and, where the
target can see the cache (`read_cache`), by the expiry of the student's key right after each read."""

from __future__ import annotations

from typing import Any

from kcverify.checks.base import Check
from kcverify.checks.timeline import stale_read_timeline
from kcverify.core.clock import parse_rfc3339, rfc3339
from kcverify.evidence import cache_status
from kcverify.evidence.evidence import Exchange, listed_purchases
from kcverify.spec.policy import CLOCK_SKEW

AGE_SLACK = 1.0  # seconds: Age is whole seconds, and the read that stored the entry ended a little after it did
TTL_SLACK = 1.0  # seconds a key's remaining TTL may exceed the rule's: rounding up to whole milliseconds


class FreshnessCheck(Check):
    name = "freshness"
    rules = ("S3", "S2", "S1")
    needs = frozenset({"read_db"})
    description = "every learning read after commit + bound shows the purchase; cached entries respect the TTL"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._commits: dict[str | None, tuple[float, int, str]] = {}  # paymentId -> (created_at, step, student)
        # the same, by student: a read is judged against its student's purchases only, not every purchase
        self._by_student: dict[str, dict[str | None, tuple[float, int, str]]] = {}
        self._judged = 0  # exchanges looked at so far
        self.metrics["windows_ms"] = {}

    def after_step(self, step: int) -> None:
        self._learn_commits(step)
        self._judge_new_reads()

    def finish(self) -> None:
        self._learn_commits(None)
        self._judge_new_reads()
        windows = self.metrics["windows_ms"]
        if windows:
            shown = ", ".join(f"{name} {ms:.0f} ms" for name, ms in windows.items())
            self.notes.append(f"staleness windows: {shown}")
        bound = self.evidence.freshness_bound
        self.notes.append("bound: after settle" if bound is None else f"bound: {bound * 1000:.0f} ms")
        if not self.evidence.conventions.cache_headers and "read_cache" not in self.evidence.target.capabilities:
            self.notes.append("cache hits and misses not judged: the answers carry no Cache-Status and the "
                              "target cannot see the cache (give the profile a cache section)")

    def _learn_commits(self, step: int | None) -> None:
        # rows new or changed in the last step: a purchase not yet known, or one that became active. The
        # commit time is the row's own createdAt, but never later than the snapshot that first showed it: a
        # system whose clock runs ahead of kcverify's would otherwise put its commits in the future, and no
        # read would ever be due (a createdAt a time zone off is a failure of its own, S1).
        seen_at = self.evidence.last.at
        for purchase in (change.new for change in self.evidence.row_changes("purchases") if change.new):
            payment_id = purchase.get("paymentId")  # a user's row may not carry it: judged under None
            if payment_id not in self._commits and purchase.get("isActive", True):
                self._made_after_its_confirmation(purchase, seen_at, step)
                committed_at = min(parse_rfc3339(purchase["createdAt"]), seen_at)
                commit = (committed_at, step or 0, purchase["studentId"])
                self._commits[payment_id] = commit
                self._by_student.setdefault(commit[2], {})[payment_id] = commit

    def _made_after_its_confirmation(self, purchase: dict[str, Any], seen_at: float, step: int | None) -> None:
        """S1: a purchase's createdAt is when it was made: after its payment's first confirmation began and
        before the snapshot that first shows it, within CLOCK_SKEW (a local time labelled UTC is a time zone
        off, and the view shows every student the wrong purchase date)."""
        created = parse_rfc3339(purchase["createdAt"])
        path = f"/api/v1/payments/{purchase.get('paymentId')}/confirm"
        confirmed = [e.started_at for e in self.evidence.exchanges if e.kind == "confirm" and e.path == path
                     and e.reply.status is not None and 200 <= e.reply.status < 300]
        earliest = min(confirmed) if confirmed else None
        if created > seen_at + CLOCK_SKEW:
            off, what = created - seen_at, f"after the snapshot that first shows it ({rfc3339(seen_at)})"
        elif earliest is not None and created < earliest - CLOCK_SKEW:
            off, what = earliest - created, f"before its payment was confirmed ({rfc3339(earliest)})"
        else:
            return
        name = self.evidence.payment_name(purchase.get("paymentId"))
        key = purchase.get("paymentId") or purchase.get("id")
        self.fail(f"created-at:{key}", f"{name}: the purchase row's createdAt "
                  f"{purchase['createdAt']} is {off / 60:.0f} min {what}: a moment stamped in local time and "
                  "labelled UTC, or taken from the wrong clock", rules=("S1",), step=step, payment=name)

    def _invalidator_down(self, read: Exchange) -> bool:
        """S3 is a promise of the running system: while the scenario keeps the component that carries
        invalidations down, a stale read is the scenario's doing, not the system's."""
        down = self.evidence.down_at(read.step) if read.step else self.evidence.last.down
        return "cache-invalidator" in down

    def _due(self, committed_at: float, commit_step: int, read: Exchange) -> bool:
        if self._invalidator_down(read):
            return False
        bound = self.evidence.freshness_bound
        if bound is not None:
            return read.started_at >= committed_at + bound
        # embedded: due once a settle that ran during or after the commit's step ended quiet before the read
        # began (one that hit its bound with work pending promised nothing)
        return any(s.quiet and s.step >= commit_step and s.end_seq < read.start_seq for s in self.evidence.settles)

    def _judge_new_reads(self) -> None:
        for read in self.evidence.exchanges[self._judged:]:
            if read.service == "student-service" and read.method == "GET" and "/learning" in read.path \
                    and read.reply.status == 200:
                self._judge(read)
        self._judged = len(self.evidence.exchanges)

    def _judge(self, read: Exchange) -> None:
        try:
            view = read.reply.json()
            shown = {item.get("paymentId") for item in listed_purchases(view)}
        except ValueError:
            return  # the contract check reports a malformed body
        headers = {k.lower(): v for k, v in read.reply.headers.items()}
        self._check_age(read, headers)
        self._check_expiry(read)
        self._check_stored_claim(read, headers)
        for payment_id, (committed_at, commit_step, _) in self._by_student.get(read.student or "", {}).items():
            name = self.evidence.payment_name(payment_id)
            if payment_id in shown:
                window = max(0.0, read.started_at - committed_at) * 1000
                self.metrics["windows_ms"].setdefault(name, round(window, 1))
                continue
            if not self._due(committed_at, commit_step, read):
                continue
            late = (read.started_at - committed_at) * 1000
            where = f"step {read.step}" if read.step else "the final read"
            self.fail(
                f"stale:{payment_id}",
                f"{name}: the learning read at {where} (started {rfc3339(read.started_at)}) does not show the "
                f"purchase committed at {rfc3339(committed_at)}, {late:.0f} ms earlier; "
                f"Cache-Status: {headers.get('cache-status', '(none)')}, Age: {headers.get('age', '(none)')}",
                step=read.step or None, payment=name, cache_status=headers.get("cache-status"),
                evidence=stale_read_timeline(self.evidence, read.student or "", payment_id or "", committed_at,
                                             commit_step, read),
            )

    def _check_expiry(self, read: Exchange) -> None:
        """S2 judged by the key itself, where the target can see the cache: a learning view is cached for
        at most the TTL. A key with no expiry, or one that outlives the TTL (seconds taken for
        milliseconds), keeps a stale view for as long once an invalidation is missed."""
        entry = read.cache
        if entry is None or not entry.present:
            return
        ttl = self.evidence.conventions.cache_ttl
        where = f"step {read.step}" if read.step else "the final read"
        if entry.ttl is None:
            self.fail(f"expiry:{entry.key}", f"after the learning read at {where}, the cache key {entry.key} has "
                      f"no expiry (a learning view is cached for at most {ttl:.0f} s)", rules=("S2",),
                      step=read.step or None)
        elif entry.ttl > ttl + TTL_SLACK:
            self.fail(f"expiry:{entry.key}", f"after the learning read at {where}, the cache key {entry.key} "
                      f"expires in {entry.ttl:.0f} s, beyond the {ttl:.0f} s TTL", rules=("S2",),
                      step=read.step or None)

    def _check_stored_claim(self, read: Exchange, headers: dict[str, str]) -> None:
        """S2: a read whose Cache-Status says it stored the view left it under the student's key. Seen right
        after the answer, the key is not there: the view went under another key, or the store failed and the
        header says otherwise. Judged only where the components are held between steps (nothing else can
        delete the key between the answer and the look) and the target can see the cache."""
        entry = read.cache
        if entry is None or entry.present or "control_components" not in self.evidence.target.capabilities:
            return
        if not cache_status.was_stored(headers.get("cache-status"), self.evidence.conventions.cache_status_name):
            return
        where = f"step {read.step}" if read.step else "the final read"
        self.fail(f"stored-claim:{read.step}:{read.start_seq}", f"the learning read at {where} says it stored the "
                  f"view (Cache-Status: {headers.get('cache-status')}), but right after it the cache has no key "
                  f"{entry.key}: the view was cached under another key, or not at all", rules=("S2",),
                  step=read.step or None)

    def _check_age(self, read: Exchange, headers: dict[str, str]) -> None:
        status = headers.get("cache-status", "")
        if not status.startswith(self.evidence.conventions.cache_status_name) and status:
            return  # another cache's header: nothing to say about our TTL
        try:
            age = int(headers.get("age", "0"))
        except ValueError:
            self.fail(f"age:{read.step}", f"Age header {headers.get('age')!r} is not an integer", rules=("S2",),
                      step=read.step or None)
            return
        if age > self.evidence.conventions.cache_ttl:
            self.fail(f"ttl:{read.step}", f"a cached learning view {age} s old was served (TTL "
                      f"{self.evidence.conventions.cache_ttl:.0f} s)", rules=("S2",), step=read.step or None)
        if cache_status.is_hit(status, self.evidence.conventions.cache_status_name):
            self._age_admits_its_store(read, age)

    def _age_admits_its_store(self, read: Exchange, age: int) -> None:
        """S2's Age tells how old a cached answer is: a hit whose body is, byte for byte, what an earlier
        read of this run loaded and stored (its Cache-Status says `stored`; its body carries the time it was
        generated, so no other render can be the same bytes) is at least as old as the time since that
        read ended. An Age that says less hides how stale a view may be. Judged only then: an entry stored
        by anything the run did not see is not this one."""
        if b"generatedAt" not in read.reply.body:
            return
        for earlier in reversed(self.evidence.exchanges):
            if earlier.start_seq >= read.start_seq or earlier.student != read.student or earlier.method != "GET" \
                    or earlier.reply.status != 200 or earlier.reply.body != read.reply.body:
                continue
            status = {k.lower(): v for k, v in earlier.reply.headers.items()}.get("cache-status", "")
            if not cache_status.was_stored(status, self.evidence.conventions.cache_status_name):
                continue
            elapsed = read.started_at - earlier.finished_at
            if age < elapsed - AGE_SLACK:
                where = f"step {read.step}" if read.step else "the final read"
                self.fail(f"age-understated:{read.step}:{read.start_seq}", f"the cache hit at {where} says Age {age}, "
                          f"but it answers the view stored by the read of step {earlier.step}, {elapsed:.0f} s "
                          "earlier: Age must admit how old a cached view is", rules=("S2",), step=read.step or None)
            return
