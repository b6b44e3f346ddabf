"""A chaos run as one self-contained HTML page (`report.html` beside the history), in the style of the run
report (kcverify/report/html.py: the same stylesheet, badges and escaping, no script): the verdict and
the anomalies with their ids first, then the counts, then a timeline drawn as inline SVG: the fault
intervals, one lane per kind, above the throughput (the clients' operations completed per second, and the
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
from kcverify.report.html import e, page_head

REPORT = "report.html"
SHOWN_PER_CLASS = 200
WIDTH, LEFT, RIGHT = 960, 64, 16
LANE, CHART = 16, 120
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
    origin = _origin(history)
    done, stale, recorded = series(history, final)
    ends = [max(done, default=0), max(stale, default=0), max(recorded, default=0)]
    ends += [int(float(f.get("end", origin)) - origin) for f in verdict.faults]
    span = max(1, *ends) + 1
    kinds = sorted({str(f.get("kind")) for f in verdict.faults})
    plot = WIDTH - LEFT - RIGHT

    def x(seconds: float) -> float:
        return LEFT + plot * max(0.0, seconds) / span

    lanes_h = LANE * max(1, len(kinds))
    top_tp = lanes_h + 24
    top_st = top_tp + CHART + 28
    height = top_st + CHART + 28
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">',
           "<title>faults, throughput and staleness over time</title>"]
    for lane, kind in enumerate(kinds):
        y = lane * LANE
        svg.append(f'<text x="{LEFT - 4}" y="{y + 11}" text-anchor="end">{e(kind)}</text>')
        colour = FAULT_COLOURS.get(kind, "#57606a")
        for f in (f for f in verdict.faults if f.get("kind") == kind):
            start, end = float(f.get("start", origin)) - origin, float(f.get("end", origin)) - origin
            width = max(1.5, x(end) - x(start))
            svg.append(f'<rect class="fault" x="{x(start):.1f}" y="{y + 2}" width="{width:.1f}" height="{LANE - 4}" '
                       f'fill="{colour}" fill-opacity="0.75"><title>{e(kind)} {e(f.get("target"))}: '
                       f"{start:.1f}-{end:.1f} s</title></rect>")
    svg += _chart("per second: operations completed (green), purchases recorded (blue)",
                  {"#1a7f37": done, "#0969da": recorded}, top_tp, span, x, bound=None)
    svg += _chart("staleness (s)", {"#cf222e": stale}, top_st, span, x,
                  bound=float(verdict.staleness.get("bound") or 0) or None)
    step = _tick(span)
    for second in range(0, span + 1, step):
        svg.append(f'<text x="{x(second):.1f}" y="{height - 4}" text-anchor="middle">{second} s</text>')
    svg.append("</svg>")
    return ['<section id="timeline"><h2>Timeline</h2><p class="muted">Fault intervals (one lane per kind) against '
            "the clients' operations completed per second (reads aside), the purchases the system recorded per "
            "second (the worker group's drain, from the final rows), and the longest staleness window of the "
            "payments confirmed in each second (dashed: the freshness bound). Seconds since the run began.</p>",
            *svg, "</section>"]


def _chart(label: str, lines: Mapping[str, Mapping[int, float]], top: int, span: int, x: Any, *,
           bound: float | None) -> list[str]:
    """Lines of per-second values (colour -> values) in a box of CHART pixels at `top`, with its label and
    scale; a second without a value is 0."""
    peak = max([v for values in lines.values() for v in values.values()] + [bound or 0.0, 1e-9])
    bottom = top + CHART

    def y(value: float) -> float:
        return bottom - CHART * value / peak

    out = [f'<rect x="{x(0):.1f}" y="{top}" width="{x(span) - x(0):.1f}" height="{CHART}" fill="none" '
           f'stroke="#d0d7de"/>',
           f'<text x="{x(0):.1f}" y="{top - 6}">{e(label)}</text>',
           f'<text x="{x(0) - 4:.1f}" y="{top + 10}" text-anchor="end">{peak:.3g}</text>',
           f'<text x="{x(0) - 4:.1f}" y="{bottom}" text-anchor="end">0</text>']
    for colour, values in lines.items():
        points = " ".join(f"{x(s + 0.5):.1f},{y(values.get(s, 0)):.1f}" for s in range(span))
        out.append(f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>')
    if bound:
        out.append(f'<line class="bound" x1="{x(0):.1f}" x2="{x(span):.1f}" y1="{y(bound):.1f}" y2="{y(bound):.1f}" '
                   'stroke="#57606a" stroke-dasharray="4 3"/>')
    return out


def _tick(span: int) -> int:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if span / step <= 12:
            return step
    return 1200
