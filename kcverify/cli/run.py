"""`kcverify run`: replay scenarios against a target and report; exit 0 passed, 1 a check failed,
2 bad input / unreachable target / nothing ran, 3 kcverify broke."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from kcverify.cli.config import defaults_for_run
from kcverify.cli.outcomes import exit_for
from kcverify.cli.targets import target_option
from kcverify.core.errors import InputError
from kcverify.engine.runner import Runner, RunOptions
from kcverify.report import build_reporters
from kcverify.report.console import ConsoleReporter
from kcverify.scenario.loader import load_scenarios
from kcverify.scenario.model import Scenario
from kcverify.targets import registry
from kcverify.targets.base import Target
from kcverify.targets.registry import TargetOptions


def make_target(name: str, options: TargetOptions | None = None) -> Target:
    """The target registered as `name` (kcverify.targets.registry), built with `options`: InputError for
    an unknown name or a --defect it does not take, PluginError for a broken plug-in (both exit 2)."""
    return registry.create(name, options)


def select(scenarios: list[Scenario], expressions: tuple[str, ...]) -> list[Scenario]:
    """`-k WORD`: scenarios whose name contains WORD or that carry the tag WORD; `-k not:WORD` excludes."""
    terms = [t.strip() for e in expressions for t in e.split(",") if t.strip()]
    include = [t for t in terms if not t.startswith("not:")]
    exclude = [t[4:] for t in terms if t.startswith("not:")]

    def hit(scenario: Scenario, term: str) -> bool:
        return term in scenario.name or term in scenario.tags

    return [s for s in scenarios if (not include or any(hit(s, t) for t in include))
            and not any(hit(s, t) for t in exclude)]


class RunCommand(click.Command):
    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: object) -> click.Context:
        try:
            defaults = defaults_for_run(Path.cwd())
        except InputError as exc:
            click.echo(exc.render(), err=True)
            sys.exit(2)
        extra.setdefault("default_map", defaults)
        return super().make_context(info_name, args, parent, **extra)


@click.command(cls=RunCommand, context_settings={"auto_envvar_prefix": "KCVERIFY"})
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@target_option("Where the system under test runs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for ids and generated values.")
@click.option("--fail-fast", is_flag=True, help="Stop after the first scenario that fails.")
@click.option("-k", "--select", "select_", multiple=True, help="Only scenarios whose name contains / tag is this.")
@click.option("--report", default="", help="Comma-separated: junit,json,markdown,html.")
@click.option("--report-dir", type=click.Path(path_type=Path), default=Path("kcverify-report"), show_default=True)
@click.option("--no-color", is_flag=True, help="Plain output, no colours or control codes.")
@click.option("-v", "--verbose", is_flag=True, help="Show every step of every scenario.")
@click.option("--defect", "defects", multiple=True, hidden=True, metavar="NAME",
              help="Build the target with a named defect switched on (see `kcverify defects`).")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def run(paths: tuple[Path, ...], target: str, seed: int, fail_fast: bool, select_: tuple[str, ...], report: str,
        report_dir: Path, no_color: bool, verbose: bool, defects: tuple[str, ...], debug: bool) -> None:
    """Replay purchase scenarios end to end and check every hop."""
    console = Console(no_color=no_color, highlight=False, force_terminal=None if not no_color else False)
    try:
        scenarios = load_scenarios(list(paths) or [Path("scenarios")])
        chosen = select(scenarios, select_)
        if not chosen:
            raise InputError("no scenario selected" + (f" by -k {' '.join(select_)}" if select_ else ""))
        names = [n.strip() for n in report.split(",") if n.strip()]
        handlers = [ConsoleReporter(console, verbose=verbose), *build_reporters(names, report_dir, console)]
        options = TargetOptions(defects=frozenset(defects))
        runner = Runner(make_target(target, options), handlers,
                        RunOptions(seed=seed, fail_fast=fail_fast, target_name=target,
                                   extra_reproduce=options.reproduce_args()))
        result = runner.run(chosen)
    except ValueError as exc:  # e.g. an unknown report name
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:
        exit_for(exc, debug=debug)
    sys.exit(result.exit_code)
