"""Claims, judged by evidence: a user's claims file and its judgement by a run's results.

People state things about a system ("every confirmed payment becomes exactly one purchase", "the
cache is invalidated after a purchase") and tick them after reading the code. A claims file
(`kcverify run --claims claims.yaml`) lists such claims, each with the rule ids that decide it, and
every report replaces the tick with what the run showed:

- refuted: a failure (a check or a step's expectation) cites one of the claim's rules. One
  counter-example is enough, and it wins over any number of passing scenarios.
- held: every one of the claim's rules was exercised by a scenario that passed: the scenario covers
  the rule (its `covers`, what its author says it gives evidence for). A check that passed in some
  scenario does not count on its own: with nothing to look at (no purchase, no read) it passes
  vacuously.
- not exercised: otherwise. A claim nobody tested is not a claim that holds.

The file's shape is contracts/schemas/claims.schema.json; unknown rule ids and repeated claim ids are
input errors (`file:line:col: message`, exit 2), found before anything runs."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from kcverify.core.status import Status
from kcverify.evidence.results import RunResult
from kcverify.scenario.loader import load_document
from kcverify.spec.rules import RULES

SCHEMA = "schemas/claims"
HEADING = "Claims, judged by evidence"
EXPLANATION = (
    "Each claim names the rules that decide it and is judged by this run: held (a passing scenario "
    "exercised each of its rules), refuted (a failure cites one of its rules), not exercised (no "
    "scenario that passed exercised all of them)."
)


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    rules: tuple[str, ...]
    line: int | None = None  # where the claim starts in its file


@dataclass(frozen=True)
class Claims:
    """A loaded claims file."""

    path: str
    claims: tuple[Claim, ...]
    title: str = ""


def load_claims(path: str | Path, known_rules: Mapping[str, str] = RULES) -> Claims:
    """Load and validate a claims file. Raises InputError (`file:line:col: message (hint)`)."""
    doc = load_document(path, SCHEMA, "claims")
    data: dict[str, Any] = doc.data
    claims: list[Claim] = []
    first_line: dict[str, int] = {}
    for index, item in enumerate(data["claims"]):
        at = doc.value_at(("claims", index, "id"))
        if item["id"] in first_line:
            raise doc.error(f"claim id '{item['id']}' is used twice", at,
                            hint=f"first at line {first_line[item['id']]}; claim ids must be unique")
        first_line[item["id"]] = at[0]
        for position, rule in enumerate(item["rules"]):
            if rule not in known_rules:
                raise doc.error(f"claim '{item['id']}': unknown rule '{rule}'",
                                doc.value_at(("claims", index, "rules", position)),
                                hint=_did_you_mean(rule, known_rules))
        claims.append(Claim(item["id"], item["text"], tuple(item["rules"]), doc.value_at(("claims", index))[0]))
    return Claims(str(path), tuple(claims), data.get("title", ""))


def _did_you_mean(rule: str, known: Mapping[str, str]) -> str:
    """'did you mean 'W4'?' for a case or typing slip; the rules of the same family ('W1, ..., W8') for
    a number that does not exist; else every known rule."""
    wanted = rule.strip().upper()
    close = difflib.get_close_matches(wanted, list(known), n=1, cutoff=0.8)
    if close:
        return f"did you mean '{close[0]}'?"
    family = [k for k in known if wanted[:1] and k.startswith(wanted[:1])]
    if family:
        return "did you mean one of " + ", ".join(family) + "?"
    return "known rules: " + ", ".join(known)


# --- judgement -----------------------------------------------------------------------------------


class Verdict(StrEnum):
    HELD = "held"
    REFUTED = "refuted"
    NOT_EXERCISED = "not exercised"


NAMES_SHOWN = 3  # scenarios named in a held claim's account; the JSON report lists them all
VERDICT_EMOJI = {Verdict.HELD: "✅", Verdict.REFUTED: "❌", Verdict.NOT_EXERCISED: "⚠️"}
VERDICT_GLYPH = {Verdict.HELD: "✓", Verdict.REFUTED: "✗", Verdict.NOT_EXERCISED: "?"}


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
    held_by: tuple[str, ...]  # passed scenarios covering at least one of the claim's rules
    refuted_by: tuple[Refutation, ...]
    unexercised: tuple[str, ...]  # claim rules that no passed scenario exercised
    inconclusive: tuple[str, ...]  # scenarios covering a claim rule that reached no verdict on it

    def evidence_text(self) -> str:
        """Plain one-line account, e.g. 'refuted by stale_read (freshness: S3)'."""
        return describe(self, name=str, text=str)


def judge(run: RunResult, claims: Claims) -> tuple[Judgement, ...]:
    """Judge every claim by the run: any failure, in any scenario, that cites a rule refutes every
    claim resting on that rule; a scenario exercises rules only when it passed."""
    return tuple(_judge_one(run, claim) for claim in claims.claims)


def _judge_one(run: RunResult, claim: Claim) -> Judgement:
    rules = set(claim.rules)
    refuted: dict[tuple[str, str, int | None], Refutation] = {}
    held_by: list[str] = []
    exercised: set[str] = set()
    inconclusive: list[str] = []
    for scenario in run.scenarios:
        hits = [f for f in scenario.failures if rules & set(f.rules)]
        for failure in hits:
            key = (scenario.name, failure.check, failure.step)
            refuted.setdefault(
                key, Refutation(scenario.name, failure.check, failure.rules, failure.step, failure.message)
            )
        covered = rules & set(scenario.covers)
        if covered and scenario.status is Status.PASSED:
            held_by.append(scenario.name)
            exercised |= covered
        elif covered and not hits:
            inconclusive.append(scenario.name)
    unexercised = tuple(r for r in claim.rules if r not in exercised)
    if refuted:
        verdict = Verdict.REFUTED
    elif not unexercised:
        verdict = Verdict.HELD
    else:
        verdict = Verdict.NOT_EXERCISED
    return Judgement(claim, verdict, tuple(held_by), tuple(refuted.values()), unexercised, tuple(inconclusive))


# --- wording shared by the reporters -------------------------------------------------------------


def describe(judgement: Judgement, name: Callable[[str], str], text: Callable[[str], str]) -> str:
    """The account of a judgement, in a reporter's markup: `name` renders a scenario or check name
    (e.g. as a code span), `text` escapes literal text. Shared so every report words it alike."""

    def names(values: tuple[str, ...]) -> str:
        shown = ", ".join(name(v) for v in values[:NAMES_SHOWN])
        return shown + (text(f" and {len(values) - NAMES_SHOWN} more") if len(values) > NAMES_SHOWN else "")

    if judgement.verdict is Verdict.REFUTED:
        return text("refuted by ") + "; ".join(
            f"{name(r.scenario)} ({name(r.check)}{text(': ' + ', '.join(r.rules))})" for r in judgement.refuted_by
        )
    if judgement.verdict is Verdict.HELD:
        return text("held in ") + names(judgement.held_by)
    account = text("not exercised")
    if judgement.held_by:
        account += text(f": {', '.join(judgement.unexercised)} (the rest held in ") + names(judgement.held_by) + ")"
    elif len(judgement.claim.rules) > 1:
        account += text(f": {', '.join(judgement.unexercised)}")
    if judgement.inconclusive:
        account += text("; no verdict from ") + names(judgement.inconclusive)
    return account


def tally(judgements: tuple[Judgement, ...]) -> str:
    """'12 held, 1 refuted, 2 not exercised (of 15 claims)'."""
    counts = {v: sum(1 for j in judgements if j.verdict is v) for v in Verdict}
    claims = "claim" if len(judgements) == 1 else "claims"
    return (f"{counts[Verdict.HELD]} held, {counts[Verdict.REFUTED]} refuted, "
            f"{counts[Verdict.NOT_EXERCISED]} not exercised (of {len(judgements)} {claims})")


def to_json(claims: Claims, judgements: tuple[Judgement, ...]) -> dict[str, Any]:
    """The `claims` part of the JSON report (contracts/schemas/report.schema.json)."""
    return {
        "heading": HEADING,
        "file": Path(claims.path).as_posix(),
        "title": claims.title,
        "judgements": [
            {
                "id": j.claim.id,
                "text": j.claim.text,
                "rules": list(j.claim.rules),
                "verdict": j.verdict.value,
                "evidence": j.evidence_text(),
                "held_by": list(j.held_by),
                "refuted_by": [
                    {"scenario": r.scenario, "check": r.check, "rules": list(r.rules), "step": r.step,
                     "message": r.message}
                    for r in j.refuted_by
                ],
                "unexercised": list(j.unexercised),
                "inconclusive": list(j.inconclusive),
            }
            for j in judgements
        ],
    }
