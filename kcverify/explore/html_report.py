"""An exploration as HTML (`kcverify explore --report html` -> explore.html), in the style of `kcverify run`'s
report (kcverify/report/html.py: the same stylesheet, badges and escaping, no script): the verdict first,
then the finding (its check, rules, message, the shrunk steps, the file written and the command that
replays it), then the search (schedules, rate, history digest) and what it covered."""

from __future__ import annotations

from pathlib import Path

from kcverify.explore.explorer import ExploreReport
from kcverify.explore.scenario_file import step_lines
from kcverify.report.html import e, page_head

EFFECTS = {"component": "crashed {}", "crash point": "fired {}", "fault": "failed {} call(s)"}


def render_html(report: ExploreReport) -> str:
    """The whole report as one self-contained HTML document."""
    found = report.finding
    verdict = "failed" if found is not None else "passed"
    what = f"defect {report.defect}" if report.defect else "the reference (no defect)"
    headline = f"a failing schedule: {found.check}" if found is not None else "no failure found within the budget"
    parts = [*page_head(f"kcverify explore: {headline}", verdict, found is None),
             f"<p>{e(what)}, seed {report.seed}, exit code {report.exit_code}.</p></header>"]
    if found is not None:
        replay = f"kcverify run {found.path}" + (f" --defect {report.defect}" if report.defect else "")
        parts += [
            '<section id="finding"><h2>The finding</h2>', '<div class="failure">',
            f'<p><span class="badge failed">FAIL</span> <strong>{e(found.check)}</strong> '
            f'<span class="rules">{e(", ".join(found.rules))}</span></p>',
            f"<pre>{e(found.message)}</pre>",
            f"<p>Found after {found.found_after} schedules ({found.found_seconds:.1f} s); shrunk from "
            f"{found.original_steps} to {len(found.steps)} steps in {found.shrink_runs} runs "
            f"({found.shrink_seconds:.1f} s):</p>",
            "<pre>" + e("\n".join(step_lines(found.steps))) + "</pre>",
            f"<p>Written: <code>{e(found.path)}</code>. Replayed with <code>{e(replay)}</code>: "
            + ("it fails with the same check" if found.reproduced else "<strong>it does not fail</strong>")
            + ("" if found.passes_without_defect is None else
               "; without the defect it passes" if found.passes_without_defect else
               "; <strong>without the defect it fails too</strong>") + ".</p>",
            "</div></section>",
        ]
    parts += [
        '<section id="search"><h2>The search</h2>',
        f"<p>{report.schedules} schedules in {report.seconds:.1f} s ({report.rate:.1f}/s, CPU "
        f"{report.cpu_rate:.1f}/s); history sha256 <code>{e(report.digest[:16])}</code> (the same seed, defect and "
        "budget in schedules give the same history).</p>",
    ]
    if report.errors:
        parts.append(f"<p>{report.errors} schedule(s) could not be run to the end.</p>")
    parts.append("<table><caption>coverage over the schedules searched</caption>"
                 "<tr><th>area</th><th>name</th><th>in steps</th><th>what happened</th></tr>")
    for area, name, count, happened in report.coverage.rows():
        if area == "check":
            cells = f"<td></td><td>judged {count}, failed {happened}</td>"
        else:
            effect = EFFECTS[area].format(happened) if happened is not None and area in EFFECTS else ""
            muted = ' class="muted"' if count == 0 else ""
            cells = f"<td{muted}>{count}</td><td>{e(effect)}</td>"
        parts.append(f"<tr><td>{e(area)}</td><td><code>{e(name)}</code></td>{cells}</tr>")
    parts += ["</table></section>", "</body>", "</html>", ""]
    return "\n".join(parts)


def write_html(report: ExploreReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
