"""A chaos run as one self-contained HTML page (`report.html` beside the history), in the style of the run
report (kcverify/report/html.py: the same stylesheet, badges and escaping, no script): the verdict and
the anomalies with their ids first, then the counts, then a timeline drawn by matplotlib as inline SVG
(kcverify/report/plots.py; the `plots` extra, without which the page says so): the fault intervals
shaded, one colour per kind, over the throughput (the clients' operations completed per second, and the
purchases the system recorded per second, from the final rows' creation times: the worker group's drain)
and the staleness windows (the longest window of the payments confirmed in each second, against the
freshness bound), all on one time axis, so a dip in throughput or a staleness peak is read against the
fault that caused it."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from kcverify.chaos.checker import CLASSES, Verdict, windows
from kcverify.core.extras import MissingExtra
from kcverify.report.html import e, page_head
from kcverify.report.plots import Band, Chart, Series, svg

REPORT = "report.html"
SHOWN_PER_CLASS = 200
FAULT_COLOURS = {"worker-kill": "#cf222e", "relay-kill": "#bc4c00", "broker-restart": "#8250df",
                 "postgres-restart": "#0969da", "redis-outage": "#9a6700", "pause": "#57606a"}


def render(verdict: Verdict, history: Sequence[Mapping[str, Any]], run: Mapping[str, Any] | None = None,
           final: Mapping[str, Any] | None = None) -> str:
    """The whole page. `history` is the run's lines (history.jsonl), `run` its `end` line, `final` the final
    observed state (final.json: the purchases' creation times)."""
    anomalies = sum(len(v) for v in verdict.anomalies.values())
    title = "kcverify chaos: " + ("clean, no anomaly" if verdict.ok else f"{anomalies} anomalies")
    c = verdict.counts
    outcomes: Mapping[str, int] = c.get("outcomes") or {}
    unknown = sum(n for k, n in outcomes.items() if k.endswith(":unknown"))
    options = next((line.get("options") or {} for line in history if line.get("type") == "run"), {})
    parts = [*page_head(title, "passed" if verdict.ok else "failed", verdict.ok),
             f"<p>{e(options.get('purchases', '?'))} purchases at {e(options.get('rate', '?'))}/s, faults "
             f"<code>{e(', '.join(options.get('faults') or []) or 'none')}</code>, seed {e(options.get('seed', '?'))}."
             + (f" Load {e(run.get('loadSeconds'))} s, recovery {e(run.get('recoverySeconds'))} s, settled: "
                f"{'yes' if run.get('settled') else 'no (' + e('; '.join(map(str, run.get('pending') or []))) + ')'}."
                if run else "")
             + "</p></header>"]
    parts += _anomalies(verdict)
    parts += ['<section id="counts"><h2>Counts</h2><table>',
              *(f"<tr><th>{e(k)}</th><td>{e(c.get(k, 0))}</td></tr>"
                for k in ("operations", "payments", "succeeded", "purchases", "deadLetters", "faults")),
              f"<tr><th>unknown outcomes</th><td>{unknown} (judged by the final state)</td></tr>", "</table>"]
    s = verdict.staleness
    if s.get("measured"):
        parts.append(f"<p>Staleness (informative): {e(s['measured'])} windows, max {e(s['maxSeconds'])} s, p99 "
                     f"{e(s['p99Seconds'])} s, {e(s['beyondBound'])} beyond the {e(s['bound'])} s bound.</p>")
    parts.append("</section>")
    parts += _timeline(verdict, history, final)
    parts += _faults(verdict, _origin(history))
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def write(path: Path, verdict: Verdict, history: Sequence[Mapping[str, Any]],
          run: Mapping[str, Any] | None = None, final: Mapping[str, Any] | None = None) -> None:
    path.write_text(render(verdict, history, run, final), encoding="utf-8")


def _anomalies(verdict: Verdict) -> list[str]:
    parts = ['<section id="anomalies"><h2>Anomalies</h2><table><tr><th>class</th><th>count</th><th>meaning</th></tr>']
    for cls, meaning in CLASSES.items():
        found = verdict.anomalies[cls]
        css = ' class="bad"' if found else ""
        parts.append(f'<tr><td><a href="#{cls}">{e(cls)}</a></td><td{css}>{len(found)}</td><td>{e(meaning)}</td></tr>'
                     if found else f"<tr><td>{e(cls)}</td><td>0</td><td>{e(meaning)}</td></tr>")
    parts.append("</table>")
    for cls, found in verdict.anomalies.items():
        if not found:
            continue
        parts.append(f'<h3 id="{e(cls)}">{e(cls)}: {len(found)}</h3><ul>')
        parts += [f"<li><code>{e(a['id'])}</code>: {e(a['detail'])}</li>" for a in found[:SHOWN_PER_CLASS]]
        if len(found) > SHOWN_PER_CLASS:
            parts.append(f'<li class="muted">and {len(found) - SHOWN_PER_CLASS} more (verdict.json has all)</li>')
        parts.append("</ul>")
    parts.append("</section>")
    return parts


def _faults(verdict: Verdict, origin: float) -> list[str]:
    if not verdict.faults:
        return []
    parts = ['<section id="faults"><h2>Faults</h2><table><tr><th>kind</th><th>target</th><th>start (s)</th>'
             "<th>lasted (s)</th><th>applied</th><th>detail</th></tr>"]
    for f in sorted(verdict.faults, key=lambda f: float(f.get("start", 0))):
        start, end = float(f.get("start", 0)), float(f.get("end", 0))
        applied = "<td>yes</td>" if f.get("ok") else '<td class="bad">no</td>'
        parts.append(f"<tr><td>{e(f.get('kind'))}</td><td>{e(f.get('target'))}</td><td>{start - origin:.1f}</td>"
                     f"<td>{end - start:.1f}</td>{applied}"
                     f"<td>{e(f.get('detail') or '')}</td></tr>")
    parts.append("</table></section>")
    return parts


def _origin(history: Sequence[Mapping[str, Any]]) -> float:
    run = next((line for line in history if line.get("type") == "run" and "at" in line), None)
    if run is not None:
        return float(run["at"])
    times = [float(line["invoke"]) for line in history if line.get("type") == "op" and "invoke" in line]
    return min(times) if times else 0.0


def _seconds(value: Any) -> float | None:
    """A row's time: epoch seconds, or RFC 3339 text."""
    if isinstance(value, int | float):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def series(history: Sequence[Mapping[str, Any]], final: Mapping[str, Any] | None = None,
           ) -> tuple[dict[int, int], dict[int, float], dict[int, int]]:
    """Per whole second since the run began: operations completed (reads aside), the longest staleness
    window of the payments confirmed in that second, and the purchases recorded (final rows' createdAt)."""
    origin = _origin(history)
    ops = [line for line in history if line.get("type") == "op"]
    done: Counter[int] = Counter(int(float(op["complete"]) - origin) for op in ops
                                 if op.get("f") != "read" and op.get("outcome") == "ok" and "complete" in op)
    stale: dict[int, float] = defaultdict(float)
    for seconds, _, at in windows(ops):
        second = int(at - origin)
        stale[second] = max(stale[second], seconds)
    recorded: Counter[int] = Counter()
    for row in (final or {}).get("purchases") or []:
        created = _seconds(row.get("createdAt"))
        if created is not None and created >= origin:
            recorded[int(created - origin)] += 1
    return dict(done), dict(stale), dict(recorded)


def _timeline(verdict: Verdict, history: Sequence[Mapping[str, Any]], final: Mapping[str, Any] | None) -> list[str]:
    """Two charts on one time axis (kcverify/report/plots.py), each with the fault intervals shaded: the
    throughput (operations completed, purchases recorded) and the staleness windows against the bound."""
    origin = _origin(history)
    done, stale, recorded = series(history, final)
    ends = [max(done, default=0), max(stale, default=0), max(recorded, default=0)]
    ends += [int(float(f.get("end", origin)) - origin) for f in verdict.faults]
    span = max(1, *ends) + 1
    bands = [Band(float(f.get("start", origin)) - origin, float(f.get("end", origin)) - origin,
                  str(f.get("kind")), FAULT_COLOURS.get(str(f.get("kind")), "#57606a"))
             for f in sorted(verdict.faults, key=lambda f: str(f.get("kind")))]
    seconds = list(range(span))
    throughput = Chart("Throughput per second, faults shaded", "seconds since the run began", "per second",
                       series=[Series("operations completed", seconds, [done.get(t, 0) for t in seconds],
                                      color="#1a7f37"),
                               Series("purchases recorded", seconds, [recorded.get(t, 0) for t in seconds],
                                      color="#0969da")], bands=bands)
    bound = float(verdict.staleness.get("bound") or 0)
    staleness = [Series("longest staleness window", seconds, [stale.get(t, 0.0) for t in seconds], color="#cf222e")]
    if bound:
        staleness.append(Series("freshness bound", [0, span - 1], [bound, bound], dashed=True, color="#57606a",
                                markers=False))
    windows_chart = Chart("Staleness of the payments confirmed each second, faults shaded",
                          "seconds since the run began", "seconds", series=staleness, bands=bands)
    intro = ('<section id="timeline"><h2>Timeline</h2><p class="muted">The fault intervals, shaded, against the '
             "clients' operations completed per second (reads aside), the purchases the system recorded per second "
             "(the worker group's drain, from the final rows), and the longest staleness window of the payments "
             "confirmed in each second (dashed: the freshness bound). Seconds since the run began.</p>")
    try:
        charts = [svg(throughput), svg(windows_chart)]
    except MissingExtra as exc:  # the report is always written: without matplotlib it says what is missing
        charts = [f"<p>No charts: {e(exc)} ({e(exc.hint)}).</p>"]
    return [intro, *charts, "</section>"]
