"""The seed's hand-written checklist (seed/000_ad24c99adb21dc15.txt), as data, and its judgement by a
run's evidence.

The seed ticked every line and concluded "Your code will work perfectly". kcverify keeps the seed's
lines but replaces each tick with what a run showed: every line names the SPEC rules that decide it,
and is proved (a passing scenario covers each of its rules), refuted (a failure cites one of its
rules) or without evidence (no scenario that ran to a verdict covers it). A refutation wins over
proofs: one counter-example is enough to untick a line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from kcverify.core.status import Status
from kcverify.evidence.results import RunResult


class Claim(NamedTuple):
    """One line of the seed: its section, the claim (paraphrased), the SPEC rules that decide it."""

    section: str
    claim: str
    rules: tuple[str, ...]


# Sections and lines follow the seed's "Verification Checklist", then its "Why It Works" claims about
# idempotency and the cache, then its error handling and "Potential Edge Cases (Handled)".
CHECKLIST: tuple[Claim, ...] = (
    Claim("Purchase Worker", "Consumes PURCHASE_CONFIRMED from Kafka, skipping no event", ("W1",)),
    Claim("Purchase Worker", "Fetches metadata from the payments table (the student's succeeded payment)", ("W3",)),
    Claim("Purchase Worker", "Copies all required fields (payment metadata is the source of truth)", ("W4",)),
    Claim("Purchase Worker", "Handles idempotency correctly", ("W6",)),
    Claim("Purchase Worker", "Creates the purchase with complete metadata", ("W4", "W6", "I1")),
    Claim("Purchase Worker", "Emits PURCHASE_CREATED", ("W6",)),
    Claim("Payment Service", "Saves complete metadata to the payments table", ("P1", "P3")),
    Claim("Payment Service", "Emits PURCHASE_CONFIRMED, keyed payment:{id}:PURCHASE_CONFIRMED", ("P3", "P4")),
    Claim("Payment Service", "Invalidates the student's learning cache", ("P5",)),
    Claim("Student Service", "Fetches purchases from the database", ("S1",)),
    Claim("Student Service", "Includes purchase metadata in the response", ("S1",)),
    Claim("Student Service", "Caches data (5 min TTL)", ("S2",)),
    Claim("Frontend", "Fetches learning data", ("S1",)),
    Claim("Frontend", "Extracts metadata from the purchase object", ("F1",)),
    Claim("Frontend", "Displays all course details as chosen at checkout", ("F2",)),
    Claim("Idempotency", "UNIQUE constraint prevents duplicate purchases", ("W6", "I1")),
    Claim("Idempotency", "Event idempotency prevents duplicate processing", ("P4", "W6")),
    Claim("Cache", "Cache invalidated after purchase: fresh data on the next request", ("P5", "S3")),
    Claim("Cache", "Cache TTL is 5 minutes; can be invalidated manually via the API", ("S2", "S4")),
    Claim("Error handling", "Retry logic (3 attempts)", ("W7",)),
    Claim("Error handling", "Dead letter queue for failed events, for manual processing", ("W2", "W7", "W8")),
    Claim("Error handling", "Payment metadata fetch fails: falls back to event metadata, logs a warning", ("W5",)),
    Claim("Error handling", "Purchase already exists: no duplicate, event marked processed", ("W6",)),
    Claim("Error handling", "Nothing is lost: every event ends processed or dead-lettered", ("I3",)),
)


def sections(checklist: tuple[Claim, ...] = CHECKLIST) -> tuple[str, ...]:
    """Section names in first-seen order, so reports group lines the way the seed did."""
    return tuple(dict.fromkeys(claim.section for claim in checklist))


class Verdict(StrEnum):
    PROVED = "proved"
    REFUTED = "refuted"
    NO_EVIDENCE = "no evidence"


VERDICT_EMOJI = {Verdict.PROVED: "✅", Verdict.REFUTED: "❌", Verdict.NO_EVIDENCE: "⚠️"}


@dataclass(frozen=True)
class Refutation:
    """A failure that cites at least one of a claim's rules."""

    scenario: str
    check: str
    rules: tuple[str, ...]  # the failure's rules (not only the claim's): the reader sees the whole charge
    step: int | None
    message: str


@dataclass(frozen=True)
class Judgement:
    claim: Claim
    verdict: Verdict
    proved_by: tuple[str, ...]  # passed scenarios covering at least one of the claim's rules
    refuted_by: tuple[Refutation, ...]
    unproved: tuple[str, ...]  # claim rules that no passed scenario covers
    inconclusive: tuple[str, ...]  # scenarios that cover a claim rule but reached no verdict on it

    def evidence_text(self) -> str:
        """Plain one-line account, e.g. 'refuted by stale_read (freshness: S3)'."""
        return describe(self, name=str, text=str)


def describe(judgement: Judgement, name: Callable[[str], str], text: Callable[[str], str]) -> str:
    """The account of a judgement, in a reporter's markup: `name` renders a scenario or check name
    (e.g. as a code span), `text` escapes literal text. Shared so every report words it alike."""

    def names(values: tuple[str, ...]) -> str:
        return ", ".join(name(v) for v in values)

    if judgement.verdict is Verdict.REFUTED:
        return text("refuted by ") + "; ".join(
            f"{name(r.scenario)} ({name(r.check)}{text(': ' + ', '.join(r.rules))})" for r in judgement.refuted_by
        )
    if judgement.verdict is Verdict.PROVED:
        return text("proved by ") + names(judgement.proved_by)
    account = text("no evidence")
    if judgement.proved_by:
        account += text(f" for {', '.join(judgement.unproved)} (the rest proved by ") + names(judgement.proved_by) + ")"
    elif len(judgement.claim.rules) > 1:
        account += text(f" for {', '.join(judgement.unproved)}")
    if judgement.inconclusive:
        account += text("; no verdict from ") + names(judgement.inconclusive)
    return account


def judge(run: RunResult, checklist: tuple[Claim, ...] = CHECKLIST) -> tuple[Judgement, ...]:
    """Judge every claim by the run. A scenario proves the rules it covers only when it passed; any
    failure, in any scenario, that cites a rule refutes every claim resting on that rule."""
    return tuple(_judge_one(run, claim) for claim in checklist)


def _judge_one(run: RunResult, claim: Claim) -> Judgement:
    rules = set(claim.rules)
    refuted: dict[tuple[str, str, int | None], Refutation] = {}
    proved_by: list[str] = []
    proved_rules: set[str] = set()
    inconclusive: list[str] = []
    for scenario in run.scenarios:
        hits = [f for f in scenario.failures if rules & set(f.rules)]
        for failure in hits:
            key = (scenario.name, failure.check, failure.step)
            refuted.setdefault(
                key, Refutation(scenario.name, failure.check, failure.rules, failure.step, failure.message)
            )
        covered = rules & set(scenario.covers)
        if not covered:
            continue
        if scenario.status is Status.PASSED:
            proved_by.append(scenario.name)
            proved_rules |= covered
        elif not hits:
            inconclusive.append(scenario.name)
    unproved = tuple(r for r in claim.rules if r not in proved_rules)
    if refuted:
        verdict = Verdict.REFUTED
    elif not unproved:
        verdict = Verdict.PROVED
    else:
        verdict = Verdict.NO_EVIDENCE
    return Judgement(claim, verdict, tuple(proved_by), tuple(refuted.values()), unproved, tuple(inconclusive))
