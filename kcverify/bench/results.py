"""What a bench measured: HdrHistogram latencies per hop, throughput offered and achieved, errors, the
readers' own cost, and the no-lost / no-duplicate tally; as the JSON document CI keeps for trend lines
and as Markdown.

Hops of one purchase (every time on the host's clock, the one the processes and PostgreSQL stamp with):
- `confirm`: intended start -> confirm accepted (create + confirm requests, including any wait for a
  free sender: the latency counts from the schedule, never from when the request happened to leave);
- `commit`: confirm accepted -> the purchase row's `created_at` (courses DB, millisecond precision);
- `visible`: `created_at` -> the first learning response that shows the purchase (readers poll);
- `confirm_to_visible`: confirm accepted -> that first learning response (what a student who just paid
  waits for: the freshness the flow promises, whatever the order of commit and answer);
- `end_to_end`: intended start -> that first learning response."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

HOPS = ("confirm", "commit", "visible", "confirm_to_visible", "end_to_end")
HOP_MEANING = {
    "confirm": "intended start -> confirm accepted",
    "commit": "confirm accepted -> purchase row created_at",
    "visible": "purchase row created_at -> first learning response showing it",
    "confirm_to_visible": "confirm accepted -> first learning response showing it",
    "end_to_end": "intended start -> first learning response showing it",
}
PERCENTILES = (50.0, 90.0, 99.0)
HIGHEST_US = 3_600_000_000  # one hour in microseconds: anything slower is clamped there
SIGNIFICANT = 3
FORMAT = 1  # version of the JSON document


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, HIGHEST_US, SIGNIFICANT)


@dataclass
class Purchase:
    """One scheduled purchase and what became of it (times in epoch seconds)."""

    index: int
    student: str
    intended: float
    payment_id: str | None = None
    confirmed_at: float | None = None
    created_at: float | None = None  # the purchase row's, filled in from the final snapshot
    visible_at: float | None = None
    error: str | None = None  # short kind, e.g. "create 503", "confirm no response", "not visible in 30 s"


@dataclass
class ReaderCost:
    requests: int = 0
    seconds: float = 0.0


@dataclass
class Step:
    """One offered rate held for `duration` seconds."""

    rate: float
    duration: float
    purchases: list[Purchase] = field(default_factory=list)
    readers: ReaderCost = field(default_factory=ReaderCost)
    started: float = 0.0  # the first intended start
    finished: float = 0.0  # when the last purchase of the step was visible or given up on
    drain_seconds: float | None = None  # a warm-up: seconds waited for its purchases after it
    drained: bool = True  # a warm-up: every confirmed purchase of it was in before the first step

    def histograms(self) -> dict[str, HdrHistogram]:
        hists = {hop: new_histogram() for hop in HOPS}
        for p in self.purchases:
            spans = {
                "confirm": (p.intended, p.confirmed_at),
                "commit": (p.confirmed_at, p.created_at),
                "visible": (p.created_at, p.visible_at),
                "confirm_to_visible": (p.confirmed_at, p.visible_at),
                "end_to_end": (p.intended, p.visible_at),
            }
            for hop, (start, end) in spans.items():
                if start is not None and end is not None:
                    # a purchase committed before its confirm answer arrived gives a negative commit
                    # hop: recorded as 1 µs (the histogram's lowest value)
                    hists[hop].record_value(min(HIGHEST_US, max(1, round((end - start) * 1e6))))
        return hists

    def summary(self) -> dict[str, Any]:
        confirmed = [p for p in self.purchases if p.confirmed_at is not None]
        visible = [p for p in self.purchases if p.visible_at is not None]
        errors = Counter(p.error for p in self.purchases if p.error)
        last_confirm = max((p.confirmed_at for p in confirmed if p.confirmed_at), default=self.started)
        window = max(self.duration, last_confirm - self.started)
        return {
            "offeredRate": self.rate,
            "durationSeconds": self.duration,
            "scheduled": len(self.purchases),
            "confirmed": len(confirmed),
            "visible": len(visible),
            "achievedRate": round(len(confirmed) / window, 2) if window > 0 else 0.0,
            "errors": dict(sorted(errors.items())),
            "latencyMs": {hop: latency(h) for hop, h in self.histograms().items()},
            "readers": {
                "requests": self.readers.requests,
                "seconds": round(self.readers.seconds, 3),
                "requestsPerPurchase": round(self.readers.requests / len(visible), 2) if visible else 0.0,
            },
            **({} if self.drain_seconds is None else {"drainSeconds": self.drain_seconds, "drained": self.drained}),
        }


def latency(hist: HdrHistogram) -> dict[str, Any]:
    """count, p50/p90/p99/max in milliseconds (None when nothing was recorded)."""
    count = hist.get_total_count()
    out: dict[str, Any] = {"count": count}
    for pct in PERCENTILES:
        out[f"p{int(pct)}"] = round(hist.get_value_at_percentile(pct) / 1000, 2) if count else None
    out["max"] = round(hist.get_max_value() / 1000, 2) if count else None
    return out


@dataclass
class Integrity:
    """Every confirmed payment has exactly one purchase: none lost, none duplicated."""

    confirmed: int
    purchases: int
    lost: list[str]
    duplicated: list[str]
    shown_twice: int  # learning responses that listed one payment's purchase more than once
    drain_seconds: float = 0.0  # waited after the last step for purchases still on their way

    @property
    def ok(self) -> bool:
        return not self.lost and not self.duplicated and not self.shown_twice

    @staticmethod
    def both(a: Integrity, b: Integrity) -> Integrity:
        """One tally of two runs (the exit status: any lost or duplicated purchase in either)."""
        return Integrity(a.confirmed + b.confirmed, a.purchases + b.purchases, a.lost + b.lost,
                         a.duplicated + b.duplicated, a.shown_twice + b.shown_twice,
                         a.drain_seconds + b.drain_seconds)

    def summary(self) -> dict[str, Any]:
        return {"confirmed": self.confirmed, "purchases": self.purchases, "lost": len(self.lost),
                "duplicated": len(self.duplicated), "shownTwice": self.shown_twice,
                "drainSeconds": self.drain_seconds,
                "lostPaymentIds": self.lost[:20], "duplicatedPaymentIds": self.duplicated[:20], "ok": self.ok}


@dataclass
class MaxThroughput:
    """A closed loop's result: purchases made visible per second with `workers` always busy (`seconds`:
    from the start until the last purchase under way when the time was up was visible)."""

    workers: int
    seconds: float
    visible: int
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return round(self.visible / self.seconds, 2) if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {"workers": self.workers, "seconds": round(self.seconds, 3), "visible": self.visible,
                "perSecond": self.rate, "errors": dict(sorted(self.errors.items()))}


@dataclass
class Run:
    """What one system did under the bench: its open-loop steps, its closed-loop maximum, its tally."""

    steps: list[Step]
    integrity: Integrity
    max_throughput: MaxThroughput | None = None
    ramp: dict[str, Any] | None = None  # with --ramp: the sustainable rate and why the ramp stopped
    warmup: Step | None = None  # the load before the steps, not counted in them


def ramp_outcome(steps: list[Step], stopped_because: str | None) -> dict[str, Any]:
    """The highest offered rate that kept up (None when even the first did not) and why the ramp stopped
    (None: every step kept up, the ramp ran out of steps)."""
    kept = steps if stopped_because is None else steps[:-1]
    return {"sustainableRate": max((s.rate for s in kept), default=None), "stoppedBecause": stopped_because}


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def comparison(reference: dict[str, Any], bare: dict[str, Any]) -> dict[str, Any]:
    """Reference over bare pipeline: p99 per hop (of the whole run) and maximum throughput."""
    p99 = {hop: _ratio(reference["total"]["latencyMs"][hop]["p99"], bare["total"]["latencyMs"][hop]["p99"])
           for hop in HOPS}
    ref_max, bare_max = reference.get("maxThroughput"), bare.get("maxThroughput")
    return {"p99Ratio": p99,
            "maxThroughputRatio": _ratio(ref_max["perSecond"] if ref_max else None,
                                         bare_max["perSecond"] if bare_max else None)}


def document(*, target: str, started_at: str, options: dict[str, Any], steps: list[Step],
             integrity: Integrity, max_throughput: MaxThroughput | None = None,
             bare: Run | None = None, ramp: dict[str, Any] | None = None,
             warmup: Step | None = None) -> dict[str, Any]:
    """The JSON report: options, the warm-up (None without one), one entry per offered rate, the whole
    run, the integrity tally, the closed-loop maximum (and the ramp's outcome); with a bare run, the same
    for the bare pipeline and the ratios."""
    doc = _system(steps, integrity, max_throughput, ramp, warmup)
    out = {"format": FORMAT, "target": target, "startedAt": started_at, "options": options, "hops": HOP_MEANING,
           **doc}
    if bare is not None:
        bare_doc = _system(bare.steps, bare.integrity, bare.max_throughput, bare.ramp, bare.warmup)
        out["bare"] = bare_doc
        out["comparison"] = comparison(doc, bare_doc)
    return out


def _system(steps: list[Step], integrity: Integrity, max_throughput: MaxThroughput | None,
            ramp: dict[str, Any] | None = None, warmup: Step | None = None) -> dict[str, Any]:
    whole = Step(rate=0.0, duration=sum(s.duration for s in steps),
                 purchases=[p for s in steps for p in s.purchases],
                 readers=ReaderCost(sum(s.readers.requests for s in steps), sum(s.readers.seconds for s in steps)),
                 started=min((s.started for s in steps), default=0.0))
    total = whole.summary()
    total.pop("offeredRate")
    total.pop("achievedRate")
    out = {"warmup": warmup.summary() if warmup is not None else None,
           "steps": [s.summary() for s in steps], "total": total, "integrity": integrity.summary(),
           "maxThroughput": max_throughput.summary() if max_throughput is not None else None}
    if ramp is not None:
        out["ramp"] = ramp
    return out


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown(doc: dict[str, Any]) -> str:
    """The report as Markdown: one latency table per offered rate, then the integrity tally."""
    lines = [f"# kcverify bench: target {doc['target']}", "",
             f"Started {doc['startedAt']}; options: " + ", ".join(f"{k} {v}" for k, v in doc["options"].items()), ""]
    lines += _system_markdown(doc, doc)
    if "bare" in doc:
        lines += ["# The bare pipeline (produce, consume, one INSERT, Redis DEL, GET; same stack and clients)", ""]
        lines += _system_markdown(doc["bare"], doc)
        cmp = doc["comparison"]
        lines += ["# Reference over bare pipeline", "", "| hop | p99 ratio |", "| --- | ---: |"]
        lines += [f"| {hop} | {_x(ratio)} |" for hop, ratio in cmp["p99Ratio"].items()]
        lines += ["", f"Maximum throughput ratio: {_x(cmp['maxThroughputRatio'])}", ""]
    return "\n".join(lines)


def _x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:g}x"


def _system_markdown(doc: dict[str, Any], top: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    warm = doc.get("warmup")
    if warm:
        p99 = warm["latencyMs"]["confirm_to_visible"]["p99"]
        lines += [f"Warm-up, not counted below: {warm['offeredRate']:g} purchases/s for {warm['durationSeconds']:g} s, "
                  f"{warm['confirmed']} confirmed, {warm['visible']} visible; confirm_to_visible p99 {_ms(p99)} ms"
                  + ("" if warm.get("drained", True) else
                     f"; NOT DRAINED: purchases still missing after {warm['drainSeconds']:g} s spilled into the "
                     "first step"), ""]
    for step in doc["steps"]:
        errors = ", ".join(f"{k}: {v}" for k, v in step["errors"].items()) or "none"
        readers = step["readers"]
        lines += [f"## {step['offeredRate']:g} purchases/s offered for {step['durationSeconds']:g} s", "",
                  f"{step['scheduled']} scheduled, {step['confirmed']} confirmed, {step['visible']} visible; "
                  f"achieved {step['achievedRate']:g}/s; errors: {errors}; readers: {readers['requests']} requests "
                  f"({readers['requestsPerPurchase']:g} per purchase, {readers['seconds']:g} s in requests)", "",
                  "| hop | count | p50 ms | p90 ms | p99 ms | max ms |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for hop, values in step["latencyMs"].items():
            lines.append(f"| {hop} ({top['hops'][hop]}) | {values['count']} | {_ms(values['p50'])} | "
                         f"{_ms(values['p90'])} | {_ms(values['p99'])} | {_ms(values['max'])} |")
        lines.append("")
    tally = doc["integrity"]
    verdict = "no purchase lost, none duplicated" if tally["ok"] else "INTEGRITY FAILED"
    lines += ["## Integrity", "",
              f"{tally['confirmed']} confirmed payments, {tally['purchases']} purchases: {tally['lost']} lost, "
              f"{tally['duplicated']} duplicated, {tally['shownTwice']} responses showing one twice (after waiting "
              f"{tally['drainSeconds']:g} s for the last ones): {verdict}", ""]
    ramp = doc.get("ramp")
    if ramp:
        rate = ramp["sustainableRate"]
        lines += ["## Ramp", "", f"Sustainable rate: {'none of the rates' if rate is None else f'{rate:g}/s'}; "
                  f"{'stopped: ' + ramp['stoppedBecause'] if ramp['stoppedBecause'] else 'every step kept up'}", ""]
    most = doc.get("maxThroughput")
    if most:
        lines += ["## Maximum throughput (closed loop)", "",
                  f"{most['perSecond']:g} purchases/s visible with {most['workers']} workers always busy "
                  f"({most['visible']} in {most['seconds']:g} s; errors: "
                  f"{', '.join(f'{k}: {v}' for k, v in most['errors'].items()) or 'none'})", ""]
    return lines
