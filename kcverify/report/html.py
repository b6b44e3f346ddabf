"""The HTML reporter: one self-contained report.html to attach to a CI run or mail to someone.

No JavaScript and no external assets: the file must open the same offline, from an artifact store,
years later. Collapsing uses <details>; styling is one inline <style>. Everything that comes from a
run is escaped with html.escape, and a Content-Security-Policy forbidding scripts backs that up: a
failure message quoting a hostile response body stays text.

The page opens with what a reader acts on: the verdict, then every failure (each linking to its
scenario's card), then the rest; the cards of failed and broken scenarios come before those that passed.
Status marks are CSS badges with a word (PASS, FAIL, ...), never emoji: they look the same in every
browser and font, print in black and white, and read aloud."""

from __future__ import annotations

import html

from kcverify.core.status import Status
from kcverify.evidence.results import Failure, RunResult, ScenarioResult, Table
from kcverify.report import claims, common

CSS = """
:root { --pass: #1a7f37; --fail: #cf222e; --skip: #9a6700; --error: #8250df; --muted: #57606a;
        --line: #d0d7de; --bad: #ffebe9; }
body { font: 14px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1f2328; }
h1 { margin: 0 0 .25rem; } h2 { margin-top: 2rem; border-bottom: 1px solid var(--line); }
header { border-left: .5rem solid var(--muted); padding: .5rem 1rem; background: #f6f8fa; }
header.passed { border-color: var(--pass); } header.failed { border-color: var(--fail); }
header.skipped { border-color: var(--skip); } header.error { border-color: var(--error); }
table { border-collapse: collapse; margin: .5rem 0; } th, td { border: 1px solid var(--line);
  padding: .25rem .5rem; text-align: left; vertical-align: top; } th { background: #f6f8fa; }
.passed .status, td.passed, tr.held td:first-child { color: var(--pass); }
.failed .status, td.failed, tr.refuted td:first-child { color: var(--fail); }
.skipped .status, td.skipped, tr.not-exercised td:first-child { color: var(--skip); }
.error .status, td.error { color: var(--error); }
td.bad { background: var(--bad); color: var(--fail); font-weight: bold; }
.muted { color: var(--muted); } code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
pre { background: #f6f8fa; padding: .5rem; white-space: pre-wrap; overflow-wrap: anywhere; margin: .25rem 0; }
article { border: 1px solid var(--line); border-radius: 6px; padding: .5rem 1rem; margin: 1rem 0; }
article h3 { margin: .25rem 0; } summary { cursor: pointer; font-weight: 600; margin: .25rem 0; }
.failure { border-left: 3px solid var(--fail); padding-left: .75rem; margin: .75rem 0; }
.rules { font-weight: bold; }
.badge { display: inline-block; min-width: 3.2em; padding: 0 .45em; border-radius: 1em; font-size: .8em;
         font-weight: 700; line-height: 1.6; letter-spacing: .04em; text-align: center; color: #fff;
         background: var(--muted); vertical-align: .1em; }
.badge.passed, .badge.held { background: var(--pass); } .badge.failed, .badge.refuted { background: var(--fail); }
.badge.skipped, .badge.not-exercised { background: var(--skip); } .badge.error { background: var(--error); }
h1 .badge { font-size: .6em; vertical-align: .3em; }
#failures ol { padding-left: 1.5rem; } #failures li { margin: .5rem 0; }
#failures ul { margin: .25rem 0; padding-left: 1.25rem; }
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def page_head(title: str, verdict: str, passed: bool) -> list[str]:
    """The start of a page in this style, up to its header's headline: the document head (inline style, the
    script-forbidding policy) and an <h1> with the verdict badge. For the reports of `kcverify defects` and
    `kcverify explore`, which add their own lines and close the header."""
    badge = f'<span class="badge {"passed" if passed else "failed"}">{"PASS" if passed else "FAIL"}</span>'
    return ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{e(CSP)}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{e(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
            f'<header class="{verdict}"><h1>{e(title)} {badge}</h1>']


def e(value: object) -> str:
    """Escape for text and attribute values alike; control characters shown, not embedded."""
    return html.escape(common.visible(str(value)), quote=True)


def badge(status: Status) -> str:
    """A status mark: the word on the status's colour (CSS only, no emoji, no image)."""
    return f'<span class="badge {status.value}">{e(common.STATUS_WORD[status])}</span>'


def _verdict_badge(verdict: claims.Verdict) -> str:
    css = verdict.value.replace(" ", "-")
    return f'<span class="badge {css}">{e(verdict.value.upper())}</span>'


