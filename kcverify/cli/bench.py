"""`kcverify bench`: how fast a purchase becomes visible on the processes target with its components
running free, under an open-loop constant-arrival-rate load (kcverify/bench/, docs/bench.md). Exit 0
no purchase lost or duplicated, 1 one was, 2 bad input or an unreachable target (one line), 3 kcverify
broke."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kcverify.bench import Bench, BenchOptions, Integrity, Run, Step, document, free_running, markdown
from kcverify.bench.bare import BareTarget
from kcverify.bench.html_report import write_html
from kcverify.bench.load import FreeRunningTarget, Ramp
from kcverify.bench.results import HOP_MEANING, ramp_outcome
from kcverify.cli.destinations import report_destinations
from kcverify.cli.outcomes import exit_for
from kcverify.cli.settings import bounded
from kcverify.core.errors import InputError
from kcverify.report import plots
from kcverify.targets import registry
from kcverify.targets.registry import TargetOptions

REPORTS = ("json", "markdown", "html")
TARGETS = ("processes", "external")  # targets whose components can run free
MAX_RATE = 10_000.0


def parse_rates(text: str) -> tuple[float, ...]:
    """`50,100` -> (50.0, 100.0); each > 0 and at most MAX_RATE purchases a second."""
    rates: list[float] = []
    for word in (w.strip() for w in str(text).split(",")):
        if not word:
            continue
        try:
            rate = float(word)
        except ValueError:
            raise InputError(f"--rate: {word!r} is not a number", hint="e.g. --rate 50,100") from None
        if not 0 < rate <= MAX_RATE or rate != rate:
            raise InputError(f"--rate: {word} is out of range (0 < rate <= {MAX_RATE:g} purchases a second)")
        rates.append(rate)
    if not rates:
        raise InputError("--rate: no rate given", hint="e.g. --rate 50,100")
    return tuple(rates)


def console_table(doc: dict[str, Any]) -> Table:
    table = Table(title=f"kcverify bench: target {doc['target']} (latencies in ms)", title_justify="left")
    for name, justify in (("rate offered/achieved", "right"), ("hop", "left"), ("count", "right"),
                          ("p50", "right"), ("p90", "right"), ("p99", "right"), ("max", "right")):
        table.add_column(name, justify=justify, no_wrap=name == "hop",  # type: ignore[arg-type]
                         min_width=len("confirm_to_visible") if name == "hop" else None)
    for step in doc["steps"]:
        label = f"{step['offeredRate']:g}/{step['achievedRate']:g} per s"
        for hop, values in step["latencyMs"].items():
            table.add_row(label, hop, str(values["count"]),
                          *("-" if values[k] is None else f"{values[k]:.1f}" for k in ("p50", "p90", "p99", "max")))
            label = ""
        table.add_section()
    return table


def measure(load: Bench, target: FreeRunningTarget, options: BenchOptions, max_duration: float,
            console: Console) -> Run:
    """The open-loop steps (after the warm-up, unless it was run already), then (when asked) the
    closed-loop maximum, of one system."""
    steps, integrity = load.run()
    ramp = None
    if options.ramp is not None:
        ramp = ramp_outcome(steps, load.ramp_stop)
        rate = ramp["sustainableRate"]
        console.print(Text(f"  ramp: sustainable rate {'-' if rate is None else f'{rate:g}/s'}"
                           + (f"; stopped: {load.ramp_stop}" if load.ramp_stop else "; every step kept up")),
                      highlight=False, soft_wrap=True)
    most = None
    if max_duration > 0:
        most = Bench(target, options).max_throughput(max_duration, options.senders)
        console.print(Text(f"  maximum throughput: {most.rate:g} purchases/s visible ({most.workers} workers, "
                           f"{most.seconds:g} s, closed loop)"), highlight=False)
    return Run(steps, integrity, most, ramp, load.warmup)


def loaded(target: FreeRunningTarget, options: BenchOptions, console: Console, name: str) -> Bench:
    """A Bench of the system whose progress lines go to the console, its warm-up's marked as such."""
    load = Bench(target, options, progress=lambda s: progress_line(
        console, s, f"{name}warm-up, not counted: " if s is load.warmup else ""))
    return load


