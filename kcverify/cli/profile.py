"""`kcverify profile check PROFILE`: load and validate a profile, probe everything it configures, print
what answered and the capabilities that result; exit 2 naming the first item that failed."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from kcverify.cli.outcomes import exit_for


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def profile() -> None:
    """Profiles of your own services, for `kcverify run --target external` (docs/external.md)."""


@profile.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--scenarios", "scenarios_dir", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="List which scenarios of DIR can run with this profile and what each other one lacks "
                   "(default: scenarios/ when it exists).")
@click.option("--no-color", is_flag=True, help="Plain output, no colours or control codes.")
def check(path: Path, scenarios_dir: Path | None, no_color: bool) -> None:
    """Validate PATH and probe every endpoint, topic, group, query and cache it configures (nothing is
    changed); list the scenarios it can run."""
    from kcverify.scenario.loader import load_scenarios
    from kcverify.targets.external.probe import FAILED, probe
    from kcverify.targets.external.profile import load_profile

    console = Console(no_color=no_color, highlight=False, force_terminal=None if not no_color else False)
    try:
        loaded = load_profile(path)
        results = probe(loaded)
        if scenarios_dir is None and Path("scenarios").is_dir():
            scenarios_dir = Path("scenarios")
        scenarios = load_scenarios([scenarios_dir]) if scenarios_dir is not None else []
    except Exception as exc:
        exit_for(exc, command="kcverify profile check")
    table = Table(title=f"profile {loaded.name} ({path})")
    for column in ("item", "outcome", "detail"):
        table.add_column(column, overflow="fold")
    for result in results:
        style = {"ok": "green", FAILED: "red"}.get(result.outcome, "yellow")
        table.add_row(result.item, f"[{style}]{result.outcome}[/]", result.detail)
    console.print(table)
    failures = [r.item for r in results if r.outcome == FAILED]
    console.print(f"capabilities: {', '.join(sorted(loaded.capabilities))}"
                  + (f" (as configured; not usable until {len(failures)} failed item(s) answer)" if failures else ""))
    if scenarios:
        runs = Table(title=f"scenarios of {scenarios_dir}")
        for column in ("scenario", "runs", "lacks"):
            runs.add_column(column)
        for scenario in scenarios:
            lacks = sorted(scenario.capabilities_needed() - loaded.capabilities)
            runs.add_row(scenario.name, "[red]no[/]" if lacks else "[green]yes[/]", ", ".join(lacks))
        console.print(runs)
        able = sum(1 for s in scenarios if not s.capabilities_needed() - loaded.capabilities)
        console.print(f"{able} of {len(scenarios)} scenario(s) can run with this profile")
    failed = next((r for r in results if r.outcome == FAILED), None)
    if failed is not None:
        click.echo(f"kcverify profile check: {path}: {failed.item}: {failed.detail}", err=True)
        sys.exit(2)
