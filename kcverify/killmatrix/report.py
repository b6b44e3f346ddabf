"""File reports of a kill-matrix run, written to the report directory: `kill-matrix.json` (for machines;
contract contracts/schemas/kill-matrix-report.schema.json) and `kill-matrix.md` (the kill matrix, the score
and the survivors; also appended to $GITHUB_STEP_SUMMARY so a pull request shows the score). The
names differ from `kcverify run`'s report.json / report.md so both can share one directory. `kill-matrix.html`
is the same for people (html_report.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kcverify.killmatrix.console import catch_text
from kcverify.killmatrix.html_report import write_html
from kcverify.killmatrix.model import EXIT_MEANING, MutantResult, MutantsResult, Outcome, percent
from kcverify.report import common
from kcverify.report.markdown import STEP_SUMMARY_LIMIT, code, table, text

REPORT_VERSION = 1
SCHEMA_NAME = "schemas/kill-matrix-report"  # for kcverify.contracts.validate

OUTCOME_EMOJI = {Outcome.KILLED: "✅", Outcome.SURVIVED: "❌", Outcome.ERROR: "💥"}


def _mutant(result: MutantsResult, mutant: MutantResult) -> dict[str, Any]:
    by_check = mutant.scenarios_by_check()
    first = mutant.first
    return {
        "name": mutant.name,
        "rule": mutant.rule,
        "description": mutant.description,
        "outcome": mutant.outcome.value,
        "killed": mutant.killed,
        "cites_rule": mutant.cites_rule,
        "first_caught_by": None if first is None else
        {"scenario": first.scenario, "check": first.check, "rules": list(first.rules)},
        "caught_by": [{"scenario": c.scenario, "check": c.check, "rules": list(c.rules)} for c in mutant.caught_by],
        "matrix": {check: list(by_check.get(check, ())) for check in result.columns},
        "errors": [{"scenario": e.scenario, "reason": e.reason} for e in mutant.errors],
        "scenarios_run": mutant.scenarios_run,
        "duration": mutant.duration,
        "reproduce": mutant.reproduce,
    }


def to_json(result: MutantsResult) -> dict[str, Any]:
    """The report document: the result plus what a consumer would otherwise recompute (outcomes,
    score, exit code, the matrix as check -> scenarios)."""
    return {
        "report_version": REPORT_VERSION,
        "tool": "kcverify",
        "kind": "mutants",
        "target": result.target,
        "seed": result.seed,
        "jobs": result.jobs,
        "started_at": result.started_at,
        "started_at_iso": datetime.fromtimestamp(result.started_at, tz=UTC).isoformat(),
        "duration": result.duration,
        "exit_code": result.exit_code,
        "score": {"killed": len(result.killed), "total": len(result.mutants), "ratio": result.score,
                  "percent": percent(result.score)},
        "baseline": {"duration": result.baseline.duration, "passed": list(result.baseline.passed),
                     "skipped": list(result.baseline.skipped)},
        "checks": list(result.columns),
        "survivors": [m.name for m in result.survivors],
        "mutants": [_mutant(result, m) for m in result.mutants],
    }


def render_markdown(result: MutantsResult) -> str:
    """The report as Markdown: score, matrix, survivors, broken scenarios. Run values are escaped."""
    verdict = "✅ every defect caught" if result.exit_code == 0 else f"❌ {EXIT_MEANING[result.exit_code]}"
    lines = [
        f"# kcverify defects: {percent(result.score)}",
        "",
        f"**Kill score {len(result.killed)}/{len(result.mutants)} ({percent(result.score)})** on target "
        f"{code(result.target)}, seed {result.seed}, over {common.plural(len(result.baseline.passed), 'scenario')}; "
        f"wall time {common.duration(result.duration)} ({common.plural(result.jobs, 'job')}).  ",
        f"{text(verdict)} (exit code {result.exit_code}).",
        "",
        "## Kill matrix",
        "",
        "Scenarios in which each check failed with the defect switched on (— none).",
        "",
    ]
    columns = ["Defect", "Rule", *(code(c, cell=True) for c in result.columns), "First caught by"]
    rows = []
    for mutant in result.mutants:
        by_check = mutant.scenarios_by_check()
        first = mutant.first
        if first is not None:
            caught = text(catch_text(first))
        elif mutant.outcome is Outcome.ERROR:
            caught = "💥 **error**: no scenario failed, some broke"
        else:
            caught = "❌ **survived**"
        rows.append([f"{OUTCOME_EMOJI[mutant.outcome]} {code(mutant.name, cell=True)}", mutant.rule,
                     *(str(len(by_check[c])) if c in by_check else "—" for c in result.columns), caught])
    lines += table(columns, rows)
    if result.survivors:
        lines += ["", "## Survivors", ""]
        lines += [f"- {code(m.name)} (**{m.rule}**): {text(m.description)}" for m in result.survivors]
    broken = [(m, e) for m in result.mutants for e in m.errors]
    if broken:
        lines += ["", "## Scenarios that broke with a defect on", "", "Not counted as kills: the verdict is unknown.",
                  ""]
        lines += [f"- {code(m.name)} / {code(e.scenario)}: {text(e.reason)}" for m, e in broken]
    if result.baseline.skipped:
        lines += ["", f"Left out (skipped on this target without defects): "
                      f"{', '.join(code(s) for s in result.baseline.skipped)}."]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_json(result: MutantsResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(result), indent=2, ensure_ascii=False, allow_nan=False) + "\n",
                    encoding="utf-8")


def write_markdown(result: MutantsResult, path: Path, step_summary: str | os.PathLike[str] | None = None) -> None:
    """Writes `path`; with `step_summary` (the CLI passes $GITHUB_STEP_SUMMARY) also appends to it,
    cut below GitHub's 1 MiB limit."""
    report = render_markdown(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report, encoding="utf-8")
    if step_summary:
        data = report.encode("utf-8")
        if len(data) > STEP_SUMMARY_LIMIT:
            note = f"\n\n*Truncated: the job summary limit is 1 MiB; the full report is {code(str(path))}.*\n"
            report = data[:STEP_SUMMARY_LIMIT - len(note.encode())].decode("utf-8", errors="ignore") + note
        with Path(step_summary).open("a", encoding="utf-8") as summary:
            summary.write(report)


Writer = Callable[[MutantsResult, Path], None]
REPORTS: dict[str, tuple[str, Writer]] = {
    "json": ("kill-matrix.json", write_json),
    "markdown": ("kill-matrix.md", lambda r, p: write_markdown(r, p, os.environ.get("GITHUB_STEP_SUMMARY") or None)),
    "html": ("kill-matrix.html", write_html),
}


def check_names(names: Iterable[str]) -> list[str]:
    """The wanted reports, once each; ValueError naming the allowed ones, before anything runs."""
    wanted = list(dict.fromkeys(n for n in names if n))
    unknown = [n for n in wanted if n not in REPORTS]
    if unknown:
        raise ValueError(f"unknown report {', '.join(map(repr, unknown))}; choose from: {', '.join(sorted(REPORTS))}")
    return wanted


def write_reports(result: MutantsResult, names: Iterable[str], report_dir: Path) -> list[Path]:
    """Each wanted report in `report_dir`; returns the paths written."""
    written = []
    for name in check_names(names):
        file_name, writer = REPORTS[name]
        path = Path(report_dir) / file_name
        writer(result, path)
        written.append(path)
    return written