def print_document(console: Console, doc: dict[str, Any]) -> None:
    console.print(console_table(doc))
    if "bare" in doc:
        console.print(console_table({**doc["bare"], "target": "bare pipeline"}))
    for hop, meaning in HOP_MEANING.items():
        console.print(Text(f"  {hop}: {meaning}", style="dim"))
    for name, part in (("", doc), ("bare pipeline ", doc.get("bare"))):
        if part is None:
            continue
        tally = part["integrity"]
        console.print(Text(f"{name}integrity: {tally['confirmed']} confirmed, {tally['purchases']} purchases, "
                           f"{tally['lost']} lost, {tally['duplicated']} duplicated",
                           style="green" if tally["ok"] else "bold red"))
    if "comparison" in doc:
        cmp = doc["comparison"]
        ratios = ", ".join(f"{hop} {'-' if r is None else f'{r:g}x'}" for hop, r in cmp["p99Ratio"].items())
        most = cmp["maxThroughputRatio"]
        console.print(Text(f"reference / bare pipeline: p99 {ratios}; maximum throughput "
                           f"{'-' if most is None else f'{most:g}x'}"), highlight=False, soft_wrap=True)


def progress_line(console: Console, step: Step, label: str = "") -> None:
    s = step.summary()
    errors = ", ".join(f"{k}: {v}" for k, v in s["errors"].items()) or "no errors"
    console.print(Text(f"  {label}{s['offeredRate']:g}/s for {s['durationSeconds']:g} s: {s['scheduled']} scheduled, "
                       f"{s['confirmed']} confirmed, {s['visible']} visible, {errors}; readers "
                       f"{s['readers']['requests']} requests"), highlight=False, soft_wrap=True)
    if not s.get("drained", True):
        console.print(Text(f"  warning: purchases of the warm-up were still missing after {s['drainSeconds']:g} s; "
                           "they spill into the first step", style="yellow"), highlight=False, soft_wrap=True)


@click.command()
@click.option("--target", default="processes", show_default=True, metavar="NAME",
              help="Where the system under test runs: processes (the reference on the local stack) or external "
                   "(your services, through --profile).")
@click.option("--profile", type=click.Path(path_type=Path), default=None,
              help="The profile of your system, for --target external (see docs/external.md).")
@click.option("--state-dir", type=click.Path(path_type=Path), default=None,
              help="The stack's state directory (default: $KCVERIFY_STATE_DIR, else .kcverify/stack).")
@click.option("--rate", default="50", show_default=True, metavar="RATES",
              help="Comma-separated purchases per second to offer, one step of --duration each (e.g. 50,100).")
@click.option("--ramp", is_flag=True, default=False,
              help="Raise the rate from the first of --rate by x1.5 a step (at most 8 steps) until the system stops "
                   "keeping up (achieved < 90 % of offered, an error, or confirm_to_visible p99 > 1 s): the last "
                   "rate that kept up is its sustainable rate.")
@click.option("--duration", type=bounded("bench", "duration"), default=30.0, show_default=True,
              help="Seconds each rate is offered.")
@click.option("--warmup", type=bounded("bench", "warmup"), default=30.0, show_default=True,
              help="Seconds of load at the first rate before the first step, not counted (0: none), for each system "
                   "alike: a broker's JIT compiler, the services' pools and caches warm up.")
@click.option("--students", type=bounded("bench", "students"), default=100, show_default=True,
              help="Students the purchases are spread over (round robin).")
@click.option("--poll-interval", type=bounded("bench", "poll_interval"), default=0.02, show_default=True,
              help="Seconds between two reads of a student's learning view while a purchase is not shown yet.")
@click.option("--bare/--no-bare", default=True, show_default=True,
              help="Also bench the bare pipeline (produce, consume, one INSERT, Redis DEL, GET) on the same stack, "
                   "and print the reference's ratios to it.")
@click.option("--max-duration", type=bounded("bench", "max_duration"), default=10.0, show_default=True,
              help="Seconds of the closed-loop maximum-throughput measurement of each system (0: none).")
