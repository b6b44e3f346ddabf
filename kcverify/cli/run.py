"""`kcverify run`: replay scenarios against a target and report; exit 0 passed, 1 a check failed,
2 bad input / unreachable target / nothing ran, 3 kcverify broke."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click
from rich.console import Console

from kcverify.cli.config import defaults_for_run
from kcverify.cli.outcomes import exit_for
from kcverify.core.errors import InputError, TargetUnreachable
from kcverify.engine.runner import Runner, RunOptions
from kcverify.reference.defects import BY_NAME
from kcverify.report import build_reporters
from kcverify.report.claims import load_claims
from kcverify.report.console import ConsoleReporter
from kcverify.scenario.loader import load_scenarios
from kcverify.scenario.model import Scenario
from kcverify.targets.base import Target

TARGETS = ("embedded", "processes")


def make_target(name: str) -> Target:
    if name == "embedded":
        from kcverify.targets.embedded import EmbeddedTarget

        return EmbeddedTarget()
    if name == "processes":
        try:
            stack = importlib.import_module("kcverify.targets.processes")
        except ModuleNotFoundError as exc:
            raise TargetUnreachable("the processes target is not available in this build") from exc
        target: Target = stack.ProcessesTarget.from_state()
        return target
    raise InputError(f"unknown target {name!r}", hint=f"one of {', '.join(TARGETS)}")


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
@click.option("--target", type=click.Choice(TARGETS), default="embedded", show_default=True,
              help="Where the system under test runs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for ids and generated values.")
@click.option("--fail-fast", is_flag=True, help="Stop after the first scenario that fails.")
@click.option("-k", "--select", "select_", multiple=True, help="Only scenarios whose name contains / tag is this.")
@click.option("--report", default="", help="Comma-separated: junit,json,markdown,html.")
@click.option("--report-dir", type=click.Path(path_type=Path), default=Path("kcverify-report"), show_default=True)
@click.option("--claims", type=click.Path(path_type=Path), default=None,
              help="A claims file (YAML): each claim is judged held, refuted or not exercised by this run "
                   "(see docs/claims.md; the repository's claims.yaml is an example).")
@click.option("--no-color", is_flag=True, help="Plain output, no colours or control codes.")
@click.option("-v", "--verbose", is_flag=True, help="Show every step of every scenario.")
@click.option("--defect", "defects", multiple=True, hidden=True, type=click.Choice(sorted(BY_NAME)),
              help="Run the reference with a named defect switched on (see `kcverify defects`).")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def run(paths: tuple[Path, ...], target: str, seed: int, fail_fast: bool, select_: tuple[str, ...], report: str,
        report_dir: Path, claims: Path | None, no_color: bool, verbose: bool, defects: tuple[str, ...],
        debug: bool) -> None:
    """Replay purchase scenarios end to end and check every hop."""
    console = Console(no_color=no_color, highlight=False, force_terminal=None if not no_color else False)
    try:
        judged = load_claims(claims) if claims is not None else None
        scenarios = load_scenarios(list(paths) or [Path("scenarios")])
        chosen = select(scenarios, select_)
        if not chosen:
            raise InputError("no scenario selected" + (f" by -k {' '.join(select_)}" if select_ else ""))
        names = [n.strip() for n in report.split(",") if n.strip()]
        handlers = [ConsoleReporter(console, verbose=verbose, claims=judged),
                    *build_reporters(names, report_dir, console, judged)]
        runner = Runner(make_target(target), handlers,
                        RunOptions(seed=seed, defects=frozenset(defects), fail_fast=fail_fast, target_name=target))
        result = runner.run(chosen)
    except ValueError as exc:  # e.g. an unknown report name
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:
        exit_for(exc, debug=debug)
    sys.exit(result.exit_code)
