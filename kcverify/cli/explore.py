"""`kcverify explore`: deterministic simulation of the embedded reference that searches interleavings
for one that breaks a check, shrinks it and writes it as a scenario file (kcverify/explore/).
Exit 0 nothing found within the budget, 1 a finding (written and replayed), 2 bad input, 3 kcverify
broke (including a finding whose written file did not reproduce it)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from kcverify.cli.destinations import creatable_dir, report_destinations
from kcverify.cli.outcomes import exit_for
from kcverify.cli.settings import bounded
from kcverify.core.errors import InputError
from kcverify.explore.explorer import (
    DEFAULT_MAX_STEPS,
    Budget,
    ExploreOptions,
    ExploreReport,
    ExploreTargets,
    Finding,
    Progress,
)
from kcverify.explore.explorer import (
    explore as run_exploration,
)
from kcverify.explore.scenario_file import step_lines
from kcverify.reference.defects import BY_NAME
from kcverify.targets.embedded import EmbeddedTarget
from kcverify.targets.explore_embedded import ObservedTarget


def _budget(ctx: click.Context, param: click.Parameter, value: str) -> Budget:
    try:
        return Budget.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


# Defaults come from the settings model (kcverify.cli.settings): seed, no_color, debug and [explore].
@click.command()
@click.option("--seed", type=bounded("seed"), default=0, show_default=True,
              help="Seed of the search. The same seed, defect and budget in schedules explore the same schedules.")
@click.option("--budget", default="60s", show_default=True, callback=_budget, metavar="60s|2m|N",
              help="When to stop searching: a time (60s, 2m) or a number of schedules (500).")
@click.option("--defect", type=click.Choice(sorted(BY_NAME)), default=None, metavar="NAME",
              help="Explore the reference with this defect switched on (see `kcverify defects`).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("explore-findings"),
              show_default=True, help="Directory for the scenario file of a finding.")
@click.option("--max-steps", type=bounded("explore", "max_steps"), default=DEFAULT_MAX_STEPS, show_default=True,
              help="Actions per generated schedule (the scenario adds the restarts a crash needs).")
@click.option("--report", default="", help="Comma-separated: html (explore.html in --report-dir).")
@click.option("--report-dir", type=click.Path(path_type=Path), default=Path("kcverify-report"), show_default=True)
@click.option("--no-color", is_flag=True, help="Plain output, no colours or control codes.")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def explore(seed: int, budget: Budget, defect: str | None, out_dir: Path, max_steps: int, report: str,
            report_dir: Path, no_color: bool, debug: bool) -> None:
    """Search interleavings of the embedded reference for a failing schedule; shrink it to a scenario."""
    console = Console(no_color=no_color, highlight=False, force_terminal=None if not no_color else False)
    options = ExploreOptions(seed=seed, defect=defect, budget=budget, max_steps=max_steps, out_dir=out_dir)
    # The embedded reference, built with the named defects of the schedule being explored.
    targets = ExploreTargets(search=lambda defects: ObservedTarget(defects=defects),
                             replay=lambda defects: EmbeddedTarget(defects=defects))
    what = f"defect {defect}" if defect else "the reference (no defect)"
    try:
        creatable_dir(out_dir, "--out")  # before anything is printed: bad input is one line
        reports = [n.strip() for n in report.split(",") if n.strip()]
        unknown = [n for n in reports if n != "html"]
        if unknown:
            raise InputError(f"unknown report {', '.join(map(repr, unknown))}; choose from: html")
        if reports:
            report_destinations(report_dir, reports)
    except Exception as exc:
        exit_for(exc, debug=debug)
    console.print(f"kcverify explore: seed {seed}, {what}, budget {budget}, up to {max_steps} actions a schedule")
    try:
        if console.is_terminal:
            with console.status("exploring...") as status:
                def show(progress: Progress) -> None:
                    status.update(progress_text(progress, budget))

                result = run_exploration(options, progress=show, targets=targets)
        else:  # a log: a line at each tenth of the budget, then once when shrinking starts
            result = run_exploration(options, progress=LogProgress(console, budget), targets=targets)
    except Exception as exc:
        exit_for(exc, debug=debug)
    _print_report(console, result)
    if reports:
        from kcverify.explore.html_report import write_html

        write_html(result, report_dir / "explore.html")
        console.print(f"report: {(report_dir / 'explore.html').as_posix()}", soft_wrap=True)
    code = result.exit_code
    if result.finding is not None and not (result.finding.reproduced and result.finding.passes_without_defect
                                           in (True, None)):
        code = 3
    console.print(f"exit {code}")
    sys.exit(code)


def progress_text(progress: Progress, budget: Budget) -> str:
    """"searching: 40% of the budget (24 of 60 s, 81 schedules)"; shrinking runs past the budget."""
    if progress.phase != "search":
        return f"shrinking the finding: {progress.schedules} schedules, {progress.seconds:.0f} s"
    share = budget.spent(progress.schedules, progress.seconds)
    used = (f"{progress.schedules} of {budget.schedules} schedules, {progress.seconds:.0f} s"
            if budget.schedules is not None
            else f"{progress.seconds:.0f} of {budget.seconds:g} s, {progress.schedules} schedules")
    return f"searching: {share:.0%} of the budget ({used})"


class LogProgress:
    """Progress for a console that is not a terminal (CI logs): one line each time another tenth of the
    budget is spent, and one when shrinking starts, instead of a spinner that cannot redraw."""

    def __init__(self, console: Console, budget: Budget) -> None:
        self.console, self.budget = console, budget
        self.tenths, self.shrinking = 0, False

    def __call__(self, progress: Progress) -> None:
        if progress.phase != "search":
            if not self.shrinking:
                self.shrinking = True
                self.console.print(progress_text(progress, self.budget))
            return
        tenths = int(self.budget.spent(progress.schedules, progress.seconds) * 10)
        if tenths > self.tenths:
            self.tenths = tenths
            self.console.print(progress_text(progress, self.budget))


def _print_report(console: Console, report: ExploreReport) -> None:
    console.print(f"seed {report.seed}: {report.schedules} schedules in {report.seconds:.1f} s, "
                  f"{report.rate:.1f} schedules/s (CPU {report.cpu_rate:.1f}/s)")
    console.print(f"history sha256 {report.digest[:16]} (same seed, defect and budget in schedules: same history)")
    _print_coverage(console, report)
    if report.errors:
        console.print(f"[yellow]{report.errors} schedule(s) could not be run to the end (see the finding)[/]")
    if report.reference_failures:
        console.print(f"[yellow]{report.reference_failures} failing schedule(s) failed without the defect too; "
                      "`kcverify explore` without --defect explores the reference itself[/]")
    if report.finding is None:
        console.print("[green]no failure found[/] within the budget")
        return
    _print_finding(console, report, report.finding)


def _print_finding(console: Console, report: ExploreReport, finding: Finding) -> None:
    rules = ", ".join(finding.rules)
    console.print(f"[red bold]FAILED[/]: the {finding.check} check ({rules})")
    console.print(f"  {finding.message}", soft_wrap=True)
    console.print(f"found after {finding.found_after} schedules ({finding.found_seconds:.1f} s); shrunk from "
                  f"{finding.original_steps} to {len(finding.steps)} steps in {finding.shrink_runs} runs "
                  f"({finding.shrink_seconds:.1f} s):")
    for line in step_lines(finding.steps):
        console.print(line, soft_wrap=True, markup=False)
    console.print(f"written: {finding.path}", soft_wrap=True)
    replay = f"kcverify run {finding.path}" + (f" --defect {report.defect}" if report.defect else "")
    verdict = f"fails with {finding.check}" if finding.reproduced else "[red]does NOT fail[/] (please report)"
    console.print(f"replayed: `{replay}` {verdict}", soft_wrap=True)
    if finding.passes_without_defect is not None:
        console.print("without the defect it passes" if finding.passes_without_defect
                      else "[red]without the defect it fails too[/]")


def _print_coverage(console: Console, report: ExploreReport) -> None:
    table = Table(title="coverage over the schedules searched", title_justify="left", show_edge=False)
    table.add_column("area")
    table.add_column("name")
    table.add_column("in steps", justify="right")
    table.add_column("what happened")
    effects = {"component": "crashed {}", "crash point": "fired {}", "fault": "failed {} call(s)"}
    for area, name, count, happened in report.coverage.rows():
        if area == "check":
            table.add_row(area, name, "", f"judged {count}, failed {happened}")
        else:
            effect = effects[area].format(happened) if happened is not None and area in effects else ""
            table.add_row(area, name, str(count), effect)
    console.print(table)