@click.option("--report", default="", help="Comma-separated: json,markdown,html.")
@click.option("--report-dir", type=click.Path(path_type=Path), default=Path("kcverify-report"), show_default=True)
@click.option("--no-color", is_flag=True, help="Plain output, no colours or control codes.")
@click.option("--defect", "defects", multiple=True, hidden=True, metavar="NAME",
              help="Start the reference with a named defect switched on (a slowdown shows in the percentiles).")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def bench(target: str, profile: Path | None, state_dir: Path | None, rate: str, ramp: bool, duration: float,
          warmup: float, students: int, poll_interval: float, bare: bool, max_duration: float, report: str,
          report_dir: Path, no_color: bool, defects: tuple[str, ...], debug: bool) -> None:
    """Measure how fast a purchase becomes visible: an open-loop constant-arrival-rate load of payments
    created and confirmed, readers polling each student's learning view; latency per hop from each
    purchase's intended start, throughput, errors, and no purchase lost or duplicated."""
    console = Console(no_color=no_color, highlight=False, force_terminal=None if not no_color else False)
    built: Any = None
    try:
        rates = parse_rates(rate)
        if target not in TARGETS:
            raise InputError(f"--target {target}: kcverify bench needs components that run on their own",
                             hint="use --target processes (the reference on the local stack) or --target external "
                                  "--profile FILE (your services)")
        if target == "external" and bare:
            bare = False  # the bare pipeline runs on the local stack, beside the reference: not on a user's system
            console.print(Text("the bare pipeline runs on the local stack only: not benched against an external "
                               "target", style="dim"))
        names = [n.strip() for n in report.split(",") if n.strip()]
        unknown = [n for n in names if n not in REPORTS]
        if unknown:
            raise InputError(f"--report: unknown report {unknown[0]!r}", hint=f"choose from: {', '.join(REPORTS)}")
        report_destinations(report_dir, names)
        if "html" in names:
            plots.require()
        settings: dict[str, str] = {} if state_dir is None else {"state_dir": str(state_dir)}
        if profile is not None:
            settings["profile"] = str(profile)
        built = registry.create(target, TargetOptions(defects=frozenset(defects), settings=settings))
        runner_target = free_running(built)
        options = BenchOptions(rates=rates, duration=duration, students=students, poll_interval=poll_interval,
                               ramp=Ramp() if ramp else None, warmup=warmup)
        with_defects = "".join(f", defect {name}" for name in sorted(defects))
        console.print(Text(f"kcverify bench: target {target}{with_defects}, rates {', '.join(f'{r:g}' for r in rates)}"
                           f"/s, {duration:g} s each after {warmup:g} s of warm-up, {students} students "
                           "(components running free)", style="bold"))
        started_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        built.start(seed=0)
        reference_load = loaded(runner_target, options, console, "")
        bare_target = BareTarget(built.stack_settings) if bare else None
        try:
            bare_load = None if bare_target is None else loaded(bare_target, options, console, "bare pipeline ")
            if bare_load is not None and warmup > 0:
                # The bare pipeline warms first: it shares the stack's broker with the reference, which then
                # warms and is measured in one free-running stretch (held in between for longer than
                # max.poll.interval.ms, its consumers would leave their groups). The bare pipeline's
                # consumer joins its group anew at every run_free anyway.
                bare_load.warm_up()
            reference = measure(reference_load, runner_target, options, max_duration, console)
            bare_run = None
            if bare_target is not None and bare_load is not None:
                console.print(Text("the bare pipeline on the same stack (produce, consume, INSERT, DEL, GET):",
                                   style="bold"))
                bare_run = measure(bare_load, bare_target, options, max_duration, console)
        finally:
            if bare_target is not None:
                bare_target.close()
        integrity = reference.integrity if bare_run is None else Integrity.both(reference.integrity,
                                                                                bare_run.integrity)
        doc = document(target=target, started_at=started_at, options={**options.as_dict(), "bare": bare,
                       "maxDuration": max_duration, **({"defects": sorted(defects)} if defects else {})},
                       steps=reference.steps, integrity=reference.integrity, ramp=reference.ramp,
                       max_throughput=reference.max_throughput, bare=bare_run, warmup=reference.warmup)
        print_document(console, doc)
        if "json" in names:
            (report_dir / "bench.json").write_text(json.dumps(doc, indent=2) + "\n")
        if "markdown" in names:
            (report_dir / "bench.md").write_text(markdown(doc))
        if "html" in names:
            write_html(doc, reference, bare_run, report_dir / "bench.html")
        code = 0 if integrity.ok else 1
    except Exception as exc:
        exit_for(exc, debug=debug, target=target)
    finally:
        if built is not None:
            built.close()
    sys.exit(code)


__all__ = ["bench", "parse_rates"]