def _status_cell(status: Status) -> str:
    return f'<td class="{status.value}">{badge(status)}</td>'


def evidence(table: Table) -> str:
    """An evidence Table; highlighted cells get class "bad" (red) and a title saying why."""
    width = max([len(table.columns), *(len(row) for row in table.rows)])
    parts = ['<table class="evidence">']
    if table.title:
        parts.append(f"<caption>{e(table.title)}</caption>")
    head = "".join(f"<th>{e(table.columns[c]) if c < len(table.columns) else ''}</th>" for c in range(width))
    parts.append(f"<thead><tr>{head}</tr></thead><tbody>")
    for r, row in enumerate(table.rows):
        cells = []
        for c in range(width):
            value = e(common.cell(table, row, c))
            if common.is_highlighted(table, r, c):
                cells.append(f'<td class="bad" title="the value went wrong here">{value}</td>')
            else:
                cells.append(f"<td>{value}</td>")
        parts.append(f"<tr>{''.join(cells)}</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def judgement_evidence(judgement: claims.Judgement) -> str:
    """The evidence cell of a claim, with scenario and check names as code."""
    return claims.describe(judgement, name=lambda n: f"<code>{e(n)}</code>", text=e)


def _header(run: RunResult) -> str:
    lines = [
        f'<header class="{run.status.value}">',
        f"<h1>kcverify: {badge(run.status)} {e(run.status.value.upper())}</h1>",
        f"<p><strong>{e(common.summary_line(run))}</strong> on target <code>{e(run.target)}</code>, "
        f"seed {e(run.seed)}.</p>",
        f"<p>{e(common.exit_line(run))}.</p>",
    ]
    windows = common.freshness_windows(run)
    if windows is not None:
        lines.append(f"<p>{e(common.freshness_line(windows))}.</p>")
    lines.append("</header>")
    return "\n".join(lines)


def _claims(run: RunResult, given: claims.Claims) -> str:
    judgements = claims.judge(run, given)
    parts = ['<section id="claims">', f"<h2>{e(claims.HEADING)}</h2>"]
    if given.title:
        parts.append(f"<p><em>{e(given.title)}</em> (<code>{e(given.path)}</code>)</p>")
    parts += [
        f"<p>{e(claims.EXPLANATION)}</p>",
        f"<p><strong>{e(claims.tally(judgements))}</strong></p>",
        "<table><thead><tr><th>Verdict</th><th>Claim</th><th>Statement</th><th>Rules</th><th>Evidence</th>"
        "</tr></thead><tbody>",
    ]
    for j in judgements:
        css = j.verdict.value.replace(" ", "-")
        parts.append(
            f'<tr class="{css}"><td>{_verdict_badge(j.verdict)}</td>'
            f"<td><code>{e(j.claim.id)}</code></td><td>{e(j.claim.text)}</td>"
            f"<td>{e(', '.join(j.claim.rules))}</td><td>{judgement_evidence(j)}</td></tr>"
        )
    parts += ["</tbody></table>", "</section>"]
    return "\n".join(parts)


def _failure(number: int, failure: Failure) -> str:
    label, name = common.judged_by(failure)
    judge = f"check <code>{e(name)}</code>" if label == "check" else e(name)
    parts = [
        '<div class="failure">',
        f"<p>{number}. <strong>{e(common.where(failure))}</strong> · {judge} · "
        f'rules <span class="rules">{e(common.rules_text(failure.rules))}</span></p>',
        f"<pre>{e(failure.message)}</pre>",
    ]
    if failure.evidence is not None:
        parts.append(evidence(failure.evidence))
    parts.append("</div>")
    return "\n".join(parts)


def _scenario(index: int, scenario: ScenarioResult) -> str:
    broken = scenario.status in (Status.FAILED, Status.ERROR)
    facts = [
        e(scenario.title) if scenario.title else "",
        f"<code>{e(common.display_path(scenario.path))}</code>" if scenario.path else "",
        f"covers {e(common.rules_text(scenario.covers))}",
        e(common.duration(scenario.duration)),
        f"seed {e(scenario.seed)}",
    ]
    parts = [
        f'<article id="scenario-{index}" class="{scenario.status.value}">',
        f'<h3><span class="status">{badge(scenario.status)}</span> {e(scenario.name)}</h3>',
        f'<p class="muted">{" · ".join(f for f in facts if f)}</p>',
    ]
    if scenario.reason:
        parts.append(f"<p><strong>{e(scenario.status.value)}:</strong> {e(scenario.reason)}</p>")
    failures = scenario.failures
    if failures or broken:
        parts.append(f"<details{' open' if broken else ''}><summary>Failures ({len(failures)})</summary>")
        parts.extend(_failure(n, f) for n, f in enumerate(failures, 1))
        parts.extend(
            f"<p>Step {s.index} ({e(s.title)}) broke: {e(s.reason)}</p>"
            for s in scenario.steps if s.status is Status.ERROR and s.reason
        )
        parts.append(f"<p>reproduce: <code>{e(scenario.reproduce)}</code></p></details>")
    if scenario.steps:
        parts.append(f"<details><summary>Steps ({len(scenario.steps)})</summary><table><thead><tr><th>#</th>"
                     "<th>Status</th><th>Step</th><th>Kind</th><th>Line</th><th>Duration</th><th>Note</th>"
                     "</tr></thead><tbody>")
        for step in scenario.steps:
            note = step.reason or (common.plural(len(step.failures), "failure") if step.failures else "")
            parts.append(
                f"<tr><td>{step.index}</td>{_status_cell(step.status)}<td>{e(step.title)}</td>"
                f"<td><code>{e(step.kind)}</code></td><td>{e(step.line) if step.line is not None else ''}</td>"
                f"<td>{e(common.duration(step.duration))}</td><td>{e(note)}</td></tr>"
            )
        parts.append("</tbody></table></details>")
    if scenario.checks:
        parts.append(f"<details><summary>Checks ({len(scenario.checks)})</summary><table><thead><tr>"
                     "<th>Status</th><th>Check</th><th>Rules</th><th>Summary</th></tr></thead><tbody>")
        for check in scenario.checks:
            parts.append(
                f"<tr>{_status_cell(check.status)}<td><code>{e(check.name)}</code></td>"
                f"<td>{e(common.rules_text(check.rules))}</td><td>{e(check.summary)}</td></tr>"
            )
        parts.append("</tbody></table></details>")
    parts.append("</article>")
    return "\n".join(parts)


BROKEN = (Status.FAILED, Status.ERROR)


def _failures(run: RunResult) -> str:
    """Every failed or broken scenario, its failures' headlines, each linking to the scenario's card:
    what the reader came for, right under the verdict. Nothing when all passed."""
    broken = [(i, s) for i, s in enumerate(run.scenarios, 1) if s.status in BROKEN]
    if not broken:
        return ""
    parts = ['<section id="failures">', f"<h2>Failures ({len(broken)})</h2>", "<ol>"]
    for i, scenario in broken:
        link = f'<a href="#scenario-{i}">{e(scenario.name)}</a>'
        parts.append(f'<li class="{scenario.status.value}">{badge(scenario.status)} {link}')
        lines = [common.headline(f) for f in scenario.failures] or [scenario.reason or scenario.status.value]
        parts.append("<ul>" + "".join(f'<li><a href="#scenario-{i}">{e(line)}</a></li>' for line in lines) + "</ul>")
        parts.append(f"<p>reproduce: <code>{e(scenario.reproduce)}</code></p></li>")
    parts += ["</ol>", "</section>"]
    return "\n".join(parts)


def _scenarios(run: RunResult) -> str:
    rows = "".join(
        f'<tr>{_status_cell(s.status)}<td><a href="#scenario-{i}">{e(s.name)}</a></td>'
        f"<td>{e(common.rules_text(s.covers))}</td><td>{len(s.steps)}</td><td>{e(common.duration(s.duration))}</td></tr>"
        for i, s in enumerate(run.scenarios, 1)
    )
    overview = ("<table><thead><tr><th>Status</th><th>Scenario</th><th>Rules</th><th>Steps</th><th>Duration</th>"
                f"</tr></thead><tbody>{rows}</tbody></table>")
    # Failed and broken scenarios' cards first (in run order), then the others (in run order).
    numbered = list(enumerate(run.scenarios, 1))
    ordered = [n for n in numbered if n[1].status in BROKEN] + [n for n in numbered if n[1].status not in BROKEN]
    articles = "\n".join(_scenario(i, s) for i, s in ordered)
    return f'<section id="scenarios">\n<h2>Scenarios</h2>\n{overview}\n{articles}\n</section>'


def render(run: RunResult, given: claims.Claims | None = None) -> str:
    """The whole report as one HTML document; with a claims file, its claims judged after the header."""
    title = f"kcverify: {run.status.value} ({common.summary_line(run)})"
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{e(CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        _header(run),
        _failures(run),
        _claims(run, given) if given is not None else "",
        _scenarios(run),
        "</body>",
        "</html>",
        "",
    ])


class HtmlReporter(common.FileReporter):
    """Writes `path` on RunFinished."""

    def text(self, run: RunResult) -> str:
        return render(run, self.claims)
