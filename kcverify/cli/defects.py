"""`kcverify defects`: prove the checks catch the defects they exist for.

Runs the scenarios once without defects (the baseline must pass: a failing reference would "kill"
every defect and prove nothing), then once per named defect of the reference, and prints the kill
matrix, the kill score, every survivor and the wall time. Exit 0 every defect killed, 1 a
survivor, 2 bad input / failing baseline / unreachable target, 3 kcverify or the target broke."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console

from kcverify.cli.destinations import report_destinations
from kcverify.cli.outcomes import exit_for
from kcverify.cli.run import make_target
from kcverify.cli.settings import bounded
from kcverify.cli.targets import target_option
from kcverify.core.errors import InputError, PluginError, TargetUnreachable
from kcverify.killmatrix.console import MutantsConsole
from kcverify.killmatrix.engine import resolve, run_mutants
from kcverify.killmatrix.model import Baseline, BaselineFailed, MutantsResult
from kcverify.killmatrix.report import check_names, write_reports
from kcverify.report.common import plural, visible
from kcverify.scenario.loader import load_scenarios
from kcverify.targets import registry
from kcverify.targets.base import Target
from kcverify.targets.registry import TargetOptions

# A matrix read from a CI log or a pipe must not be folded at 80 columns.
PIPE_WIDTH = 200


def _console(no_color: bool) -> Console:
    columns = os.environ.get("COLUMNS", "").strip()  # set by shells, or by anyone: never trusted to be a number
    width = None if sys.stdout.isatty() else max(PIPE_WIDTH, int(columns) if columns.isdigit() else 0)
    return Console(no_color=no_color, highlight=False, force_terminal=False if no_color else None, width=width)


def _close(target: Target) -> None:
    """Frees what a target holds (the processes target's claim on its stack); `close` is optional."""
    close = getattr(target, "close", None)
    if callable(close):
        close()


def _cpus() -> int:
    """CPUs this process may use (a container's affinity mask, not the host's core count)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)


# Defaults come from the settings model (kcverify.cli.settings): the common keys (paths, target, seed,
# report_dir, ...) shared with `run`, so both fill one folder, and [defects] (KCVERIFY_DEFECTS_*).
@click.command(name="defects")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@target_option("Where the reference runs with each defect switched on (a target that accepts --defect).")
@click.option("--only", "only", multiple=True, metavar="NAME",
              help="Only this defect (repeatable). Default: the whole catalogue.")
@click.option("--jobs", type=bounded("defects", "jobs"), default=None,
              help="Defects run at the same time (embedded only). Default: the number of CPUs.")
@click.option("--seed", type=bounded("seed"), default=0, show_default=True, help="Seed for ids and generated values.")
@click.option("--report", default="", help="Comma-separated: json,markdown,html.")
@click.option("--report-dir", type=click.Path(path_type=Path), default=Path("kcverify-report"), show_default=True)
@click.option("--no-color", is_flag=True, help="Plain output, no colours or control codes.")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def defects_command(paths: tuple[Path, ...], target: str, only: tuple[str, ...], jobs: int | None, seed: int,
                    report: str, report_dir: Path, no_color: bool, debug: bool) -> None:
    """Prove the checks catch every known defect.

    Runs the scenarios without defects (must pass), then once per defect of the reference, and prints
    the kill matrix, the kill score and every survivor."""
    out = MutantsConsole(_console(no_color))
    # Bad input is reported before anything runs, and only here: a ValueError raised later, inside
    # a run, is kcverify breaking (exit 3), not the user's mistake.
    try:
        plugin = registry.lookup(target)
        if not plugin.accepts_defects:
            raise InputError(f"target {target} has no named defects: the kill matrix has nothing to switch on",
                             hint="`kcverify targets` lists the targets that accept --defect")
        defects = resolve(only, plugin.defect_catalogue)
        plugin.check_defects(d.name for d in defects)
        reports = check_names(n.strip() for n in report.split(","))
        where = [str(p) for p in paths] or ["scenarios"]
        scenarios = load_scenarios([Path(p) for p in where])
        report_destinations(report_dir, reports)

        def factory(options: TargetOptions) -> Target:
            return make_target(target, options)

        _close(factory(TargetOptions()))  # an unavailable target is exit 2 now, not an error in every scenario
    except ValueError as exc:  # an unknown defect or report name
        exit_for(InputError(str(exc)))
    except (InputError, TargetUnreachable, PluginError) as exc:
        exit_for(exc, target=target)
    workers = jobs or _cpus()
    if not plugin.isolated:  # one shared system (a stack of real services): one mutant at a time
        if workers > 1 and jobs is not None:
            out.console.print(f"note: target {target} is one shared system: --jobs {jobs} ignored, one at a time",
                              highlight=False, markup=False)
        workers = 1
    workers = min(workers, len(defects))
    out.started(target, len(defects), len(scenarios), workers)

    def baseline_done(baseline: Baseline) -> None:
        out.console.print(f"baseline (no defect): {plural(len(baseline.passed), 'scenario')} passed in "
                          f"{baseline.duration:.1f} s", highlight=False, markup=False)

    result: MutantsResult
    try:
        result = run_mutants(scenarios, factory, defects, workers, seed=seed, paths=where,
                             progress=out.mutant_finished, on_baseline=baseline_done)
        out.finished(result)
        written = write_reports(result, reports, report_dir)
        if written:
            out.console.print("reports: " + ", ".join(visible(p.as_posix()) for p in written),
                              highlight=False, markup=False)
    except BaselineFailed as exc:
        out.baseline_failed(exc.run, str(exc))
        sys.exit(2)
    except Exception as exc:
        exit_for(exc, debug=debug, target=target)
    sys.exit(result.exit_code)
