"""The `kcverify` command. Subcommands live in their own modules and are registered here."""

from __future__ import annotations

import importlib

import click

from kcverify import __version__

# name -> "module:attribute"; imported lazily so `kcverify --help` stays fast.
SUBCOMMANDS = {
    "serve": "kcverify.cli.serve:serve",
    "run": "kcverify.cli.run:run",
    "stack": "kcverify.cli.stack:stack",
    "defects": "kcverify.cli.defects:defects_command",
    "explore": "kcverify.cli.explore:explore",
    "targets": "kcverify.cli.targets:targets_command",
}


class LazyGroup(click.Group):
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
            raise
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kcverify")
def cli() -> None:
    """Verify an event-driven purchase flow with evidence: payments -> Kafka -> worker -> database ->
    cached API -> frontend."""


def main() -> None:
    cli()
