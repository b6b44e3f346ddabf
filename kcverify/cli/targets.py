"""`kcverify targets`: the registered targets (the `kcverify.targets` entry-point group), and the
`--target NAME` option that `run` and `defects` share, whose help lists the names at run time.
Exit 0 every target loads, 2 a plug-in is broken (each named on its own line)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from kcverify.targets import registry
from kcverify.targets.base import CAPABILITIES

F = TypeVar("F", bound=Callable[..., Any])


class TargetOption(click.Option):
    """`--target NAME`: the help names the registered targets when it is shown, not when kcverify is
    imported, so an installed plug-in appears without any table to edit. An unknown name is reported by
    the command (registry.lookup: exit 2 with "did you mean"), not by click."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        if record is None:
            return None
        flags, text = record
        return flags, f"{text} Registered: {', '.join(registry.names()) or 'none'} (see `kcverify targets`)."


def target_option(help_text: str) -> Callable[[F], F]:
    return click.option("--target", cls=TargetOption, default="embedded", show_default=True, metavar="NAME",
                        help=help_text)


@click.command(name="targets")
def targets_command() -> None:
    """List the targets `--target` accepts: built-in and installed plug-ins."""
    plugins, errors = registry.discover()
    for plugin in plugins:
        defects = f"yes ({len(plugin.defect_names)} named)" if plugin.accepts_defects else "no"
        click.echo(f"{plugin.name}  (from {plugin.distribution}, {plugin.value})")
        if plugin.description:
            click.echo(f"  {plugin.description}")
        click.echo(f"  capabilities: {_capabilities(plugin.capabilities)}")
        click.echo(f"  --defect: {defects}")
    if not plugins and not errors:
        click.echo(f"no target registered in the entry-point group {registry.GROUP}")
    for error in errors:
        click.echo(f"error: {error}", err=True)
    sys.exit(2 if errors else 0)


def _capabilities(declared: frozenset[str] | None) -> str:
    if declared is None:
        return "not declared (known once the target is built)"
    lacking = [c for c in CAPABILITIES if c not in declared]
    if not lacking:
        return "all"
    if len(lacking) <= 3 < len(declared):
        return "all but " + ", ".join(lacking)
    return ", ".join(c for c in CAPABILITIES if c in declared) or "none"
