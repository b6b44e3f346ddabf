"""The Markdown reporter: report.md, also appended to the GitHub Actions job summary.

After the verdict, the user's claims (a claims file), each judged held, refuted or not exercised by this
run (kcverify.report.claims). Then the scenarios, then every failure with its evidence as a table and
the reproduce command.

Everything that comes from a run (names, messages, table cells) is escaped: GitHub renders inline
HTML and Markdown, and a failure message quoting a response body must show as text, not as markup."""

from __future__ import annotations

import html
import os
import re
from enum import Enum
from pathlib import Path
from typing import Literal

from kcverify.core.status import Status
from kcverify.evidence.events import Event, RunFinished
from kcverify.evidence.results import Failure, RunResult, ScenarioResult, Table
from kcverify.report import claims, common

# GitHub rejects a job summary over 1 MiB; keep below it and point at the full file.
STEP_SUMMARY_LIMIT = 1_000_000

_MD_INLINE = re.compile(r"([\\`*_\[\]|~])")  # meaningful anywhere in a line (< > & are HTML-escaped)
_MD_LINE_START = re.compile(r"^(\s*)([#+=-]|\d+[.)])")  # meaningful only where a block starts


class _FromEnv(Enum):
    GITHUB_STEP_SUMMARY = "GITHUB_STEP_SUMMARY"


FROM_ENV = _FromEnv.GITHUB_STEP_SUMMARY
"""Default for MarkdownReporter(step_summary=...): read $GITHUB_STEP_SUMMARY when the reporter is made
(not at import, so tests and wrappers can set the variable)."""


def text(value: str) -> str:
    """Inline text: HTML-escaped, Markdown punctuation backslash-escaped, newlines as line breaks."""
    escaped = _MD_INLINE.sub(r"\\\1", html.escape(common.visible(value), quote=False))
    return "<br>".join(_MD_LINE_START.sub(_escape_block_start, line) for line in escaped.splitlines())


def _escape_block_start(match: re.Match[str]) -> str:
    indent, marker = match.group(1), match.group(2)
    return f"{indent}{marker[:-1]}\\{marker[-1]}"  # '# x' -> '\# x', '1. x' -> '1\. x'


