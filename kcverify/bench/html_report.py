"""A bench as HTML (`kcverify bench --report html` -> bench.html), in the style of `kcverify run`'s report
(kcverify/report/html.py: the same stylesheet and escaping, no script): the verdict (no purchase lost or
duplicated) and the headline numbers first, then two charts drawn by matplotlib as inline SVG
(kcverify/report/plots.py) and the tables of the JSON document.

- Latency percentiles against offered rate, one chart each for `confirm_to_visible` and `end_to_end`:
  p50, p90 and p99 per rate step, the reference in solid lines, the bare pipeline dashed: where the
  lines bend up is where a system stops keeping up.
- Latency over time: one point per purchase, its `end_to_end` latency at its intended start (seconds
  into the system's run): queueing shows as a rising ramp, a stall as a gap then a wall of points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kcverify.bench.results import HOP_MEANING, Run
from kcverify.report.html import e, page_head
from kcverify.report.plots import Chart, Series, svg

CHARTED_HOPS = ("confirm_to_visible", "end_to_end")
PERCENTILE_COLORS = {"p50": "#1f77b4", "p90": "#ff7f0e", "p99": "#d62728"}


def render_html(doc: dict[str, Any], reference: Run, bare: Run | None = None) -> str:
    """The whole report as one self-contained HTML document."""
    passed = bool(doc["integrity"]["ok"]) and (bare is None or bool(doc["bare"]["integrity"]["ok"]))
    title = f"kcverify bench: target {doc['target']}"
    options = ", ".join(f"{k} {v}" for k, v in doc["options"].items())
    parts = [*page_head(title, "passed" if passed else "failed", passed),
             f"<p>Started {e(doc['startedAt'])}; {e(options)}.</p></header>",
             '<section id="summary"><h2>Summary</h2><ul>']
    for name, part in (("reference", doc), ("bare pipeline", doc.get("bare"))):
        if part is not None:
            parts.append(f"<li>{e(name)}: {e(_integrity_line(part['integrity']))}; {e(_headline(part))}</li>")
    if "comparison" in doc:
        cmp = doc["comparison"]
        ratios = ", ".join(f"{hop} {_x(r)}" for hop, r in cmp["p99Ratio"].items())
        parts.append(f"<li>reference / bare pipeline: p99 {e(ratios)}; maximum throughput "
                     f"{e(_x(cmp['maxThroughputRatio']))}</li>")
    parts += ["</ul></section>", '<section id="charts"><h2>Charts</h2>',
              *(svg(percentile_chart(doc, hop)) for hop in CHARTED_HOPS), svg(timeline_chart(reference, bare)),
              "</section>"]
    for name, part in (("reference", doc), ("bare pipeline", doc.get("bare"))):
        if part is not None:
            parts += _tables(name, part)
    parts += ['<section id="hops"><h2>Hops</h2><ul>']
    parts += [f"<li><code>{e(hop)}</code>: {e(meaning)}</li>" for hop, meaning in HOP_MEANING.items()]
    parts += ["</ul></section>", "</body>", "</html>", ""]
    return "\n".join(parts)


def write_html(doc: dict[str, Any], reference: Run, bare: Run | None, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(doc, reference, bare), encoding="utf-8")


def percentile_chart(doc: dict[str, Any], hop: str) -> Chart:
    """p50/p90/p99 of one hop against the offered rate: a colour per percentile, the reference solid and
    the bare pipeline dashed."""
    series: list[Series] = []
    for name, part, dashed in (("reference", doc, False), ("bare", doc.get("bare"), True)):
        if part is None:
            continue
        for pct, color in PERCENTILE_COLORS.items():
            points = [(s["offeredRate"], s["latencyMs"][hop][pct]) for s in part["steps"]
                      if s["latencyMs"][hop][pct] is not None]
            if points:
                series.append(Series(f"{name} {pct}", [x for x, _ in points], [y for _, y in points],
                                     dashed=dashed, color=color))
    return Chart(f"{hop} percentiles against offered rate", "offered rate (purchases/s)", "latency (ms, log)",
                 series=series, log_y=True)


def timeline_chart(reference: Run, bare: Run | None) -> Chart:
    """Each purchase's end_to_end latency at its intended start, seconds into its system's run."""
    series = [s for s in (_timeline("reference", reference), _timeline("bare pipeline", bare)) if s is not None]
    return Chart("Latency over time (end_to_end, one point per purchase)", "seconds into the run",
                 "end_to_end (ms, log)", series=series, log_y=True)


def _timeline(name: str, run: Run | None) -> Series | None:
    if run is None:
        return None
    purchases = [p for s in run.steps for p in s.purchases if p.visible_at is not None]
    if not purchases:
        return None
    start = min(s.started for s in run.steps)
    return Series(name, [p.intended - start for p in purchases],
                  [max(0.001, (p.visible_at or p.intended) - p.intended) * 1000 for p in purchases], points=True)


def _integrity_line(tally: dict[str, Any]) -> str:
    verdict = "none lost, none duplicated" if tally["ok"] else "INTEGRITY FAILED"
    return (f"{tally['confirmed']} confirmed, {tally['purchases']} purchases, {tally['lost']} lost, "
            f"{tally['duplicated']} duplicated, {tally['shownTwice']} shown twice: {verdict}")


def _headline(part: dict[str, Any]) -> str:
    total = part["total"]["latencyMs"]["confirm_to_visible"]
    most = part.get("maxThroughput")
    tail = "" if not most else f"; maximum {most['perSecond']:g} purchases/s (closed loop)"
    ramp = part.get("ramp")
    if ramp:
        rate = ramp["sustainableRate"]
        tail += f"; ramp: sustainable {'-' if rate is None else f'{rate:g}/s'}" + (
            f" (stopped: {ramp['stoppedBecause']})" if ramp["stoppedBecause"] else "")
    return f"confirm_to_visible p50 {_ms(total['p50'])} ms, p99 {_ms(total['p99'])} ms{tail}"


def _tables(name: str, part: dict[str, Any]) -> list[str]:
    out = [f'<section id="{e(name.replace(" ", "-"))}"><h2>{e(name.capitalize())}</h2>']
    warm = part.get("warmup")
    if warm:
        p99 = warm["latencyMs"]["confirm_to_visible"]["p99"]
        out.append(f"<p>Warm-up, not counted below: {warm['offeredRate']:g} purchases/s for "
                   f"{warm['durationSeconds']:g} s, {warm['confirmed']} confirmed, {warm['visible']} visible; "
                   f"<code>confirm_to_visible</code> p99 {_ms(p99)} ms</p>")
    for step in part["steps"]:
        errors = ", ".join(f"{k}: {v}" for k, v in step["errors"].items()) or "none"
        out += [f"<table><caption>{step['offeredRate']:g} purchases/s offered for {step['durationSeconds']:g} s: "
                f"{step['scheduled']} scheduled, {step['confirmed']} confirmed, {step['visible']} visible, achieved "
                f"{step['achievedRate']:g}/s; errors: {e(errors)}; readers {step['readers']['requests']} requests"
                "</caption><tr><th>hop</th><th>count</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th>"
                "<th>max ms</th></tr>"]
        for hop, v in step["latencyMs"].items():
            out.append(f"<tr><td><code>{e(hop)}</code></td><td>{v['count']}</td>"
                       + "".join(f"<td>{_ms(v[k])}</td>" for k in ("p50", "p90", "p99", "max")) + "</tr>")
        out.append("</table>")
    out.append("</section>")
    return out


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:g}x"


__all__ = ["percentile_chart", "render_html", "timeline_chart", "write_html"]
