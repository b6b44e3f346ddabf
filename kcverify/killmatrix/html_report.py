"""The kill matrix as HTML (`kcverify defects --report html` -> kill-matrix.html), in the style of `kcverify
run`'s report (kcverify/report/html.py: the same stylesheet, badges and escaping, no script): the verdict
first, then what a reader acts on (survivors, and defects whose scenarios broke), then the matrix itself."""

from __future__ import annotations

from pathlib import Path

from kcverify.killmatrix.console import catch_text
from kcverify.killmatrix.model import EXIT_MEANING, MutantsResult, Outcome, percent
from kcverify.report import common
from kcverify.report.html import e, page_head

# The outcome's word, on the colour of the run report's status of the same meaning.
BADGE = {Outcome.KILLED: ("passed", "KILLED"), Outcome.SURVIVED: ("failed", "SURVIVED"),
         Outcome.ERROR: ("error", "ERROR")}


def _badge(outcome: Outcome) -> str:
    css, word = BADGE[outcome]
    return f'<span class="badge {css}">{word}</span>'


def render_html(result: MutantsResult) -> str:
    """The whole report as one self-contained HTML document."""
    verdict = "passed" if result.exit_code == 0 else "failed"
    score = f"{len(result.killed)}/{len(result.mutants)} killed ({percent(result.score)})"
    parts = [
        *page_head(f"kcverify defects: {score}", verdict, verdict == "passed"),
        f"<p>{e(EXIT_MEANING[result.exit_code])} (exit code {result.exit_code}). Target <code>{e(result.target)}"
        f"</code>, seed {result.seed}, {e(common.plural(len(result.baseline.passed), 'scenario'))}, wall time "
        f"{e(common.duration(result.duration))}.</p></header>",
    ]
    if result.survivors:
        parts.append('<section id="survivors"><h2>Survivors: no scenario caught these</h2><ol>')
        parts += [f"<li>{_badge(m.outcome)} <code>{e(m.name)}</code> (<span class=\"rules\">{e(m.rule)}</span>): "
                  f"{e(m.description)}</li>" for m in result.survivors]
        parts.append("</ol></section>")
    broken = [(m, err) for m in result.mutants for err in m.errors]
    if broken:
        parts.append('<section id="broken"><h2>Scenarios that broke with a defect on</h2>'
                     "<p>Not counted as kills: the verdict is unknown.</p><ul>")
        parts += [f"<li><code>{e(m.name)}</code> / <code>{e(err.scenario)}</code>: {e(err.reason)}</li>"
                  for m, err in broken]
        parts.append("</ul></section>")
    parts.append('<section id="matrix"><h2>Kill matrix</h2><p class="muted">Scenarios in which each check failed '
                 "with the defect switched on (— none).</p><table><tr><th>defect</th><th>rule</th>")
    parts += [f"<th>{e(check)}</th>" for check in result.columns]
    parts.append("<th>first caught by</th></tr>")
    for mutant in sorted(result.mutants, key=lambda m: m.outcome is Outcome.KILLED):  # the uncaught first
        by_check = mutant.scenarios_by_check()
        cells = "".join(f'<td title="{e(", ".join(by_check[c]))}">{len(by_check[c])}</td>' if c in by_check
                        else '<td class="muted">—</td>' for c in result.columns)
        first = e(catch_text(mutant.first)) if mutant.first is not None else ""
        parts.append(f"<tr><td>{_badge(mutant.outcome)} <code>{e(mutant.name)}</code></td><td>{e(mutant.rule)}</td>"
                     f"{cells}<td>{first}</td></tr>")
    parts += ["</table></section>", "</body>", "</html>", ""]
    return "\n".join(parts)


def write_html(result: MutantsResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(result), encoding="utf-8")
