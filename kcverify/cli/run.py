"""`kcverify run`: replay scenarios against a target and report; exit 0 passed, 1 a check failed,
2 bad input / unreachable target / nothing ran, 3 kcverify broke."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from kcverify import api
from kcverify.checks import REGISTRY as CHECKS
from kcverify.checks import select as select_checks
from kcverify.cli import last_run, listing
from kcverify.cli.destinations import report_destinations
from kcverify.cli.outcomes import exit_for
from kcverify.cli.settings import bounded
from kcverify.cli.targets import target_option
from kcverify.core.errors import InputError
from kcverify.core.resources import shipped_dir
from kcverify.report import build_reporters
from kcverify.report.claims import load_claims
from kcverify.report.console import ConsoleReporter
from kcverify.scenario.loader import load_scenarios
from kcverify.scenario.selection import Selection
from kcverify.targets import registry
from kcverify.targets.base import Target
from kcverify.targets.registry import TargetOptions


def make_target(name: str, options: TargetOptions | None = None) -> Target:
    """The target registered as `name` (kcverify.targets.registry), built with `options`: InputError for
    an unknown name or a --defect it does not take, PluginError for a broken plug-in (both exit 2)."""
    return registry.create(name, options)


def _check_words(checks: str, exclude_checks: str) -> tuple[str, ...]:
    """The check selection, as the reproduce command repeats it."""
    words: tuple[str, ...] = ()
    if checks.strip(","):
        words += ("--checks", checks)
    if exclude_checks.strip(","):
        words += ("--exclude-checks", exclude_checks)
    return words


def _default_scenarios() -> Path:
    """scenarios/ of the working directory; when there is none, say how to get one rather than a bare
    "no such file" (an installed kcverify run in an empty repository)."""
    here = Path("scenarios")
    if here.exists():
        return here
    raise InputError("no scenario path given and no scenarios/ folder here",
                     hint="`kcverify init` writes one with the example scenarios; or run the packaged "
                          f"examples: kcverify run {shipped_dir('scenarios')}")


# Defaults come from the settings model (kcverify.cli.settings): kcverify.toml, then KCVERIFY_* variables.
@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@target_option("Where the system under test runs.")
@click.option("--seed", type=bounded("seed"), default=0, show_default=True, help="Seed for ids and generated values.")
@click.option("--fail-fast", is_flag=True, help="Stop after the first scenario that fails.")
@click.option("-k", "--select", "select_", multiple=True,
              help="Only scenarios whose name contains / tag is this (not:WORD excludes); only those are validated.")
@click.option("--checks", "checks", default="", metavar="NAMES",
              help=f"Comma-separated: run only these checks (default: all of {', '.join(CHECKS)}).")
@click.option("--exclude-checks", "exclude_checks", default="", metavar="NAMES",
              help="Comma-separated: checks not to run.")
@click.option("--report", default="", help="Comma-separated: junit,json,markdown,html.")
@click.option("--report-dir", type=click.Path(path_type=Path), default=Path("kcverify-report"), show_default=True)
@click.option("--claims", type=click.Path(path_type=Path), default=None,
              help="A claims file (YAML): each claim is judged held, refuted or not exercised by this run "
                   "(see docs/claims.md; the repository's claims.yaml is an example).")
@click.option("--profile", type=click.Path(path_type=Path), default=None,
              help="The profile of your system, for --target external (see docs/external.md).")
@click.option("--no-color", is_flag=True, help="Plain output, no colours or control codes.")
@click.option("-v", "--verbose", is_flag=True, help="Show every step of every scenario.")
@click.option("--defect", "defects", multiple=True, hidden=True, metavar="NAME",
              help="Build the target with a named defect switched on (see `kcverify defects`).")
@click.option("--list", "list_", is_flag=True,
              help="Show what would run (each scenario's steps and needed capabilities against the target's, "
                   "the checks selected) and exit 0; runs nothing.")
@click.option("--last-failed", "last_failed", is_flag=True,
              help="Re-run only the scenarios that failed or errored in the last run (recorded in "
                   ".kcverify/last-run.json); with no record or no failure, run all.")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def run(paths: tuple[Path, ...], target: str, seed: int, fail_fast: bool, select_: tuple[str, ...], checks: str,
        exclude_checks: str, report: str, report_dir: Path, claims: Path | None, profile: Path | None,
        no_color: bool, verbose: bool, defects: tuple[str, ...], list_: bool, last_failed: bool,
        debug: bool) -> None:
    """Replay purchase scenarios end to end and check every hop."""
    console = Console(no_color=no_color, highlight=False, force_terminal=None if not no_color else False)
    try:
        chosen_checks = select_checks(checks.split(","), exclude_checks.split(","))
        if not chosen_checks:
            raise InputError("no check selected", hint="--checks and --exclude-checks leave none")
        judged = load_claims(claims) if claims is not None else None
        selection = Selection.parse(select_)
        chosen = load_scenarios(list(paths) or [_default_scenarios()], selection)
        if not chosen:
            raise InputError("no scenario selected" + (f" by -k {selection.describe()}" if selection else ""))
        if last_failed:
            chosen, note = last_run.last_failed(chosen, last_run.record_path())
            console.print(f"last failed: {note}")
        if list_:
            click.echo(listing.render(chosen, target, chosen_checks))
            sys.exit(0)
        names = [n.strip() for n in report.split(",") if n.strip()]
        handlers = [ConsoleReporter(console, verbose=verbose, claims=judged),
                    *build_reporters(names, report_dir, console, judged)]
        report_destinations(report_dir, names)
        result = api.run(chosen, target=target, seed=seed, fail_fast=fail_fast, checks=checks.split(","),
                         exclude_checks=exclude_checks.split(","), defects=defects, profile=profile,
                         handlers=handlers, reproduce_args=_check_words(checks, exclude_checks))
    except ValueError as exc:  # e.g. an unknown report name
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:
        exit_for(exc, debug=debug)
    try:
        last_run.save(result, last_run.record_path())
    except OSError as exc:  # the verdict stands; only --last-failed loses its memory
        click.echo(f"warning: could not record this run for --last-failed: {exc}", err=True)
    sys.exit(result.exit_code)
