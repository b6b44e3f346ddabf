"""Charts for the HTML reports, drawn by matplotlib as inline SVG: no script, no file beside the page, and
the reports' content policy (`img-src data:`, inline style only) holds. matplotlib comes with the
`plots` extra (kcverify/core/extras.py names it when it is missing); it is imported only when a chart is
drawn, with the non-interactive Agg backend, so no display is ever needed.

One function, `chart`, covers what the reports draw: lines (percentiles against offered rate), points
(one per purchase: latency over time) and shaded intervals (faults on a timeline)."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kcverify.core.extras import MissingExtra

MARKED_POINTS = 40  # a line of more points than this is drawn without markers (a timeline of seconds)
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")


@dataclass(frozen=True)
class Series:
    """One named series: drawn as a line with markers, or as points only (`points=True`)."""

    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    points: bool = False
    dashed: bool = False
    color: str | None = None
    markers: bool = True  # a mark on each point of a short line (not on a bound drawn from end to end)


@dataclass(frozen=True)
class Band:
    """A shaded interval of the x axis (a fault, from its start to its end), labelled in the legend."""

    start: float
    end: float
    label: str
    color: str = "#f4a582"


@dataclass(frozen=True)
class Chart:
    title: str
    xlabel: str
    ylabel: str
    series: Sequence[Series] = ()
    bands: Sequence[Band] = ()
    log_y: bool = False
    width: float = 8.0  # inches at 96 dpi: about 770 px, the reports' column
    height: float = 3.6
    notes: Sequence[str] = field(default_factory=tuple)


def require() -> None:
    """Fail now, before a long run, when the charts could not be drawn at its end (exit 2, naming the
    extra to install)."""
    _pyplot()


def _pyplot() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError as exc:
        raise MissingExtra("matplotlib", "a chart of the HTML report") from exc
    matplotlib.use("Agg", force=True)
    matplotlib.rcParams["svg.hashsalt"] = "kcverify"  # element ids from the content, not from a random salt
    import matplotlib.pyplot as plt

    return plt


def svg(chart: Chart) -> str:
    """The chart as an `<svg>` element, ready to be placed in a page (no XML prolog, no fixed size in
    points: it scales to the page's width)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(chart.width, chart.height), dpi=96)
    try:
        for n, band in enumerate(chart.bands):
            labels = {b.label for b in chart.bands[:n]}
            ax.axvspan(band.start, band.end, color=band.color, alpha=0.35, lw=0,
                       label=None if band.label in labels else band.label)
        for n, s in enumerate(chart.series):
            color = s.color or PALETTE[n % len(PALETTE)]
            if s.points:
                ax.scatter(s.xs, s.ys, s=6, alpha=0.6, color=color, label=s.label, linewidths=0)
            else:
                ax.plot(s.xs, s.ys, marker="o" if s.markers and len(s.xs) <= MARKED_POINTS else None, ms=4, lw=1.5,
                        ls="--" if s.dashed else "-", color=color, label=s.label)
        if chart.log_y and any(y > 0 for s in chart.series for y in s.ys):
            from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

            ax.set_yscale("log")  # ticks at 1, 2, 5 x 10^n, written as plain numbers (20, not 2 x 10^1)
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_title(chart.title, loc="left", fontsize=11)
        ax.set_xlabel(chart.xlabel)
        ax.set_ylabel(chart.ylabel)
        ax.grid(True, which="major", alpha=0.3)
        if chart.series or chart.bands:
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        for n, note in enumerate(chart.notes):
            fig.text(0.01, 0.01 + 0.04 * n, note, fontsize=7, color="#555555")
        fig.tight_layout()
        out = io.StringIO()
        fig.savefig(out, format="svg", metadata={"Date": None})  # no date: the same data, the same bytes
    finally:
        plt.close(fig)
    return _inline(out.getvalue())


def _inline(document: str) -> str:
    """An SVG document made an element of an HTML page: the prolog and doctype dropped, the fixed size in
    points replaced by a width of 100 % (the viewBox keeps the proportions)."""
    start = document.index("<svg")
    element = document[start:]
    head_end = element.index(">")
    head = re.sub(r'\s(width|height)="[^"]*"', "", element[:head_end])
    return head + ' width="100%" role="img"' + element[head_end:]


__all__ = ["Band", "Chart", "Series", "require", "svg"]
