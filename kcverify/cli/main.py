"""The `kcverify` command. Subcommands live in their own modules and are registered here."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from kcverify import __version__

TRUE = ("1", "true", "yes", "on")  # as kcverify.cli.settings reads a boolean variable
# name -> "module:attribute"; imported lazily so `kcverify --help` stays fast.
SUBCOMMANDS = {
    "serve": "kcverify.cli.serve:serve",
    "run": "kcverify.cli.run:run",
    "stack": "kcverify.cli.stack:stack",
    "defects": "kcverify.cli.defects:defects_command",
    "explore": "kcverify.cli.explore:explore",
    "fuzz": "kcverify.cli.fuzz:fuzz",
    "bench": "kcverify.cli.bench:bench",
    "chaos": "kcverify.cli.chaos:chaos",
    "targets": "kcverify.cli.targets:targets_command",
    "profile": "kcverify.cli.profile:profile",
    "init": "kcverify.cli.init:init_command",
}


class SettingsUsageError(click.ClickException):
    """Bad settings met while click builds a command's context: printed as they are, exit 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(self.message, err=True)


class LazyDefaultMap(dict[str, Any]):
    """The root context's default_map (kcverify.cli.settings), read from the file and the environment
    only when a command asks for its defaults: `kcverify --help` and `--version` never touch them."""

    def __init__(self, start: Path | None = None, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self._start = start
        self._environ = environ
        self._loaded: dict[str, Any] | None = None

    def get(self, key: str, default: Any = None) -> Any:
        # Imported here: jsonschema and the contract are not needed for `kcverify --help`.
        from kcverify.cli import settings
        from kcverify.core.errors import InputError

        if key not in settings.COMMANDS:
            return default
        if self._loaded is None:
            try:
                found = settings.load(self._start or Path.cwd(), os.environ if self._environ is None else self._environ)
            except InputError as exc:
                raise SettingsUsageError(exc.render()) from exc
            self._loaded = settings.default_map(found)
        return self._loaded.get(key, default)


class LazyGroup(click.Group):
    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        # Every command's defaults come from the one settings model (file, then KCVERIFY_* variables).
        if parent is None:
            extra.setdefault("default_map", LazyDefaultMap())
        return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        """Whatever a command did not map itself goes through the one mapping (kcverify.cli.outcomes):
        never a traceback unless asked for with --debug or KCVERIFY_DEBUG. Ctrl-C: exit 130 within a
        second with one line (kcverify.core.interrupt)."""
        from kcverify.core import interrupt

        try:
            with interrupt.handled():
                return super().invoke(ctx)
        except KeyboardInterrupt:  # Ctrl-C: `finally` blocks have stopped what was started
            interrupt.finish()
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            from kcverify.cli.outcomes import exit_for

            debug = "--debug" in sys.argv[1:] or os.environ.get("KCVERIFY_DEBUG", "").strip().lower() in TRUE
            exit_for(exc, debug=debug)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in SUBCOMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        spec = SUBCOMMANDS.get(name)
        if spec is None:
            return None
        module_name, attr = spec.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # not built yet
                return None
            from kcverify.core.extras import missing_extra

            extra = missing_extra(exc, f"kcverify {name}")
            if extra is None:
                raise
            return _needs_extra(name, extra)
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command


def _needs_extra(name: str, extra: Exception) -> click.Command:
    """A stand-in for a command whose module needs an optional client that is not installed: listed
    in --help, and any use of it is one line naming the extra, exit 2."""

    def needs(args: tuple[str, ...]) -> None:
        click.echo(str(extra), err=True)
        sys.exit(2)

    return click.Command(name, callback=needs, help=f"(needs an extra: {extra})", add_help_option=False,
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
                         params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)])


def _show_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """The package's version and every contract's (kcverify.contracts.versions), read only when asked."""
    if not value or ctx.resilient_parsing:
        return
    from kcverify.contracts.versions import version_text

    click.echo(version_text(__version__))
    ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_show_version,
              help="Show the version of kcverify and of each contract it checks against, and exit.")
def cli() -> None:
    """Verify an event-driven purchase flow with evidence: payments -> Kafka -> worker -> database ->
    cached API -> frontend."""


def main(prog_name: str | None = None) -> None:
    from kcverify.core import interrupt

    try:
        cli(prog_name=prog_name)
    except SystemExit as done:
        interrupt.leave(done.code if isinstance(done.code, int) else 1)
        raise