def code(value: str, cell: bool = False) -> str:
    """A code span that holds any text: the fence is longer than any backtick run inside it. In a
    table cell (`cell`), GitHub splits cells at '|' even inside code spans, so it is escaped there."""
    value = " ".join(common.visible(value).splitlines())
    if cell:
        value = value.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if value.startswith("`") or value.endswith("`") or not value.strip() else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def table(columns: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table from already-formatted cells."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def evidence(evidence_table: Table) -> list[str]:
    """An evidence Table as Markdown; highlighted cells bold and flagged, since colour is unavailable."""
    width = max([len(evidence_table.columns), *(len(row) for row in evidence_table.rows)])
    columns = [text(evidence_table.columns[c]) if c < len(evidence_table.columns) else " " for c in range(width)]
    rows = []
    for r, row in enumerate(evidence_table.rows):
        cells = []
        for c in range(width):
            value = common.cell(evidence_table, row, c)
            if common.is_highlighted(evidence_table, r, c):
                cells.append(f"❗ **{text(value)}**" if value else "❗ *(empty)*")
            else:
                cells.append(text(value))
        rows.append(cells)
    lines = [f"*{text(evidence_table.title)}*", ""] if evidence_table.title else []
    return lines + table(columns, rows)


def _rules(rules: tuple[str, ...]) -> str:
    return ", ".join(rules) if rules else "—"


def judgement_evidence(judgement: claims.Judgement) -> str:
    """The evidence cell of a claim, with scenario and check names as code spans."""
    return claims.describe(judgement, name=lambda n: code(n, cell=True), text=text)


def _sentence(line: str) -> str:
    return line[:1].upper() + line[1:]


def _header(run: RunResult) -> list[str]:
    verdict = f"{common.STATUS_EMOJI[run.status]} {run.status.value.upper()}"
    lines = [
        f"# kcverify: {verdict}",
        "",
        f"**{text(common.summary_line(run))}** on target {code(run.target)}, seed {run.seed}.  ",
        f"{text(_sentence(common.exit_line(run)))}.",
    ]
    windows = common.freshness_windows(run)
    if windows is not None:
        lines[-1] += "  "
        lines.append(f"{text(_sentence(common.freshness_line(windows)))}.")
    return lines


def _claims(run: RunResult, given: claims.Claims) -> list[str]:
    judgements = claims.judge(run, given)
    lines = [f"## {claims.HEADING}", ""]
    if given.title:
        lines += [f"*{text(given.title)}* ({code(Path(given.path).as_posix())})", ""]
    lines += [text(claims.EXPLANATION), "", f"**{text(claims.tally(judgements))}**", ""]
    rows = [
        [claims.VERDICT_EMOJI[j.verdict] + " " + j.verdict.value, code(j.claim.id, cell=True), text(j.claim.text),
         _rules(j.claim.rules), judgement_evidence(j)]
        for j in judgements
    ]
    return lines + table(["Verdict", "Claim", "Statement", "Rules", "Evidence"], rows)


def _scenarios(run: RunResult) -> list[str]:
    rows = []
    for s in run.scenarios:
        note = f" — {text(common.first_line(s.reason))}" if s.reason else ""
        rows.append([
            f"{common.STATUS_EMOJI[s.status]} {s.status.value}",
            code(s.name, cell=True) + note,
            _rules(s.covers),
            str(len(s.steps)),
            common.duration(s.duration),
        ])
    return ["## Scenarios", "", *table(["Status", "Scenario", "Rules", "Steps", "Duration"], rows)]


def _failure(number: int, failure: Failure) -> list[str]:
    label, name = common.judged_by(failure)
    judge = f"check {code(name)}" if label == "check" else text(name)
    lines = [
        f"**Failure {number}:** {text(common.where(failure))} · {judge} · "
        f"rules **{_rules(failure.rules)}**",
        "",
        text(failure.message),
    ]
    if failure.evidence is not None:
        lines += ["", *evidence(failure.evidence)]
    return lines


def _scenario_failures(scenario: ScenarioResult) -> list[str]:
    lines = [f"### {common.STATUS_EMOJI[scenario.status]} {code(scenario.name)}", ""]
    if scenario.title:
        lines += [f"{text(scenario.title)} ({code(common.display_path(scenario.path))})", ""]
    if scenario.reason:
        lines += [f"**{scenario.status.value}:** {text(scenario.reason)}", ""]
    for number, failure in enumerate(scenario.failures, 1):
        lines += [*_failure(number, failure), ""]
    for step in scenario.steps:
        if step.status is Status.ERROR and step.reason:
            lines += [f"Step {step.index} ({text(step.title)}) broke: {text(step.reason)}", ""]
    lines += [f"Reproduce: {code(scenario.reproduce)}", ""]
    return lines


def render(run: RunResult, given: claims.Claims | None = None) -> str:
    """The whole report as Markdown; with a claims file, its claims judged right after the header."""
    lines = [*_header(run), ""]
    if given is not None:
        lines += [*_claims(run, given), ""]
    lines += _scenarios(run)
    broken = [s for s in run.scenarios if s.status in (Status.FAILED, Status.ERROR)]
    if broken:
        lines += ["", "## Failures", ""]
        for scenario in broken:
            lines += _scenario_failures(scenario)
    return "\n".join(lines).rstrip("\n") + "\n"


class MarkdownReporter:
    """Writes `path` on RunFinished and appends the same report to the job summary file, if any."""

    def __init__(self, path: Path, step_summary: str | os.PathLike[str] | Literal[_FromEnv.GITHUB_STEP_SUMMARY] | None
                 = FROM_ENV, claims: claims.Claims | None = None) -> None:
        self.path = Path(path)
        self.claims = claims
        if step_summary is FROM_ENV:
            step_summary = os.environ.get(FROM_ENV.value) or None
        self.step_summary = Path(step_summary) if step_summary else None

    def handle(self, event: Event) -> None:
        if isinstance(event, RunFinished):
            self.write(event.result)

    def write(self, run: RunResult) -> None:
        report = render(run, self.claims)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(report, encoding="utf-8")
        if self.step_summary is not None:
            with self.step_summary.open("a", encoding="utf-8") as summary:
                summary.write(self._fit(report))

    def _fit(self, report: str) -> str:
        data = report.encode("utf-8")
        if len(data) <= STEP_SUMMARY_LIMIT:
            return report
        note = f"\n\n*Truncated: the job summary limit is 1 MiB; the full report is {code(str(self.path))}.*\n"
        keep = STEP_SUMMARY_LIMIT - len(note.encode("utf-8"))
        return data[:keep].decode("utf-8", errors="ignore") + note
